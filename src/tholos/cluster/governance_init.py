"""Governance at `tholos cluster init`: the genesis document every node starts from.

Governed (the default of the CLI): three admins (quorum 2), an initiator, three approvers (two in
group `treasury`, one in `risk`) and an auditor get Ed25519 key files in D/users/ (demo only: in
production each person generates their own key and only public keys reach the cluster). The
genesis is signed by the admin quorum, copied to every node, and its hash pinned in every
node.json. The default policy governs raw signing by key: 1 approval from treasury up to
10,000 units, 2 from treasury and 1 from risk above.

`--no-governance` records {"mode": "none"} in every node.json instead (development mode, logged
loudly by every node at every start); only the operator's config switches it, never the gateway.

The gateway's audit key (D/gateway/audit.key) is written in both modes; its public key is in
cluster.json so that `tholos audit verify` can check the gateway's chain.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tholos.governance import (
    ApprovalRequirement,
    GovernanceDocument,
    Match,
    Policy,
    Rule,
    SignedDocument,
    User,
    public_key_hex,
    sign_document,
)
from tholos.transport.pki import write_private

DEMO_USERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "admin-1": (("admin",), ()),
    "admin-2": (("admin",), ()),
    "admin-3": (("admin",), ()),
    "initiator": (("initiator",), ()),
    "approver-1": (("approver",), ("treasury",)),
    "approver-2": (("approver",), ("treasury",)),
    "risk-1": (("approver",), ("risk",)),
    "auditor": (("auditor",), ()),
}
ADMIN_QUORUM = 2


def default_policy() -> Policy:
    return Policy(
        rules=(
            Rule(
                rule_id="standard",
                description="up to 10,000 units: one treasury approval",
                match=Match(max_amount=10_000),
                approvals=(ApprovalRequirement(group="treasury", count=1),),
            ),
            Rule(
                rule_id="large",
                description="above 10,000 units: two from treasury and one from risk",
                match=Match(min_amount=10_001),
                approvals=(
                    ApprovalRequirement(group="treasury", count=2),
                    ApprovalRequirement(group="risk", count=1),
                ),
            ),
        ),
    )


def write_user_key(path: Path, key: Ed25519PrivateKey) -> None:
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    write_private(path, raw.hex().encode())


def read_user_key(path: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip()))


def user_key_file(root: Path, user: str) -> Path:
    return root / "users" / f"{user}.key"


def make_genesis(
    cluster_id: str,
    keys: dict[str, Ed25519PrivateKey],
    policy: Policy | None = None,
    people: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] | None = None,
) -> SignedDocument:
    people = DEMO_USERS if people is None else people
    users = tuple(
        User(user_id=name, public_key=public_key_hex(keys[name]), roles=roles, groups=groups)
        for name, (roles, groups) in people.items()
    )
    doc = GovernanceDocument(
        kind="genesis",
        cluster_id=cluster_id,
        version=0,
        prev_hash=None,
        issued_at=int(time.time()),
        users=users,
        admin_quorum=ADMIN_QUORUM,
        policy=policy or default_policy(),
        note="genesis written by tholos cluster init",
    )
    admins = [u.user_id for u in users if "admin" in u.roles][:ADMIN_QUORUM]
    return SignedDocument(
        document=doc, signatures=tuple(sign_document(doc, a, keys[a]) for a in admins)
    )


def setup(root: Path, n: int, t: int, governed: bool) -> dict[str, Any]:
    """Write users, genesis and each node's governance settings; return the manifest part."""
    gw_key = Ed25519PrivateKey.generate()
    write_user_key(root / "gateway" / "audit.key", gw_key)
    out: dict[str, Any] = {"gateway_audit_public_key": public_key_hex(gw_key)}
    if not governed:
        settings: dict[str, Any] = {"mode": "none"}
        out["governance"] = settings
    else:
        cluster_id = f"tholos-{secrets.token_hex(4)}"
        (root / "users").mkdir(exist_ok=True)
        (root / "users").chmod(0o700)
        keys = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
        for name, key in keys.items():
            write_user_key(user_key_file(root, name), key)
        genesis = make_genesis(cluster_id, keys)
        text = genesis.model_dump_json()
        (root / "genesis.json").write_text(text)
        settings = {
            "mode": "governed",
            "cluster_id": cluster_id,
            "genesis": "genesis.json",
            "genesis_hash": genesis.document.digest().hex(),
            "n": n,
            "t": t,
        }
        out["governance"] = {k: v for k, v in settings.items() if k != "genesis"}
        out["users"] = {
            name: {"roles": list(r), "groups": list(g)} for name, (r, g) in DEMO_USERS.items()
        }
    for i in range(1, n + 1):
        node_dir = root / f"node-{i}"
        if governed:
            (node_dir / "genesis.json").write_text((root / "genesis.json").read_text())
        cfg_path = node_dir / "node.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["governance"] = settings
        cfg_path.write_text(json.dumps(cfg, indent=2))
    return out
