"""The console's canonical.js (run under node) rebuilds, byte for byte, what Python signs:
canonical JSON of tricky values (unicode, escapes, big integers, key order by code point), the
request digest, the approval, rejection, initiation and cancel messages over it, and the
kill-switch, governance, login and audit messages. What it cannot
encode canonically (floats, duplicate keys, lone surrogates, non-JSON) it refuses."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tholos.gateway.console.sessions import login_message
from tholos.governance._canonical import canonical_json
from tholos.governance.audit_export import audit_export_message
from tholos.governance.killswitch import KillSwitchEngage
from tholos.governance.rejections import REJECTION_TAG
from tholos.governance.requests import (
    APPROVAL_TAG,
    CANCEL_TAG,
    INITIATION_TAG,
    Intent,
    TransactionIntent,
    TransferIntent,
    request_digest,
)

ROOT = Path(__file__).resolve().parents[2]
CANONICAL_JS = ROOT / "src" / "tholos" / "gateway" / "console" / "static" / "canonical.js"
RUNNER = Path(__file__).with_name("console_canonical_runner.js")


class Node:
    """One node process running canonical.js, asked one command per line."""

    def __init__(self, exe: str) -> None:
        self.proc = subprocess.Popen(
            [exe, str(RUNNER), str(CANONICAL_JS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    exe = shutil.which("node")
    if exe is None:
        pytest.skip("no node on PATH: the console's canonical.js is checked under node")
    n = Node(exe)
    try:
        yield n
    finally:
        n.close()


# Text without lone surrogates (Python cannot UTF-8-encode them either), biased to the tricky:
# controls, quotes, backslashes, DEL, U+2028, BMP above the surrogates, astral characters.
TRICKY = st.sampled_from(
    ["\x00", "\x1f", '"', "\\", "/", "\x7f", "\u2028", "\ue000", "\uffff", "\U0001f600", "é"]
)
TEXT = st.lists(st.one_of(TRICKY, st.characters(exclude_categories=("Cs",))), max_size=12).map(
    "".join
)
INTS = st.one_of(st.integers(), st.integers(min_value=0, max_value=2**256 - 1))
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), INTS, TEXT),
    lambda kids: st.one_of(st.lists(kids, max_size=5), st.dictionaries(TEXT, kids, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, ascii_input=st.booleans(), indent=st.sampled_from([None, 1]))
def test_js_canonical_json_equals_python_on_tricky_values(
    node: Node, value: Any, ascii_input: bool, indent: int | None
) -> None:
    # The input is any JSON spelling of the value (escaped or raw, spaced, unsorted).
    text = json.dumps(value, ensure_ascii=ascii_input, indent=indent)
    out = node.ask(op="canonical", text=text)
    assert out == {"ok": canonical_json(value).decode("utf-8")}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"amount": 1.5}', "floats"),
        ('{"amount": 1e3}', "floats"),
        ('{"a": 1, "a": 2}', "duplicate key"),
        ('"\\ud800"', "lone surrogate"),
        ('{"a": 1} x', "trailing"),
        ("[01]", "expected"),
        ("{'a': 1}", "expected"),
        ('"\\x41"', "bad escape"),
        ("NaN", "unexpected"),
    ],
)
def test_js_refuses_what_has_no_canonical_form(node: Node, text: str, why: str) -> None:
    out = node.ask(op="canonical", text=text)
    assert "error" in out and why in out["error"], out


def _intent(**over: Any) -> Intent:
    base: dict[str, Any] = {
        "request_id": "req-00000001",
        "initiator": "initiator",
        "key_id": "k1",
        "chain": "solana",
        "created_at": 1_700_000_000,
        "expires_at": 1_700_003_600,
    }
    return Intent.model_validate({**base, **over})


TRANSACTION = TransactionIntent(
    network="localnet",
    address_type="ed25519",
    kind="transaction",
    transfers=(TransferIntent(asset="SOL", to="9xQeWvG816bUx9EPjHmaT23yvVM2ZW", amount=2**255),),
    fee=5000,
    fee_asset="SOL",
    details={"recent_blockhash": "4uQe", "nonce": 7, "note": 'é\u2028"q"\n'},
)


@pytest.mark.parametrize(
    "intent",
    [
        _intent(transaction=TRANSACTION),
        _intent(asset="BTC", destination="bc1q…", amount=2**256 - 1, memo="ünïcødé 😀 \\ \x01"),
        _intent(asset="BTC", destination="bc1p", amount=1, taproot=True, merkle_root="ab" * 32),
        _intent(asset="BTC", destination="bc1p", amount=0, taproot=True),
    ],
)
def test_js_request_digest_equals_python(node: Node, intent: Intent) -> None:
    payload = bytes(range(256)) * 3
    # The page embeds the intent exactly as pages.py does: its JSON dump.
    out = node.ask(
        op="request_digest",
        cluster_id="tholos-test",
        intent=json.dumps(intent.model_dump(mode="json"), ensure_ascii=False),
        payload=payload.hex(),
    )
    assert out == {"ok": request_digest("tholos-test", intent, payload).hex()}


@given(reason=TEXT, issued_at=st.integers(min_value=0, max_value=2**40))
@settings(max_examples=50, deadline=None)
def test_js_kill_switch_message_equals_python(node: Node, reason: str, issued_at: int) -> None:
    engage = KillSwitchEngage(
        cluster_id="tholos-test",
        governance_version=3,
        signer="admin-1",
        issued_at=issued_at,
        reason=reason,
    )
    out = node.ask(op="kill_switch", text=json.dumps(engage.model_dump(mode="json")))
    assert out == {"ok": engage.signing_message().hex()}


def test_js_login_and_audit_messages_equal_python(node: Node) -> None:
    challenge = bytes(range(32))
    out = node.ask(op="login", cluster_id="tholos-test", challenge=challenge.hex())
    assert out == {"ok": login_message("tholos-test", challenge).hex()}
    out = node.ask(op="audit", cluster_id="tholos-test", issued_at="1700000000")
    assert out == {"ok": audit_export_message("tholos-test", 1_700_000_000).hex()}


@pytest.mark.parametrize(
    ("kind", "tag"),
    [
        ("approval", APPROVAL_TAG),
        ("rejection", REJECTION_TAG),
        ("initiation", INITIATION_TAG),
        ("cancel", CANCEL_TAG),
    ],
)
def test_js_digest_messages_equal_python(node: Node, kind: str, tag: bytes) -> None:
    """What the browser signs over a request digest: the governance tag, then the digest."""
    digest = bytes(range(32))
    assert node.ask(op="digest_message", kind=kind, digest=digest.hex()) == {
        "ok": (tag + digest).hex()
    }
