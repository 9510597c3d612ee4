"""docs/compatibility.md names a test in each cell it claims; every one of them exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "compatibility.md"
_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


def test_every_test_the_compatibility_table_names_exists() -> None:
    references = _REFERENCE.findall(DOC.read_text())
    assert len(references) > 40, references
    missing = [f"{path}::{name}" for path, name in references
               if not (ROOT / path).is_file() or name not in _tests_in(ROOT / path)]
    assert not missing, f"docs/compatibility.md names tests that do not exist: {missing}"


def _table(header: str) -> list[list[str]]:
    """The rows (cells) of the table whose first header cell is ``header``."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_every_cell_names_a_test_or_says_untested() -> None:
    features = _table("feature")
    assert len(features) > 10
    unbacked = [(row[0], column) for row in features for column, cell in enumerate(row[1:], 1)
                if cell != "—" and not _REFERENCE.search(cell)]
    tools = _table("tool")
    unbacked += [(row[0], 2) for row in tools if not _REFERENCE.search(row[2])]
    assert not unbacked, f"cells naming no test (write — for untested): {unbacked}"
