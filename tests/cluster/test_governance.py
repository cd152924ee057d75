"""Governance enforced by every node, with real node and gateway processes over mutual TLS.

- policy refusals (approvals, groups, limits, destinations, windows, expiry, kill switch), each
  refused by every node with the rule named, nothing signed; an approved request is signed;
- a compromised gateway talking to the nodes directly gets no share;
- velocity limits hold across disjoint signer subsets under concurrency (n=5, t=2);
- `tholos audit verify` detects and locates edited, deleted and reordered audit rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.cluster.conftest import LocalCluster
from tests.cluster.verify import verify
from tholos.cli import main as cli_main
from tholos.cli.governance_cmds import build_request
from tholos.cluster.governance_init import user_key_file
from tholos.cluster.layout import ClusterDir, init_cluster
from tholos.gateway.transport import GrpcNodeTransport, NodeRefused
from tholos.governance import (
    ApprovalRequirement,
    GovernanceDocument,
    Match,
    Policy,
    Rule,
    SignedDocument,
    SigningRequest,
    TimeWindow,
    VelocityLimit,
    approve,
    read_user_key,
    sign_document,
)
from tholos.rpc import node_pb2 as pb
from tholos.transport.tls import TlsFiles, client_ssl_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


class GovCluster(LocalCluster):
    """A LocalCluster initialised with a genesis (demo users in D/users)."""

    def __init__(self, root: Path, n: int, t: int) -> None:
        self.cd = ClusterDir(root)
        self.manifest = init_cluster(root, n, t, governance=True)
        self.n, self.t = n, t
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.url = self.manifest["gateway"]
        self.http = httpx.Client(
            base_url=self.url, verify=client_ssl_context(self.cd.client_tls), timeout=60
        )
        (root / "run").mkdir(exist_ok=True)
        self.cluster_id = self.manifest["governance"]["cluster_id"]

    def key_of(self, user: str) -> Ed25519PrivateKey:
        return read_user_key(user_key_file(self.cd.root, user))

    def document(self) -> SignedDocument:
        return SignedDocument.model_validate_json(
            json.dumps(self.get("/v1/governance")["document"])
        )

    def next_doc(self, **changes: Any) -> GovernanceDocument:
        cur = self.document().document
        fields: dict[str, Any] = {
            "kind": "governance",
            "cluster_id": cur.cluster_id,
            "version": cur.version + 1,
            "prev_hash": cur.digest().hex(),
            "issued_at": int(time.time()),
            "users": cur.users,
            "admin_quorum": cur.admin_quorum,
            "policy": cur.policy,
        }
        fields.update(changes)
        return GovernanceDocument(**fields)

    def signed(self, doc: GovernanceDocument, *admins: str) -> dict[str, Any]:
        return SignedDocument(
            document=doc,
            signatures=tuple(sign_document(doc, a, self.key_of(a)) for a in admins),
        ).model_dump(mode="json")

    def adopt(self, doc: GovernanceDocument, *admins: str) -> dict[str, Any]:
        return self.post("/v1/governance/documents", self.signed(doc, *admins))  # type: ignore[no-any-return]

    def request(self, key_id: str, destination: str, amount: int, **kw: Any) -> SigningRequest:
        return build_request(
            self.cluster_id,
            "initiator",
            self.key_of("initiator"),
            key_id=key_id,
            chain="raw",
            asset="RAW",
            destination=destination,
            amount=amount,
            data=os.urandom(32),
            **kw,
        )

    def approvals(self, req: SigningRequest, *names: str) -> list[dict[str, Any]]:
        return [approve(req, n, self.key_of(n)).model_dump(mode="json") for n in names]

    def submit(self, req: SigningRequest, *approvers: str) -> dict[str, Any]:
        body = {
            "request": req.model_dump(mode="json"),
            "approvals": self.approvals(req, *approvers),
        }
        return self.post("/v1/signing-requests", body)  # type: ignore[no-any-return]

    def node_transport(self, i: int) -> GrpcNodeTransport:
        """What a compromised gateway holds: its own client certificate for the nodes."""
        g = self.cd.root / "gateway"
        tls = TlsFiles(self.cd.root / "ca" / "ca.pem", g / "node-client.pem", g / "node-client.key")
        return GrpcNodeTransport(i, self.manifest["node_addresses"][str(i)], tls)


def _test_policy() -> Policy:
    hour = datetime.now(UTC).hour
    closed = (13, 24) if hour < 12 else (0, 11)  # a window that excludes the current hour
    return Policy(
        deny_destinations=("addr-evil",),
        rules=(
            Rule(
                rule_id="night-desk",
                match=Match(destinations=("addr-night",)),
                time_windows=(
                    TimeWindow(
                        weekdays=(0, 1, 2, 3, 4, 5, 6), start_hour=closed[0], end_hour=closed[1]
                    ),
                ),
            ),
            Rule(
                rule_id="standard",
                match=Match(max_amount=10_000),
                allowed_destinations=("addr-a", "addr-night"),
                approvals=(ApprovalRequirement(group="treasury", count=1),),
            ),
            Rule(
                rule_id="large",
                match=Match(min_amount=10_001),
                max_amount=50_000,
                approvals=(
                    ApprovalRequirement(group="treasury", count=2),
                    ApprovalRequirement(group="risk", count=1),
                ),
            ),
        ),
    )


async def _direct_sign(
    c: GovCluster, key_id: str, req: SigningRequest, approvals: list[dict[str, Any]], **blob: Any
) -> dict[int, str]:
    """Send a sign item straight to every node (as a compromised gateway); per node: "share" or
    the node's refusal."""
    out: dict[int, str] = {}
    data = {"request": req.model_dump(mode="json"), "approvals": approvals, **blob}
    message = bytes.fromhex(json.loads(req.payload_bytes())["data"])
    for i in range(1, c.n + 1):
        tr = c.node_transport(i)
        try:
            comms = await tr.commitments(
                pb.CommitmentsRequest(group="FROST-BIP340-v1", count=c.t), 10
            )
        except NodeRefused:
            comms = None
        signers = [i, *[j for j in range(1, c.n + 1) if j != i][: c.t - 1]]
        item = pb.SignItem(
            request_id=req.intent.request_id,
            key_id=key_id,
            message=message,
            commitments=[
                pb.SignerCommitment(
                    signer=s,
                    nonce_id=comms.commitments[0].nonce_id if comms and s == i else os.urandom(16),
                    hiding=comms.commitments[0].hiding if comms and s == i else b"",
                    binding=comms.commitments[0].binding if comms and s == i else b"",
                )
                for s in sorted(signers)
            ],
            governance=json.dumps(data).encode(),
        )
        try:
            rep = await tr.sign_batch(pb.SignBatchRequest(items=[item]), 10)
            r = rep.results[0]
            out[i] = "share" if r.share else r.error
        except NodeRefused as exc:
            out[i] = exc.reason
        finally:
            await tr.close()
    return out


