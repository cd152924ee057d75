"""The signer's message set: only its fixed ops answer; anything else is refused with a reason
and changes nothing (in-process: the handlers behind a socket pair, no hardening)."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.node.signer_setup import KEY_ID, make_node_dir
from tholos.node.config import NodeConfig
from tholos.node.signer import wire
from tholos.node.signer.hardening import Protections
from tholos.node.signer.process import Signer, SignerVault, serve_connection, unseal
from tholos.node.store import NodeStore
from tholos.schemes import SCHEMES

POOL = SCHEMES["secp256k1"].pool


class Link:
    """A client socket to one `serve_connection` thread over a fresh socket pair."""

    def __init__(self, signer: Signer) -> None:
        self.sock, theirs = socket.socketpair()
        self.sock.settimeout(30)
        self.thread = threading.Thread(target=serve_connection, args=(signer, theirs), daemon=True)
        self.thread.start()

    def raw(self, data: bytes) -> dict[str, Any] | None:
        self.sock.sendall(data)
        return wire.read_frame(self.sock)

    def ask(self, msg: Any) -> dict[str, Any] | None:
        body = json.dumps(msg).encode()
        return self.raw(struct.pack(">I", len(body)) + body)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(30)


@pytest.fixture
def signer(tmp_path: Path) -> Iterator[Signer]:
    cfg_path, _shares = make_node_dir(tmp_path / "node")
    cfg = NodeConfig.load(cfg_path)
    store = NodeStore(cfg.db)
    vault = SignerVault(store, unseal(cfg, store), cfg.node_id)
    yield Signer(vault, Protections(True, True, False, "not locked: test", True))
    store.close()


def snapshot(s: Signer) -> tuple[Any, ...]:
    db = s.vault._store.db
    return tuple(
        db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
        for t in ("keys", "nonces", "meta", "presigs")
    )


def test_status_and_nonces_answer(signer: Signer) -> None:
    link = Link(signer)
    got = link.ask(wire.request("status"))
    assert got is not None and got["ok"] and got["result"]["broken"] == []
    assert got["result"]["protections"]["memory_lock"] == "not locked: test"
    got = link.ask(wire.request("nonces", group=POOL, count=3))
    assert got is not None and got["ok"] and len(got["result"]) == 3
    assert signer.vault._store.count_nonces() == {POOL: 3}
    link.close()


def test_no_share_is_opened_at_start_and_the_scan_finds_a_broken_one(signer: Signer) -> None:
    """The signer opens shares lazily; its background scan reports a share that fails to open
    (here: its sealed row cut short) in `status`, with `unchecked` counting down to 0."""
    db = signer.vault._store.db
    with db:
        db.execute("UPDATE keys SET sealed = substr(sealed, 1, 8) WHERE key_id = ?", (KEY_ID,))
    assert len(signer.vault._cache) == 0
    found: list[set[str]] = []
    signer.vault.scan_in_background(found.append).join(60)
    assert found == [{KEY_ID}]
    link = Link(signer)
    got = link.ask(wire.request("status"))
    assert got is not None and got["ok"]
    assert got["result"]["broken"] == [KEY_ID] and got["result"]["unchecked"] == 0
    assert len(signer.vault._cache) == 0
    link.close()


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        ({"v": 1, "op": "export_share", "args": {}}, "unknown op 'export_share'"),
        ({"v": 1, "op": "__init__", "args": {}}, "unknown op"),
        ({"v": 2, "op": "status", "args": {}}, "unsupported message set version 2"),
        ({"v": 1, "op": "status"}, "exactly the fields v, op, args"),
        ({"v": 1, "op": "status", "args": {}, "x": 1}, "exactly the fields"),
        ({"v": 1, "op": "nonces", "args": {"group": POOL}}, "takes the arguments"),
        ({"v": 1, "op": "nonces", "args": {"group": POOL, "count": 2, "to": 1}}, "takes the"),
        ({"v": 1, "op": "nonces", "args": {"group": POOL, "count": 0}}, "count must be"),
        ({"v": 1, "op": "nonces", "args": {"group": POOL, "count": "3"}}, "count must be"),
        ({"v": 1, "op": "nonces", "args": {"group": "nope", "count": 1}}, "unknown nonce pool"),
        ({"v": 1, "op": "status", "args": []}, "args must be an object"),
        ({"v": 1, "op": "bls_sign", "args": {"items": [{"request_id": "r"}]}}, "bad arguments"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_outside_the_message_set_is_refused_and_changes_nothing(
    signer: Signer, msg: Any, reason: str
) -> None:
    before = snapshot(signer)
    link = Link(signer)
    got = link.ask(msg)
    assert got is not None and got["ok"] is False and reason in got["error"], got
    assert snapshot(signer) == before
    # the connection still answers a good request after a refused one
    assert (link.ask(wire.request("status")) or {}).get("ok") is True
    link.close()


def test_malformed_frame_is_refused(signer: Signer) -> None:
    link = Link(signer)
    got = link.raw(struct.pack(">I", 5) + b"\xff\xfe{]x")
    assert got == wire.refused("frame is not UTF-8 JSON")
    assert (link.ask(wire.request("status")) or {}).get("ok") is True
    link.close()


def test_oversize_frame_is_refused_and_closes(signer: Signer) -> None:
    before = snapshot(signer)
    link = Link(signer)
    got = link.raw(struct.pack(">I", wire.MAX_FRAME + 1))
    assert got is not None and got["ok"] is False and "exceeds" in got["error"]
    assert wire.read_frame(link.sock) is None  # closed: the rest cannot be skipped safely
    assert snapshot(signer) == before
    link.close()
    with pytest.raises(wire.FrameTooLarge):
        wire.encode({"x": "a" * (wire.MAX_FRAME + 1)})


def test_ecdsa_sign_with_unknown_presignature_consumes_nothing(signer: Signer) -> None:
    before = snapshot(signer)
    link = Link(signer)
    item = {"request_id": "r", "key_id": KEY_ID, "presig": "00" * 16, "digest": "11" * 32}
    got = link.ask(wire.request("ecdsa_sign", items=[{**item, "tweak": "0"}]))
    assert got is not None and got["ok"]
    # a secp256k1 FROST key is not an ECDSA key: refused before any presignature is taken
    assert "is not a ecdsa key" in got["result"]["r"]["error"]
    assert snapshot(signer) == before
    link.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=64))
def test_any_bytes_get_a_refusal_or_a_close(signer: Signer, data: bytes) -> None:
    """Whatever arrives, the reply is a refusal (never a result) or the connection closes,
    and nothing in the database changes."""
    before = snapshot(signer)
    link = Link(signer)
    try:
        link.sock.sendall(data)
        link.sock.shutdown(socket.SHUT_WR)
        while True:
            try:
                got = wire.read_frame(link.sock)
            except (wire.WireError, OSError):  # closed by the signer, maybe with bytes unread
                break
            if got is None:
                break
            assert got["ok"] is False
    finally:
        link.close()
    assert snapshot(signer) == before


def test_the_node_mirrors_its_signers_scan(signer: Signer) -> None:
    """A node whose signer found a broken share reports it (and no unchecked share) without
    opening any share itself: its vault has no master key here."""
    import tempfile

    from tholos.node.signer.client import SignerClient
    from tholos.node.signer.process import listen
    from tholos.node.vault import KeyVault

    db = signer.vault._store.db
    with db:
        db.execute("UPDATE keys SET sealed = substr(sealed, 1, 8) WHERE key_id = ?", (KEY_ID,))
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        sock = listen(Path(d) / "s")

        def accept() -> None:
            conn, _ = sock.accept()
            serve_connection(signer, conn)

        server = threading.Thread(target=accept, daemon=True)
        server.start()
        node = KeyVault(signer.vault._store, None, 1)  # type: ignore[arg-type]  # no master key
        node.signer = SignerClient(Path(d) / "s")
        signer.vault.scan_in_background(lambda _: None)
        found: list[set[str]] = []
        node.scan_in_background(found.append).join(60)
        assert found == [{KEY_ID}] and node.broken == {KEY_ID} and node.unchecked == 0
        node.signer.close()
        server.join(30)
        sock.close()
