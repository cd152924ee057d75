"""Governance at `tholos cluster init`: the genesis document every node starts from.

Governed (the default of the CLI): three admins (quorum 2), an initiator, three approvers (two in
group `treasury`, one in `risk`) and an auditor get Ed25519 key files in D/users/ (demo only: in
production each person generates their own key and only public keys reach the cluster). The
genesis is signed by the admin quorum, copied to every node, and its hash pinned in every
node.json. The default policy governs raw signing by key: 1 approval from treasury up to
10,000 units, 2 from treasury and 1 from risk above.

With admins who bring their own keys (`--admins alice=HEX,bob=@bob.pub --admin-quorum 2`), init
holds no private key: it writes an unsigned genesis proposal (D/genesis.proposal.json, listing
exactly those admins, no other user, an empty policy) and marks every node.json "pending-genesis",
which no node starts from. Each admin signs the proposal with their own key file (`tholos genesis
sign`); `tholos genesis finalize` checks the admin quorum exactly as every node will (`load_genesis`)
and only then installs the genesis and pins its hash in every node.json. Users and policy follow
as admin-quorum-signed documents.

`--no-governance` records {"mode": "none"} in every node.json instead (development mode, logged
loudly by every node at every start); only the operator's config switches it, never the gateway.

The gateway's audit key (D/gateway/audit.key) is written in both modes; its public key is in
cluster.json so that `tholos audit verify` can check the gateway's chain.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import ValidationError

from tholos.cluster.directory import ClusterDir, ClusterError
from tholos.governance import (
    ApprovalRequirement,
    GovernanceDocument,
    GovernanceError,
    Match,
    Policy,
    Rule,
    SignedDocument,
    User,
    load_genesis,
    public_key_hex,
    sign_document,
)
from tholos.transport.pki import write_private

PENDING = "pending-genesis"
PROPOSAL_FILE = "genesis.proposal.json"

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


def create_user_key(path: Path) -> tuple[str, Path]:
    """A new Ed25519 key in `path` (0600, hex seed) and its public key in `path`.pub (hex).

    Refuses to overwrite either file: losing a user's key would lock that user out."""
    pub_path = path.with_name(path.name + ".pub")
    for p in (path, pub_path):
        if p.exists():
            raise ClusterError(f"{p} exists: refusing to overwrite a key file")
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, raw.hex().encode())
    finally:
        os.close(fd)
    public = public_key_hex(key)
    pub_path.write_text(public + "\n")
    return public, pub_path


def _admin_public_key(name: str, value: str) -> str:
    """`HEX` or `@FILE` (a public key file such as `tholos users keygen` writes) -> lowercase hex."""
    if value.startswith("@"):
        path = Path(value[1:])
        if path.suffix == ".key" or path.with_name(path.name + ".pub").exists():
            raise ClusterError(
                f"admin {name}: {path} looks like a private key file; give its public key "
                f"({path.name}.pub), never the private key"
            )
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ClusterError(f"admin {name}: cannot read {path}: {exc.strerror}") from None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ClusterError(f"admin {name}: public key is not hex") from None
    if len(raw) != 32:
        raise ClusterError(f"admin {name}: an Ed25519 public key is 32 bytes, got {len(raw)}")
    return raw.hex()


def parse_admins(specs: Iterable[str]) -> dict[str, str]:
    """`NAME=HEX` or `NAME=@FILE` items, each spec comma-separated -> {name: public key hex}."""
    admins: dict[str, str] = {}
    for spec in specs:
        for item in filter(None, (x.strip() for x in spec.split(","))):
            name, sep, value = item.partition("=")
            if not sep or not name or not value:
                raise ClusterError(f"--admins: {item!r} is not NAME=PUBHEX or NAME=@FILE")
            if name in admins:
                raise ClusterError(f"--admins: admin {name} is given twice")
            admins[name] = _admin_public_key(name, value)
    if not admins:
        raise ClusterError("--admins: name at least one admin")
    owners: dict[str, str] = {}
    for name, key in admins.items():
        if key in owners:
            raise ClusterError(f"--admins: {owners[key]} and {name} have the same public key")
        owners[key] = name
    return admins


