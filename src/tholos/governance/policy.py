"""Policy as data: ordered rules with a match and constraints. The engine (engine.py) is code.

Semantics ("all matching rules must pass", default deny):
1. a destination on the policy's `deny_destinations` list is refused (rule id "deny-list");
2. every rule whose `match` covers the request applies; if any applying rule has effect "deny",
   the request is refused by that rule;
3. if no applying rule has effect "allow", the request is refused ("default-deny");
4. every applying "allow" rule must pass all its constraints (allow-list, per-transaction limit,
   time windows, velocity limits, approval quorums); the first failure, in rule order, is reported.
Adding a rule can therefore never weaken an existing one (no shadowing as with first-match).

A chain transaction is judged item by item (every transfer, authorisation and contract call the
node derived from it, see transactions.py): each item must be allowed as above. A rule covers only
plain transfers unless its `match.actions` names others (`approve`, `permit`, `transfer_from`,
`contract_creation`, `contract_call`, `proof_of_control`: a proof-of-reserves signature, whose
destination is the address proven), and a contract call passes only a rule whose
`allowed_calls` lists its contract (any selector) or `contract:0xselector`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from tholos.governance._model import NAMED_ONLY, Hex32, Model, Name, NameSet, StrSet
from tholos.governance.measurements import AllowedMeasurements

Amount = Annotated[int, Field(ge=0)]
"""Integer base units (satoshi, wei, ...)."""


def _weekdays(values: tuple[int, ...]) -> tuple[int, ...]:
    if not values or len(set(values)) != len(values) or any(not 0 <= d <= 6 for d in values):
        raise ValueError("weekdays: distinct integers 0 (Monday) .. 6 (Sunday), at least one")
    return tuple(sorted(values))


class TimeWindow(Model):
    """Allowed UTC weekdays (0 = Monday) and hours [start_hour, end_hour)."""

    weekdays: Annotated[tuple[int, ...], AfterValidator(_weekdays)]
    start_hour: Annotated[int, Field(ge=0, le=23)] = 0
    end_hour: Annotated[int, Field(ge=1, le=24)] = 24

    @model_validator(mode="after")
    def _check(self) -> TimeWindow:
        if self.start_hour >= self.end_hour:
            raise ValueError("start_hour must be before end_hour")
        return self


class VelocityLimit(Model):
    """Amount and/or count of requests allowed per rolling window, per key or per wallet.

    Entries are counted for the same (chain, asset); pending entries count as spent.
    """

    limit_id: Name
    scope: Literal["key", "wallet"]
    window_seconds: Annotated[int, Field(ge=1, le=366 * 86400)]
    max_amount: Amount | None = None
    max_count: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _check(self) -> VelocityLimit:
        if self.max_amount is None and self.max_count is None:
            raise ValueError("a velocity limit needs max_amount or max_count")
        return self


class ApprovalRequirement(Model):
    """`count` distinct approvers (role approver) who belong to `group`."""

    group: Name
    count: Annotated[int, Field(ge=1, le=64)]


class Match(Model):
    """Which requests a rule applies to; None means any. Amount bounds are inclusive."""

    key_ids: NameSet | None = None
    wallets: NameSet | None = None
    chains: StrSet | None = None
    assets: StrSet | None = None
    destinations: StrSet | None = None
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    OMIT_WHEN_NONE = frozenset({"actions"})
    actions: StrSet | None = None
    """Item actions the rule covers; None covers plain transfers only (see module docstring)."""


class Rule(Model):
    """One policy rule. Constraints left empty do not constrain."""

    rule_id: Name
    description: str = ""
    effect: Literal["allow", "deny"] = "allow"
    match: Match = Match()
    allowed_destinations: StrSet | None = None
    max_amount: Amount | None = None
    time_windows: tuple[TimeWindow, ...] = ()
    velocity: tuple[VelocityLimit, ...] = ()
    approvals: tuple[ApprovalRequirement, ...] = ()
    OMIT_WHEN_NONE = frozenset({"max_fee", "allowed_calls", "max_risk_score"})
    max_fee: Amount | None = None
    """Fee cap for chain transactions (native base units: the most the transaction can pay)."""
    allowed_calls: StrSet | None = None
    """Contract calls this rule allows: "contract" (any selector) or "contract:0xselector"."""
    max_risk_score: Annotated[int, Field(ge=0, le=100)] | None = None
    """Every destination needs a screening attestation scoring it at most this (screening.py)."""


class Policy(Model):
    """The whole policy of a cluster, carried in every governance document."""

    OMIT_WHEN_NONE = frozenset({"screening_services", "allowed_measurements"})

    wallets: Mapping[Name, NameSet] = Field(default_factory=dict, json_schema_extra=NAMED_ONLY)
    deny_destinations: StrSet = ()
    rules: tuple[Rule, ...] = ()
    kill_switch_roles: NameSet = ("admin",)
    max_request_lifetime: Annotated[int, Field(ge=1)] = 7 * 86400
    max_clock_skew: Annotated[int, Field(ge=0)] = 300
    screening_services: (
        Annotated[Mapping[Name, Hex32], Field(json_schema_extra=NAMED_ONLY)] | None
    ) = None
    """Screening services trusted for `max_risk_score` rules: name -> Ed25519 public key (hex)."""
    allowed_measurements: AllowedMeasurements | None = None
    """Builds nodes may run (governance/measurements.py); None or empty: not enforced."""

    @model_validator(mode="after")
    def _check(self) -> Policy:
        ids = [r.rule_id for r in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate rule ids")
        limit_ids = [v.limit_id for r in self.rules for v in r.velocity]
        if len(set(limit_ids)) != len(limit_ids):
            raise ValueError("duplicate velocity limit ids")
        seen: dict[str, str] = {}
        for wallet, keys in self.wallets.items():
            for key in keys:
                if key in seen:
                    raise ValueError(f"key {key} is in wallets {seen[key]} and {wallet}")
                seen[key] = wallet
        return self

    def wallet_of(self, key_id: str) -> str | None:
        """The wallet (group of keys) a key belongs to, if any."""
        for wallet, keys in self.wallets.items():
            if key_id in keys:
                return wallet
        return None
