"""The Headrace Kubernetes operator.

It lives in ``headrace_operator`` rather than ``operator`` because a top-level
package named ``operator`` would shadow Python's standard library module.
"""
