"""Node side of repair, the refresh commit and stale-share refusal: bad input gives a clear error
and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import make_nodes
from tholos.crypto.keys import KeyShare
from tholos.crypto.repair import run_repair
from tholos.crypto.secret import SecretScalar
from tholos.node.service import NodeService, RequestRefused
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES


def keyed_nodes(tmp: Path, scheme: str = "secp256k1") -> tuple[dict[int, NodeService], str]:
    """Four nodes holding one (2, 4) key dealt in memory."""
    from tholos.crypto.dkg import run_dkg

    nodes = make_nodes(tmp, 4)
    sch = SCHEMES[scheme]
    shares = run_dkg(sch.group, 2, [1, 2, 3, 4])
    for i, s in nodes.items():
        s.vault.store_shares([("k1", sch, shares[i], {})])
    return nodes, "k1"


def state(s: NodeService) -> Any:
    return (
        s.store.db.execute("SELECT key_id, public, sealed FROM keys ORDER BY key_id").fetchall(),
        s.store.count_pending(),
        sorted(s.protocols.batches),
        dict(s.vault.stale),
    )


def proto(s: NodeService, protocol: str, phase: str, body: dict[str, Any], envs: Any = ()) -> Any:
    return s.protocol(
        pb.ProtocolRequest(
            protocol=protocol, phase=phase, payload=json.dumps(body).encode(), envelopes=list(envs)
        )
    )


@pytest.mark.parametrize(
    ("node", "body", "message"),
    [
        (1, {"batch": "b", "helpers": [1, 2], "lost": 4, "keys": {"nope": 0}}, "unknown key nope"),
        (1, {"batch": "b", "helpers": [1, 2], "lost": 1, "keys": {"k1": 0}}, "its own share"),
        (3, {"batch": "b", "helpers": [1, 2], "lost": 4, "keys": {"k1": 0}}, "neither a helper"),
        (1, {"batch": "b", "helpers": [1, 2], "lost": 4, "keys": {}}, "1..4096 keys"),
        (1, {"batch": "b", "helpers": [1, 2], "lost": 4, "keys": {"k1": 1}}, "stale share"),
        (1, {"batch": "b", "helpers": [1, 2], "lost": 9, "keys": {"k1": 0}}, "not in the key"),
        (1, {"batch": "b", "lost": 4, "keys": {"k1": 0}}, "malformed repair request"),
    ],
)
def test_repair_round1_refusals(
    tmp_path: Path, node: int, body: dict[str, Any], message: str
) -> None:
    nodes, _ = keyed_nodes(tmp_path)
    s = nodes[node]
    before = state(s)
    with pytest.raises(RequestRefused, match=message):
        proto(s, "repair", "round1", body)
    s.vault.stale.clear()  # the stale case records the newer epoch it was asked for (reported)
    assert state(s) == before


def test_repair_phase_out_of_order_and_unknown_batch(tmp_path: Path) -> None:
    nodes, key = keyed_nodes(tmp_path)
    with pytest.raises(RequestRefused, match="no repair batch"):
        proto(nodes[1], "repair", "finish", {"batch": "zz"})
    proto(
        nodes[1], "repair", "round1", {"batch": "b", "helpers": [1, 2], "lost": 4, "keys": {key: 0}}
    )
    with pytest.raises(RequestRefused, match="phase finish not allowed after round1"):
        proto(nodes[1], "repair", "finish", {"batch": "b"})
    with pytest.raises(RequestRefused, match="already started"):
        proto(
            nodes[1],
            "repair",
            "round1",
            {"batch": "b", "helpers": [1, 2], "lost": 4, "keys": {key: 0}},
        )


def run_phases(nodes: dict[int, NodeService], helpers: list[int], lost: int, key: str) -> Any:
    parts = sorted([*helpers, lost])
    body = {"batch": "rb", "helpers": helpers, "lost": lost, "keys": {key: 0}}
    r1 = [proto(nodes[i], "repair", "round1", body).envelope for i in parts]
    r2 = [proto(nodes[i], "repair", "round2", {"batch": "rb"}, r1).envelope for i in parts]
    return [proto(nodes[i], "repair", "finish", {"batch": "rb"}, r2).envelope for i in parts]


def test_repair_rebuilds_the_same_share(tmp_path: Path) -> None:
    nodes, key = keyed_nodes(tmp_path)
    before = nodes[4].vault.record(key).share
    nodes[4].store.db.execute("DELETE FROM keys")
    nodes[4].vault._cache.clear()
    run_phases(nodes, [1, 3], 4, key)
    after = nodes[4].vault.record(key).share
    g = after.group
    assert g.eq(g.base_mul(after.secret_share.expose()), g.base_mul(before.secret_share.expose()))
    assert "redacted" in repr(after) and "secret" not in json.dumps(
        nodes[4].store.db.execute("SELECT public FROM keys").fetchone()[0]
    )


def test_forged_relay_is_refused_without_blame(tmp_path: Path) -> None:
    """The gateway swaps a helper's round-1 envelope payload: the signature check fails, nobody is
    blamed, and nothing is stored."""
    nodes, key = keyed_nodes(tmp_path)
    nodes[4].store.db.execute("DELETE FROM keys")
    nodes[4].vault._cache.clear()
    body = {"batch": "rb", "helpers": [1, 2], "lost": 4, "keys": {key: 0}}
    r1 = [proto(nodes[i], "repair", "round1", body).envelope for i in (1, 2, 4)]
    r1[0].payload = r1[0].payload.replace(b'"round1"', b'"round1" ', 1)
    with pytest.raises(RequestRefused) as ei:
        proto(nodes[4], "repair", "round2", {"batch": "rb"}, r1)
    assert ei.value.culprits == ()
    assert not nodes[4].vault.has_key(key) and not nodes[4].protocols.batches


def test_crypto_repair_names_a_wrong_sigma(tmp_path: Path) -> None:
    """A helper whose share is wrong (not on the polynomial) is caught by the delta commitments."""
    nodes, key = keyed_nodes(tmp_path)
    shares = {i: nodes[i].vault.record(key).share for i in (1, 2)}
    bad = shares[2]
    q = bad.group.order
    forged = object.__new__(KeyShare)
    object.__setattr__(forged, "identifier", 2)
    object.__setattr__(forged, "secret_share", SecretScalar((bad.secret_share.expose() + 1) % q))
    object.__setattr__(forged, "public", bad.public)
    from tholos.crypto.errors import InvalidShare

    with pytest.raises(InvalidShare) as ei:
        run_repair({1: shares[1], 2: forged}, 4)
    assert ei.value.culprits == (2,) or list(ei.value.culprits) == [2]


def test_sign_with_other_epoch_is_refused_and_consumes_nothing(tmp_path: Path) -> None:
    nodes, key = keyed_nodes(tmp_path, "bip340")
    s = nodes[1]
    (c,) = s.commitments(pb.CommitmentsRequest(group=SCHEMES["bip340"].pool, count=1)).commitments
    pool = s.store.count_nonces()
    item = pb.SignItem(
        request_id="r",
        key_id=key,
        message=b"m" * 32,
        epoch=1,
        commitments=[
            pb.SignerCommitment(signer=1, nonce_id=c.nonce_id, hiding=c.hiding, binding=c.binding)
        ],
    )
    (res,) = s.sign_batch(pb.SignBatchRequest(items=[item])).results
    assert "stale share" in res.error and "epoch 0" in res.error and not res.share
    assert s.store.count_nonces() == pool
    assert list(s.info(pb.InfoRequest()).stale_keys) == [key]


def test_commit_refused_without_preparation_or_with_bad_envelopes(tmp_path: Path) -> None:
    nodes, key = keyed_nodes(tmp_path)
    s = nodes[1]
    before = state(s)
    with pytest.raises(RequestRefused, match="not prepared"):
        proto(s, "refresh", "commit", {"batch": "nobatch", "keys": [key]})
    with pytest.raises(RequestRefused, match="not prepared"):
        proto(s, "refresh", "commit", {"batch": "nobatch", "keys": []})
    assert state(s) == before
    # Prepare a refresh on every node (phases up to finish), then commit with a finish envelope
    # missing, and with one from another batch: refused, the old share stays in use.
    parts = [1, 2, 3, 4]
    body = {"batch": "fb", "participants": parts, "sessions": [{"session": key}]}
    envs = [proto(nodes[i], "refresh", "round1", body).envelope for i in parts]
    for phase in ("round2", "round3", "finish"):
        envs = [proto(nodes[i], "refresh", phase, {"batch": "fb"}, envs).envelope for i in parts]
    assert s.store.count_pending() == 1
    old = s.vault.record(key).share.public.to_dict()
    with pytest.raises(RequestRefused, match="missing envelopes"):
        proto(s, "refresh", "commit", {"batch": "fb", "keys": [key]}, envs[:3])
    assert s.vault.record(key).share.public.to_dict() == old and s.store.count_pending() == 1
    proto(s, "refresh", "commit", {"batch": "fb", "keys": [key]}, envs)
    assert s.vault.record(key).meta["epoch"] == 1 and s.store.count_pending() == 0
    assert s.vault.record(key).share.public.to_dict() != old
    # Repeated: acknowledged, nothing changes.
    proto(s, "refresh", "commit", {"batch": "fb", "keys": [key]}, envs)
    assert s.vault.record(key).meta["epoch"] == 1


def test_recovering_node_refuses_an_older_epoch(tmp_path: Path) -> None:
    """The gateway cannot roll a node back: helpers presenting an older refresh epoch than the
    node already holds are refused, and the node's share is untouched."""
    nodes, key = keyed_nodes(tmp_path)
    rec = nodes[4].vault.record(key)
    nodes[4].vault.store_shares([(key, rec.scheme, rec.share, {"epoch": 1})])
    before = state(nodes[4])
    with pytest.raises(RequestRefused, match="older refresh epoch"):
        run_phases(nodes, [1, 3], 4, key)
    assert state(nodes[4]) == before
