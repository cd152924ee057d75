"""The policy engine each node runs on its own before it reserves or signs a request.

Order of checks (all deterministic; the first failure is returned):
kill switch, journal state (replay / earlier refusal / not reserved), cluster, expiry and clock,
initiator and its signature, payload parsed by the chain's parser and compared with the intent,
deny-list, rule selection (deny rules, default deny), then for each applying allow rule in order:
destination allow-list, per-transaction limit, time windows, velocity, approval quorums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tholos.governance import _keys
from tholos.governance.approvals import describe, quorum_met, verify_approvals
from tholos.governance.decision import Accept, Decision, Refuse
from tholos.governance.errors import InvalidSignature, PayloadError
from tholos.governance.journal import SeenStore
from tholos.governance.parsers import REQUIRED_FIELDS, ParsedPayload, ParserRegistry
from tholos.governance.policy import Match, Rule, TimeWindow, VelocityLimit
from tholos.governance.requests import (
    INITIATION_TAG,
    Approval,
    Intent,
    SigningRequest,
    request_digest,
)
from tholos.governance.state import GovernanceState
from tholos.governance.velocity import JournalEntry, check_velocity


@dataclass(frozen=True)
class Reservation:
    """What a node records in its journal for a request, and the limits to check it against."""

    entry: JournalEntry
    limits: tuple[VelocityLimit, ...]


def journal_entry(state: GovernanceState, intent: Intent) -> JournalEntry:
    """The pending journal entry for an intent (wallet taken from the node's own policy)."""
    return JournalEntry(
        request_id=intent.request_id,
        key_id=intent.key_id,
        wallet=state.key_wallet.get(intent.key_id),
        chain=intent.chain,
        asset=intent.asset,
        amount=intent.amount,
        time=intent.created_at,
        expires_at=intent.expires_at,
        status="pending",
    )


def _matches(match: Match, intent: Intent, wallet: str | None) -> bool:
    return (
        (match.key_ids is None or intent.key_id in match.key_ids)
        and (match.wallets is None or (wallet is not None and wallet in match.wallets))
        and (match.chains is None or intent.chain in match.chains)
        and (match.assets is None or intent.asset in match.assets)
        and (match.destinations is None or intent.destination in match.destinations)
        and (match.min_amount is None or intent.amount >= match.min_amount)
        and (match.max_amount is None or intent.amount <= match.max_amount)
    )


def _in_window(windows: Sequence[TimeWindow], now: int) -> bool:
    moment = datetime.fromtimestamp(now, UTC)
    day, hour = moment.weekday(), moment.hour
    return any(day in w.weekdays and w.start_hour <= hour < w.end_hour for w in windows)


class Evaluator:
    """Policy evaluation for one node. Holds the node's payload parsers; state is passed in."""

    def __init__(self, parsers: ParserRegistry) -> None:
        self._parsers = parsers

    def _admit(
        self, state: GovernanceState, request: SigningRequest, now: int
    ) -> tuple[bytes, ParsedPayload, list[Rule]] | Refuse:
        """Checks shared by reservation and signing; returns digest, parsed payload, allow rules."""
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
        parser = self._parsers.for_chain(intent.chain)
        if parser is None:
            return Refuse("payload", f"no payload parser for chain {intent.chain}")
        try:
            parsed = parser.parse(payload)
        except PayloadError as exc:
            return Refuse("payload", str(exc))
        missing = REQUIRED_FIELDS - set(parsed.fields)
        if missing:
            return Refuse("payload", f"parser derived no {sorted(missing)}")
        for name, value in sorted(parsed.fields.items()):
            if getattr(intent, name, None) != value:
                return Refuse("payload", f"payload {name} differs from the declared intent")
        if intent.destination in policy.deny_destinations:
            return Refuse("deny-list", f"destination {intent.destination} is deny-listed")
        wallet = state.key_wallet.get(intent.key_id)
        applying = [r for r in policy.rules if _matches(r.match, intent, wallet)]
        for rule in applying:
            if rule.effect == "deny":
                return Refuse(rule.rule_id, "denied by rule")
        if not applying:
            return Refuse("default-deny", "no rule allows this request")
        return digest, parsed, applying

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
        limits = tuple(v for rule in admitted[2] for v in rule.velocity)
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
        digest, parsed, rules = admitted
        approvers = None
        candidate = journal_entry(state, intent) if any(r.velocity for r in rules) else None
        for rule in rules:
            if (
                rule.allowed_destinations is not None
                and intent.destination not in rule.allowed_destinations
            ):
                return Refuse(rule.rule_id, f"destination {intent.destination} not allowed")
            if rule.max_amount is not None and intent.amount > rule.max_amount:
                return Refuse(rule.rule_id, f"amount {intent.amount} above {rule.max_amount}")
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
                        f"approvals: needs {describe(rule.approvals)}; valid approvers: {names}",
                    )
        return Accept(rules=tuple(r.rule_id for r in rules), digest=digest, message=parsed.message)
