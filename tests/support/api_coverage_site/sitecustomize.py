"""Installs tests/support/api_coverage.py's recorder in ``python -m headrace`` children of a test
session run with ``HEADRACE_API_COVERAGE`` (this directory is first on their ``PYTHONPATH`` then,
and only then). Any other Python process started from the session is left alone."""

import itertools
import os
import sys

_argv = getattr(sys, "orig_argv", [])
if os.environ.get("HEADRACE_API_COVERAGE") and any(
    flag == "-m" and module == "headrace" for flag, module in itertools.pairwise(_argv)
):
    from pathlib import Path

    _root = str(Path(__file__).resolve().parents[3])
    if _root not in sys.path:
        sys.path.append(_root)
    from tests.support.api_coverage import install

    install(Path(os.environ["HEADRACE_API_COVERAGE"]))
