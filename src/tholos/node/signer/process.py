"""`python -m tholos.node.signer --config FILE --socket PATH`: the node's signer process.

It hardens itself (node/signer/hardening.py), unwraps the node's master key, scans its sealed
shares for broken ones in the background (a share is opened on first use, so the start is not
O(keys); `status` reports the scan's progress as `unchecked`), and answers the
fixed message set of node/signer/wire.py on a Unix socket (0600, in the 0700 directory the node
made): FROST nonces and signature shares, BLS partial signatures, DiSE partial evaluations and
ECDSA signature shares, the nonces and presignatures taken (deleted, committed) from the node's
database before any share is computed.

What it trusts: the node process that started it (the only one that can reach its socket) has
made every governance and policy check before asking; the signer itself re-checks only what it
can see in the database (the key exists and is enabled, is of the right kind, its share opens,
the nonce or presignature is unused and belongs to the key) and answers nothing but shares.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from tholos.crypto.dise import EvalRequest, evaluate
from tholos.node import bls as node_bls
from tholos.node.barrier import Barrier, Unsealer, WrongPassphrase, open_master
from tholos.node.config import NodeConfig
from tholos.node.ecdsa import PresigStore, presig_shares
from tholos.node.signer import wire
from tholos.node.signer.hardening import HardeningError, Protections, harden
from tholos.node.store import NodeStore, is_storage_full
from tholos.node.vault import SHARE_CACHE, KeyRecord, KeyVault, LruCache, VaultError
from tholos.schemes import SignerCommitment, SigningRequest

log = logging.getLogger("tholos.signer")
READY = "tholos signer ready"
MAX_NONCES = 10_000
EXIT_REFUSED = 2
STORAGE_FULL = "storage full on this node"


class SignerVault(KeyVault):
    """The vault as the signer runs it: the node may replace a share in the shared database
    (refresh, repair, reshare, destroy), so a cached share is used only while its sealed row
    is the one it was opened from."""

    def __init__(
        self, store: NodeStore, barrier: Barrier, node_id: int, cache_size: int = SHARE_CACHE
    ) -> None:
        super().__init__(store, barrier, node_id, cache_size)
        self._opened: LruCache[str, bytes] = LruCache(cache_size)  # key id -> sealed row

    def record(self, key_id: str) -> KeyRecord:
        row = self._store.get_key(key_id)
        if row is None or self._opened.get(key_id) != row[2]:
            self._cache.pop(key_id, None)
            self._opened.pop(key_id, None)
        rec = super().record(key_id)
        if row is not None:
            self._opened.put(key_id, row[2])
        return rec


def secret_files(cfg: NodeConfig) -> list[Path | None]:
    """Files whose readability by others would give the shares away."""
    db = cfg.db
    return [
        cfg.key_file,
        cfg.passphrase_file,
        db,
        db.with_name(db.name + "-wal"),
        db.with_name(db.name + "-shm"),
    ]


def unseal(cfg: NodeConfig, store: NodeStore) -> Barrier:
    """The master key the node created; the signer never creates one."""
    return Barrier(master_key(cfg, store))


def master_key(cfg: NodeConfig, store: NodeStore) -> bytes:
    """The node's master key bytes, unwrapped with its passphrase (environment or file) or key
    file; a node without one yet is refused."""
    record = store.get_meta("master")
    if record is None:
        raise HardeningError("this node has no master key yet (the node creates it)")
    passphrase = os.environ.get("THOLOS_PASSPHRASE")
    unsealer = Unsealer(
        passphrase=(
            passphrase.encode()
            if passphrase is not None
            else cfg.passphrase_file.read_bytes().rstrip(b"\r\n")
            if cfg.passphrase_file
            else None
        ),
        key_file=cfg.key_file,
    )
    return open_master(unsealer, record)


class Signer:
    """The handlers of the message set over the signer's vault; one request at a time."""

    def __init__(self, vault: SignerVault, protections: Protections) -> None:
        self.vault = vault
        self.protections = protections
        self.presigs = PresigStore(vault._store.db)
        self._lock = threading.Lock()

    def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        """The reply to one decoded frame: the op's result, or a refusal naming what is wrong."""
        try:
            op, args = wire.parse_request(msg)
            with self._lock:
                return wire.ok(getattr(self, "op_" + op)(**args))
        except (wire.WireError, VaultError) as exc:
            return wire.refused(str(exc))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            return wire.refused(f"bad arguments: {type(exc).__name__}")
        except Exception as exc:  # never a secret: only the exception's type
            if is_storage_full(exc):  # rolled back: nothing was written
                return {**wire.refused(STORAGE_FULL), "storage_full": True}
            log.exception("internal error")
            return wire.refused(f"internal error: {type(exc).__name__}")

    def op_status(self) -> dict[str, Any]:
        for key_id in sorted(self.vault.broken):  # repaired or destroyed since: no longer broken
            if not self.vault.has_key(key_id):
                self.vault.broken.discard(key_id)
                continue
            with contextlib.suppress(VaultError):
                self.vault.record(key_id)
        return {
            "protections": self.protections.to_dict(),
            "broken": sorted(self.vault.broken),
            "unchecked": self.vault.unchecked,
            "pid": os.getpid(),
        }

    def op_nonces(self, group: str, count: int) -> list[list[str]]:
        if not isinstance(count, int) or not 0 < count <= MAX_NONCES:
            raise wire.WireError(f"count must be an integer in 1..{MAX_NONCES}")
        out = self.vault.generate_nonces(str(group), count)
        return [[i.hex(), h.hex(), b.hex()] for i, h, b in out]

    def op_frost_sign(
        self, requests: list[dict[str, Any]], epochs: dict[str, int] | None
    ) -> list[dict[str, str]]:
        reqs = [signing_request_from_wire(r) for r in requests]
        got = self.vault.sign_batch(reqs, None if epochs is None else dict(epochs))
        return [{"request_id": r.request_id, "share": r.share.hex(), "error": r.error} for r in got]

    def _kind(self, key_id: str, kind: str) -> KeyRecord:
        rec = self.vault.record(key_id)
        self.vault.check_enabled(key_id)
        if rec.scheme.kind != kind:
            raise VaultError(f"key {key_id} is not a {kind} key")
        return rec

    def op_bls_sign(self, items: list[dict[str, str]]) -> dict[str, Any]:
        checked, results = [], {}
        for it in items:
            rid = str(it["request_id"])
            try:
                self._kind(str(it["key_id"]), "bls")
                checked.append((rid, str(it["key_id"]), bytes.fromhex(it["message"])))
            except VaultError as exc:
                results[rid] = {"error": f"VaultError: {exc}"}
        results.update(node_bls.partials(self.vault, checked))
        return results

    def op_dise_eval(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for it in items:
            rid = str(it["request_id"])
            try:
                rec = self._kind(str(it["key_id"]), "dise")
                results[rid] = {
                    "partial": evaluate(rec.share, EvalRequest.from_dict(it["request"])).to_dict()
                }
            except Exception as exc:
                results[rid] = {"error": f"{type(exc).__name__}: {exc}"}
        return results

    def op_ecdsa_sign(self, items: list[dict[str, str]]) -> dict[str, Any]:
        checked, results = [], {}
        for it in items:
            rid = str(it["request_id"])
            try:
                self._kind(str(it["key_id"]), "ecdsa")
                checked.append(
                    (
                        rid,
                        str(it["key_id"]),
                        bytes.fromhex(it["presig"]),
                        bytes.fromhex(it["digest"]),
                        int(it["tweak"], 16),
                    )
                )
            except VaultError as exc:
                results[rid] = {"error": f"VaultError: {exc}"}
        for rid, s in presig_shares(self.vault, self.presigs, checked).items():
            results[rid] = {"error": s} if isinstance(s, str) else {"s": f"{s:064x}"}
        return results


def signing_request_to_wire(req: SigningRequest) -> dict[str, Any]:
    return {
        "request_id": req.request_id,
        "key_id": req.key_id,
        "message": req.message.hex(),
        "path": req.path,
        "taproot": req.taproot,
        "merkle_root": None if req.merkle_root is None else req.merkle_root.hex(),
        "commitments": {
            str(i): [c.nonce_id.hex(), c.hiding.hex(), c.binding.hex()]
            for i, c in req.commitments.items()
        },
    }


def signing_request_from_wire(d: dict[str, Any]) -> SigningRequest:
    root = d["merkle_root"]
    return SigningRequest(
        request_id=str(d["request_id"]),
        key_id=str(d["key_id"]),
        message=bytes.fromhex(d["message"]),
        path=str(d["path"]),
        taproot=bool(d["taproot"]),
        merkle_root=None if root is None else bytes.fromhex(root),
        commitments={
            int(i): SignerCommitment(bytes.fromhex(n), bytes.fromhex(h), bytes.fromhex(b))
            for i, (n, h, b) in d["commitments"].items()
        },
    )


def serve_connection(signer: Signer, conn: socket.socket) -> None:
    """Answer frames until the peer closes; an oversize or truncated frame ends the connection."""
    with conn:
        while True:
            try:
                msg = wire.read_frame(conn)
            except wire.FrameTooLarge as exc:
                with contextlib.suppress(OSError):
                    conn.sendall(wire.encode(wire.refused(str(exc))))
                return
            except wire.WireError as exc:
                with contextlib.suppress(OSError):
                    conn.sendall(wire.encode(wire.refused(str(exc))))
                if "closed" in str(exc):
                    return
                continue
            except OSError:
                return
            if msg is None:
                return
            try:
                conn.sendall(wire.encode(signer.handle(msg)))
            except OSError:
                return


def listen(path: Path) -> socket.socket:
    """The socket, 0600, in a directory that must be the signer user's own and 0700."""
    parent = path.parent
    st = parent.stat()
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise HardeningError(f"socket directory {parent} must be owned by this user and 0700")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    path.chmod(0o600)
    sock.listen(8)
    return sock


def scanned(broken: set[str]) -> None:
    """The end of the signer's background share scan, in its log (key ids only)."""
    if broken:
        log.error("cannot open the sealed share of key(s) %s", ", ".join(sorted(broken)))
    log.info("share scan done")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tholos-signer", description="A tholos node's signer.")
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--socket", required=True, type=Path)
    args = ap.parse_args(argv)
    os.umask(0o077)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s signer %(levelname)s %(message)s")
    try:
        cfg = NodeConfig.load(args.config)
        protections = harden(secret_files(cfg))
        store = NodeStore(cfg.db)
        vault = SignerVault(store, unseal(cfg, store), cfg.node_id, cfg.share_cache)
        sock = listen(args.socket)
    except (HardeningError, WrongPassphrase, OSError, ValueError, KeyError) as exc:
        print(f"tholos signer: refusing to start: {exc}", file=sys.stderr, flush=True)
        return EXIT_REFUSED
    signer = Signer(vault, protections)

    def end(signum: int, frame: Any) -> None:  # SIGTERM from the node, or its death (PDEATHSIG)
        with contextlib.suppress(OSError):
            args.socket.unlink()
            args.socket.parent.rmdir()
        os._exit(0)

    signal.signal(signal.SIGTERM, end)
    # Shares open lazily on first use; the broken-share scan runs beside the requests, so the
    # start is not O(keys). Its progress is `unchecked` in the status reply.
    vault.scan_in_background(scanned)
    print(READY, json.dumps(protections.to_dict()), flush=True)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve_connection, args=(signer, conn), daemon=True).start()
