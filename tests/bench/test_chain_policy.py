"""The per-chain node parse+policy line of `tholos bench`: each bench transaction is accepted by
the node's own checks (a refusal would stop the bench), and the rows fit the bench table."""

from __future__ import annotations

import argparse

import pytest

from tholos.bench import chain_policy, policy
from tholos.bench.run import table


def test_every_chain_row_is_measured_on_an_accepted_request() -> None:
    rows = chain_policy.measure(repeat=3)
    assert [r["scheme"].split()[0] for r in rows] == ["bitcoin", "ethereum", "solana"]
    for r in rows:
        assert r["mode"] == chain_policy.MODE
        assert r["parse_compare_us"] > 0 and r["admit_us"] > 0
    text = table(rows)
    assert text.count(chain_policy.MODE) == 3
    assert chain_policy.table(rows).count("\n") == 4


def test_the_chain_line_comes_once_per_run_and_can_be_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the once-per-run bookkeeping: `measure` itself is tested above."""
    assert policy.chain_line(argparse.Namespace(chain_line=False)) == []
    calls: list[int] = []

    def counted(repeat: int = 300) -> list[dict[str, object]]:
        calls.append(repeat)
        return [{"mode": chain_policy.MODE}]

    monkeypatch.setattr(chain_policy, "measure", counted)
    monkeypatch.setattr(policy, "_chain_line_done", False)
    args = argparse.Namespace(chain_line=True)
    assert policy.chain_line(args) == [{"mode": chain_policy.MODE}]
    assert policy.chain_line(args) == []
    assert calls == [300]
