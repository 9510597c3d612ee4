"""The Headrace Kubernetes operator.

It lives in ``headrace_operator`` rather than ``operator`` because a top-level
package named ``operator`` would shadow Python's standard library module.

Layered like kopf itself (import-linter enforces it, see pyproject.toml), top to bottom:
``handlers`` (the only kopf code: events in, reconciles out), ``reconcile`` (observe, plan,
act, report), the I/O clients ``admin`` (brokers), ``kube`` (Kubernetes) and ``metrics``, then
pure code: ``observe`` and ``status`` (Kubernetes objects in, status out), ``planning``,
``resources`` and ``rbac`` (decisions, owned objects, permissions), ``model`` (typed specs)
and ``crds`` (the custom resources' schemas and names).
"""
