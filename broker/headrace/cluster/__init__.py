"""The replicated cluster: metadata in etcd, controller election, leadership and ISR.

``model`` (records and key layout) and ``decisions`` (election and ISR rules) are pure;
``store`` is the only etcd client; ``controller`` applies decisions with compare-and-swap;
``etcd_launcher`` runs a local etcd for tests and ``headrace dev``.
"""
