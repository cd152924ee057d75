"""The outcome of a policy evaluation: Accept, or Refuse naming the rule and the reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tholos.chains.base import SigningTarget
from tholos.observability.metrics import POLICY_REFUSALS


@dataclass(frozen=True)
class Accept:
    """Every check passed. `rules` are the allow rules that applied; `message` is what to sign
    (a raw request's data; for a chain transaction its first target). `targets` are every
    signature the node itself derived from the payload (one for a raw request)."""

    rules: tuple[str, ...]
    digest: bytes
    message: bytes
    targets: tuple[SigningTarget, ...] = ()
    accepted: Literal[True] = True


@dataclass(frozen=True)
class Refuse:
    """Refused by `rule_id` (a policy rule id or a built-in check such as "expired")."""

    rule_id: str
    reason: str
    accepted: Literal[False] = False


Decision = Accept | Refuse


def decision_record(request_id: str, digest: bytes, decision: Decision) -> dict[str, object]:
    """The JSON payload a node appends to its audit chain for a decision (a refusal also counts
    in `tholos_policy_refusals_total` by rule: every decision a node makes is recorded here)."""
    record: dict[str, object] = {
        "request_id": request_id,
        "digest": digest.hex(),
        "accepted": decision.accepted,
    }
    if isinstance(decision, Refuse):
        POLICY_REFUSALS.labels(decision.rule_id).inc()
        record["rule_id"] = decision.rule_id
        record["reason"] = decision.reason
    else:
        record["rules"] = list(decision.rules)
    return record
