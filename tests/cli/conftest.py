"""Run ``headrace`` client commands against a real broker subprocess.

Commands run in-process through the real entry point (``headrace.cli.main``) with stdin, stdout
and stderr redirected, which saves an interpreter start per call; ``subprocess=True`` runs
``python -m headrace`` for real, to check exit codes as a shell sees them.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from headrace.cli import main
from tests.support.brokers import ROOT, BrokerProcess, subprocess_env

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(broker: BrokerProcess, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> CliRunner:
    """Runs a command with ``--bootstrap-server`` (the shared broker's unless ``bootstrap``
    names another; ``bootstrap=""`` gives none, for profiles). A user's own profiles file and
    HEADRACE_* connection variables are kept out."""
    monkeypatch.setenv("HEADRACE_CONFIG", str(tmp_path / "no-profiles.toml"))
    for name in ("HEADRACE_BOOTSTRAP", "HEADRACE_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str, stdin: str | None = None, bootstrap: str | None = None,
            timeout: float = 60, in_subprocess: bool = False
            ) -> subprocess.CompletedProcess[str]:
        target = broker.bootstrap if bootstrap is None else bootstrap
        argv = [*args, *(("--bootstrap-server", target) if target else ())]
        if in_subprocess:
            env = subprocess_env()
            return subprocess.run([sys.executable, "-m", "headrace", *argv], input=stdin,
                                  capture_output=True, text=True, timeout=timeout, env=env,
                                  cwd=ROOT)
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((stdin or "").encode())))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse usage errors
                code = exit_.code if isinstance(exit_.code, int) else 1
        return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())

    return run
