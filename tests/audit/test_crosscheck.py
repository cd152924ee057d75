"""Cross-check: a released signature logged by fewer than t nodes is reported."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.audit import (
    KIND_SIGNATURE_RELEASED,
    KIND_SIGNATURE_SHARE,
    AuditLog,
    ReleasedSignature,
    cross_check,
    released_signatures,
    verify_chain,
)


def test_shortfalls_reported(tmp_path: Path) -> None:
    keys = {f"node-{i}": Ed25519PrivateKey.generate() for i in range(1, 4)}
    nodes = {nid: AuditLog(tmp_path / f"{nid}.db", nid, k) for nid, k in keys.items()}
    gateway = AuditLog(tmp_path / "gw.db", "gateway", Ed25519PrivateKey.generate())
    shares = {"r1": ["node-1", "node-2"], "r2": ["node-3"], "r3": [], "r4": ["node-1", "node-3"]}
    for rid, signers in shares.items():
        digest = rid * 16
        for nid in signers:
            nodes[nid].append(KIND_SIGNATURE_SHARE, {"request_id": rid, "digest": digest})
        nodes["node-2"].append("decision", {"request_id": rid, "accepted": True})
        gateway.append(KIND_SIGNATURE_RELEASED, {"request_id": rid, "digest": digest})
    # node-3 logged r4 under another digest: does not count
    nodes["node-2"].append(KIND_SIGNATURE_SHARE, {"request_id": "r4", "digest": "00"})

    chains = {}
    for nid, log in nodes.items():
        report = verify_chain(list(log.export_lines()), keys[nid].public_key())
        assert report.ok
        chains[nid] = report.entries
    released = released_signatures(gateway.entries())
    assert [r.request_id for r in released] == ["r1", "r2", "r3", "r4"]
    short = cross_check(released, chains, t=2)
    assert [(s.request_id, s.nodes) for s in short] == [("r2", ("node-3",)), ("r3", ())]
    assert all(s.needed == 2 for s in short)
    assert cross_check([ReleasedSignature("r1", "r1" * 16)], chains, t=3)[0].nodes == (
        "node-1",
        "node-2",
    )
