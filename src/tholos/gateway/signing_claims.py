"""Which gateway signs a governed request now, on a store several gateways share.

Before step 3 a gateway claims the request ids it is about to sign (one row each, with a lease);
another gateway asked to sign the same request meanwhile leaves it alone, so two live gateways
never run two signing sessions of one request on disjoint signer sets (two valid signatures).
A claim of a killed gateway lapses after its lease; then another gateway may take the request
over (the nodes still sign each request id at most once each). The holder renews its claims
every third of the lease while it signs (`renew`), so only a gateway process stalled for a whole
lease (stopped, swapped out) can be overtaken while its signing session is still open."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable

from tholos.gateway.database import Database

DEFAULT_LEASE = 30.0


class SigningClaims:
    def __init__(self, db: Database, lease: float = DEFAULT_LEASE) -> None:
        if not lease > 0:
            raise ValueError("the signing lease must be positive seconds")
        self.db = db
        self.lease = lease
        self.owner = secrets.token_hex(8)  # this gateway process

    def claim(self, request_ids: Iterable[str]) -> set[str]:
        """The ids this gateway now holds: free, lapsed or already its own."""
        now = time.time()
        won: set[str] = set()
        with self.db.transaction():
            for rid in request_ids:
                changed = self.db.execute(
                    "INSERT INTO signing_claims VALUES (?, ?, ?) ON CONFLICT (request_id) DO "
                    "UPDATE SET gateway = excluded.gateway, until = excluded.until "
                    "WHERE signing_claims.until < ? OR signing_claims.gateway = ?",
                    (rid, self.owner, now + self.lease, now, self.owner),
                ).rowcount
                if changed == 1:
                    won.add(rid)
        return won

    def release(self, request_ids: Iterable[str]) -> None:
        ids = list(request_ids)
        with self.db.transaction():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                self.db.execute(
                    f"DELETE FROM signing_claims WHERE gateway = ? AND request_id IN ({marks})",
                    [self.owner, *chunk],
                )

    def renew(self, request_ids: Iterable[str]) -> None:
        """Extend this gateway's claims on `request_ids` by a lease from now."""
        ids = list(request_ids)
        until = time.time() + self.lease
        with self.db.transaction():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                self.db.execute(
                    f"UPDATE signing_claims SET until = ? WHERE gateway = ? AND request_id IN ({marks})",
                    [until, self.owner, *chunk],
                )
