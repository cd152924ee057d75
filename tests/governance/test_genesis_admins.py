"""The genesis of admins who bring their own keys: `users keygen`, `cluster init --admins`,
`genesis sign`, `genesis finalize`. Init holds no admin private key; the genesis is installed only
with a quorum of valid admin signatures, and every refusal leaves every file as it was."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.cli import main as cli_main
from tholos.cluster import governance_init as gi
from tholos.cluster.layout import ClusterError, init_cluster
from tholos.governance import (
    DocumentSignature,
    SignedDocument,
    load_genesis,
    read_user_key,
    sign_document,
)
from tholos.node.governance import Settings


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli_main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its content: to show that a refusal changed nothing."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Three admins' key files, made as each admin would make theirs."""
    out = {}
    for name in ("alice", "bob", "carol"):
        gi.create_user_key(tmp_path / "keys" / f"{name}.key")
        out[name] = tmp_path / "keys" / f"{name}.key"
    return out


def pub(path: Path) -> str:
    return path.with_name(path.name + ".pub").read_text().strip()


def init(root: Path, keys: dict[str, Path], quorum: int | None = 2) -> dict[str, Any]:
    admins = gi.parse_admins(
        [
            f"alice=@{keys['alice']}.pub,bob={pub(keys['bob'])}",
            "carol=@" + str(keys["carol"]) + ".pub",
        ]
    )
    return init_cluster(root, 4, 2, governance=True, admins=admins, admin_quorum=quorum)


def test_keygen_writes_a_private_key_0600_and_its_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "me.key"
    code, r = cli(capsys, "users", "keygen", "--out", str(out))
    assert code == 0, r
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = read_user_key(out)
    assert r["public_key"] == gi.public_key_hex(key) == pub(out)
    assert r["public_key_file"] == f"{out}.pub"
    assert out.read_text() not in json.dumps(r)  # the private key is never printed
    before = files(tmp_path)
    code, r = cli(capsys, "users", "keygen", "--out", str(out))
    assert code == 1 and "refusing to overwrite" in r["error"]["message"]
    assert files(tmp_path) == before


def test_init_with_admins_proposes_a_genesis_of_exactly_those_admins(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "c"
    m = init(root, keys)
    gov = m["governance"]
    assert gov["mode"] == gi.PENDING and gov["admin_quorum"] == 2
    proposal = gi.read_proposal(root / gi.PROPOSAL_FILE)
    doc = proposal.document
    assert proposal.signatures == ()
    assert {u.user_id: u.public_key for u in doc.users} == {n: pub(k) for n, k in keys.items()}
    assert all(u.roles == ("admin",) for u in doc.users) and doc.admin_quorum == 2
    assert doc.policy.rules == () and doc.digest().hex() == gov["genesis_digest"]
    assert not (root / "users").exists()  # init holds no user key
    assert not (root / "genesis.json").exists()
    for i in range(1, 5):  # no node starts from a proposal
        with pytest.raises(ValueError, match="genesis is not finalized"):
            Settings.from_config(root / f"node-{i}" / "node.json")
    code, r = cli(capsys, "cluster", "up", "--dir", str(root))
    assert code == 1 and r["error"]["code"] == "genesis_pending", r
    assert init(tmp_path / "d", keys, quorum=None)["governance"]["admin_quorum"] == 2  # majority


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("alice", "is not NAME=PUBHEX"),
        ("alice=zz", "not hex"),
        ("alice=" + "ab" * 31, "32 bytes, got 31"),
        ("alice=@{alice}", "looks like a private key file"),
        ("alice=@{missing}", "cannot read"),
        ("alice={bob},alice={carol}", "admin alice is given twice"),
        ("alice={bob},bob={bob}", "alice and bob have the same public key"),
        ("Alice={bob}", "invalid name"),
    ],
)
def test_bad_admins_are_refused_and_nothing_is_written(
    tmp_path: Path,
    keys: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    spec: str,
    message: str,
) -> None:
    spec = spec.format(
        alice=keys["alice"],
        missing=tmp_path / "nope.pub",
        bob=pub(keys["bob"]),
        carol=pub(keys["carol"]),
    )
    root = tmp_path / "c"
    code, r = cli(capsys, "cluster", "init", "--dir", str(root), "--governance", "--admins", spec)
    assert code == 1 and message in r["error"]["message"], r
    assert not root.exists()


