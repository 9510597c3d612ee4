"""``python -m headrace_operator``: run the operator (kopf) for some namespaces or all of them.

Environment: ``HEADRACE_KUBECONFIG`` (kubeconfig to use; in-cluster credentials otherwise),
``HEADRACE_OPERATOR_METRICS_PORT`` (default 8080, ``off`` to disable),
``HEADRACE_OPERATOR_INTERVAL`` (seconds between periodic reconciles, default 15).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m headrace_operator",
                                     description="Run the Headrace Kubernetes operator.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[],
                       help="watch this namespace (repeatable); default: all namespaces")
    scope.add_argument("-A", "--all-namespaces", action="store_true",
                       help="watch all namespaces (the default)")
    parser.add_argument("--liveness", default=None, metavar="URL",
                        help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import kopf

    import headrace_operator.handlers  # noqa: F401  (registers the handlers)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kopf.run(standalone=True, namespaces=list(args.namespace),
             clusterwide=not args.namespace, liveness_endpoint=args.liveness)
    return 0


if __name__ == "__main__":
    sys.exit(main())
