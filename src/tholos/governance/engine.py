"""The policy engine each node runs on its own before it reserves or signs a request.

Order of checks (all deterministic; the first failure is returned):
kill switch, journal state (replay / earlier refusal / not reserved), cluster, expiry and clock,
initiator and its signature, payload parsed by the chain's parser and compared with the intent,
deny-list, rule selection (deny rules, default deny), then for each applying allow rule in order:
destination allow-list, per-transaction limit, fee cap, contract calls, time windows, velocity,
approval quorums. A chain transaction is judged per item (transfer, authorisation, contract call;
transactions.py), each item against the rules that match it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from tholos.chains.base import SigningTarget
from tholos.governance import _keys
from tholos.governance.approvals import describe, describe_missing, quorum_met, verify_approvals
from tholos.governance.decision import Accept, Decision, Refuse
from tholos.governance.errors import InvalidSignature, PayloadError
from tholos.governance.journal import SeenStore
from tholos.governance.parsers import REQUIRED_FIELDS, ParsedPayload, ParserRegistry
from tholos.governance.policy import Match, Policy, Rule, TimeWindow, VelocityLimit
from tholos.governance.requests import (
    INITIATION_TAG,
    Approval,
    Intent,
    SigningRequest,
    request_digest,
)
from tholos.governance.screening import ScreeningAttestation, check_screening
from tholos.governance.state import GovernanceState
from tholos.governance.transactions import (
    PolicyItem,
    WalletResolver,
    normalise,
    normalised_set,
    parse_and_compare,
    policy_items,
    spent,
)
from tholos.governance.velocity import JournalEntry, check_velocity


@dataclass(frozen=True)
class Reservation:
    """What a node records in its journal for a request, and the limits to check it against."""

    entry: JournalEntry
    limits: tuple[VelocityLimit, ...]


def journal_entry(state: GovernanceState, intent: Intent) -> JournalEntry:
    """The pending journal entry for an intent (wallet taken from the node's own policy).

    Raises ValueError for a transaction moving several assets (a journal entry counts one)."""
    counted = spent(intent)
    if isinstance(counted, Refuse):
        raise ValueError(counted.reason)
    asset, amount = counted
    return JournalEntry(
        request_id=intent.request_id,
        key_id=intent.key_id,
        wallet=state.key_wallet.get(intent.key_id),
        chain=intent.chain,
        asset=asset,
        amount=amount,
        time=intent.created_at,
        expires_at=intent.expires_at,
        status="pending",
    )


def _matches(match: Match, intent: Intent, item: PolicyItem, wallet: str | None) -> bool:
    return (
        (match.key_ids is None or intent.key_id in match.key_ids)
        and (match.wallets is None or (wallet is not None and wallet in match.wallets))
        and (match.chains is None or intent.chain in match.chains)
        and (match.assets is None or normalise(item.asset) in normalised_set(match.assets))  # type: ignore[operator]
        and (
            match.destinations is None
            or normalise(item.destination) in normalised_set(match.destinations)  # type: ignore[operator]
        )
        and (match.min_amount is None or item.amount >= match.min_amount)
        and (match.max_amount is None or item.amount <= match.max_amount)
        and item.action in (match.actions or ("transfer",))
    )


def rules_for(policy: Policy, intent: Intent, item: PolicyItem, wallet: str | None) -> list[Rule]:
    """The allow and deny rules whose match covers this policy item, in policy order."""
    return [r for r in policy.rules if _matches(r.match, intent, item, wallet)]


def _call_allowed(rule: Rule, item: PolicyItem) -> bool:
    allowed = normalised_set(rule.allowed_calls) or frozenset()
    return normalise(item.destination) in allowed or normalise(item.call) in allowed


Applying = list[tuple[PolicyItem, list[Rule]]]
"""Each policy item with the allow rules that apply to it (in policy order)."""


def _in_window(windows: Sequence[TimeWindow], now: int) -> bool:
    moment = datetime.fromtimestamp(now, UTC)
    day, hour = moment.weekday(), moment.hour
    return any(day in w.weekdays and w.start_hour <= hour < w.end_hour for w in windows)


class Evaluator:
    """Policy evaluation for one node. Holds the node's payload parsers; state is passed in."""

    def __init__(self, parsers: ParserRegistry, wallets: WalletResolver | None = None) -> None:
        self._parsers = parsers
        self._wallets = wallets

    def _admit(
        self, state: GovernanceState, request: SigningRequest, now: int
    ) -> tuple[bytes, tuple[SigningTarget, ...], Applying] | Refuse:
        """Checks shared by reservation and signing; returns digest, signing targets, and the
        allow rules applying to each policy item."""
        policy = state.policy
        intent = request.intent
        if state.kill_switch is not None:
            ks = state.kill_switch
            return Refuse("kill-switch", f"engaged by {ks.engaged_by}: {ks.reason}")
        if request.cluster_id != state.cluster_id:
            return Refuse("cluster", f"request for cluster {request.cluster_id}")
        if now >= intent.expires_at:
            return Refuse("expired", f"expired at {intent.expires_at}, now {now}")
        if intent.created_at > now + policy.max_clock_skew:
            return Refuse("clock", "request created in the future")
        if intent.expires_at - intent.created_at > policy.max_request_lifetime:
            return Refuse("lifetime", f"lifetime above {policy.max_request_lifetime}s")
        initiator = state.registry.get(intent.initiator)
        if initiator is None or "initiator" not in initiator.roles:
            return Refuse("initiator", f"{intent.initiator} is not an initiator")
        payload = request.payload_bytes()  # decoded once: hashed into the digest, then parsed
        digest = request_digest(request.cluster_id, intent, payload)
        try:
            _keys.verify(
                state.registry.key(intent.initiator),
                request.initiator_signature,
                INITIATION_TAG + digest,
                intent.initiator,
            )
        except InvalidSignature:
            return Refuse("initiator", "initiator signature does not verify")
        targets = self._targets(intent, payload)
        if isinstance(targets, Refuse):
            return targets
        items = policy_items(intent)
        if not items:
            return Refuse("payload", "the transaction moves nothing and calls nothing")
        denied = normalised_set(policy.deny_destinations) or frozenset()
        wallet = state.key_wallet.get(intent.key_id)
        applying: Applying = []
        for item in items:
            where = "" if item.field == "intent" else f"{item.field}: "
            if normalise(item.destination) in denied:
                return Refuse("deny-list", f"{where}destination {item.destination} is deny-listed")
            rules = rules_for(policy, intent, item, wallet)
            for rule in rules:
                if rule.effect == "deny":
                    return Refuse(rule.rule_id, f"{where}denied by rule")
            if not rules:
                what = f"{where}{item.action} of {item.asset} to {item.destination}"
                return Refuse("default-deny", f"no rule allows this request ({what})")
            applying.append((item, rules))
        return digest, targets, applying

    def _targets(self, intent: Intent, payload: bytes) -> tuple[SigningTarget, ...] | Refuse:
        """What to sign, derived by this node from the payload and held against the intent."""
        if intent.transaction is not None:
            parsed_tx = parse_and_compare(intent, payload, self._wallets)
            return parsed_tx if isinstance(parsed_tx, Refuse) else parsed_tx.targets
        parser = self._parsers.for_chain(intent.chain)
        if parser is None:
            return Refuse("payload", f"no payload parser for chain {intent.chain}")
        try:
            parsed: ParsedPayload = parser.parse(payload)
        except PayloadError as exc:
            return Refuse("payload", str(exc))
        missing = REQUIRED_FIELDS - set(parsed.fields)
        if missing:
            return Refuse("payload", f"parser derived no {sorted(missing)}")
        for name, value in sorted(parsed.fields.items()):
            if getattr(intent, name, None) != value:
                return Refuse("payload", f"payload {name} differs from the declared intent")
        return (SigningTarget(parsed.message, intent.derivation_path, intent.taproot),)

    def approving_groups(
        self, state: GovernanceState, request: SigningRequest, now: int
    ) -> frozenset[str] | Refuse:
        """The groups the rules that apply to `request` ask approvals from (who may reject it),
        or why no rule can apply. An engaged kill switch does not hide them: rejecting stays
        possible while signing is stopped."""
        admitted = self._admit(replace(state, kill_switch=None), request, now)
        if isinstance(admitted, Refuse):
            return admitted
        rules = _distinct_rules(admitted[2])
        return frozenset(a.group for rule in rules for a in rule.approvals)

    def prepare_reservation(
        self, state: GovernanceState, request: SigningRequest, now: int
    ) -> Reservation | Refuse:
        """Step 1 of the velocity protocol: what to `Journal.reserve`, or why not to.

        Approvals are not needed yet (they usually arrive later); limits of all applying rules are.
        """
        if abs(request.intent.created_at - now) > state.policy.max_clock_skew:
            return Refuse("clock", "created_at too far from this node's clock to reserve")
        admitted = self._admit(state, request, now)
        if isinstance(admitted, Refuse):
            return admitted
        limits = tuple(v for rule in _distinct_rules(admitted[2]) for v in rule.velocity)
        counted = spent(request.intent)
        if isinstance(counted, Refuse):
            return counted if limits else Reservation(_uncounted(state, request.intent), ())
        return Reservation(journal_entry(state, request.intent), limits)

    def evaluate(
        self,
        state: GovernanceState,
        request: SigningRequest,
        approvals: Sequence[Approval],
        *,
        now: int,
        seen: SeenStore,
        velocity_entries: Sequence[JournalEntry],
        require_reservation: bool = True,
        screenings: Sequence[ScreeningAttestation] = (),
    ) -> Decision:
        """Decide whether this node contributes to signing `request` now.

        `seen` is the node's own journal; `velocity_entries` are the entries to count (the merge of
        a read quorum of journals, see velocity.py). With `require_reservation`, the request must be
        pending in this node's own journal (it was reserved on this node in step 1).
        On Accept the node calls `journal.mark_signed(request_id)` BEFORE releasing its share; that
        compare-and-set raises AlreadySigned if a concurrent evaluation of the same request won.
        """
        if state.kill_switch is not None:
            ks = state.kill_switch
            return Refuse("kill-switch", f"engaged by {ks.engaged_by}: {ks.reason}")
        intent = request.intent
        status = seen.status(intent.request_id)
        if status == "signed":
            return Refuse("replay", f"request {intent.request_id} was signed already")
        if status == "refused":
            return Refuse("journal", f"request {intent.request_id} was refused by this node")
        if status is None and require_reservation:
            return Refuse("not-reserved", f"request {intent.request_id} is not reserved here")
        admitted = self._admit(state, request, now)
        if isinstance(admitted, Refuse):
            return admitted
        digest, targets, applying = admitted
        rules = _distinct_rules(applying)
        counted = spent(intent)
        if isinstance(counted, Refuse) and any(r.velocity for r in rules):
            return counted
        candidate = (
            journal_entry(state, intent)
            if any(r.velocity for r in rules) and not isinstance(counted, Refuse)
            else None
        )
        fee = intent.transaction.fee if intent.transaction is not None else None
        for item, item_rules in applying:
            where = "" if item.field == "intent" else f"{item.field}: "
            for rule in item_rules:
                if rule.allowed_destinations is not None and normalise(
                    item.destination
                ) not in normalised_set(rule.allowed_destinations):  # type: ignore[operator]
                    return Refuse(
                        rule.rule_id, f"{where}destination {item.destination} not allowed"
                    )
                if rule.max_amount is not None and item.amount > rule.max_amount:
                    return Refuse(
                        rule.rule_id, f"{where}amount {item.amount} above {rule.max_amount}"
                    )
                if item.action == "contract_call" and not _call_allowed(rule, item):
                    return Refuse(rule.rule_id, f"{where}contract call {item.call} not allowed")
                if rule.max_risk_score is not None:
                    refusal = check_screening(
                        state.policy.screening_services or {},
                        screenings,
                        rule_id=rule.rule_id,
                        max_risk_score=rule.max_risk_score,
                        chain=intent.chain,
                        destination=item.destination,
                        where=where,
                        now=now,
                        max_clock_skew=state.policy.max_clock_skew,
                    )
                    if refusal is not None:
                        return refusal
        approvers = None
        for rule in rules:
            if rule.max_fee is not None and fee is not None and fee > rule.max_fee:
                return Refuse(rule.rule_id, f"fee {fee} above {rule.max_fee}")
            if rule.time_windows and not _in_window(rule.time_windows, now):
                return Refuse(rule.rule_id, "outside the allowed time windows")
            refusal = (
                None
                if candidate is None
                else check_velocity(velocity_entries, candidate, rule.velocity)
            )
            if refusal is not None:
                return Refuse(rule.rule_id, f"{refusal.rule_id}: {refusal.reason}")
            if rule.approvals:
                if approvers is None:
                    verified = verify_approvals(state.registry, intent, digest, approvals)
                    if isinstance(verified, Refuse):
                        return verified
                    approvers = verified
                if not quorum_met(rule.approvals, approvers):
                    names = ", ".join(sorted(u.user_id for u in approvers)) or "none"
                    return Refuse(
                        rule.rule_id,
                        f"approvals: needs {describe_missing(rule.approvals, approvers)} "
                        f"(rule: {describe(rule.approvals)}); valid approvers: {names}",
                    )
        return Accept(
            rules=tuple(r.rule_id for r in rules),
            digest=digest,
            message=targets[0].message,
            targets=targets,
        )


def _distinct_rules(applying: Applying) -> list[Rule]:
    """The rules applying to any item, once each, in policy order of first appearance."""
    seen: dict[str, Rule] = {}
    for _, rules in applying:
        for rule in rules:
            seen.setdefault(rule.rule_id, rule)
    return list(seen.values())


def recorded_entry(state: GovernanceState, intent: Intent) -> JournalEntry:
    """The journal entry a request is recorded under: its counted amount, or (a transaction
    moving several assets, which no velocity limit counts) the uncounted entry."""
    if isinstance(spent(intent), Refuse):
        return _uncounted(state, intent)
    return journal_entry(state, intent)


def _uncounted(state: GovernanceState, intent: Intent) -> JournalEntry:
    """The journal entry of a multi-asset transaction no velocity limit applies to (amount 0)."""
    return JournalEntry(
        request_id=intent.request_id,
        key_id=intent.key_id,
        wallet=state.key_wallet.get(intent.key_id),
        chain=intent.chain,
        asset="*",
        amount=0,
        time=intent.created_at,
        expires_at=intent.expires_at,
        status="pending",
    )
