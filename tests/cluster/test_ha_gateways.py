"""Two gateway processes serve one governed cluster (4 node processes, t=2) on one real
PostgreSQL server (tests/postgres.py), set up as an operator would (`add_gateway`).

- state and idempotency are shared: a retry on gateway B returns gateway A's answer;
- approvals sent to both gateways at once are all kept; gateway A SIGKILLed mid-approval and
  mid-signing: gateway B completes the requests, every answer carries the same one signature
  (checked by libsecp256k1), and the nodes' journals show no node signed a request twice;
- PostgreSQL restarted under load: answers are 2xx or 503 `store_unavailable` in the error
  envelope, and every failed request succeeds on retry.
One cluster for the file; the cases run in order and share it."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.cluster.conftest import wait_until
from tests.cluster.test_governance import GovCluster
from tests.cluster.verify import verify
from tholos.cluster.gateways import add_gateway
from tholos.governance import SigningRequest
from tholos.transport.tls import client_ssl_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
LEASE = 6.0  # seconds a killed gateway's claim to sign a request holds
# Node 4 signs only after 4 s (fault slow-signing) and the gateways wait 3 s for a node: a
# session with node 4 leaves its gateway waiting while its other signer has signed, the moment
# the tests kill gateway A. Node 4 never completes a signature, so 3 nodes sign.
GATEWAY = {"signing_lease_seconds": LEASE, "rpc_timeout": 3.0, "quarantine_seconds": 5.0}


class Ha:
    def __init__(self, c: GovCluster, store: str, b_url: str, b_config: Path, kid: str) -> None:
        self.c, self.store, self.b_config, self.kid = c, store, b_config, kid
        self.a_url, self.b_url = c.url, b_url

    def client(self, url: str) -> httpx.Client:
        return httpx.Client(
            base_url=url, verify=client_ssl_context(self.c.cd.client_tls), timeout=90
        )

    def restart_a(self) -> None:
        self.c.start_gateway()
        with self.client(self.a_url) as h:
            wait_until(lambda: h.get("/v1/health").json()["nodes_up"] == 4, 90, "gateway A up")

    def body(self, req: SigningRequest, *approvers: str) -> dict[str, Any]:
        return {
            "request": req.model_dump(mode="json"),
            "approvals": self.c.approvals(req, *approvers),
        }

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.store, autocommit=True) as conn:
            return [tuple(r) for r in conn.execute(sql, args).fetchall()]

    def mid_signing(self, ids: list[str]) -> bool:
        """Some request signed on a node but not stored signed by the gateway (or stored)."""
        stored = {
            str(r[0])
            for r in self.rows(
                "SELECT request_id FROM signing_requests WHERE status = 'signed' "
                "AND request_id = ANY(%s)",
                ids,
            )
        }
        return bool(stored) or any(self.signed_on(rid) for rid in ids)

    def signed_on(self, request_id: str) -> list[int]:
        """Nodes whose journal holds the request signed."""
        out = []
        for i in range(1, 5):
            db = sqlite3.connect(self.c.cd.node_dir(i) / "governance.db")
            row = db.execute(
                "SELECT status FROM journal WHERE request_id = ?", (request_id,)
            ).fetchone()
            db.close()
            if row is not None and row[0] == "signed":
                out.append(i)
        return out


@pytest.fixture(scope="module")
def ha(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ha]:
    c = GovCluster(tmp_path_factory.mktemp("ha"), 4, 2)
    store = postgres_server.new_database()
    b = add_gateway(c.cd, "b", store)
    for cfg in (c.cd.gateway_config, Path(b["config"])):
        d = json.loads(cfg.read_text())
        d.update(GATEWAY)
        cfg.write_text(json.dumps(d))
    try:
        c.start(node_args={4: ["--fault", "slow-signing"]})
        c._spawn("gateway-b", ["gateway", "--config", b["config"]])
        ha = Ha(c, store, b["url"], Path(b["config"]), c.create_key("bip340")["key_id"])
        with ha.client(ha.b_url) as h:
            wait_until(lambda: h.get("/v1/health").json()["nodes_up"] == 4, 90, "gateway B up")
        yield ha
    finally:
        c.close()


def _message(req: SigningRequest) -> bytes:
    return bytes.fromhex(json.loads(req.payload_bytes())["data"])


def _verified(ha: Ha, req: SigningRequest, answer: dict[str, Any]) -> str:
    assert answer["status"] == "signed", answer
    sig, pub = bytes.fromhex(answer["signature"]), bytes.fromhex(answer["public_key"])
    assert verify("bip340", _message(req), sig, pub)
    return str(answer["signature"])


def _finish_on_b(ha: Ha, b: httpx.Client, request_id: str) -> dict[str, Any]:
    """Ask B to sign until the request is signed (after a killed gateway's lease lapses)."""

    def signed() -> dict[str, Any] | None:
        r = b.post(f"/v1/signing-requests/{request_id}/sign")
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        assert out["status"] in ("signed", "reserved", "created", "awaiting-approval"), out
        return out if out["status"] == "signed" else None

    return wait_until(signed, LEASE * 10, f"request {request_id} signed by B")  # type: ignore[no-any-return]


def test_state_and_idempotency_are_shared(ha: Ha) -> None:
    with ha.client(ha.a_url) as a, ha.client(ha.b_url) as b:
        key = b.get(f"/v1/keys/{ha.kid}")
        assert key.status_code == 200 and key.json()["key_id"] == ha.kid  # made on A
        count = len(b.get("/v1/keys").json()["keys"])
        body = {"scheme": "ed25519", "label": "ha"}
        first = a.post("/v1/keys", json=body, headers={"Idempotency-Key": "ha-1"})
        assert first.status_code == 201, first.text
        again = b.post("/v1/keys", json=body, headers={"Idempotency-Key": "ha-1"})
        assert again.status_code == 201 and again.content == first.content  # no second DKG
        assert again.headers["idempotent-replayed"] == "true"
        assert len(b.get("/v1/keys").json()["keys"]) == count + 1
        other = b.post("/v1/keys", json={"scheme": "bip340"}, headers={"Idempotency-Key": "ha-1"})
        assert (
            other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
        )
        # A governed request is identified by its request id: posted again on B, it is A's.
        req = ha.c.request(ha.kid, "addr-a", 5)
        made = a.post("/v1/signing-requests", json=ha.body(req, "approver-1"))
        assert made.status_code == 201, made.text
        sig = _verified(ha, req, made.json())
        retried = b.post("/v1/signing-requests", json=ha.body(req, "approver-1"))
        assert retried.status_code == 201 and _verified(ha, req, retried.json()) == sig
        # With an Idempotency-Key too: B replays A's stored answer byte for byte.
        req = ha.c.request(ha.kid, "addr-a", 5)
        key = {"Idempotency-Key": "ha-2"}
        governed = ha.body(req, "approver-1")
        made = a.post("/v1/signing-requests", json=governed, headers=key)
        assert made.status_code == 201, made.text
        _verified(ha, req, made.json())
        again = b.post("/v1/signing-requests", json=governed, headers=key)
        assert again.content == made.content and again.headers["idempotent-replayed"] == "true"


def test_approvals_on_both_gateways_and_a_kill_mid_approval(ha: Ha) -> None:
    req = ha.c.request(ha.kid, "addr-a", 20_000)  # "large": 2 treasury + 1 risk approvals
    rid = req.intent.request_id
    a, b = ha.client(ha.a_url), ha.client(ha.b_url)
    try:
        r = a.post("/v1/signing-requests", json=ha.body(req))
        assert r.status_code == 201 and r.json()["status"] == "awaiting-approval", r.text
        approvals = {n: ha.c.approvals(req, n)[0] for n in ("approver-1", "approver-2", "risk-1")}

        def approve(h: httpx.Client, name: str) -> dict[str, Any]:
            got = h.post(
                f"/v1/signing-requests/{rid}/approvals", json={"approval": approvals[name]}
            )
            assert got.status_code == 200, got.text
            return got.json()  # type: ignore[no-any-return]

        with ThreadPoolExecutor(2) as pool:  # at once, on the two gateways
            done = list(pool.map(approve, (a, b), ("approver-1", "approver-2")))
        assert all(d["status"] == "awaiting-approval" for d in done), done
        shown = b.get(f"/v1/signing-requests/{rid}").json()
        assert set(shown["approvals"]) == {"approver-1", "approver-2"}  # none lost

        # The last approval to A; A is killed once the approval is stored (before or while it
        # signs). B, sent the same approval, completes the request.
        sent = threading.Thread(target=_swallow, args=(a, rid, approvals["risk-1"]), daemon=True)
        sent.start()
        wait_until(lambda: ha.mid_signing([rid]), 60, "A signing after the last approval")
        ha.c.kill("gateway", signal.SIGKILL)
        sent.join(30)
        was_signed = bool(
            ha.rows(
                "SELECT 1 FROM signing_requests WHERE request_id = %s AND status = 'signed'", rid
            )
        )
        shares_left = ha.signed_on(rid)
        print(f"\nkill mid-approval: stored signed by A {was_signed}, nodes signed {shares_left}")
        answer = approve(b, "risk-1")
        if answer["status"] != "signed":
            answer = _finish_on_b(ha, b, rid)
        sig = _verified(ha, req, answer)
        if not was_signed:
            assert not set(answer["signers"]) & set(shares_left), (answer, shares_left)
        assert set(answer["approvals"]) == {"approver-1", "approver-2", "risk-1"}
        assert _verified(ha, req, approve(b, "risk-1")) == sig  # the retried approval: same
        ha.restart_a()
        a.close()
        a = ha.client(ha.a_url)
        assert _verified(ha, req, a.get(f"/v1/signing-requests/{rid}").json()) == sig
        assert len(ha.signed_on(rid)) <= 4  # journals: at most one share per node
    finally:
        a.close()
        b.close()


def _swallow(h: httpx.Client, rid: str, approval: dict[str, Any]) -> None:
    """Post to a gateway about to be killed: its answer (or the broken connection) is moot."""
    with contextlib.suppress(httpx.HTTPError):
        h.post(f"/v1/signing-requests/{rid}/approvals", json={"approval": approval})


def test_kill_mid_signing_the_other_gateway_completes(ha: Ha) -> None:
    reqs = [ha.c.request(ha.kid, "addr-a", 5) for _ in range(4)]
    bodies = [ha.body(r, "approver-1") for r in reqs]
    ids = [r.intent.request_id for r in reqs]
    clients = [ha.client(ha.a_url) for _ in bodies]
    for h in clients:
        assert h.get("/v1/health").status_code == 200
    threads = [
        threading.Thread(target=_post_moot, args=(h, body), daemon=True)
        for h, body in zip(clients, bodies, strict=True)
    ]
    for t in threads:
        t.start()
    wait_until(lambda: ha.mid_signing(ids), 60, "A signing")
    ha.c.kill("gateway", signal.SIGKILL)
    for t in threads:
        t.join(30)
    for h in clients:
        h.close()
    stored_signed = {
        str(r[0])
        for r in ha.rows(
            "SELECT request_id FROM signing_requests WHERE status = 'signed' "
            "AND request_id = ANY(%s)",
            ids,
        )
    }
    shares_left = {rid: ha.signed_on(rid) for rid in ids}  # nodes that signed for dead A
    with ha.client(ha.b_url) as b:
        sigs = {}
        for req, body in zip(reqs, bodies, strict=True):
            rid = req.intent.request_id
            r = b.post("/v1/signing-requests", json=body)  # the client's retry, on B
            assert r.status_code == 201, r.text
            answer = r.json()
            if answer["status"] != "signed":
                answer = _finish_on_b(ha, b, rid)
            sigs[rid] = _verified(ha, req, answer)
            if rid not in stored_signed:  # B signed it: only on nodes that had not signed
                assert not set(answer["signers"]) & set(shares_left[rid]), (answer, shares_left)
        for req, body in zip(reqs, bodies, strict=True):  # asked again: the same signature
            assert (
                _verified(ha, req, b.post("/v1/signing-requests", json=body).json())
                == sigs[req.intent.request_id]
            )
    taken = [rid for rid in ids if rid not in stored_signed and shares_left[rid]]
    print(  # the report of what this run met (-s shows it)
        f"\nkill mid-signing: {len(stored_signed)} stored signed by A, {len(taken)} taken over "
        f"by B after nodes had signed for A, {len(ids) - len(stored_signed) - len(taken)} "
        "not yet signed by any node"
    )
    ha.restart_a()


def _post_moot(h: httpx.Client, body: dict[str, Any]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        h.post("/v1/signing-requests", json=body)


def test_postgres_restart_under_load_fails_cleanly_and_retries_succeed(
    ha: Ha, postgres_server: Any
) -> None:
    reqs = [ha.c.request(ha.kid, "addr-a", 5) for _ in range(12)]
    stop = threading.Event()
    answers: list[tuple[int, dict[str, Any]]] = []
    failed: list[dict[str, Any]] = []

    def load(url: str, mine: list[SigningRequest]) -> None:
        with ha.client(url) as h:
            for k, req in enumerate(mine):
                if k == len(mine) // 3:
                    stop.wait(60)  # the rest while PostgreSQL is down or restarting
                body = ha.body(req, "approver-1")
                r = h.post("/v1/signing-requests", json=body)
                answers.append((r.status_code, r.json()))
                if r.status_code != 201:
                    failed.append(body)
                g = h.get(f"/v1/keys/{ha.kid}")
                answers.append((g.status_code, g.json()))

    workers = [
        threading.Thread(target=load, args=(url, reqs[k::2]), daemon=True)
        for k, url in enumerate((ha.a_url, ha.b_url))
    ]
    for w in workers:
        w.start()
    postgres_server.stop()
    stop.set()
    wait_until(lambda: any(s == 503 for s, _ in answers), 60, "a 503 during the outage")
    postgres_server.start()
    for w in workers:
        w.join(120)
    for status, body in answers:
        assert status in (200, 201, 503), (status, body)
        if status == 503:
            assert body["error"]["code"] == "store_unavailable", body
        elif "status" in body:
            assert body["status"] == "signed", body
    assert failed, "no request met the outage"
    with ha.client(ha.a_url) as a:
        for body in failed:  # the retries, once PostgreSQL is back
            r = a.post("/v1/signing-requests", json=body)
            assert r.status_code == 201, r.text
            req = SigningRequest.model_validate(body["request"])
            _verified(ha, req, r.json())
