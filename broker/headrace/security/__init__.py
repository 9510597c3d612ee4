"""Kafka's security model: who a client is (TLS, SASL), what it may do (ACLs), how fast (quotas).

The pieces are plain values and small services that the composition root (:mod:`headrace.app`)
hands to the request pipeline and the listeners, which are their only callers:

- :mod:`~headrace.security.records`: where security metadata (ACL bindings, SCRAM credentials,
  client-quota configs) is kept: one narrow store, a file for a lone broker, etcd in a cluster.
- TLS contexts and certificate principals, SASL mechanisms and credentials, the ACL authorizer
  and the client-quota manager each have a module of their own here.
"""
