"""The broadcaster: sends what the outbox holds and follows it to its confirmations.

Each step claims the due rows (a lease, so concurrent broadcasters never send one row at once),
asks the chain backend for the transaction first and sends only what the chain does not know:
idempotent by hash, so a broadcaster that died between sending and recording sends nothing new.
A send that fails is retried with exponential backoff; a confirmed transaction is watched until
`settle` confirmations, and one a reorganisation took out is sent again (back to `sent`) or, if
the chain now refuses it (its inputs spent elsewhere), `flagged` for an operator. When an
Ethereum transaction confirms, the other transactions of its sender and nonce become `replaced`
(signed before it: it was their fee bump) or `dropped` (signed after)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from tholos.connectors.base import Connector, ConnectorError, TxStatus
from tholos.gateway.outbox import Outbox, OutboxEntry

log = logging.getLogger("tholos.broadcast")


@dataclass(frozen=True)
class Backoff:
    """Seconds before attempt k+1 after k failed ones: base * 2**(k-1), at most `most`."""

    base: float = 1.0
    most: float = 300.0
    poll: float = 2.0  # between status checks of a sent or confirmed transaction

    def after(self, attempts: int) -> float:
        return float(min(self.most, self.base * 2 ** max(0, attempts - 1)))


class Broadcaster:
    """Drives the outbox rows of the chains in `connectors`, keyed (chain, network) as wallets
    name them: ("bitcoin", "regtest"), ("ethereum", "<chain id>"), ("solana", "localnet")..."""

    def __init__(
        self,
        outbox: Outbox,
        connectors: Mapping[tuple[str, str], Connector],
        *,
        confirmations: int = 1,
        settle: int | None = None,
        backoff: Backoff | None = None,
        lease: float = 30.0,
    ) -> None:
        if confirmations < 1:
            raise ValueError("confirmations: at least 1")
        self.outbox = outbox
        self.connectors = dict(connectors)
        self.confirmations = confirmations
        self.settle = max(settle or 2 * confirmations, confirmations)
        self.backoff = backoff or Backoff()
        self.lease = lease

    def step(self, now: float | None = None) -> int:
        """Work every due row once; returns how many were worked."""
        t = time.time() if now is None else now
        done = 0
        for entry in self.outbox.claim(t, self.lease, chains=self.connectors):
            conn = self.connectors[(entry.chain, entry.network)]
            try:
                self._work(entry, conn, t)
            except ConnectorError as exc:  # reading the chain failed: try again later
                self._retry(entry, t, f"status: {exc}")
            done += 1
        return done

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Step until `stop` is set."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # a database hiccup must not end the loop
                log.exception("broadcast step failed")
            stop.wait(interval)

    # -- one row -----------------------------------------------------------------------------
    def _work(self, e: OutboxEntry, conn: Connector, now: float) -> None:
        status = conn.status(e.tx_hash)
        if status.state == "unknown":
            self._send(e, conn, now)
        elif status.state == "failed":
            self._flag(e, f"failed on chain: {status.detail or 'reverted'}", status)
        elif status.confirmations >= self.confirmations:  # our count, not the backend's
            self._confirmed(e, status, now)
        else:  # pending: in the mempool, or in a block short of the confirmations
            self.outbox.update(
                e.tx_hash,
                state="sent",
                confirmations=status.confirmations,
                block=status.block,
                next_attempt=now + self.backoff.poll,
            )

    def _send(self, e: OutboxEntry, conn: Connector, now: float) -> None:
        rival = self._rival(e, conn)
        if rival == "pending":  # a same-nonce transaction (a fee bump) is in the pool: wait
            self.outbox.update(e.tx_hash, next_attempt=now + self.backoff.poll)
            return
        if rival == "confirmed":
            return  # its nonce was used by another transaction: closed by _rival
        reorged = e.state == "confirmed"
        attempts = e.attempts + 1
        try:
            conn.broadcast(e.raw_bytes())
        except ConnectorError as exc:
            if self._rival(e, conn) == "confirmed":
                return
            if exc.retryable:
                self._retry(e, now, f"broadcast: {exc}")
            elif reorged:
                self._flag(e, f"reorganised out of the chain and refused again: {exc}")
            else:
                self._flag(e, f"refused by the chain: {exc}", attempts=attempts)
            return
        why = "reorganised out of the chain: sent again" if reorged else ""
        log.info("sent %s on %s (attempt %d)", e.tx_hash, e.chain, attempts)
        self.outbox.update(
            e.tx_hash,
            state="sent",
            attempts=attempts,
            confirmations=0,
            block=None,
            last_error=why,
            next_attempt=now + self.backoff.poll,
        )

    def _confirmed(self, e: OutboxEntry, status: TxStatus, now: float) -> None:
        settled = status.confirmations >= self.settle
        self.outbox.update(
            e.tx_hash,
            state="confirmed",
            confirmations=status.confirmations,
            block=status.block,
            settled=settled,
            next_attempt=now + self.backoff.poll,
        )
        for other in self.outbox.siblings(e):
            if other.state not in ("replaced", "dropped"):
                later = (other.created, other.tx_hash) > (e.created, e.tx_hash)
                self.outbox.update(
                    other.tx_hash,
                    state="dropped" if later else "replaced",
                    settled=True,
                    last_error=f"nonce {e.nonce} confirmed in {e.tx_hash}",
                )

    def _rival(self, e: OutboxEntry, conn: Connector) -> str:
        """What the chain says of the other transactions of this one's nonce: "confirmed" (and
        this row is closed: replaced or dropped), "pending" (one signed later, its fee bump, is
        in the pool: sending this one again would be refused as underpriced), or ""."""
        pending = False
        for other in self.outbox.siblings(e):
            status = conn.status(other.tx_hash)
            later = (e.created, e.tx_hash) > (other.created, other.tx_hash)
            if (
                status.confirmations > 0 and status.state != "failed"
            ) or other.state == "confirmed":
                self.outbox.update(
                    e.tx_hash,
                    state="dropped" if later else "replaced",
                    settled=True,
                    last_error=f"nonce {e.nonce} confirmed in {other.tx_hash}",
                )
                return "confirmed"
            pending = pending or (status.state == "pending" and not later)
        return "pending" if pending else ""

    def _retry(self, e: OutboxEntry, now: float, why: str) -> None:
        attempts = e.attempts + 1
        delay = self.backoff.after(attempts)
        log.warning("%s on %s: %s (retry in %.0f s)", e.tx_hash, e.chain, why, delay)
        self.outbox.update(e.tx_hash, attempts=attempts, last_error=why, next_attempt=now + delay)

    def _flag(
        self, e: OutboxEntry, why: str, status: TxStatus | None = None, attempts: int | None = None
    ) -> None:
        log.error("%s on %s flagged: %s", e.tx_hash, e.chain, why)
        self.outbox.update(
            e.tx_hash,
            state="flagged",
            settled=True,
            last_error=why,
            attempts=e.attempts if attempts is None else attempts,
            confirmations=0 if status is None else status.confirmations,
            block=None if status is None else status.block,
        )
