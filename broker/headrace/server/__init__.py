"""The Kafka-protocol server: connections, request dispatch, handlers and the broker services.

Handlers are thin adapters from kio request dataclasses to the
:class:`~headrace.server.broker.Broker` services object, which the HTTP API and the group
coordinator call in-process as well.
"""
