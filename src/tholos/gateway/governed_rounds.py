"""Step 3 of governed signing, for a key of any scheme (`GovernedSigning` routes here).

After the reservation steps (gateway/requests.py), a request becomes one `SchemeJob` per
signature it needs, carrying the request's governance blob, and goes to the same `RoundSigning`
as a plain request (gateway/scheme_protocols.py: FROST with pre-shared nonces, ECDSA presignature
pools and 2t-1 signers, BLS; share checks naming culprits); every signer checks the blob itself
(node/governed_signing.py). A raw request signs the payload's `data` (ECDSA: a 32-byte digest,
any other length is refused when the request is created) with the intent's path and taproot
tweak; a chain transaction (bitcoin, ethereum, solana) is one job per target, sign item ids
"<request id>#<k>", submitted together, finalised with the chain package (chain_targets.py).

Signers are chosen among the nodes holding the reservation. A node asked once is not asked again
for that request (its journal refuses a replay; a FROST retry is a fresh session with fresh
nonces) and a policy refusal is final. Released signatures: FROST 64 bytes, ECDSA r||s||v
(65 bytes, low-S, v the recovery id 0/1), BLS 96 bytes.
"""

from __future__ import annotations

import weakref
from typing import Any

from tholos.audit import KIND_SIGNATURE_RELEASED, AuditLog
from tholos.chains.base import ChainError
from tholos.gateway import chain_targets
from tholos.gateway.rounds import SchemeJob
from tholos.gateway.scheme_protocols import RoundSigning, rounds_for
from tholos.gateway.service import Gateway, GatewayError
from tholos.gateway.store import KeyRow
from tholos.gateway.tracked import (
    Tracked,
    governance_blob,
    refusal,
    request_merkle_root,
    request_message,
)
from tholos.governance import SigningRequest
from tholos.schemes import SCHEMES

_BUSY: weakref.WeakKeyDictionary[Gateway, set[str]] = weakref.WeakKeyDictionary()
"""Request ids being signed, per gateway: a concurrent call leaves them to the first one."""


def check_request(gw: Gateway, row: KeyRow, request: SigningRequest) -> None:
    """Refuse (400, before anything is stored or reserved) a request this key cannot sign."""
    _jobs(gw, row, request)


def _jobs(gw: Gateway, row: KeyRow, request: SigningRequest) -> list[SchemeJob]:
    """One job per signature: a raw request's one, or every target of a chain transaction."""
    if request.intent.transaction is not None:
        return _transaction_jobs(gw, row, request)
    return [_job(gw, row, request)]


def _job(gw: Gateway, row: KeyRow, request: SigningRequest) -> SchemeJob:
    message = request_message(request)
    if row.scheme == "ecdsa" and len(message) != 32:
        raise GatewayError(
            400,
            "bad_length",
            f"an ecdsa request signs a 32-byte digest: the payload's data is {len(message)} bytes",
        )
    intent = request.intent
    path = "" if intent.derivation_path == "m" else intent.derivation_path
    root = request_merkle_root(request)
    job = rounds_for(gw).job(row.key_id, message, path, None, intent.taproot, root)
    job.request_id = request.intent.request_id
    return job


def _transaction_jobs(gw: Gateway, row: KeyRow, request: SigningRequest) -> list[SchemeJob]:
    """The jobs of a chain transaction, one per target, with sign item ids "<request id>#<k>"
    as every node expects; submitted together, they go to the same signers in one batch."""
    _, parsed = chain_targets.parse(row, request)
    jobs = []
    for k, target in enumerate(parsed.targets):
        path = "" if target.path == "m" else target.path
        job = rounds_for(gw).job(row.key_id, target.message, path, None, target.taproot)
        job.request_id = f"{request.intent.request_id}#{k}"
        jobs.append(job)
    return jobs


