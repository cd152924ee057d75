"""What every scheme's signing at the gateway shares: which holders to ask, the stored record and
the API answer of a finished job (gateway/scheme_protocols.py runs the jobs)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: Refusals that mean "this node has no usable share of the key": left out, never blamed.
NO_SHARE = ("stale share", "unknown key", "broken share")


def holders_with_share(
    identifiers: Iterable[int], excluded: Mapping[int, str], waiting: Iterable[int] = ()
) -> tuple[int, ...]:
    """Holders of a key minus those without its current share: nodes that refused as stale or
    without the key (they would refuse again on a retry) and `waiting` (nodes known not to have
    committed its last refresh, see gateway/repair.py)."""
    waiting = set(waiting)
    return tuple(
        i
        for i in identifiers
        if i not in waiting and not any(w in excluded.get(i, "") for w in NO_SHARE)
    )


def job_record(job: Any, kind: str) -> tuple[str, str, str, str, dict[str, Any]]:
    """The gateway store row (`record_requests`) of a finished FROST, ECDSA, BLS or DiSE job."""
    return (
        job.request_id,
        kind,
        job.key_id,
        "done" if job.done else "failed",
        {
            "signers": job.signers,
            "excluded": {str(k): v for k, v in job.excluded.items()},
            "error": job.error,
            "signature": job.signature.hex() if job.signature else None,
        },
    )


def job_result(job: Any, public_key_for: Callable[[Any], bytes]) -> dict[str, Any]:
    """The API answer for a finished FROST, ECDSA, BLS or DiSE job (signature or error)."""
    out: dict[str, Any] = {
        "request_id": job.request_id,
        "key_id": job.key_id,
        "signers": job.signers,
        "excluded": {str(k): v for k, v in sorted(job.excluded.items())},
    }
    if job.signature is not None:
        out["signature"] = job.signature.hex()
        out["public_key"] = public_key_for(job).hex()
    else:
        out["error"] = {"code": "sign_failed", "message": job.error, "status": job.status}
    return out
