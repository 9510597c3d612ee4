"""The transaction coordinator (KIP-98, KIP-447, KIP-890 part 1) and its Kafka APIs.

Layered like :mod:`headrace.groups`: ``model`` (the pure state machine) and ``records`` (the
``__transaction_state`` format) under ``persistence`` (the partitions this broker leads) under
``coordinator`` (asyncio: requests, markers, timers) under ``markers`` (writing markers
in-process) and ``handlers`` (the Kafka APIs).
"""