def propose_genesis(admins: Mapping[str, str], quorum: int | None = None) -> GovernanceDocument:
    """The genesis listing exactly `admins` (quorum: a majority unless given), empty policy."""
    quorum = len(admins) // 2 + 1 if quorum is None else quorum
    if not 1 <= quorum <= len(admins):
        raise ClusterError(f"--admin-quorum must be in 1..{len(admins)} (the admins), got {quorum}")
    try:
        users = tuple(User(user_id=n, public_key=k, roles=("admin",)) for n, k in admins.items())
        return GovernanceDocument(
            kind="genesis",
            cluster_id=f"tholos-{secrets.token_hex(4)}",
            version=0,
            prev_hash=None,
            issued_at=int(time.time()),
            users=users,
            admin_quorum=quorum,
            policy=Policy(),
            note="genesis proposed by tholos cluster init",
        )
    except ValidationError as exc:
        msgs = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ClusterError(f"--admins: {msgs}") from None


def _write(path: Path, text: str) -> None:
    """Replace a file in one step (a crash leaves the old or the new content, never half)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _settings(cluster_id: str, genesis_hash: str, n: int, t: int) -> dict[str, Any]:
    return {
        "mode": "governed",
        "cluster_id": cluster_id,
        "genesis": "genesis.json",
        "genesis_hash": genesis_hash,
        "n": n,
        "t": t,
    }


def _set_nodes(root: Path, n: int, settings: dict[str, Any], genesis: str | None) -> None:
    """Copy the genesis (if any) to every node, then record `settings` in every node.json."""
    for i in range(1, n + 1):
        node_dir = root / f"node-{i}"
        if genesis is not None:
            _write(node_dir / "genesis.json", genesis)
        cfg_path = node_dir / "node.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["governance"] = settings
        _write(cfg_path, json.dumps(cfg, indent=2))


def setup(
    root: Path, n: int, t: int, governed: bool, proposal: GovernanceDocument | None = None
) -> dict[str, Any]:
    """Write users, genesis (or the genesis `proposal` to be signed by its admins) and each
    node's governance settings; return the manifest part."""
    gw_key = Ed25519PrivateKey.generate()
    write_user_key(root / "gateway" / "audit.key", gw_key)
    out: dict[str, Any] = {"gateway_audit_public_key": public_key_hex(gw_key)}
    if not governed:
        out["governance"] = {"mode": "none"}
        _set_nodes(root, n, {"mode": "none"}, None)
        return out
    if proposal is not None:
        unsigned = SignedDocument(document=proposal, signatures=())
        _write(root / PROPOSAL_FILE, unsigned.model_dump_json(indent=2))
        out["governance"] = {
            "mode": PENDING,
            "cluster_id": proposal.cluster_id,
            "proposal": PROPOSAL_FILE,
            "genesis_digest": proposal.digest().hex(),
            "admin_quorum": proposal.admin_quorum,
            "n": n,
            "t": t,
        }
        out["users"] = {u.user_id: {"roles": list(u.roles), "groups": []} for u in proposal.users}
        _set_nodes(root, n, {"mode": PENDING}, None)
        return out
    cluster_id = f"tholos-{secrets.token_hex(4)}"
    (root / "users").mkdir(exist_ok=True)
    (root / "users").chmod(0o700)
    keys = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
    for name, key in keys.items():
        write_user_key(user_key_file(root, name), key)
    genesis = make_genesis(cluster_id, keys)
    text = genesis.model_dump_json()
    (root / "genesis.json").write_text(text)
    settings = _settings(cluster_id, genesis.document.digest().hex(), n, t)
    out["governance"] = {k: v for k, v in settings.items() if k != "genesis"}
    out["users"] = {
        name: {"roles": list(r), "groups": list(g)} for name, (r, g) in DEMO_USERS.items()
    }
    _set_nodes(root, n, settings, text)
    return out


