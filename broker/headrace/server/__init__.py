"""The Kafka-protocol server: named listeners, connections, the request pipeline and the handlers
of the broker's own APIs.

Handlers are thin adapters from kio request dataclasses to the
:class:`~headrace.core.broker.Broker` services object, which the HTTP API and the group
coordinator call in-process as well; :mod:`headrace.app` binds them to it.
"""
