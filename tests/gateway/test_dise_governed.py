"""DiSE in a governed cluster: real node and gateway code over the in-memory transport.

- the permission and binding checks of `tholos.node.dise_governance.check`, one by one;
- every node refuses a bad authorization (signature, expiry, lifetime, group, α, key, encryptor,
  kill switch, none at all), audits it, and returns no partial;
- the gateway relays only sealed partials: the bytes it handles hold no partial's encoding, and
  the client (the CLI's own functions) opens them, encrypts and decrypts;
- a node sending a bad partial is named by the client and left out, not quarantined.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.gateway.conftest import Cluster, governed_cluster
from tholos.cli.crypto_cmds import combine_governed, open_partials
from tholos.cluster.governance_init import DEMO_USERS, make_genesis, write_user_key
from tholos.crypto import dise
from tholos.crypto.errors import InvalidInput
from tholos.crypto.keys import PublicKeyPackage
from tholos.crypto.seal import public_bytes
from tholos.gateway.scheme_protocols import rounds_for
from tholos.gateway.scheme_routes import result
from tholos.governance import load_genesis
from tholos.governance._keys import sign
from tholos.governance.state import KillSwitch
from tholos.node.dise_governance import (
    DiseAuthorization,
    SignedDiseAuthorization,
    check,
    key_group,
    sign_authorization,
)
from tholos.rpc import node_pb2 as pb
from tholos.testing.faults import fault

CLUSTER = "tholos-dise"
PEOPLE = {
    **DEMO_USERS,
    "analyst": (("initiator",), ("dise",)),  # every DiSE key
    "keyholder": ((), (key_group("0" * 32),)),  # only key 00..0
}


@dataclass
class Governed:
    cluster: Cluster
    users: dict[str, Ed25519PrivateKey]
    tmp: Path

    def authorize(
        self, user: str, key_id: str, req: dise.EvalRequest, **kw: Any
    ) -> tuple[SignedDiseAuthorization, X25519PrivateKey]:
        xkey = X25519PrivateKey.generate()
        signed = sign_authorization(
            self.users[user],
            cluster_id=CLUSTER,
            user=user,
            key_id=key_id,
            request=req,
            client_key=public_bytes(xkey),
            **kw,
        )
        return signed, xkey

    async def evaluate(
        self, key_id: str, req: dise.EvalRequest, auth: SignedDiseAuthorization, **kw: Any
    ) -> Any:
        ext = rounds_for(self.cluster.gateway)
        body = {
            "alpha": req.alpha.hex(),
            "encryptor": req.encryptor,
            "purpose": req.purpose,
            "authorization": auth.model_dump(mode="json"),
            **kw,
        }
        job = ext.job(key_id, b"", "", body)
        await ext.submit([job])
        return job


@pytest_asyncio.fixture
async def governed(tmp_path: Path) -> AsyncIterator[Governed]:
    users = {name: Ed25519PrivateKey.generate() for name in PEOPLE}
    genesis = make_genesis(CLUSTER, users, people=PEOPLE)
    async with governed_cluster(tmp_path, genesis, CLUSTER) as c:
        yield Governed(c, users, tmp_path)


def _ask(service: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    """One dise-eval round sent straight to a node (as a gateway would)."""
    payload = json.dumps({"batch": os.urandom(8).hex(), "items": items}).encode()
    rep = service.protocol(pb.ProtocolRequest(protocol="dise-eval", phase="eval", payload=payload))
    results: dict[str, Any] = json.loads(rep.envelope.payload)["results"]
    return results


def _item(rid: str, key_id: str, req: dise.EvalRequest, auth: Any) -> dict[str, Any]:
    item = {"request_id": rid, "key_id": key_id, "request": req.to_dict()}
    if auth is not None:
        item["authorization"] = auth.model_dump(mode="json")
    return item


# -- check(): the rule itself ------------------------------------------------------------------
def test_permission_is_the_key_group_or_the_dise_group() -> None:
    users = {name: Ed25519PrivateKey.generate() for name in PEOPLE}
    state = load_genesis(make_genesis(CLUSTER, users, people=PEOPLE))
    now = int(time.time())
    req = dise.EvalRequest(os.urandom(32), "keyholder", os.urandom(32), "encrypt")

    def decide(user: str, key_id: str) -> str:
        xkey = X25519PrivateKey.generate()
        r = dise.EvalRequest(req.key_id, user, req.alpha, "encrypt")
        auth = sign_authorization(
            users[user],
            cluster_id=CLUSTER,
            user=user,
            key_id=key_id,
            request=r,
            client_key=public_bytes(xkey),
        )
        d, _ = check(state, now, _item("r", key_id, r, auth))
        return "ok" if d.accepted else d.rule_id  # type: ignore[union-attr]

    assert decide("keyholder", "0" * 32) == "ok"  # dise:<key_id>
    assert decide("keyholder", "1" * 32) == "permission"  # another key
    assert decide("analyst", "1" * 32) == "ok"  # dise: every key
    for who in ("admin-1", "initiator", "auditor", "approver-1"):  # no role grants access
        assert decide(who, "0" * 32) == "permission"


def test_a_package_inconsistent_with_its_group_key_is_refused() -> None:
    from tholos.crypto.groups.ed25519 import ED25519
    from tholos.crypto.hazmat.dealer import deal_key_shares

    public = deal_key_shares(ED25519, None, 2, range(1, 5))[0].public
    dise.check_consistent(public)
    forged = dict(public.verifying_shares)
    forged[3] = ED25519.serialize_element(ED25519.mul(ED25519.generator(), 12345))
    with pytest.raises(InvalidInput, match="inconsistent"):
        dise.check_consistent(replace(public, verifying_shares=forged))
    with pytest.raises(InvalidInput, match="inconsistent"):
        dise.check_consistent(replace(public, group_public_key=forged[3]))


# -- node refusals ---------------------------------------------------------------------------------
def _forge(g: Governed, auth: SignedDiseAuthorization, **changes: Any) -> SignedDiseAuthorization:
    """The authorization with fields changed, re-signed by its user (a well-formed request that
    must still be refused)."""
    a = DiseAuthorization(**{**auth.authorization.model_dump(), **changes})
    return SignedDiseAuthorization(authorization=a, signature=sign(g.users[a.user], a.digest()))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "case",
    [
        "none",
        "bad-signature",
        "unknown-user",
        "expired",
        "lifetime",
        "group",
        "alpha",
        "key",
        "purpose",
        "encryptor",
        "cluster",
        "kill-switch",
    ],
)
async def test_every_node_refuses_audits_and_gives_no_partial(
    governed: Governed, case: str
) -> None:
    gw = governed.cluster.gateway
    (row,) = await gw.create_keys("dise")
    public = PublicKeyPackage.from_dict(row.package)
    _, req = dise.encrypt_begin(public, "analyst", b"secret")
    auth, _ = governed.authorize("analyst", row.key_id, req)
    key_id, rule = row.key_id, {"none": "governed", "bad-signature": "signature"}.get(case, case)
    sent: SignedDiseAuthorization | None = auth
    if case == "none":
        sent = None
    elif case == "bad-signature":  # signed by another user's key
        sent = SignedDiseAuthorization(
            authorization=auth.authorization,
            signature=sign(governed.users["initiator"], auth.authorization.digest()),
        )
    elif case == "unknown-user":
        sent, rule = (
            SignedDiseAuthorization(
                authorization=auth.authorization.model_copy(update={"user": "mallory"}),
                signature=auth.signature,
            ),
            "user",
        )
    elif case == "expired":
        sent, _ = governed.authorize("analyst", row.key_id, req, now=time.time() - 400)
    elif case == "lifetime":
        sent = _forge(governed, auth, expires_at=int(time.time()) + 3600)
    elif case == "group":
        _, req = dise.encrypt_begin(public, "initiator", b"secret")
        sent, _ = governed.authorize("initiator", row.key_id, req)
        rule = "permission"
    elif case == "alpha":
        sent = _forge(governed, auth, alpha=os.urandom(32).hex())
        rule = "binding"
    elif case in ("key", "purpose"):
        sent = _forge(governed, auth, **{"key_id": "f" * 32} if case == "key" else {})
        if case == "purpose":
            req = dise.EvalRequest(req.key_id, req.encryptor, req.alpha, "decrypt")
        rule = "binding"
    elif case == "encryptor":
        req = dise.EvalRequest(req.key_id, "someone-else", req.alpha, "encrypt")
        sent, _ = governed.authorize("analyst", row.key_id, req)
    elif case == "cluster":
        sent = _forge(governed, auth, cluster_id="another-cluster")
    elif case == "kill-switch":
        for s in governed.cluster.services.values():
            assert s.governance is not None and s.governance.state is not None
            s.governance.state = replace(
                s.governance.state, kill_switch=KillSwitch("admin-1", 0, "drill", 1)
            )
    for i, s in governed.cluster.services.items():
        rid = f"req-{case}-{i}"
        res = _ask(s, [_item(rid, key_id, req, sent)])[rid]
        assert set(res) == {"error"} and res["error"].startswith(f"PolicyRefused[{rule}]"), res
        assert s.governance is not None
        last = s.governance.audit.entries()[-1]
        assert last.kind == "decision" and last.payload["request_id"] == rid
        assert last.payload["accepted"] is False and last.payload["rule_id"] == rule
        assert last.payload["protocol"] == "dise-eval"
        if sent is not None:
            digest = sent.authorization.digest().hex()
            assert (
                last.payload["digest"] == digest and last.payload["user"] == sent.authorization.user
            )
    # Through the gateway as well: every node refuses, the client gets the reason and nothing else.
    if sent is not None:
        job = await governed.evaluate(key_id, req, sent)
        assert not job.partials and job.status == 400 and f"PolicyRefused[{rule}]" in job.error


# -- the gateway flow -------------------------------------------------------------------------------
def _tap(c: Cluster) -> list[bytes]:
    """Record every reply payload the gateway receives from the nodes."""
    seen: list[bytes] = []
    for t in c.transports.values():
        inner = t.protocol

        async def protocol(req: pb.ProtocolRequest, timeout: float, inner: Any = inner) -> Any:
            rep = await inner(req, timeout)
            seen.append(rep.envelope.payload)
            return rep

        t.protocol = protocol  # type: ignore[method-assign]
    return seen


@pytest.mark.asyncio
async def test_sealed_partials_round_trip_and_the_gateway_sees_none(governed: Governed) -> None:
    c = governed.cluster
    (row,) = await c.gateway.create_keys("dise")
    public = PublicKeyPackage.from_dict(row.package)
    seen = _tap(c)
    plaintext = os.urandom(300)
    ctx, req = dise.encrypt_begin(public, "analyst", plaintext)
    auth, xkey = governed.authorize("analyst", row.key_id, req)
    job = await governed.evaluate(row.key_id, req, auth)
    assert len(job.partials) == 2 and not job.excluded, job.error
    assert all(set(p) == {"identifier", "sealed"} for p in job.partials)

    # What the gateway handled holds no partial: not its point, not its proof, in any form.
    relayed = b"".join(seen) + json.dumps(result(c.gateway, job)).encode()
    assert all(p["sealed"].encode() in b"".join(seen) for p in job.partials)  # the tap works
    for i in job.signers:
        p = dise.evaluate(c.services[i].vault.record(row.key_id).share, req)
        for secret in (p.point, p.proof.to_bytes(dise.G)):
            assert secret not in relayed and secret.hex().encode() not in relayed
    assert b'"partial"' not in relayed

    good, bad = open_partials(public, req, auth.authorization.digest(), xkey, job.partials)
    assert not bad and len(good) == 2
    ct = dise.encrypt_finish(public, ctx, good)

    # Another client key cannot open them; nor can the gateway move a reply to another slot.
    _, other = open_partials(
        public, req, auth.authorization.digest(), X25519PrivateKey.generate(), job.partials
    )
    assert sorted(other) == sorted(job.signers)
    swapped = [{**job.partials[0], "identifier": job.partials[1]["identifier"]}]
    assert open_partials(public, req, auth.authorization.digest(), xkey, swapped)[1]

    dreq = dise.decrypt_begin(public, ct)
    dauth, dxkey = governed.authorize("analyst", row.key_id, dreq)
    djob = await governed.evaluate(row.key_id, dreq, dauth)
    good, bad = open_partials(public, dreq, dauth.authorization.digest(), dxkey, djob.partials)
    assert not bad
    assert dise.decrypt_finish(public, ct, good) == plaintext
    # Every node that evaluated recorded the accepted decision with the authorization digest.
    for i in set(job.signers) | set(djob.signers):
        gov = c.services[i].governance
        assert gov is not None
        accepted = [e.payload for e in gov.audit.entries() if e.payload.get("released")]
        assert {a["digest"] for a in accepted} & {
            auth.authorization.digest().hex(),
            dauth.authorization.digest().hex(),
        }
        assert all(a["user"] == "analyst" and a["accepted"] for a in accepted)


@pytest.mark.asyncio
async def test_the_cli_names_a_bad_node_which_is_excluded_not_quarantined(
    governed: Governed,
) -> None:
    """The CLI's own loop (combine_governed) against the gateway: node 1 evaluates wrongly."""
    c = governed.cluster
    (row,) = await c.gateway.create_keys("dise")
    public = PublicKeyPackage.from_dict(row.package)
    c.services[1].vault.hooks = fault("corrupt-shares")
    key_file = governed.tmp / "analyst.key"
    write_user_key(key_file, governed.users["analyst"])
    args = argparse.Namespace(key_id=row.key_id, as_user="analyst", key_file=key_file)
    loop = asyncio.get_running_loop()
    ext = rounds_for(c.gateway)

    class Client:  # the CLI's HTTP client, answered by the in-memory gateway
        def __init__(self) -> None:
            self.bodies: list[dict[str, Any]] = []

        def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
            self.bodies.append(body)

            async def run() -> dict[str, Any]:
                job = ext.job(row.key_id, b"", "", body)
                await ext.submit([job])
                return result(c.gateway, job)

            return asyncio.run_coroutine_threadsafe(run(), loop).result(30)

    plaintext = b"attack at dawn"
    for _ in range(6):  # until node 1 is among the first signers chosen (round-robin)
        ctx, req = dise.encrypt_begin(public, "analyst", plaintext)
        client = Client()
        ct, r = await asyncio.to_thread(
            combine_governed,
            client,
            args,
            CLUSTER,
            public,
            req,
            lambda ps, ctx=ctx: dise.encrypt_finish(public, ctx, ps),
        )
        assert (
            dise.decrypt([c.services[i].vault.record(row.key_id).share for i in (2, 3)], ct)
            == plaintext
        )
        if r["bad_nodes"]:
            break
    assert r["bad_nodes"] == [1], r
    assert [b["exclude"] for b in client.bodies] == [[], [1]]
    assert 1 not in r["signers"] and r["excluded"]["1"] == "excluded by the client"
    assert all(b["authorization"] == client.bodies[0]["authorization"] for b in client.bodies)
    assert c.gateway.nodes.nodes[1].quarantined_until == 0.0  # the client's word is not proof


@pytest.mark.asyncio
async def test_an_authorization_sent_to_a_development_cluster_relays_nothing(
    cluster: Cluster,
) -> None:
    """Development nodes ignore authorizations and answer in clear: the gateway then relays no
    partial to a client expecting sealed ones, and blames no node."""
    (row,) = await cluster.gateway.create_keys("dise")
    public = PublicKeyPackage.from_dict(row.package)
    _, req = dise.encrypt_begin(public, "analyst", b"secret")
    auth = sign_authorization(
        Ed25519PrivateKey.generate(),
        cluster_id=CLUSTER,
        user="analyst",
        key_id=row.key_id,
        request=req,
        client_key=public_bytes(X25519PrivateKey.generate()),
    )
    g = Governed(cluster, {}, Path("."))
    job = await g.evaluate(row.key_id, req, auth)
    assert not job.partials and "runs without governance" in job.error, job.error
    assert all(st.quarantined_until == 0.0 for st in cluster.gateway.nodes.nodes.values())
