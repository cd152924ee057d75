"""A small cluster's governance for tests: 3 admins (quorum 2), an initiator, four approvers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.governance import (
    Approval,
    ApprovalRequirement,
    Evaluator,
    GovernanceDocument,
    GovernanceState,
    Intent,
    JournalEntry,
    Match,
    ParserRegistry,
    Policy,
    RawParser,
    Rule,
    SignedDocument,
    SigningRequest,
    TimeWindow,
    User,
    VelocityLimit,
    approve,
    load_genesis,
    new_request,
    public_key_hex,
    raw_payload,
    sign_document,
)
from tholos.governance.velocity import EntryStatus

CLUSTER = "test-cluster"
NOW = 1795003200  # Wednesday 2026-11-18 12:00:00 UTC
SATURDAY = NOW + 3 * 86400

# user id -> (roles, groups)
PEOPLE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "alice": (("admin",), ()),
    "bob": (("admin",), ()),
    "carol": (("admin",), ()),
    "ivan": (("initiator",), ()),
    "tina": (("approver",), ("treasury",)),
    "tom": (("approver",), ("treasury",)),
    "tess": (("approver",), ("treasury",)),
    "rita": (("approver",), ("risk",)),
    "dual": (("approver",), ("risk", "treasury")),
    "ian2": (("approver", "initiator"), ("treasury",)),
    "audrey": (("auditor",), ()),
}


def default_policy() -> Policy:
    return Policy(
        wallets={"hot": ("k1", "k2")},
        deny_destinations=("addr-evil",),
        kill_switch_roles=("admin", "risk"),
        rules=(
            Rule(
                rule_id="blocked-dest",
                effect="deny",
                match=Match(destinations=("addr-blocked",)),
            ),
            Rule(
                rule_id="hours",
                description="business hours only",
                time_windows=(TimeWindow(weekdays=(0, 1, 2, 3, 4), start_hour=8, end_hour=18),),
            ),
            Rule(
                rule_id="small",
                match=Match(max_amount=10_000),
                allowed_destinations=("addr-a", "addr-b", "addr-blocked", "addr-evil"),
                approvals=(ApprovalRequirement(group="treasury", count=1),),
                velocity=(
                    VelocityLimit(
                        limit_id="key-day",
                        scope="key",
                        window_seconds=86400,
                        max_amount=25_000,
                        max_count=5,
                    ),
                ),
            ),
            Rule(
                rule_id="large",
                match=Match(min_amount=10_001),
                max_amount=1_000_000,
                approvals=(
                    ApprovalRequirement(group="treasury", count=2),
                    ApprovalRequirement(group="risk", count=1),
                ),
                velocity=(
                    VelocityLimit(
                        limit_id="wallet-day",
                        scope="wallet",
                        window_seconds=86400,
                        max_amount=2_000_000,
                    ),
                ),
            ),
        ),
    )


@dataclass
class Cluster:
    """Keys of every person and the documents signed so far."""

    keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)
    policy: Policy = field(default_factory=default_policy)

    def __post_init__(self) -> None:
        for name in PEOPLE:
            self.keys[name] = Ed25519PrivateKey.generate()

    def users(self, extra: Sequence[User] = ()) -> tuple[User, ...]:
        users = [
            User(
                user_id=name,
                public_key=public_key_hex(self.keys[name]),
                roles=roles,
                groups=groups,
            )
            for name, (roles, groups) in PEOPLE.items()
        ]
        return (*users, *extra)

    def genesis(self, signers: Sequence[str] = ("alice", "bob")) -> SignedDocument:
        doc = GovernanceDocument(
            kind="genesis",
            cluster_id=CLUSTER,
            version=0,
            prev_hash=None,
            issued_at=NOW - 86400,
            users=self.users(),
            admin_quorum=2,
            policy=self.policy,
        )
        return self.sign(doc, signers)

    def sign(self, doc: GovernanceDocument, signers: Sequence[str]) -> SignedDocument:
        return SignedDocument(
            document=doc,
            signatures=tuple(sign_document(doc, s, self.keys[s]) for s in signers),
        )

    def next_doc(self, state: GovernanceState, **changes: Any) -> GovernanceDocument:
        """The successor of the state's document with `changes` applied."""
        fields: dict[str, Any] = {
            "kind": "governance",
            "cluster_id": state.cluster_id,
            "version": state.version + 1,
            "prev_hash": state.hash.hex(),
            "issued_at": NOW,
            "users": state.document.users,
            "admin_quorum": state.document.admin_quorum,
            "policy": state.policy,
        }
        fields.update(changes)
        return GovernanceDocument(**fields)

    def state(self) -> GovernanceState:
        return load_genesis(self.genesis())

    def request(
        self,
        *,
        request_id: str = "req-000001",
        amount: int = 5_000,
        destination: str = "addr-a",
        key_id: str = "k1",
        chain: str = "btc",
        asset: str = "BTC",
        initiator: str = "ivan",
        created_at: int = NOW - 60,
        expires_at: int = NOW + 3600,
        payload_destination: str | None = None,
        payload_amount: int | None = None,
    ) -> SigningRequest:
        intent = Intent(
            request_id=request_id,
            initiator=initiator,
            key_id=key_id,
            derivation_path="m/0/7",
            chain=chain,
            asset=asset,
            destination=destination,
            amount=amount,
            memo="invoice 42",
            created_at=created_at,
            expires_at=expires_at,
        )
        payload = raw_payload(
            chain,
            asset,
            payload_destination or destination,
            amount if payload_amount is None else payload_amount,
            "invoice 42",
            b"\x01\x02tx",
        )
        return new_request(CLUSTER, intent, payload, self.keys[initiator])

    def approvals(self, request: SigningRequest, *names: str) -> list[Approval]:
        return [approve(request, name, self.keys[name]) for name in names]


class MemorySeen:
    """SeenStore over a dict, for evaluator tests."""

    def __init__(self, statuses: dict[str, EntryStatus] | None = None) -> None:
        self.statuses: dict[str, EntryStatus] = dict(statuses or {})

    def status(self, request_id: str) -> EntryStatus | None:
        return self.statuses.get(request_id)


def evaluator() -> Evaluator:
    raw = RawParser()
    return Evaluator(ParserRegistry({"btc": raw, "eth": raw}))


def entry(
    request_id: str,
    amount: int,
    *,
    key_id: str = "k1",
    wallet: str | None = "hot",
    time: int = NOW - 100,
    status: EntryStatus = "pending",
    asset: str = "BTC",
) -> JournalEntry:
    return JournalEntry(
        request_id=request_id,
        key_id=key_id,
        wallet=wallet,
        chain="btc",
        asset=asset,
        amount=amount,
        time=time,
        expires_at=time + 3600,
        status=status,
    )


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()