def _rules(results: dict[int, str]) -> set[str]:
    return {r.split("]")[0].removeprefix("PolicyRefused[") for r in results.values()}


def tholos_cli(*args: str) -> tuple[int, dict[str, Any]]:
    p = subprocess.run(
        [sys.executable, "-m", "tholos", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return p.returncode, json.loads(p.stdout or "{}")


Make = Callable[..., LocalCluster]


@pytest.fixture
def gov_cluster(tmp_path: Path) -> Any:
    made: list[GovCluster] = []

    def make(n: int = 4, t: int = 2) -> GovCluster:
        c = GovCluster(tmp_path / f"g{len(made)}", n, t)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_policy_enforced_by_every_node(gov_cluster: Callable[..., GovCluster]) -> None:
    c = gov_cluster()
    c.start()
    key = c.create_key("bip340")
    kid = key["key_id"]

    # Plain signing is refused by every node of a governed cluster.
    r = c.http.post(f"/v1/keys/{kid}/sign", json={"message": "00" * 32})
    assert r.status_code == 400 and "governed" in r.text, r.text

    # The genesis policy: one treasury approval signs a small request.
    ok = c.submit(c.request(kid, "addr-a", 100), "approver-1")
    assert ok["status"] == "signed", ok

    # A new policy, adopted by 2 of 3 admins on every node.
    adopted = c.adopt(c.next_doc(policy=_test_policy()), "admin-1", "admin-2")
    assert adopted["adopted_by"] == c.n, adopted

    waits, refused = "awaiting-approval", "refused"
    cases = [
        ("no approvals", c.request(kid, "addr-a", 100), (), "standard", waits),
        (
            "wrong group",
            c.request(kid, "addr-a", 20_000),
            ("approver-1", "approver-2"),
            "large",
            waits,
        ),
        (
            "above limit",
            c.request(kid, "addr-a", 60_000),
            ("approver-1", "approver-2", "risk-1"),
            "large",
            refused,
        ),
        ("destination", c.request(kid, "addr-z", 100), ("approver-1",), "standard", refused),
        ("window", c.request(kid, "addr-night", 100), ("approver-1",), "night-desk", refused),
    ]
    for what, req, approvers, rule, status in cases:
        res = c.submit(req, *approvers)
        assert res["status"] == status, (what, res)
        assert {v["rule_id"] for v in res["refusals"].values()} == {rule}, (what, res)
        every = asyncio.run(_direct_sign(c, kid, req, c.approvals(req, *approvers)))
        assert _rules(every) == {rule}, (what, every)  # every node, same rule, no share

    # Deny-listed destination: refused by every node already at reservation.
    res = c.submit(c.request(kid, "addr-evil", 100), "approver-1")
    assert res["status"].startswith("refused") and {
        v["rule_id"] for v in res["refusals"].values()
    } == {"deny-list"}, res

    # Expiry: reserved while valid, approved too late.
    req = c.request(kid, "addr-a", 100, lifetime=3)
    res = c.submit(req)  # waits for approvals
    assert res["status"] == "awaiting-approval", res
    time.sleep(3.5)
    res = c.post(
        f"/v1/signing-requests/{req.intent.request_id}/approvals",
        {"approval": c.approvals(req, "approver-1")[0]},
        expect=409,
    )
    assert res["error"]["code"] == "request_closed" and "expired" in json.dumps(res), res
    assert c.get(f"/v1/signing-requests/{req.intent.request_id}")["status"] == "expired"
    assert _rules(asyncio.run(_direct_sign(c, kid, req, c.approvals(req, "approver-1")))) == {
        "expired"
    }

    # The large rule with the right approvers is signed; the signature verifies.
    big = c.request(kid, "addr-a", 20_000)
    res = c.submit(big, "approver-1", "approver-2", "risk-1")
    assert res["status"] == "signed", res
    data = bytes.fromhex(json.loads(big.payload_bytes())["data"])
    assert verify("bip340", data, bytes.fromhex(res["signature"]), bytes.fromhex(res["public_key"]))
    # ... and never twice, even straight at the nodes.
    again = asyncio.run(
        _direct_sign(c, kid, big, c.approvals(big, "approver-1", "approver-2", "risk-1"))
    )
    assert all(v != "share" for v in again.values()), again

    _cli_governance(c, kid)

    # Kill switch: one admin engages it alone; every node refuses; only a quorum releases it.
    code, out = tholos_cli(
        "killswitch", "engage", "--dir", str(c.cd.root), "--as", "admin-3", "--reason", "drill"
    )
    assert code == 0 and out["engaged_on"] == c.n, out
    res = c.submit(c.request(kid, "addr-a", 100), "approver-1")
    assert res["status"].startswith("refused") and {
        v["rule_id"] for v in res["refusals"].values()
    } == {"kill-switch"}, res
    code, out = tholos_cli("killswitch", "release", "--dir", str(c.cd.root), "--as", "admin-1")
    assert code == 0 and out["status"] == "open", out  # one admin is not a quorum
    code, out = tholos_cli(
        "policy", "approve", out["proposal_id"], "--dir", str(c.cd.root), "--as", "admin-2"
    )
    assert code == 0 and out["status"] == "adopted" and out["adopted_by"] == c.n, out
    res = c.submit(c.request(kid, "addr-a", 100), "approver-1")
    assert res["status"] == "signed", res

    # Audit: every chain verifies and every released signature is in >= t node chains.
    code, out = tholos_cli("audit", "verify", "--dir", str(c.cd.root))
    assert code == 0 and out["ok"], out
    _compromised_gateway(c, kid)
    _audit_tampering(c)


def _cli(*args: str) -> tuple[int, dict[str, Any]]:
    """`tholos ARGS --json` in this process (no interpreter start per command)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli_main([*args, "--json"])
    return code, json.loads(buf.getvalue() or "{}")


def _cli_governance(c: GovCluster, kid: str) -> None:
    """`tholos users|policy|requests ...` against the running cluster, with real effects."""
    d = ("--dir", str(c.cd.root))

    def versions() -> set[int]:
        return set(c.get("/v1/governance")["versions"].values())

    def users() -> dict[str, Any]:
        code, out = _cli("users", "list", *d)
        assert code == 0, out
        return {u["user_id"]: u for u in out["users"]}

    # users add: one admin proposes (not adopted), a second admin makes the quorum.
    v0 = c.document().document.version
    key_file = c.cd.root / "users" / "approver-3.key"
    code, out = _cli("users", "keygen", "--out", str(key_file))
    assert code == 0 and key_file.exists(), out
    pub = out["public_key"]
    code, out = _cli(
        "users", "add", "approver-3", "--public-key", pub, "--roles", "approver",
        "--groups", "treasury", "--as", "admin-1", *d,
    )  # fmt: skip
    assert code == 0 and out["status"] == "open" and out["signers"] == ["admin-1"], out
    assert "approver-3" not in users() and versions() == {v0}
    code, out = _cli("policy", "approve", out["proposal_id"], "--as", "admin-2", *d)
    assert code == 0 and out["status"] == "adopted" and out["adopted_by"] == c.n, out
    assert versions() == {v0 + 1}, versions()  # every node adopted it
    added = users()["approver-3"]
    assert added["public_key"] == pub and added["groups"] == ["treasury"], added

    # requests create / approve (by the new user) / list / show: signed, the signature verifies.
    data = os.urandom(32)
    code, out = _cli(
        "requests", "create", "--key-id", kid, "--destination", "addr-a", "--amount", "100",
        "--data", data.hex(), "--as", "initiator", *d,
    )  # fmt: skip
    assert code == 0 and out["status"] != "signed", out
    rid = out["request_id"]
    code, out = _cli("requests", "show", rid, *d)
    assert code == 0 and out["status"] == "awaiting-approval" and out["approvals"] == [], out
    code, out = _cli("requests", "approve", rid, "--as", "approver-3", *d)
    assert code == 0 and out["status"] == "signed", out
    code, shown = _cli("requests", "show", rid, *d)
    assert code == 0 and shown["status"] == "signed" and shown["approvals"] == ["approver-3"]
    assert shown["intent"]["destination"] == "addr-a" and shown["intent"]["amount"] == 100
    assert verify(
        "bip340", data, bytes.fromhex(shown["signature"]), bytes.fromhex(shown["public_key"])
    ), shown
    code, out = _cli("requests", "list", "--status", "signed", *d)
    assert code == 0 and rid in {r["request_id"] for r in out["requests"]}, out
    assert all(r["status"] == "signed" for r in out["requests"]), out

    # policy propose: one admin signature is not adopted; with a second it is, on every node.
    pol = _test_policy().model_copy(update={"deny_destinations": ("addr-evil", "addr-evil-2")})
    pol_file = c.cd.root / "policy-cli.json"
    pol_file.write_text(pol.model_dump_json())
    code, out = _cli("policy", "propose", "--file", str(pol_file), "--as", "admin-1", *d)
    assert code == 0 and out["status"] == "open" and out["adopted_by"] == 0, out
    code, shown = _cli("policy", "show", *d)
    assert code == 0 and shown["version"] == v0 + 1 and versions() == {v0 + 1}, shown
    assert "addr-evil-2" not in shown["policy"]["deny_destinations"], shown
    code, out = _cli("policy", "approve", out["proposal_id"], "--as", "admin-2", *d)
    assert code == 0 and out["status"] == "adopted" and out["adopted_by"] == c.n, out
    code, shown = _cli("policy", "show", *d)
    assert code == 0 and shown["version"] == v0 + 2 and versions() == {v0 + 2}, shown
    assert "addr-evil-2" in shown["policy"]["deny_destinations"], shown

    # users remove: adopted by the quorum; the removed user's approval no longer counts.
    code, out = _cli("users", "remove", "approver-3", "--as", "admin-1", *d)
    assert code == 0 and out["status"] == "open", out
    code, out = _cli("policy", "approve", out["proposal_id"], "--as", "admin-3", *d)
    assert code == 0 and out["status"] == "adopted" and out["adopted_by"] == c.n, out
    assert "approver-3" not in users() and versions() == {v0 + 3}
    res = c.submit(c.request(kid, "addr-a", 100), "approver-3")
    assert res["status"] != "signed", res


def _compromised_gateway(c: GovCluster, kid: str) -> None:
    """The gateway's own certificate, straight to the nodes: forged or missing approvals, a
    rolled-back policy, a document signed by too few admins: no share, no state change."""
    req = c.request(kid, "addr-a", 100)
    res = c.submit(req)  # no approvals yet
    assert res["status"] == "awaiting-approval", res
    forged = approve(req, "approver-1", Ed25519PrivateKey.generate()).model_dump(mode="json")
    got = asyncio.run(_direct_sign(c, kid, req, [forged]))
    assert _rules(got) == {"approvals"}, got
    got = asyncio.run(_direct_sign(c, kid, req, []))
    assert _rules(got) == {"standard"}, got
    # An approval of another request cannot be replayed onto this one.
    other = c.request(kid, "addr-a", 100)
    moved = c.approvals(other, "approver-1")[0]
    got = asyncio.run(_direct_sign(c, kid, req, [moved]))
    assert _rules(got) == {"approvals"}, got
    # A sign item without governance data is refused outright.
    got_plain = asyncio.run(_plain_direct(c, kid))
    assert all("governed" in v for v in got_plain.values()), got_plain

    version = c.document().document.version
    genesis = json.loads((c.cd.root / "genesis.json").read_text())
    permissive = Policy(rules=(Rule(rule_id="anything"),))
    rollback = c.next_doc(policy=permissive, version=1)  # an old version number
    one_admin = c.next_doc(policy=permissive)
    forked = c.next_doc(policy=permissive, prev_hash="00" * 32)
    attempts = {
        "genesis replay": {"document": genesis},
        "rolled back": {"document": c.signed(rollback, "admin-1", "admin-2")},
        "one admin": {"document": c.signed(one_admin, "admin-1")},
        "fork": {"document": c.signed(forked, "admin-1", "admin-2")},
    }
    for what, payload in attempts.items():
        for i in range(1, c.n + 1):
            err = asyncio.run(_governance_call(c, i, "adopt", payload))
            assert err is not None and err != "already", (what, i, err)
    assert c.document().document.version == version
    for v in c.get("/v1/governance")["versions"].values():
        assert v == version
    # Still refused under the real policy: nothing was signed by anyone.
    got = asyncio.run(_direct_sign(c, kid, c.request(kid, "addr-z", 100), []))
    assert all(v != "share" for v in got.values()), got


async def _governance_call(c: GovCluster, i: int, op: str, payload: Any) -> str | None:
    tr = c.node_transport(i)
    try:
        rep = await tr.governance(
            pb.GovernanceRequest(op=op, payload=json.dumps(payload).encode()), 10
        )
        body = json.loads(rep.payload)
        return "already" if body.get("already") else None
    except NodeRefused as exc:
        return exc.reason
    finally:
        await tr.close()


async def _plain_direct(c: GovCluster, kid: str) -> dict[int, str]:
    out = {}
    for i in range(1, c.n + 1):
        tr = c.node_transport(i)
        try:
            item = pb.SignItem(request_id="plain-1", key_id=kid, message=b"m" * 32)
            await tr.sign_batch(pb.SignBatchRequest(items=[item]), 10)
            out[i] = "share?"
        except NodeRefused as exc:
            out[i] = exc.reason
        finally:
            await tr.close()
    return out


def _audit_tampering(c: GovCluster) -> None:
    """Edit, delete and reorder single rows of three nodes' audit databases; verify locates them."""

    def sql(i: int, *statements: str) -> None:
        db = sqlite3.connect(c.cd.node_dir(i) / "audit.db")
        with db:
            for s in statements:
                db.execute(s)
        db.close()

    sql(2, "UPDATE audit SET payload = json_set(payload, '$.accepted', 1) WHERE seq = 5")
    sql(3, "DELETE FROM audit WHERE seq = 4")
    sql(
        4,
        "UPDATE audit SET seq = -1 WHERE seq = 6",
        "UPDATE audit SET seq = 6 WHERE seq = 7",
        "UPDATE audit SET seq = 7 WHERE seq = -1",
    )
    code, out = tholos_cli("audit", "verify", "--dir", str(c.cd.root))
    assert code != 0, out
    report = out["error"]["report"]
    chains = report["chains"]
    assert chains["node-1"]["ok"] and chains["gateway"]["ok"], chains
    issues = {name: {(i["code"], i["seq"]) for i in chains[name]["issues"]} for name in chains}
    assert ("edited", 5) in issues["node-2"], issues["node-2"]
    assert ("gap", 4) in issues["node-3"], issues["node-3"]
    assert {("moved", 6), ("moved", 7)} <= issues["node-4"], issues["node-4"]
    assert "node-2: edited at seq 5" in out["error"]["message"]


def test_velocity_across_disjoint_signer_subsets(gov_cluster: Callable[..., GovCluster]) -> None:
    """n=5, t=2: concurrent requests signed by different pairs never exceed the limit in total."""
    c = gov_cluster(5, 2)
    c.start()
    kid = c.create_key("ed25519")["key_id"]
    limit = 1_000
    policy = Policy(
        rules=(
            Rule(
                rule_id="capped",
                approvals=(ApprovalRequirement(group="treasury", count=1),),
                velocity=(
                    VelocityLimit(
                        limit_id="key-hour", scope="key", window_seconds=3600, max_amount=limit
                    ),
                ),
            ),
        ),
    )
    assert c.adopt(c.next_doc(policy=policy), "admin-1", "admin-3")["adopted_by"] == 5
    requests = [c.request(kid, "addr-a", 150) for _ in range(16)]  # 2,400 asked, 1,000 allowed

    def one(req: SigningRequest) -> dict[str, Any]:
        with httpx.Client(
            base_url=c.url, verify=client_ssl_context(c.cd.client_tls), timeout=60
        ) as h:
            body = {
                "request": req.model_dump(mode="json"),
                "approvals": c.approvals(req, "approver-2"),
            }
            r = h.post("/v1/signing-requests", json=body)
            assert r.status_code < 300, r.text
            return r.json()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, requests))
    signed = [r for r in results if r["status"] == "signed"]
    subsets = {tuple(r["signers"]) for r in signed}
    assert 150 * len(signed) <= limit, results
    assert len(signed) >= 1, [(r["status"], r["refusals"], r.get("error")) for r in results]
    assert len(subsets) >= 2, subsets  # different pairs of nodes signed
    # The journals agree: the total marked signed across the cluster stays under the limit.
    total = 0
    seen: set[str] = set()
    for i in range(1, 6):
        db = sqlite3.connect(c.cd.node_dir(i) / "governance.db")
        for rid, amount in db.execute(
            "SELECT request_id, amount FROM journal WHERE status = 'signed'"
        ):
            if rid not in seen:
                seen.add(rid)
                total += int(amount)
        db.close()
    assert total <= limit and len(seen) == len(signed)


