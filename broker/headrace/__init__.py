"""Headrace: an event-streaming platform that speaks the Kafka protocol.

The broker package is layered: ``storage`` (the durable partition log, no network
code) at the bottom, ``protocol`` (Kafka wire framing) beside it, ``server`` and
``groups`` (request handling and the group coordinator) above them, ``cluster``
(metadata and replication) and ``web`` (the HTTP API) on top, and ``cli`` as the
only entry point.
"""

__version__ = "0.1.0"
