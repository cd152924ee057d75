"""`tholos backup drill DIR --officer-share F ...`: prove a backup set restores, on throw-away
nodes, before anyone relies on it.

Every node of the set is restored (backup/restore.py) into a new temporary directory, then each
restored node is opened through the node's own start-up path (backup/create.py's): master key
under its new passphrase, identity and TLS keys, every key share (a share opens only if s_i·G is
its verifying share). Checked against the cluster the set was made from: the same keys with the
same public packages on every node, the identity key the roster names (a test signature made
with the restored key verified by libsodium), the TLS key the node's certificate names. The
throw-away nodes are deleted whatever the outcome; a failed check raises BackupError naming the
node and the fault.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tholos.backup.errors import BackupError
from tholos.backup.restore import restore
from tholos.crypto.keys import PublicKeyPackage
from tholos.node.config import NodeConfig
from tholos.node.server import StartupError, load_identity, open_secret, unseal
from tholos.node.store import NodeStore
from tholos.node.vault import KeyVault

DRILL_CONTEXT = b"tholos-backup-drill-v1"


def _source_keys(node_dir: Path) -> dict[str, str]:
    """key id -> public JSON of the keys node `node_dir` holds now (read-only, no unsealing)."""
    db = node_dir / "node.db"
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {str(k): str(p) for k, p in con.execute("SELECT key_id, public FROM keys")}
    except sqlite3.OperationalError:  # a store never opened by a node: no keys table yet
        return {}
    finally:
        con.close()


def _check_node(node_id: int, restored: Path, source: Path | None, roster: dict[int, str]) -> int:
    """Open restored node `node_id` as the node process would and check it; its key count."""
    where = f"restored node {node_id}"
    cfg = NodeConfig.load(restored / "node.json")
    store = NodeStore(cfg.db)
    try:
        barrier = unseal(cfg, store)
        identity = load_identity(cfg)
        tls_key = serialization.load_pem_private_key(
            open_secret(cfg, cfg.tls.key, "tls-key"), password=None
        )
        vault = KeyVault(store, barrier, node_id)
        broken = vault.scan()
        keys = {k: vault.public_view(k) for k in store.key_ids()}
    except StartupError as exc:
        raise BackupError(f"{where} does not open: {exc}") from None
    finally:
        store.close()
    if broken:
        raise BackupError(f"{where}: the share(s) of {', '.join(sorted(broken))} do not open")
    cert = x509.load_pem_x509_certificate(cfg.tls.cert.read_bytes())
    if cert.public_key() != tls_key.public_key():
        raise BackupError(f"{where}: its TLS key is not the key of its certificate")
    challenge = os.urandom(32)
    signature = identity.sign(DRILL_CONTEXT, challenge)
    try:  # libsodium, with the key the cluster's roster names
        nacl.signing.VerifyKey(bytes.fromhex(roster[node_id])).verify(_signed(challenge), signature)
    except (KeyError, nacl.exceptions.BadSignatureError):
        raise BackupError(
            f"{where}: its identity key is not the roster's key of node {node_id}"
        ) from None
    for key_id, view in keys.items():
        if view is None:
            raise BackupError(f"{where}: key {key_id} has no public package")
        PublicKeyPackage.from_dict(view["public"]).check_consistent()
    if source is not None:
        now = _source_keys(source)
        missing = sorted(set(now) - set(keys))
        if missing:
            raise BackupError(
                f"{where}: key(s) {', '.join(missing)} held by node {node_id} are not in the backup"
            )
        for key_id in keys:
            if key_id in now and json.loads(now[key_id]) != keys[key_id]:
                raise BackupError(
                    f"{where}: key {key_id}'s public package differs from node {node_id}'s"
                )
    return len(keys)


def _signed(challenge: bytes) -> bytes:
    """What an identity signature covers (transport/e2e.py: domain, length-prefixed context)."""
    from tholos.transport.e2e import SIG_DOMAIN

    return SIG_DOMAIN + len(DRILL_CONTEXT).to_bytes(4, "big") + DRILL_CONTEXT + challenge


def drill(
    backup: Path,
    share_files: list[Path],
    source: Path | None = None,
    work: Path | None = None,
) -> dict[str, Any]:
    """Restore every node of the set at `backup` onto throw-away nodes and check them (see the
    module docstring); `source`: the cluster directory the set was made from, for the cross
    checks; `work`: where to make the temporary directory (default the system's)."""
    scratch = Path(tempfile.mkdtemp(prefix="tholos-drill-", dir=work))
    try:
        target = scratch / "cluster"
        res = restore(backup, share_files, target)
        if res["not_restored"]:
            raise BackupError(
                f"no officer shares for node(s) {', '.join(res['not_restored'])}: the drill "
                "restores every node"
            )
        # the roster to check identities against: the source cluster's if given, else the set's
        cluster = json.loads(((source or target) / "cluster.json").read_text())
        roster = {int(r["node_id"]): str(r["signing_key"]) for r in cluster["roster"]}
        checked = {}
        for i in sorted(int(k) for k in res["restored"]):
            src = None if source is None else source / f"node-{i}"
            checked[str(i)] = {"keys": _check_node(i, target / f"node-{i}", src, roster)}
        return {"ok": True, "backup": str(backup), "set_id": res["set_id"], "nodes": checked}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
