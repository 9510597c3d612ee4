"""The security-metadata store: changes are applied, durable across a restart, and announced."""

from __future__ import annotations

from pathlib import Path

from headrace.security.records import FileSecurityRecords, MemorySecurityRecords


async def test_memory_records_apply_deletes_and_announce() -> None:
    records = MemorySecurityRecords()
    changed: list[str] = []
    records.subscribe(changed.append)
    await records.write("acl", {"a": b"1", "b": b"2"})
    await records.write("acl", {"a": None})
    assert records.snapshot("acl") == {"b": b"2"}
    assert records.snapshot("scram") == {}
    assert changed == ["acl", "acl"]


async def test_file_records_survive_a_restart(tmp_path: Path) -> None:
    records = FileSecurityRecords(tmp_path)
    await records.write("scram", {"alice": b"\x00\xffsalted"})
    await records.write("quota", {"user=bob": b"{}"})
    await records.write("quota", {"user=bob": None})
    reopened = FileSecurityRecords(tmp_path)
    assert reopened.snapshot("scram") == {"alice": b"\x00\xffsalted"}
    assert reopened.snapshot("quota") == {}
