"""Ethereum nonces per (chain id, address), handed out by the gateway's store so that concurrent
requests, and requests across gateway restarts or several gateways on one database, never get
the same nonce and leave no gap.

The rule: a nonce belongs to one signing request (its holder). `allocate` gives a request the
lowest nonce at or above the chain's next one (`floor`, as the caller read it) that nobody holds;
a signing request whose transaction carries a nonce nobody holds takes it when it is created, and
one carrying a nonce another request holds is refused (409). A nonce goes back to the pool only
when its request ends without a signature: refused, expired, cancelled, or failed before any
signer was asked; and an allocation whose request never came is freed `GRACE` seconds after it
expired. A signed request keeps its nonce for good. The one way to sign a second transaction at a
held nonce is a replacement (`allocate_replacement`: a fee bump of a transaction still in the
outbox), itself a new signing request with its own approvals.

Uniqueness rests on a partial unique index (SQLite and PostgreSQL both have them), so the
insert of a second holder fails whatever the isolation level; allocation retries on that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tholos.gateway.database import Database, write_conflicts
from tholos.gateway.errors import GatewayError

GRACE = 120.0
"""Seconds past an allocation's expiry before its nonce is free again (clock skew, a signature
on its way)."""
ALLOCATION_SECONDS = 600.0
RETRIES = 50
ENDED_UNSIGNED = frozenset({"refused", "expired", "cancelled"})
_RACES = write_conflicts()  # a second holder; a busy database


@dataclass(frozen=True)
class Allocation:
    request_id: str
    chain_id: str
    address: str
    nonce: int
    state: str  # allocated | signed
    replaces: str | None
    expires_at: float

    def summary(self) -> dict[str, object]:
        return {
            "request_id": self.request_id,
            "chain_id": self.chain_id,
            "address": self.address,
            "nonce": self.nonce,
            "state": self.state,
            "replaces": self.replaces,
            "expires_at": self.expires_at,
        }


def _address(address: str) -> str:
    a = address.lower()
    if len(a) != 42 or not a.startswith("0x") or any(c not in "0123456789abcdef" for c in a[2:]):
        raise GatewayError(422, "bad_request", f"address: not an Ethereum address: {address!r}")
    return a


def _chain_id(chain_id: str | int) -> str:
    text = str(chain_id)
    if not text.isdigit() or int(text) < 1:
        raise GatewayError(422, "bad_request", f"chain_id: a positive integer, not {chain_id!r}")
    return str(int(text))


class NonceBook:
    """The `eth_nonces` table on a gateway store connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, request_id: str) -> Allocation | None:
        row = self.db.execute(
            "SELECT request_id, chain_id, address, nonce, state, replaces, expires_at "
            "FROM eth_nonces WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return None if row is None else Allocation(*row)

    def held(self, chain_id: str | int, address: str) -> list[Allocation]:
        """Every allocation of the address, lowest nonce first."""
        rows = self.db.execute(
            "SELECT request_id, chain_id, address, nonce, state, replaces, expires_at "
            "FROM eth_nonces WHERE chain_id = ? AND address = ? ORDER BY nonce, created",
            (_chain_id(chain_id), _address(address)),
        ).fetchall()
        return [Allocation(*r) for r in rows]

    def allocate(
        self,
        chain_id: str | int,
        address: str,
        request_id: str,
        *,
        floor: int = 0,
        seconds: float = ALLOCATION_SECONDS,
        now: float | None = None,
    ) -> Allocation:
        """The request's nonce: the one it holds already, or the lowest free one >= `floor`."""
        cid, addr = _chain_id(chain_id), _address(address)
        if not request_id or len(request_id) > 128:
            raise GatewayError(422, "bad_request", "request_id: 1 to 128 characters")
        if not (0 <= floor < 2**64 - 1) or not (0 < seconds <= 86_400):
            raise GatewayError(422, "bad_request", "floor in [0, 2**64-1), seconds in (0, 86400]")
        for _ in range(RETRIES):
            t = time.time() if now is None else now
            mine = self.get(request_id)
            if mine is not None:
                return self._same(mine, cid, addr)
            try:
                with self.db:
                    self._free_stale(cid, addr, t)
                    taken = {
                        int(r[0])
                        for r in self.db.execute(
                            "SELECT nonce FROM eth_nonces WHERE chain_id = ? AND address = ? "
                            "AND replaces IS NULL AND nonce >= ?",
                            (cid, addr, floor),
                        )
                    }
                    nonce = floor
                    while nonce in taken:
                        nonce += 1
                    self._insert(request_id, cid, addr, nonce, None, t + seconds, t)
                return Allocation(request_id, cid, addr, nonce, "allocated", None, t + seconds)
            except _RACES:
                time.sleep(0.001)  # another allocation won this nonce or held the write lock
        raise GatewayError(503, "unavailable", "nonce allocation kept colliding: try again")

    def allocate_replacement(
        self,
        request_id: str,
        chain_id: str | int,
        address: str,
        nonce: int,
        replaces: str,
        *,
        seconds: float = ALLOCATION_SECONDS,
        now: float | None = None,
    ) -> Allocation:
        """Give `request_id` the nonce of the stuck transaction `replaces` (checked against the
        outbox by the caller): its fee bump, to be approved like any request."""
        cid, addr = _chain_id(chain_id), _address(address)
        mine = self.get(request_id)
        if mine is not None:
            if mine.replaces != replaces:
                raise GatewayError(409, "conflict", f"request {request_id} holds another nonce")
            return self._same(mine, cid, addr)
        t = time.time() if now is None else now
        with self.db:
            self._insert(request_id, cid, addr, nonce, replaces, t + seconds, t)
        return Allocation(request_id, cid, addr, nonce, "allocated", replaces, t + seconds)

    def claim(
        self, chain_id: str | int, address: str, nonce: int, request_id: str, expires_at: float
    ) -> Allocation:
        """A new signing request's transaction uses `nonce`: it must be the one allocated to this
        request, or free (then the request takes it). 409 naming the holder otherwise."""
        cid, addr = _chain_id(chain_id), _address(address)
        for _ in range(RETRIES):
            mine = self.get(request_id)
            if mine is not None:
                self._same(mine, cid, addr)
                if mine.nonce != nonce:
                    raise GatewayError(
                        409,
                        "nonce_mismatch",
                        f"nonce: the transaction has {nonce}, request {request_id} was "
                        f"allocated {mine.nonce}",
                    )
                with self.db:
                    self.db.execute(
                        "UPDATE eth_nonces SET expires_at = ? WHERE request_id = ?",
                        (max(expires_at, mine.expires_at), request_id),
                    )
                return mine
            t = time.time()
            try:
                with self.db:
                    self._free_stale(cid, addr, t)
                    holder = self.db.execute(
                        "SELECT request_id, state FROM eth_nonces WHERE chain_id = ? AND "
                        "address = ? AND nonce = ? AND replaces IS NULL",
                        (cid, addr, nonce),
                    ).fetchone()
                    if holder is not None:
                        raise GatewayError(
                            409,
                            "nonce_in_use",
                            f"nonce: {nonce} of {addr} is held by request {holder[0]} "
                            f"({holder[1]}); a fee bump allocates it with `replaces`",
                        )
                    self._insert(request_id, cid, addr, nonce, None, expires_at, t)
                return Allocation(request_id, cid, addr, nonce, "allocated", None, expires_at)
            except _RACES:
                time.sleep(0.001)
        raise GatewayError(503, "unavailable", "nonce claim kept colliding: try again")

    @staticmethod
    def request_ended(db: Database, request_id: str, status: str, asked: bool) -> None:
        """Inside the transaction that saves a request: a signed request keeps its nonce for
        good; one that ended without a signature gives it back (`asked`: a signer round ran, so
        a `failed` request may have had shares released and keeps it)."""
        if status == "signed":
            db.execute("UPDATE eth_nonces SET state = 'signed' WHERE request_id = ?", (request_id,))
        elif status in ENDED_UNSIGNED or (status == "failed" and not asked):
            db.execute(
                "DELETE FROM eth_nonces WHERE request_id = ? AND state = 'allocated'",
                (request_id,),
            )

    # -- inside -------------------------------------------------------------------------------
    def _same(self, mine: Allocation, cid: str, addr: str) -> Allocation:
        if (mine.chain_id, mine.address) != (cid, addr):
            raise GatewayError(
                409,
                "conflict",
                f"request {mine.request_id} holds nonce {mine.nonce} of {mine.address} on chain "
                f"{mine.chain_id}",
            )
        return mine

    def _free_stale(self, cid: str, addr: str, now: float) -> None:
        """Allocations whose request never came (or never got signed) past expiry + GRACE."""
        self.db.execute(
            "DELETE FROM eth_nonces WHERE chain_id = ? AND address = ? AND state = 'allocated' "
            "AND expires_at < ?",
            (cid, addr, now - GRACE),
        )

    def _insert(
        self,
        request_id: str,
        cid: str,
        addr: str,
        nonce: int,
        replaces: str | None,
        expires_at: float,
        now: float,
    ) -> None:
        self.db.execute(
            "INSERT INTO eth_nonces (request_id, chain_id, address, nonce, state, replaces, "
            "expires_at, created) VALUES (?,?,?,?,?,?,?,?)",
            (request_id, cid, addr, nonce, "allocated", replaces, expires_at, now),
        )
