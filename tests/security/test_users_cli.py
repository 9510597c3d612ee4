"""``headrace users`` against a SASL broker: the command authenticates itself (flags, the
environment, or a profile's ``sasl`` table), creates, lists and deletes SCRAM users, and an
unauthenticated or wrongly authenticated command fails with one error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headrace.cli import main
from tests.security.sasl_support import PASSWORD, USER
from tests.support.brokers import BrokerProcess


def _users(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["users", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_delete_with_flag_credentials(
        sasl_broker: BrokerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    auth = ["-b", sasl_broker.bootstrap, "--sasl-username", USER, "--sasl-password", PASSWORD,
            "--timeout", "20"]
    code, _, err = _users(capsys, "create", "zoe", "--password", "zoe-pw",
                          "--mechanism", "SCRAM-SHA-512", *auth)
    assert code == 0, err
    code, out, err = _users(capsys, "list", "-o", "json", *auth)
    assert code == 0, err
    rows = {row["user"]: row for row in json.loads(out)}
    assert rows["zoe"]["mechanisms"] == ["SCRAM-SHA-512"]
    assert set(rows[USER]["mechanisms"]) == {"SCRAM-SHA-256", "SCRAM-SHA-512"}
    # zoe can now authenticate herself
    code, out, err = _users(capsys, "list", "-b", sasl_broker.bootstrap, "--sasl-username",
                            "zoe", "--sasl-password", "zoe-pw", "--sasl-mechanism",
                            "SCRAM-SHA-512")
    assert code == 0, err
    assert "zoe" in out
    code, _, err = _users(capsys, "delete", "zoe", *auth)
    assert code == 0, err
    code, out, _ = _users(capsys, "list", "-o", "json", *auth)
    assert "zoe" not in {row["user"] for row in json.loads(out)}


def test_profile_sasl_table(sasl_broker: BrokerProcess, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'default_profile = "sasl"\n[profiles.sasl]\n'
                      f'bootstrap = "{sasl_broker.bootstrap}"\n'
                      f'sasl = {{ username = "{USER}", password = "{PASSWORD}", '
                      f'mechanism = "PLAIN" }}\n')
    monkeypatch.setenv("HEADRACE_CONFIG", str(config))
    code, out, err = _users(capsys, "list")
    assert code == 0, err
    assert USER in out


def test_wrong_password_is_one_error_line(sasl_broker: BrokerProcess,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HEADRACE_SASL_USERNAME", USER)
    monkeypatch.setenv("HEADRACE_SASL_PASSWORD", "wrong")
    code, _, err = _users(capsys, "list", "-b", sasl_broker.bootstrap, "--timeout", "5")
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("headrace: error:")]
    assert len(lines) == 1, err
    assert "uthentication" in lines[0]
