"""The answers of a run of records written to one partition, held to the plain formatting."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from headrace.web.produce import _run_of_answers


@given(
    base=st.one_of(st.integers(0, 1_000), st.integers(0, 2**63 - 1_000)),
    count=st.integers(1, 1_000),
    separator=st.sampled_from(["", ",", "\n"]),
    head=st.text(max_size=8),
    tail=st.text(max_size=8),
)
def test_run_of_answers_is_each_answer_formatted_and_joined(
    base: int, count: int, separator: str, head: str, tail: str
) -> None:
    expected = separator.join(f"{head}{offset}{tail}" for offset in range(base, base + count))
    assert _run_of_answers(head, tail, separator, base, count) == expected.encode()


def test_runs_across_hundreds_and_from_zero() -> None:
    assert _run_of_answers("<", ">", ",", 98, 4) == b"<98>,<99>,<100>,<101>"
    assert _run_of_answers("", "", " ", 0, 3) == b"0 1 2"
    assert _run_of_answers("", "", "", 1_099, 2) == b"10991100"
