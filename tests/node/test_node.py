"""Node internals: the barrier, the master key, the store and the vault's nonce handling."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.gateway.conftest import make_nodes
from tholos.crypto.dkg import run_dkg
from tholos.crypto.groups import SECP256K1
from tholos.node.barrier import (
    Barrier,
    SealError,
    Unsealer,
    WrongPassphrase,
    create_master,
    open_master,
)
from tholos.node.store import NodeStore
from tholos.schemes import SCHEMES, SignerCommitment, SigningRequest, as_frost
from tholos.transport.e2e import (
    EnvelopeError,
    Identity,
    generate_identity_secret,
    open_sealed,
    seal_to,
)


def test_barrier_binds_rows() -> None:
    b = Barrier(os.urandom(32))
    sealed = b.seal("keys", "a", b"secret")
    assert b.open("keys", "a", sealed) == b"secret"
    with pytest.raises(SealError):
        b.open("keys", "b", sealed)  # moved to another row
    with pytest.raises(SealError):
        b.open("nonces", "a", sealed)  # moved to another table
    with pytest.raises(SealError):
        Barrier(os.urandom(32)).open("keys", "a", sealed)
    assert "secret" not in repr(b)


def test_master_key_passphrase_and_key_file(tmp_path: Path) -> None:
    rec, master = create_master(Unsealer(passphrase=b"correct horse"))
    assert open_master(Unsealer(passphrase=b"correct horse"), rec) == master
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        open_master(Unsealer(passphrase=b"wrong"), rec)
    kf = tmp_path / "k"
    kf.write_text(os.urandom(32).hex())
    rec2, master2 = create_master(Unsealer(key_file=kf))
    assert open_master(Unsealer(key_file=kf), rec2) == master2
    kf.write_text(os.urandom(32).hex())
    with pytest.raises(WrongPassphrase, match="wrong key file"):
        open_master(Unsealer(key_file=kf), rec2)


def test_store_take_nonces_is_durable(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    s = NodeStore(db)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    s.put_nonces("p", [(b"a", b"1"), (b"b", b"2")])
    assert s.take_nonces([b"a", b"zz"]) == {b"a": ("p", b"1")}
    s.close()
    s2 = NodeStore(db)  # a fresh connection sees the deletion (committed)
    assert s2.take_nonces([b"a"]) == {}
    assert s2.count_nonces() == {"p": 1}


def test_vault_never_signs_twice_with_one_nonce(tmp_path: Path) -> None:
    nodes = make_nodes(tmp_path, 3)
    scheme = SCHEMES["secp256k1"]
    shares = run_dkg(SECP256K1, 2, [1, 2, 3])
    for i, svc in nodes.items():
        svc.vault.store_shares([("k", scheme, shares[i], {})])
    comms = {i: nodes[i].vault.generate_nonces(scheme.pool, 1)[0] for i in (1, 2)}
    req = SigningRequest(
        "r1",
        "k",
        b"msg",
        commitments={i: SignerCommitment(c[0], c[1], c[2]) for i, c in comms.items()},
    )
    first = nodes[1].vault.sign_batch([req])[0]
    assert first.share and not first.error
    again = nodes[1].vault.sign_batch(
        [SigningRequest("r2", "k", b"other", commitments=req.commitments)]
    )[0]
    assert again.error == "unknown or used nonce" and not again.share
    # A request naming a commitment that is not the nonce's is refused before the nonce is used.
    c3 = nodes[2].vault.generate_nonces(scheme.pool, 1)[0]
    bad = dict(req.commitments)
    bad[2] = SignerCommitment(c3[0], comms[1][1], comms[1][2])
    r = nodes[2].vault.sign_batch([SigningRequest("r3", "k", b"m", commitments=bad)])[0]
    assert r.error and not r.share


def test_sealed_box_and_envelopes() -> None:
    a, b = generate_identity_secret(), generate_identity_secret()
    ia, ib = Identity(1, a), Identity(2, b)
    ia.peers = {1: ia.public, 2: ib.public}
    ib.peers = dict(ia.peers)
    box = seal_to(ib.public, b"ctx", b"share")
    assert open_sealed(ib, b"ctx", box) == b"share"
    with pytest.raises(EnvelopeError):
        open_sealed(ib, b"other", box)
    blob = ia.encrypt_to(2, b"c", b"hello")
    assert ib.decrypt_from(1, b"c", blob) == b"hello"
    with pytest.raises(EnvelopeError):
        ib.decrypt_from(1, b"d", blob)
    sig = ia.sign(b"c", b"payload")
    ib.verify(1, b"c", b"payload", sig)
    with pytest.raises(EnvelopeError):
        ib.verify(1, b"c", b"payloaX", sig)


def test_frost_is_dispatched_by_the_scheme_registry(tmp_path: Path) -> None:
    """`SignBatch` reaches the registered `frost-sign` protocol; the JSON `Protocol` RPC does not
    serve it (its items carry pre-shared nonce commitments, only `SignBatch` takes them)."""
    from tholos.node.frost import FrostSigner
    from tholos.node.scheme_protocols import PROTOCOLS, REGISTRY
    from tholos.rpc import node_pb2 as pb
    from tholos.transport.refusal import RequestRefused

    assert REGISTRY["frost-sign"] is FrostSigner and "frost-sign" not in PROTOCOLS
    nodes = make_nodes(tmp_path, 3)
    scheme = SCHEMES["bip340"]
    shares = run_dkg(scheme.group, 2, [1, 2, 3])
    for i, svc in nodes.items():
        svc.vault.store_shares([("k", scheme, shares[i], {})])
    comms = {
        i: nodes[i].commitments(pb.CommitmentsRequest(group=scheme.pool, count=1)).commitments[0]
        for i in (1, 2)
    }
    item = pb.SignItem(
        request_id="r1",
        key_id="k",
        message=b"m" * 32,
        commitments=[
            pb.SignerCommitment(signer=i, nonce_id=c.nonce_id, hiding=c.hiding, binding=c.binding)
            for i, c in comms.items()
        ],
    )
    req = pb.SignBatchRequest(items=[item])
    got = {i: nodes[i].sign_batch(req).results[0] for i in (1, 2)}
    assert all(r.share and not r.error for r in got.values()), got
    request = SigningRequest(
        "r1",
        "k",
        b"m" * 32,
        commitments={
            i: SignerCommitment(c.nonce_id, c.hiding, c.binding) for i, c in comms.items()
        },
    )
    public = shares[1].public
    sig = as_frost(scheme).aggregate(public, {}, request, {i: r.share for i, r in got.items()})
    scheme.verify(b"m" * 32, sig, scheme.public_key(public))  # libsecp256k1 BIP340; raises if bad
    again = nodes[1].sign_batch(req).results[0]  # the nonce is gone: refused, nothing signed
    assert not again.share and "used nonce" in again.error
    with pytest.raises(RequestRefused, match="frost-sign"):
        body = b'{"batch": "b1", "items": []}'
        nodes[1].protocol(pb.ProtocolRequest(protocol="frost-sign", phase="sign", payload=body))


def test_vault_reads_and_checks_a_key_once_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests of one batch naming the same key share one read and one enabled check; the
    epoch is still checked per request, and a disabled key refuses every request naming it."""
    nodes = make_nodes(tmp_path, 3)
    scheme = SCHEMES["bip340"]
    shares = run_dkg(SECP256K1, 2, [1, 2, 3])
    vault = nodes[1].vault
    vault.store_shares([("k", scheme, shares[1], {}), ("off", scheme, shares[1], {})])
    vault.set_disabled("off", True)
    reads: list[str] = []  # the shares are cached: the enabled check is the per-key read left
    is_disabled = vault.is_disabled
    monkeypatch.setattr(vault, "is_disabled", lambda k: reads.append(k) or is_disabled(k))

    def request(rid: str, key: str) -> SigningRequest:
        mine = vault.generate_nonces(scheme.pool, 1)[0]
        other = nodes[2].vault.generate_nonces(scheme.pool, 1)[0]
        return SigningRequest(
            rid,
            key,
            os.urandom(32),
            commitments={1: SignerCommitment(*mine), 2: SignerCommitment(*other)},
        )

    reqs = [request(f"r{i}", "k") for i in range(3)] + [request(f"d{i}", "off") for i in range(2)]
    got = vault.sign_batch(reqs, epochs={"r0": 0, "r1": 1, "r2": 0, "d0": 0, "d1": 0})
    assert [bool(r.share) for r in got] == [True, False, True, False, False]
    assert "stale share" in got[1].error and "epoch 1" in got[1].error
    assert all("disabled" in r.error for r in got[3:])
    assert reads.count("k") == 1 and reads.count("off") == 1
    # The stale request kept its nonce (refused before it was taken): it signs at the right epoch.
    again = vault.sign_batch([reqs[1]], epochs={"r1": 0})[0]
    assert again.share and not again.error
