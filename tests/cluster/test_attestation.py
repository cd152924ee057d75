"""Measurement pinning with real node and gateway processes (n=3, t=2, governed, mutual TLS).

One cluster, one story: every node attests (software provider) and the status says pins are not
enforced; the admins pin the measurement the nodes report (a quorum-signed document): enforced,
requests sign; node 3 restarts as another build (the test-only `other-build` fault): the gateway
leaves it out, nodes 1 and 2 refuse its evidence, both audit chains record the new measurement;
the upgrade is rolled out by pinning the new measurement first: node 3 is back, and signs with
node 2 while node 1 is down.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import wait_until
from tests.cluster.test_governance import GovCluster, _cli
from tholos.governance.measurements import AllowedMeasurement
from tholos.testing.faults import other_build_digest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def nodes(c: GovCluster) -> dict[int, dict[str, Any]]:
    return {n["node_id"]: n for n in c.get("/v1/cluster")["nodes"]}


def session_after(c: GovCluster, count: int) -> dict[str, Any]:
    """The cluster view once a session later than the `count`-th has finished."""
    return wait_until(  # type: ignore[no-any-return]
        lambda: (v := c.get("/v1/cluster"))["attestation"]["sessions"] > count and v,
        90,
        f"attestation session {count + 1}",
    )


def measurements(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT payload FROM audit WHERE kind = 'measurement' ORDER BY seq"
        ).fetchall()
    return [json.loads(r[0]) for r in rows]


def pin_document(c: GovCluster, *digests: str) -> dict[str, Any]:
    pins = tuple(
        AllowedMeasurement(kind="software", software_measurement=d, label=f"build {i}")
        for i, d in enumerate(digests)
    )
    policy = c.document().document.policy.model_copy(update={"allowed_measurements": pins})
    return c.adopt(c.next_doc(policy=policy), "admin-1", "admin-2")


def test_unpinned_build_refused_and_upgrade_rolled_out_by_pinning_first(tmp_path: Path) -> None:
    c = GovCluster(tmp_path / "g", 3, 2)
    try:
        c.start()
        view = session_after(c, 0)
        assert view["attestation"]["enforced"] is False
        assert "not enforced" in view["attestation"]["note"]
        got = {n["node_id"]: n["attestation"] for n in view["nodes"]}
        assert all(a["provider"] == "software" for a in got.values()), got
        assert all(a["hardware_guarantee"] is False and a["pinned"] is None for a in got.values())
        current = {a["software_measurement"] for a in got.values()}
        assert len(current) == 1, got  # one installation, one measurement
        (m,) = current
        assert got[1]["measurement"]["distribution"].startswith("tholos")

        # an operator checks node 1 directly, with a challenge of their own
        pins = tmp_path / "pins.json"
        pins.write_text(json.dumps([{"kind": "software", "software_measurement": m}]))
        d = ("--dir", str(c.cd.root), "--node", "1", "--pins", str(pins))
        code, out = _cli("attest", *d)
        assert code == 0 and out["pinned"] is True, out
        assert out["identity_public_key"] == c.manifest["roster"][0]["signing_key"], out
        assert out["attestation"]["hardware_guarantee"] is False
        assert out["pin"] == {"kind": "software", "software_measurement": m}
        code, out = _cli("attest", *d, "--identity-key", "00" * 32)
        assert code == 3 and out["error"]["code"] == "wrong_identity", out

        # pin the measurement the nodes report: enforced, and requests sign
        seen = c.get("/v1/cluster")["attestation"]["sessions"]
        assert pin_document(c, m)["adopted_by"] == 3
        view = session_after(c, seen)
        assert view["attestation"]["enforced"] is True
        assert all(n["attestation"]["pinned"] is True for n in view["nodes"]), view
        kid = c.create_key("bip340")["key_id"]
        assert c.submit(c.request(kid, "addr-a", 10), "approver-1")["status"] == "signed"

        # node 3 restarts as another build: left out, refused by its peers, audited
        other = other_build_digest(bytes.fromhex(m)).hex()
        c.kill("node-3", signal.SIGTERM)
        c.start_node(3, "--fault", "other-build", env={"THOLOS_ALLOW_FAULTS": "1"})
        n3 = wait_until(
            lambda: (
                (n := nodes(c)[3])["attestation"].get("software_measurement") == other
                and set(n["attestation"]["refused_by"]) == {"1", "2"}
                and n
            ),
            90,
            "node 3 attested as the other build",
        )
        assert n3["state"] == "excluded" and "not pinned" in n3["reason"], n3
        code, out = _cli("attest", "--dir", str(c.cd.root), "--node", "3", "--pins", str(pins))
        assert code == 0 and out["pinned"] is False and out["pin"]["software_measurement"] == other
        code, out = _cli("attest", "--dir", str(c.cd.root), "--node", "1")
        assert code == 0 and out["node_view"]["enforced"] is True, out
        assert out["node_view"]["peers"]["3"]["pinned"] is False, out  # node 1's own verdict
        assert out["node_view"]["peers"]["3"]["software_measurement"] == other
        assert c.submit(c.request(kid, "addr-a", 11), "approver-1")["status"] == "signed"
        r = c.http.post("/v1/keys", json={"scheme": "bip340"})
        assert r.status_code == 503 and "[3]" in r.text, r.text  # a DKG needs every node
        for db in (c.cd.node_config(1).parent / "audit.db", c.cd.root / "gateway" / "audit.db"):
            by_node = [
                (p["node"], p["software_measurement"], p["pinned"])
                for p in measurements(db)
                if p["node"] == 3
            ]
            assert (3, other, False) in by_node, (db, by_node)
            assert by_node.count((3, other, False)) == 1, by_node  # once per new value

        # the upgrade: pin the new build beside the old one first; node 3 is let back in
        assert pin_document(c, m, other)["adopted_by"] == 3
        wait_until(
            lambda: (
                (n := nodes(c)[3])["state"] == "up"
                and n["attestation"]["pinned"] is True
                and n["attestation"]["refused_by"] == {}
            ),
            90,
            "node 3 admitted after its build was pinned",
        )
        c.kill("node-1")  # only nodes 2 and 3 remain: a signature needs node 3
        wait_until(lambda: nodes(c)[1]["state"] == "down", 30, "node 1 down")
        res = c.submit(c.request(kid, "addr-a", 12), "approver-1")
        assert res["status"] == "signed", res
    finally:
        c.close()
