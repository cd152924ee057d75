"""What a governed request means for the chains, kept in the same store transactions as the
request itself: an Ethereum transaction claims its nonce when the request is created, and when a
request is saved its signed transaction enters the outbox (in the transaction that records the
signature: a crash between signing and broadcast loses nothing, and nothing is sent twice) and
its nonce is kept (signed) or given back (ended without a signature)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tholos.chains.base import DerivedIntent
from tholos.gateway.database import Database
from tholos.gateway.errors import GatewayError
from tholos.gateway.nonces import Allocation, NonceBook
from tholos.gateway.outbox import Outbox, signed_transaction
from tholos.gateway.tracked import Tracked
from tholos.governance import SigningRequest


def nonce_of(intent: DerivedIntent) -> tuple[str, str, int] | None:
    """(chain id, sender, nonce) of an Ethereum transaction's parsed intent, else None."""
    if intent.chain != "ethereum" or intent.kind != "transaction":
        return None
    d = intent.details
    return str(d["chain_id"]), str(d["from"]), int(d["nonce"])


def claim_nonces(
    book: NonceBook, items: Sequence[tuple[SigningRequest, DerivedIntent]], each: bool = False
) -> dict[str, GatewayError]:
    """Every new Ethereum request takes its transaction's nonce (or checks the one allocated to
    it). A refusal (409: the nonce is another request's) raises after giving back the nonces
    this call took; with `each`, only that request is left out (its refusal is returned by
    request id) and the others keep theirs. Any other error gives back and raises."""
    taken: list[str] = []
    refused: dict[str, GatewayError] = {}
    try:
        for request, intent in items:
            found = nonce_of(intent)
            if found is None:
                continue
            rid = request.intent.request_id
            before: Allocation | None = book.get(rid)
            try:
                book.claim(*found, rid, float(request.intent.expires_at))
            except GatewayError as exc:
                if not each or exc.status != 409:
                    raise
                refused[rid] = exc
                continue
            if before is None:
                taken.append(rid)
    except GatewayError:
        with book.db:
            book.db.executemany(
                "DELETE FROM eth_nonces WHERE request_id = ? AND state = 'allocated'",
                [(rid,) for rid in taken],
            )
        raise
    return refused


def record(db: Database, tracked: Iterable[Tracked]) -> None:
    """Inside the transaction saving `tracked`: outbox rows for the signed transactions, nonces
    kept or given back."""
    rows = []
    for t in tracked:
        declared = t.request.intent.transaction
        if declared is None:
            continue
        if t.request.intent.chain == "ethereum" and declared.kind == "transaction":
            NonceBook.request_ended(db, t.request_id, t.status, bool(t.signers))
        if t.status == "signed" and t.transaction:
            row = signed_transaction(
                t.request_id,
                t.request.intent.chain,
                declared.network,
                t.transaction,
                dict(declared.details),
            )
            if row is not None:
                rows.append(row)
    if rows:
        Outbox.enqueue(db, rows)
