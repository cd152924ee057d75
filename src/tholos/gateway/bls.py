"""Threshold BLS at the gateway: one `bls-sign` round to t signers.

`combine_robust` checks every partial before a signature is released, in one batched pairing
check with random 128-bit coefficients that also covers the combined signature; only if it fails
is each partial checked alone, naming the culprits, who are quarantined and left out (the request
retried with other signers if fewer than t valid partials remain).
"""

from __future__ import annotations

from typing import Any

from tholos.crypto.bls import threshold as bls
from tholos.gateway.rounds import RoundScheme, SchemeJob


class BlsRounds(RoundScheme):
    """`bls-sign`: t partial signatures of the message, combined and checked here."""

    kind = "bls"
    protocol = "bls-sign"
    # A BLS item costs a node ~0.3 ms, less than the fixed cost of each RPC: while batches are
    # running, wait up to 2 ms for 6 items instead of sending batches of 2-3.
    linger = {"linger": 0.002, "min_batch": 6}  # noqa: RUF012

    def combine(self, job: SchemeJob, state: Any, got: dict[int, dict[str, Any]]) -> list[int]:
        partials = [bls.PartialSignature.from_dict(r["partial"]) for r in got.values()]
        res = bls.combine_robust(job.public, job.message, partials)
        job.signature = res.signature
        return list(res.excluded)