async def sign(
    gw: Gateway,
    audit: AuditLog | None,
    row: KeyRow,
    nodes: list[int],
    tracked: list[Tracked],
    snapshots: list[list[dict[str, Any]]],
) -> None:
    """Step 3 for the requests of one key, on signers among `nodes` (those
    holding the reservation); updates each request's status, signature and refusals."""
    ext = rounds_for(gw)
    busy = _BUSY.setdefault(gw, set())
    work: list[tuple[Tracked, list[SchemeJob]]] = []
    for t, snaps in zip(tracked, snapshots, strict=True):
        if t.request_id in busy:
            continue
        try:
            jobs = _jobs(gw, row, t.request)
        except GatewayError as exc:
            t.status, t.error = "failed", str(exc)
            continue
        blob = governance_blob(t, snaps)
        for job in jobs:
            job.governance = blob
            job.avoid = tuple(i for i in job.public.identifiers if i not in nodes)
        work.append((t, jobs))
    rids = {t.request_id for t, _ in work}
    busy |= rids
    try:
        await ext.submit([j for _, js in work for j in js])
    finally:
        busy -= rids
    released: list[tuple[str, dict[str, Any]]] = []
    for t, js in work:
        if _outcome(ext, t, js, nodes):
            released.append(
                (KIND_SIGNATURE_RELEASED, {"request_id": t.request_id, "digest": t.digest})
            )
    if audit is not None and released:
        audit.append_many(released)


def _signature(j: SchemeJob) -> bytes:
    assert j.signature is not None
    sig = j.signature
    if j.kind == "ecdsa":
        assert j.recovery_id is not None  # set with every ECDSA signature
        sig += bytes([j.recovery_id])
    return sig


def _outcome(ext: RoundSigning, t: Tracked, jobs: list[SchemeJob], nodes: list[int]) -> bool:
    """Copy the jobs' outcome into the request; True if its signatures were released."""
    for j in jobs:
        for s, why in j.excluded.items():
            # A node's latest policy verdict replaces its earlier one (a request approved since
            # is refused for what it still lacks); a mere failure keeps the verdict it follows.
            fresh = refusal(_unavailable(why))
            if (
                s not in t.refusals
                or t.refusals[s]["rule_id"] == "node"
                or fresh["rule_id"] != "node"
            ):
                t.refusals[s] = fresh
    failed = [j for j in jobs if j.signature is None]
    j = failed[0] if failed else jobs[0]
    t.signers = j.signers
    if not failed:
        sig = _signature(j)
        if t.request.intent.transaction is not None:
            try:
                row = ext.gw.key(t.request.intent.key_id)
                wallet = chain_targets.wallet_of(row, t.request)
                sigs = [_signature(x) for x in jobs]
                t.transaction = chain_targets.finalize(wallet, t.request, sigs)
            except (GatewayError, ChainError) as exc:
                t.status, t.error = "failed", f"finalize: {exc}"
                return False
            t.status, t.error = "signed", ""
            return True
        t.signature, t.status, t.error = sig.hex(), "signed", ""
        t.public_key = ext.public_key_for(j).hex()
        return True
    if any(x.status == 403 for x in failed):  # refused by policy on a signer: final
        policy = {
            s: t.refusals[s]
            for x in failed
            for s, e in x.excluded.items()
            if e.startswith("PolicyRefused[")
        }
        t.status = "refused-by-policy"
        t.error = "; ".join(
            f"node {s}: [{v['rule_id']}] {v['reason']}" for s, v in sorted(policy.items())
        )
    elif j.status in (400, 502):  # every signer refused the request itself, or combining failed
        t.status, t.error = "failed", j.error
    else:  # too few usable signers holding the reservation (and not asked yet) left
        need = SCHEMES[j.row.scheme].signers_needed(j.public.threshold)
        why = "; ".join(f"node {s}: {v['reason']}" for s, v in sorted(t.refusals.items()))
        t.status = "reserved"
        t.error = (
            f"fewer than {need} usable reserved signers left: {j.error} (signers among nodes "
            f"{nodes}, each asked once per request)" + (f"; {why}" if why else "")
        )
    return False


def _unavailable(why: str) -> str:
    """A request's refusal for a node that did not answer says so (`unavailable: timed out`)."""
    return f"unavailable: {why}" if why in ("unreachable", "timed out", "error") else why
