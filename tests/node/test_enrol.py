"""A node set up in its own directory (`tholos node init`), its join request signed by the CA
holder (`tholos cluster sign-node`) and the bundle installed (`tholos node join`): the files
checked, and every forged, tampered or misaddressed request and bundle refused with nothing
changed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tholos.cli import main
from tholos.cluster import procs
from tholos.cluster.directory import ClusterDir, ClusterError
from tholos.cluster.joining import add_joined_node, sign_node
from tholos.cluster.layout import init_cluster
from tholos.node.barrier import Unsealer, is_sealed_file, open_file
from tholos.node.enrol import EnrolError, init_node, join_node
from tholos.transport.join import JoinError, fingerprint, make_bundle, read_bundle, read_request
from tholos.transport.pki import CertificateAuthority

PASS = "correct horse battery staple"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("THOLOS_PASSPHRASE", PASS)
    cd = ClusterDir(tmp_path / "cluster")
    init_cluster(cd.root, 3, 2)
    node = tmp_path / "elsewhere" / "node-4"
    init_node(node, 4, "127.0.0.1", 7404)
    return {"cd": cd, "node": node, "request": load(node / "join-request.json")}


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_init_seals_keys_and_never_writes_the_passphrase(env: dict[str, Any]) -> None:
    node: Path = env["node"]
    assert (node.stat().st_mode & 0o777) == 0o700
    for name in ("tls.key", "identity.key"):
        assert is_sealed_file(node / name)
        assert (node / name).stat().st_mode & 0o077 == 0
    assert open_file(Unsealer(passphrase=PASS.encode()), node / "tls.key", "tls-key").startswith(
        b"-----BEGIN PRIVATE KEY-----"
    )
    for data in snapshot(node).values():
        assert PASS.encode() not in data
    req = read_request(env["request"], expect_node=4)
    assert req.listen == "127.0.0.1:7404" and "127.0.0.1" in req.hosts
    csr = x509.load_pem_x509_csr((node / "node.csr").read_bytes())
    assert csr.is_signature_valid and csr.public_key() == req.public_key


def test_init_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THOLOS_PASSPHRASE", raising=False)
    with pytest.raises(EnrolError, match="THOLOS_PASSPHRASE"):
        init_node(tmp_path / "a", 1, "127.0.0.1", 7000)
    assert not (tmp_path / "a").exists()
    inside = tmp_path / "b" / "master.key"
    inside.parent.mkdir()
    inside.write_text("11" * 32)
    with pytest.raises(EnrolError, match="must not be inside"):
        init_node(tmp_path / "b", 1, "127.0.0.1", 7000, key_file=inside)
    with pytest.raises(EnrolError, match="No such file"):
        init_node(tmp_path / "e", 1, "127.0.0.1", 7000, key_file=tmp_path / "none")
    outside = tmp_path / "master.key"
    outside.write_text("ab" * 31)  # 31 bytes
    with pytest.raises(EnrolError, match="32 bytes"):
        init_node(tmp_path / "c", 1, "127.0.0.1", 7000, key_file=outside)
    outside.write_text("ab" * 32)
    with pytest.raises(EnrolError, match="not empty"):
        init_node(tmp_path / "b", 1, "127.0.0.1", 7000, key_file=outside)
    init_node(tmp_path / "c", 1, "127.0.0.1", 7000, key_file=outside)
    assert load(tmp_path / "c" / "node.json")["key_file"] == str(outside.resolve())
    with pytest.raises(EnrolError, match=r"node id must be in 1\.\.64"):
        init_node(tmp_path / "d", 65, "127.0.0.1", 7000, key_file=outside)
    with pytest.raises(EnrolError, match="port"):
        init_node(tmp_path / "d", 3, "127.0.0.1", 70000, key_file=outside)
    assert not (tmp_path / "d").exists()


def test_init_with_a_passphrase_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """THOLOS_PASSPHRASE_FILE (a systemd credential in deploy/systemd) instead of the variable."""
    monkeypatch.delenv("THOLOS_PASSPHRASE", raising=False)
    monkeypatch.setenv("THOLOS_PASSPHRASE_FILE", str(tmp_path / "absent"))
    with pytest.raises(EnrolError, match="THOLOS_PASSPHRASE_FILE"):
        init_node(tmp_path / "n", 2, "127.0.0.1", 7002)
    cred = tmp_path / "cred"
    cred.write_text(PASS + "\n")
    monkeypatch.setenv("THOLOS_PASSPHRASE_FILE", str(cred))
    init_node(tmp_path / "n", 2, "127.0.0.1", 7002)
    assert open_file(
        Unsealer(passphrase=PASS.encode()), tmp_path / "n" / "identity.key", "identity"
    )


def test_sign_and_join(env: dict[str, Any]) -> None:
    cd: ClusterDir = env["cd"]
    node: Path = env["node"]
    bundle = sign_node(cd, env["request"])
    ca_fp = fingerprint((cd.root / "ca" / "ca.pem").read_bytes())
    out = join_node(node, bundle, ca_fp)
    assert out["peers"] == [1, 2, 3, 4]
    cfg = load(node / "node.json")
    assert [r["node_id"] for r in cfg["roster"]] == [1, 2, 3, 4]
    assert cfg["min_threshold"] == 2 and cfg["governance"] == {"mode": "none"}
    ca = x509.load_pem_x509_certificate((node / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((node / "tls.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert (node / "ca.pem").read_bytes() == (cd.root / "ca" / "ca.pem").read_bytes()
    # the CA holder's side: nothing joined yet, then the node is an external member
    assert "external_nodes" not in cd.load()
    assert add_joined_node(cd, env["request"]) == 4
    m = cd.load()
    assert m["external_nodes"] == [4] and m["node_addresses"]["4"] == "127.0.0.1:7404"
    assert "node-4" not in procs.processes(cd) and not cd.node_dir(4).exists()
    gw = load(cd.gateway_config)
    assert gw["nodes"]["4"] == "127.0.0.1:7404" and len(gw["roster"]) == 4
    assert [r["node_id"] for r in load(cd.node_config(1))["roster"]] == [1, 2, 3, 4]
    with pytest.raises(ClusterError, match="taken"):
        sign_node(cd, env["request"])
    # a later membership change: the external member gets the new roster by a refreshed bundle
    from tholos.cluster.joining import refresh_bundle
    from tholos.cluster.membership import add_node

    assert add_node(cd) == 5
    with pytest.raises(ClusterError, match="not an external member"):
        refresh_bundle(cd, 5)
    out = join_node(node, refresh_bundle(cd, 4), ca_fp)
    assert out["peers"] == [1, 2, 3, 4, 5]
    assert load(node / "node.json")["roster"] == cd.load()["roster"]
    from tholos.backup.create import create_backup
    from tholos.backup.errors import BackupError

    with pytest.raises(BackupError, match="own machines"):
        create_backup(cd.root, cd.root.parent / "backup")


def test_add_refused_without_issued_certificate(env: dict[str, Any]) -> None:
    cd: ClusterDir = env["cd"]
    before = snapshot(cd.root)
    with pytest.raises(ClusterError, match="no certificate was issued"):
        add_joined_node(cd, env["request"])
    assert snapshot(cd.root) == before


def test_request_refusals(env: dict[str, Any], tmp_path: Path) -> None:
    cd: ClusterDir = env["cd"]
    req = env["request"]
    before = snapshot(cd.root)
    cases: list[tuple[dict[str, Any], str]] = []
    moved = copy.deepcopy(req)
    moved["listen"] = "10.0.0.9:7404"
    cases.append((moved, "identity signature"))
    renamed = copy.deepcopy(req)
    renamed["node_id"] = 5
    cases.append((renamed, "identity is node 4's"))
    other = tmp_path / "other"
    init_node(other, 5, "127.0.0.1", 7405)
    swapped = copy.deepcopy(req)
    swapped["csr"] = load(other / "join-request.json")["csr"]
    cases.append((swapped, "identity signature"))
    cases.append(({"format": "x"}, "not a join request"))
    taken = tmp_path / "taken"
    init_node(taken, 2, "127.0.0.1", 7402)
    cases.append((load(taken / "join-request.json"), "node id 2 is taken"))
    for doc, what in cases:
        with pytest.raises((ClusterError, JoinError), match=what):
            sign_node(cd, doc)
    assert snapshot(cd.root) == before
    with pytest.raises(JoinError, match="node 4's, not node 3's"):
        read_request(req, expect_node=3)


def test_bundle_refusals(env: dict[str, Any], tmp_path: Path) -> None:
    cd: ClusterDir = env["cd"]
    node: Path = env["node"]
    req = env["request"]
    bundle = sign_node(cd, req)
    ca_fp = fingerprint((cd.root / "ca" / "ca.pem").read_bytes())
    before = snapshot(node)

    def refused(doc: Any, what: str, fp: str | None = ca_fp) -> None:
        with pytest.raises(EnrolError, match=what):
            join_node(node, doc, fp)
        assert snapshot(node) == before

    # another cluster's CA signs the same request: refused under the pinned fingerprint
    rogue = CertificateAuthority.create("rogue")
    forged = make_bundle(rogue, read_request(req), bundle["body"]["roster"])
    refused(forged, "fingerprint")
    # ...and without a pin, a bundle that mixes CAs (certificate from the rogue CA, signed by ours)
    ours = CertificateAuthority.load(cd.root / "ca" / "ca.key", cd.root / "ca" / "ca.pem")
    mixed = copy.deepcopy(bundle)
    mixed["body"]["certificate"] = forged["body"]["certificate"]
    resigned = make_bundle(ours, read_request(req), bundle["body"]["roster"])
    resigned["body"]["certificate"] = forged["body"]["certificate"]
    refused(mixed, "signature does not verify", None)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from tholos.transport.join import canonical

    resigned["signature"] = ours.key.sign(
        canonical(resigned["body"]), ec.ECDSA(hashes.SHA256())
    ).hex()
    refused(resigned, "not issued by its CA", None)
    # tampered: a peer's identity swapped in the roster
    tampered = copy.deepcopy(bundle)
    tampered["body"]["roster"][0]["signing_key"] = "00" * 32
    refused(tampered, "signature does not verify")
    tampered = copy.deepcopy(bundle)
    tampered["body"]["settings"]["min_threshold"] = 1
    refused(tampered, "signature does not verify")
    # the bundle of another node's request
    other = tmp_path / "node-5"
    init_node(other, 5, "127.0.0.1", 7405)
    other_bundle = sign_node(cd, load(other / "join-request.json"))
    refused(other_bundle, "for node 5, this is node 4")
    refused({"body": "x"}, "not a node bundle")
    # a roster without this node (signed by the right CA)
    no_me = make_bundle(ours, read_request(req), bundle["body"]["roster"][:3])
    refused(no_me, "does not hold this node's identity")
    with pytest.raises(JoinError, match="another join request"):
        again = copy.deepcopy(req)
        again["signature"] = req["signature"]
        again_bundle = copy.deepcopy(bundle)
        again_bundle["body"]["request_digest"] = "00" * 32
        read_bundle(again_bundle, again, ca_fp)


def test_cli_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("THOLOS_PASSPHRASE", PASS)
    root = tmp_path / "cluster"
    init_cluster(root, 2, 2)

    def run(*argv: str) -> tuple[int, Any]:
        code = main([*argv, "--json"])
        return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    node = tmp_path / "n3"
    code, out = run(
        "node", "init", "--node-dir", str(node), "--node-id", "3", "--port", "7433",
        "--listen", "0.0.0.0:7433",
    )  # fmt: skip
    assert code == 0 and out["address"] == "127.0.0.1:7433"
    assert load(node / "node.json")["listen"] == "0.0.0.0:7433"
    assert load(node / "join-request.json")["listen"] == "127.0.0.1:7433"
    bundle = tmp_path / "bundle.json"
    code, out = run(
        "cluster",
        "sign-node",
        "--dir",
        str(root),
        "--request",
        out["request"],
        "--out",
        str(bundle),
    )
    assert code == 0 and out["peers"] == [1, 2, 3]
    fp = out["ca_fingerprint"]
    code, err = run(
        "node",
        "join",
        "--node-dir",
        str(node),
        "--bundle",
        str(bundle),
        "--ca-fingerprint",
        "ab" * 32,
    )
    assert code == 1 and err["error"]["code"] == "node_join_refused"
    code, out = run(
        "node", "join", "--node-dir", str(node), "--bundle", str(bundle), "--ca-fingerprint", fp
    )
    assert code == 0 and out["peers"] == [1, 2, 3]


def test_governed_bundle_carries_the_genesis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A governed cluster's bundle: the pinned genesis and settings (n counting the new node);
    the node re-checks the genesis against the pinned hash when it loads its governance."""
    from tholos.governance import SignedDocument, load_genesis

    monkeypatch.setenv("THOLOS_PASSPHRASE", PASS)
    cd = ClusterDir(tmp_path / "cluster")
    init_cluster(cd.root, 3, 2, governance=True)
    node = tmp_path / "n4"
    init_node(node, 4, "127.0.0.1", 7404)
    join_node(node, sign_node(cd, load(node / "join-request.json")), None)
    gov = load(node / "node.json")["governance"]
    member = load(cd.node_config(1))["governance"]
    assert gov == {**member, "n": 4}
    signed = SignedDocument.model_validate_json((node / gov["genesis"]).read_bytes())
    load_genesis(signed, bytes.fromhex(gov["genesis_hash"]))
    assert (node / "genesis.json").read_bytes() == (cd.node_dir(1) / "genesis.json").read_bytes()