# -- the genesis ceremony of admins who bring their own keys -------------------------------------
def read_proposal(path: Path) -> SignedDocument:
    """A genesis proposal (a genesis document with the admin signatures gathered so far)."""
    try:
        signed = SignedDocument.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ClusterError(f"cannot read the genesis proposal {path}: {exc.strerror}") from None
    except ValidationError as exc:
        raise ClusterError(f"{path} is not a governance document: {exc}") from None
    if signed.document.kind != "genesis":
        raise ClusterError(f"{path} holds a {signed.document.kind} document, not a genesis")
    return signed


def describe(signed: SignedDocument) -> dict[str, Any]:
    """What an admin checks before signing: the digest (compare it out of band), admins, quorum."""
    doc = signed.document
    return {
        "cluster_id": doc.cluster_id,
        "genesis_digest": doc.digest().hex(),
        "admins": {u.user_id: u.public_key for u in doc.users if "admin" in u.roles},
        "admin_quorum": doc.admin_quorum,
        "signers": sorted(s.signer for s in signed.signatures),
    }


def sign_genesis(
    path: Path,
    key: Ed25519PrivateKey,
    as_user: str | None = None,
    expect_digest: str | None = None,
) -> dict[str, Any]:
    """Add (or replace) the signature of the admin whose public key is `key`'s to the proposal in
    `path`. Refused, with the file unchanged, if `key` is no admin's key in it or the document's
    digest is not `expect_digest` (the one `cluster init` printed, compared out of band)."""
    signed = read_proposal(path)
    doc = signed.document
    if expect_digest is not None and doc.digest().hex() != expect_digest.lower():
        raise ClusterError(f"the proposal's digest is {doc.digest().hex()}, not {expect_digest}")
    public = public_key_hex(key)
    admins = [u.user_id for u in doc.users if "admin" in u.roles and u.public_key == public]
    if as_user is not None and as_user not in admins:
        raise ClusterError(f"this key is not the key of admin {as_user} in the genesis proposal")
    if not admins:
        raise ClusterError("this key belongs to no admin of the genesis proposal")
    signer = admins[0]
    sigs = tuple(s for s in signed.signatures if s.signer != signer)
    signed = SignedDocument(document=doc, signatures=(*sigs, sign_document(doc, signer, key)))
    _write(path, signed.model_dump_json(indent=2))
    return {"signer": signer, **describe(signed)}


def finalize_genesis(root: Path) -> dict[str, Any]:
    """Install the admin-signed genesis on every node of the cluster in `root`.

    The proposal must carry the admin quorum's valid signatures and be the document `cluster init`
    proposed (its digest is in cluster.json): checked with `load_genesis`, as every node checks it
    at each start. Nothing is written unless every check passes."""
    cd = ClusterDir(root)
    manifest = cd.load()
    gov = manifest.get("governance", {})
    if gov.get("mode") != PENDING:
        raise ClusterError(f"no genesis to finalize in {root} (governance: {gov.get('mode')})")
    signed = read_proposal(root / str(gov["proposal"]))
    try:
        load_genesis(signed, bytes.fromhex(str(gov["genesis_digest"])))
    except GovernanceError as exc:
        raise ClusterError(f"genesis refused: {exc}") from None
    text = signed.model_dump_json()
    doc = signed.document
    settings = _settings(doc.cluster_id, doc.digest().hex(), int(gov["n"]), int(gov["t"]))
    _write(root / "genesis.json", text)
    _set_nodes(root, int(manifest["nodes"]), settings, text)
    manifest["governance"] = {k: v for k, v in settings.items() if k != "genesis"}
    _write(cd.manifest, json.dumps(manifest, indent=2))
    from tholos.cluster.genesis_backup import first_backup

    backup = first_backup(root)  # raises ClusterError if its restore drill fails
    return {"dir": str(root), **describe(signed), "governance": "governed", "backup": backup}
