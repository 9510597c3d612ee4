"""KIP-848 consumer groups: the "consumer" group protocol (``group.protocol=consumer``).

Pure code first: ``model`` (groups, members, epochs), ``assignors`` (server-side ``uniform``
and ``range``), ``subscriptions`` (topic names and RE2 regexes against the cluster's topics),
``reconciliation`` (one member's step towards its target without double ownership),
``machine`` (ConsumerGroupHeartbeat, expiry, commit checks) and ``snapshot`` (the stored
record). Then ``service`` (the log, the clock, and conversion with classic groups) and
``handlers`` (ConsumerGroupHeartbeat and ConsumerGroupDescribe). The group coordinator owns
the service; see docs/groups.md.
"""
