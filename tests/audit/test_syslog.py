"""Audit chains as RFC 5424 syslog lines: every exported line carried unchanged (the chain still
verifies from what a log system stored), well-formed headers, bad input named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.audit import verify_chain
from tholos.audit.syslog import PRI, message_of, syslog_line

from .conftest import make_log

RFC5424 = re.compile(
    r"^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z|-) (\S{1,255}) tholos "
    r"([!-~]{1,32}) ([!-~]{1,32}) - (\{.*\})$"
)


def test_syslog_lines_carry_the_chain(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 12, node_id="node-3")
    lines = list(log.export_lines())
    rows = [syslog_line("node-3", line, hostname="vault-a") for line in lines]
    parsed = [RFC5424.match(r) for r in rows]
    assert all(parsed), [r for r, p in zip(rows, parsed, strict=True) if not p]
    assert {int(p.group(1)) for p in parsed if p} == {PRI} == {13 * 8 + 6}
    kinds = [p.group(5) for p in parsed if p]
    assert kinds[0] == "header" and kinds.count("decision") == 12 and "checkpoint" in kinds
    assert parsed[1] and parsed[1].group(2).startswith("2026-")  # the clock of make_log
    carried = [message_of(r) for r in rows]
    assert carried == lines
    report = verify_chain(carried, key.public_key(), node_id="node-3", checkpoint_every=5)
    assert report.ok and len(report.entries) == 12


@pytest.mark.parametrize(
    ("chain", "line", "match"),
    [
        ("node-1", "not json", "node-1: audit line is not JSON"),
        ("node-1", "[1, 2]", "not a JSON object"),
        ("node 1", '{"type": "header"}', "chain name 'node 1' is not 1-32 printable ASCII"),
        ("node-1", '{"type": "entry", "kind": "dé"}', "record kind 'dé'"),
    ],
)
def test_bad_input_named(chain: str, line: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        syslog_line(chain, line)


def test_message_of_refuses_other_lines() -> None:
    with pytest.raises(ValueError, match="not a tholos audit syslog line"):
        message_of("<34>1 2026-01-01T00:00:00Z host app - - - hello")
