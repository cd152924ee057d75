"""Governed chain transactions through the real policy engine and the real Solana chain package:
the node's own parse must match the declared intent field by field, and the policy judges every
transfer, call and fee it derived."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from tests.chains.solana.threshold import ThresholdWallet
from tholos.chains.base import WalletRef
from tholos.chains.solana import SOLANA, system_transfer, unsigned
from tholos.governance import (
    Accept,
    ApprovalRequirement,
    Decision,
    Evaluator,
    GovernanceState,
    Intent,
    Match,
    ParserRegistry,
    Policy,
    Refuse,
    Rule,
    SigningRequest,
    new_request,
    public_key_hex,
)
from tholos.governance.requests import TransactionIntent
from tholos.governance.screening import ScreeningAttestation, issue
from tholos.governance.transactions import declare

from .conftest import CLUSTER, NOW, Cluster, MemorySeen

SOL = 1_000_000_000
FRIEND = Pubkey.new_unique()
STRANGER = Pubkey.new_unique()
BLOCKHASH = Hash.new_unique()
WALLET = ThresholdWallet()
ME = Pubkey.from_bytes(WALLET.public_key)


def policy(**rule: object) -> Policy:
    base: dict[str, object] = {
        "rule_id": "sol-out",
        "match": Match(chains=("solana",), assets=("SOL",)),
        "allowed_destinations": (str(FRIEND),),
        "max_amount": 2 * SOL,
        "max_fee": 100_000,
        "approvals": (ApprovalRequirement(group="treasury", count=1),),
    }
    base.update(rule)
    return Policy(rules=(Rule(**base),))  # type: ignore[arg-type]


def state_with(p: Policy) -> tuple[GovernanceState, Cluster]:
    cluster = Cluster(policy=p)
    return cluster.state(), cluster


def resolve(intent: Intent) -> WalletRef:
    if intent.key_id != "k-sol":
        raise KeyError(intent.key_id)
    assert intent.transaction is not None
    return replace(WALLET.ref, network=intent.transaction.network)


def transfer_tx(*instructions: Instruction) -> bytes:
    return unsigned(ME, list(instructions), BLOCKHASH)


def request(
    cluster: Cluster, payload: bytes, declared: TransactionIntent | None = None
) -> SigningRequest:
    if declared is None:
        declared = declare(SOLANA.parse(WALLET.ref, payload).intent, "account")
    intent = Intent(
        request_id="req-sol-0001",
        initiator="ivan",
        key_id="k-sol",
        chain="solana",
        created_at=NOW - 60,
        expires_at=NOW + 3600,
        transaction=declared,
    )
    return new_request(CLUSTER, intent, payload, cluster.keys["ivan"])


def evaluate(
    state: GovernanceState, cluster: Cluster, req: SigningRequest, *approvers: str
) -> Decision:
    evaluator = Evaluator(ParserRegistry(), wallets=resolve)
    return evaluator.evaluate(
        state,
        req,
        cluster.approvals(req, *approvers),
        now=NOW,
        seen=MemorySeen({req.intent.request_id: "pending"}),
        velocity_entries=(),
    )


def refused(decision: object, rule_id: str, text: str) -> None:
    assert isinstance(decision, Refuse), decision
    assert decision.rule_id == rule_id, decision
    assert text in decision.reason, decision


def test_accepts_what_the_node_derives_itself() -> None:
    state, cluster = state_with(policy())
    payload = transfer_tx(system_transfer(ME, FRIEND, SOL))
    decision = evaluate(state, cluster, request(cluster, payload), "tina")
    assert isinstance(decision, Accept), decision
    (target,) = decision.targets
    assert target.message == SOLANA.parse(WALLET.ref, payload).targets[0].message
    # The node's target is what the engine needs: a real threshold signature over it finalises.
    SOLANA.finalize(WALLET.ref, payload, [WALLET.sign(target.message)])


def test_declared_amount_differs_names_the_field() -> None:
    state, cluster = state_with(policy())
    payload = transfer_tx(system_transfer(ME, FRIEND, SOL))
    lying = transfer_tx(system_transfer(ME, FRIEND, SOL // 2))
    declared = declare(SOLANA.parse(WALLET.ref, lying).intent, "account")
    decision = evaluate(state, cluster, request(cluster, payload, declared), "tina")
    refused(decision, "payload", "transaction.transfers[0].amount differs")


def test_a_swapped_destination_is_refused_even_if_approved() -> None:
    """The gateway swaps the payload after approval: approvals no longer match, and even a
    request rebuilt around the new payload fails the allow-list."""
    state, cluster = state_with(policy())
    good = transfer_tx(system_transfer(ME, FRIEND, SOL))
    evil = transfer_tx(system_transfer(ME, STRANGER, SOL))
    req = request(cluster, good)
    swapped = req.model_copy(update={"payload": evil.hex()})
    refused(evaluate(state, cluster, swapped, "tina"), "initiator", "does not verify")
    refused(evaluate(state, cluster, request(cluster, evil), "tina"), "sol-out", "not allowed")


def test_an_extra_transfer_is_seen_and_judged() -> None:
    state, cluster = state_with(policy())
    payload = transfer_tx(system_transfer(ME, FRIEND, SOL), system_transfer(ME, STRANGER, 1))
    decision = evaluate(state, cluster, request(cluster, payload), "tina")
    refused(decision, "sol-out", "transaction.transfers[1]: destination")
    two = transfer_tx(system_transfer(ME, FRIEND, SOL))
    declared = declare(SOLANA.parse(WALLET.ref, two).intent, "account")
    refused(
        evaluate(state, cluster, request(cluster, payload, declared), "tina"),
        "payload",
        "transaction.transfers (the transaction has 2, the intent 1)",
    )


def test_per_transfer_limit_and_fee_cap() -> None:
    state, cluster = state_with(policy())
    big = transfer_tx(system_transfer(ME, FRIEND, 3 * SOL))
    refused(evaluate(state, cluster, request(cluster, big), "tina"), "sol-out", "above")
    state, cluster = state_with(policy(max_fee=4_999))
    small = transfer_tx(system_transfer(ME, FRIEND, 1))
    refused(evaluate(state, cluster, request(cluster, small), "tina"), "sol-out", "fee")


def test_unknown_program_needs_an_explicit_allow() -> None:
    program = Pubkey.new_unique()
    call = Instruction(program, b"\x01\x02", [AccountMeta(ME, True, True)])
    payload = transfer_tx(system_transfer(ME, FRIEND, 1), call)
    state, cluster = state_with(policy())
    refused(
        evaluate(state, cluster, request(cluster, payload), "tina"),
        "default-deny",
        "transaction.calls[0]",
    )
    rules = (
        Rule(rule_id="sol-out", match=Match(chains=("solana",)), max_fee=100_000),
        Rule(
            rule_id="program",
            match=Match(chains=("solana",), actions=("contract_call",)),
            allowed_calls=(str(program),),
        ),
    )
    state, cluster = state_with(Policy(rules=rules))
    assert isinstance(evaluate(state, cluster, request(cluster, payload)), Accept)
    other = Rule(
        rule_id="program",
        match=Match(chains=("solana",), actions=("contract_call",)),
        allowed_calls=(str(Pubkey.new_unique()),),
    )
    state, cluster = state_with(Policy(rules=(rules[0], other)))
    refused(evaluate(state, cluster, request(cluster, payload)), "program", "not allowed")


def test_approvals_and_deny_list_still_apply() -> None:
    state, cluster = state_with(policy())
    payload = transfer_tx(system_transfer(ME, FRIEND, 1))
    refused(evaluate(state, cluster, request(cluster, payload)), "sol-out", "approvals")
    state, cluster = state_with(Policy(rules=policy().rules, deny_destinations=(str(FRIEND),)))
    refused(
        evaluate(state, cluster, request(cluster, payload), "tina"), "deny-list", "transfers[0]"
    )


@pytest.mark.parametrize(
    ("resolver", "text"),
    [(None, "no wallet resolver"), ("other-key", "is not held here")],
)
def test_a_node_that_cannot_resolve_the_wallet_refuses(resolver: object, text: str) -> None:
    state, cluster = state_with(policy())
    req = request(cluster, transfer_tx(system_transfer(ME, FRIEND, 1)))
    if resolver == "other-key":
        req = new_request(
            CLUSTER,
            req.intent.model_copy(update={"key_id": "k-other"}),
            req.payload_bytes(),
            cluster.keys["ivan"],
        )
        wallets = resolve
    else:
        wallets = None
    decision = Evaluator(ParserRegistry(), wallets=wallets).evaluate(
        state,
        req,
        cluster.approvals(req, "tina"),
        now=NOW,
        seen=MemorySeen({req.intent.request_id: "pending"}),
        velocity_entries=(),
    )
    refused(decision, "payload", text)


def test_garbage_payload_is_refused_by_the_parser() -> None:
    state, cluster = state_with(policy())
    declared = declare(
        SOLANA.parse(WALLET.ref, transfer_tx(system_transfer(ME, FRIEND, 1))).intent, "account"
    )
    decision = evaluate(state, cluster, request(cluster, b"\x00garbage", declared), "tina")
    refused(decision, "payload", "refused by the node's parser")


# -- counterparty screening -------------------------------------------------------------------

SCREENER = Ed25519PrivateKey.generate()
IMPOSTOR = Ed25519PrivateKey.generate()


def screened_policy(max_score: int = 30) -> Policy:
    return Policy(
        rules=policy(max_risk_score=max_score).rules,
        screening_services={"kyt": public_key_hex(SCREENER)},
    )


def attestation(
    score: int, *, key: Ed25519PrivateKey = SCREENER, issued: int = NOW - 10, **kw: object
) -> ScreeningAttestation:
    fields: dict[str, object] = {"chain": "solana", "address": str(FRIEND), "risk_score": score}
    fields.update(kw)
    return issue("kyt", key, issued_at=issued, lifetime=600, **fields)  # type: ignore[arg-type]


def screened(state: GovernanceState, cluster: Cluster, *atts: ScreeningAttestation) -> Decision:
    req = request(cluster, transfer_tx(system_transfer(ME, FRIEND, 1)))
    return Evaluator(ParserRegistry(), wallets=resolve).evaluate(
        state,
        req,
        cluster.approvals(req, "tina"),
        now=NOW,
        seen=MemorySeen({req.intent.request_id: "pending"}),
        velocity_entries=(),
        screenings=atts,
    )


def test_screening_accepts_a_valid_low_score() -> None:
    state, cluster = state_with(screened_policy())
    assert isinstance(screened(state, cluster, attestation(10)), Accept)
    # the highest of several valid scores counts
    refused(screened(state, cluster, attestation(10), attestation(31)), "sol-out", "risk score 31")


@pytest.mark.parametrize(
    ("atts", "text"),
    [
        ((), "no valid screening attestation"),
        ((lambda: attestation(50)), "risk score 50"),
        ((lambda: attestation(1, key=IMPOSTOR)), "no valid screening"),  # forged
        ((lambda: attestation(1, issued=NOW - 700)), "no valid screening"),  # expired
        ((lambda: attestation(1, issued=NOW + 900)), "no valid screening"),  # from the future
        ((lambda: attestation(1, address=str(STRANGER))), "no valid screening"),  # other address
        ((lambda: attestation(1, chain="ethereum")), "no valid screening"),  # other chain
    ],
)
def test_screening_fails_closed(atts: object, text: str) -> None:
    state, cluster = state_with(screened_policy())
    given = () if atts == () else (atts(),)  # type: ignore[operator]
    refused(screened(state, cluster, *given), "sol-out", text)


def test_an_unregistered_service_counts_for_nothing() -> None:
    state, cluster = state_with(Policy(rules=policy(max_risk_score=30).rules))
    refused(screened(state, cluster, attestation(1)), "sol-out", "no valid screening")
    assert "screening_services" not in Policy().model_dump(mode="json")