def test_governed_request_signs_with_a_signer_killed(
    gov_cluster: Callable[..., GovCluster],
) -> None:
    """A signer SIGKILLed before the gateway notices: governed requests that chose it are
    retried on other nodes holding the reservation, name it, and are signed once."""
    c = gov_cluster()
    c.start()
    kid = c.create_key("bip340")["key_id"]
    for _ in range(4):  # pools of commitments at the gateway for every node (rotating pairs)
        assert c.submit(c.request(kid, "addr-a", 5), "approver-1")["status"] == "signed"
    reqs = [c.request(kid, "addr-a", 5) for _ in range(6)]
    bodies = [
        {"request": r.model_dump(mode="json"), "approvals": c.approvals(r, "approver-1")}
        for r in reqs
    ]

    # One warm connection per request, so that all reach the gateway within milliseconds of
    # the kill: before its health probe (every second) can mark node 2 down.
    clients = [
        httpx.Client(base_url=c.url, verify=client_ssl_context(c.cd.client_tls), timeout=60)
        for _ in bodies
    ]
    for h in clients:
        assert h.get("/v1/health").status_code == 200

    def one(k: int) -> dict[str, Any]:
        r = clients[k].post("/v1/signing-requests", json=bodies[k])
        assert r.status_code < 300, r.text
        return r.json()  # type: ignore[no-any-return]

    c.kill("node-2")
    try:
        with ThreadPoolExecutor(len(bodies)) as pool:
            results = list(pool.map(one, range(len(bodies))))
    finally:
        for h in clients:
            h.close()
    assert all(r["status"] == "signed" for r in results), results
    retried = [r for r in results if "2" in r["refusals"]]
    assert retried, "node 2 was never chosen before the gateway marked it down"
    for r, req in zip(results, reqs, strict=True):
        assert 2 not in r["signers"]
        data = bytes.fromhex(json.loads(req.payload_bytes())["data"])
        sig, pub = bytes.fromhex(r["signature"]), bytes.fromhex(r["public_key"])
        assert verify("bip340", data, sig, pub)
    for r in retried:
        assert (
            r["refusals"]["2"]["rule_id"] == "node"
            and "unavailable" in r["refusals"]["2"]["reason"]
        ), r
    # Never signed twice: the live journals hold each request signed by at most 3 nodes (the
    # killed node's partner in the failed session, and the final pair).
    for r in retried:
        signed = 0
        for i in (1, 3, 4):
            db = sqlite3.connect(c.cd.node_dir(i) / "governance.db")
            row = db.execute(
                "SELECT status FROM journal WHERE request_id = ?", (r["request_id"],)
            ).fetchone()
            db.close()
            signed += row is not None and row[0] == "signed"
        assert signed == 3, (r, signed)
