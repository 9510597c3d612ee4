"""Kafka wire protocol: request framing, kio codec helpers and the hand-framed Fetch response.

Nothing here does I/O; the server package feeds it bytes and writes what it returns.
"""