def test_bad_quorum_or_no_governance_is_refused_and_nothing_is_written(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "c"
    admins = f"alice=@{keys['alice']}.pub,bob=@{keys['bob']}.pub"
    for extra, message in (
        (["--governance", "--admin-quorum", "3"], "must be in 1..2"),
        (["--governance", "--admin-quorum", "0"], "must be in 1..2"),
        ([], "go with --governance"),
    ):
        code, r = cli(capsys, "cluster", "init", "--dir", str(root), "--admins", admins, *extra)
        assert code == 1 and message in r["error"]["message"], r
        assert not root.exists()


def test_genesis_needs_a_quorum_of_valid_admin_signatures(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "c"
    init(root, keys)
    proposal = root / gi.PROPOSAL_FILE

    def finalize_refused(message: str) -> None:
        before = files(root)
        code, r = cli(capsys, "genesis", "finalize", "--dir", str(root))
        assert code == 1 and message in r["error"]["message"], r
        assert files(root) == before  # nothing written
        assert not (root / "genesis.json").exists()

    finalize_refused("0 admin signatures, quorum is 2")
    code, r = cli(capsys, "genesis", "sign", "--dir", str(root), "--key-file", str(keys["alice"]))
    assert code == 0 and r["signer"] == "alice" and r["signers"] == ["alice"], r
    finalize_refused("1 admin signatures, quorum is 2")

    # A key that is no admin's, another admin's key under a claimed name, a digest other than the
    # one init printed: refused, the file unchanged.
    gi.create_user_key(tmp_path / "eve.key")
    before = files(root)
    for args, message in (
        (["--key-file", str(tmp_path / "eve.key")], "belongs to no admin"),
        (["--key-file", str(keys["bob"]), "--as", "alice"], "not the key of admin alice"),
        (["--key-file", str(keys["bob"]), "--digest", "00" * 32], "not " + "00" * 32),
    ):
        code, r = cli(capsys, "genesis", "sign", "--dir", str(root), *args)
        assert code == 1 and message in r["error"]["message"], r
    assert files(root) == before

    # A signature forged into the file: by a non-admin, or bytes that do not verify.
    signed = gi.read_proposal(proposal)
    doc = signed.document
    eve = sign_document(doc, "eve", read_user_key(tmp_path / "eve.key"))
    proposal.write_text(
        signed.model_copy(update={"signatures": (*signed.signatures, eve)}).model_dump_json()
    )
    finalize_refused("eve is not an admin")
    bad = DocumentSignature(signer="bob", signature=signed.signatures[0].signature)  # alice's bytes
    proposal.write_text(
        signed.model_copy(update={"signatures": (*signed.signatures, bad)}).model_dump_json()
    )
    finalize_refused("signature of bob does not verify")
    proposal.write_text(signed.model_dump_json())

    # Bob signs: the quorum is reached, then finalize installs the genesis everywhere.
    digest = gi.read_proposal(proposal).document.digest().hex()
    code, r = cli(capsys, "genesis", "sign", "--dir", str(root), "--key-file", str(keys["bob"]),
                  "--as", "bob", "--digest", digest)  # fmt: skip
    assert code == 0 and r["signers"] == ["alice", "bob"], r
    code, r = cli(capsys, "genesis", "finalize", "--dir", str(root))
    assert code == 0 and r["governance"] == "governed", r
    manifest = json.loads((root / "cluster.json").read_text())
    assert manifest["governance"]["mode"] == "governed"
    for i in range(1, 5):
        s = Settings.from_config(root / f"node-{i}" / "node.json")
        assert s.mode == "governed" and s.genesis_hash == doc.digest()
        assert s.genesis is not None
        state = load_genesis(s.genesis.read_bytes(), s.genesis_hash)  # as the node starts
        assert sorted(u.user_id for u in state.document.users) == ["alice", "bob", "carol"]
        assert state.document.admin_quorum == 2
    code, r = cli(capsys, "genesis", "finalize", "--dir", str(root))
    assert code == 1 and "no genesis to finalize" in r["error"]["message"]


def test_tampered_genesis_is_refused(tmp_path: Path, keys: dict[str, Path]) -> None:
    root = tmp_path / "c"
    init(root, keys)
    proposal = root / gi.PROPOSAL_FILE
    for name in ("alice", "bob"):
        gi.sign_genesis(proposal, read_user_key(keys[name]))
    signed = gi.read_proposal(proposal)
    # Quorum lowered to 1 after signing: not the proposed document.
    forged = signed.document.model_copy(update={"admin_quorum": 1})
    proposal.write_text(
        SignedDocument(document=forged, signatures=signed.signatures).model_dump_json()
    )
    before = files(root)
    with pytest.raises(ClusterError, match="genesis hash differs from the pinned one"):
        gi.finalize_genesis(root)
    assert files(root) == before
    # ...and with the pinned digest in cluster.json changed too, the signatures no longer hold.
    manifest = json.loads((root / "cluster.json").read_text())
    manifest["governance"]["genesis_digest"] = forged.digest().hex()
    (root / "cluster.json").write_text(json.dumps(manifest))
    before = files(root)
    with pytest.raises(ClusterError, match=r"signature of .* does not verify"):
        gi.finalize_genesis(root)
    assert files(root) == before
    # An admin re-signing the tampered document sees its digest differ from the one init printed.
    out = gi.sign_genesis(proposal, read_user_key(keys["carol"]))
    assert out["genesis_digest"] != signed.document.digest().hex()


def test_demo_governance_without_admins_is_unchanged(tmp_path: Path) -> None:
    m = init_cluster(tmp_path / "c", 4, 2, governance=True)
    assert m["governance"]["mode"] == "governed"
    key = read_user_key(gi.user_key_file(tmp_path / "c", "admin-1"))
    assert isinstance(key, Ed25519PrivateKey)
    s = Settings.from_config(tmp_path / "c" / "node-1" / "node.json")
    assert s.genesis is not None
    load_genesis(s.genesis.read_bytes(), s.genesis_hash)
