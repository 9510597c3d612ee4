"""The broker's domain core: what every front end (Kafka handlers, the HTTP API, the cluster layer
and the coordinators) shares — Kafka error codes, topic rules, replicas, the metadata view,
producer ids, the request contract and the response helpers.

It sits above storage and protocol and below every server, so the Kafka listener, the HTTP app
and the cluster layer can depend on it without depending on each other.
"""
