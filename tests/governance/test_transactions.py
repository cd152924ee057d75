"""Transaction intents: validation, digests of plain requests unchanged, field-naming comparison,
policy items and the velocity amount of a transaction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tholos.chains.base import ContractCall, DerivedIntent, Transfer
from tholos.chains.intent_check import first_difference
from tholos.governance.decision import Refuse
from tholos.governance.policy import Match, Rule
from tholos.governance.requests import Intent, TransactionIntent, request_digest
from tholos.governance.transactions import (
    declare,
    normalise,
    policy_items,
    spent,
)

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _derived(**over: object) -> DerivedIntent:
    fields: dict[str, object] = {
        "chain": "ethereum",
        "network": "31337",
        "kind": "transaction",
        "transfers": (Transfer(f"erc20:{TOKEN}", ALICE, 5, "transfer"),),
        "fee": 21_000 * 10**9,
        "fee_asset": "ETH",
        "details": {"nonce": 3},
    }
    fields.update(over)
    return DerivedIntent(**fields)  # type: ignore[arg-type]


def _intent(tx: TransactionIntent | None = None, **over: object) -> Intent:
    fields: dict[str, object] = {
        "request_id": "req-000001",
        "initiator": "ivan",
        "key_id": "k1",
        "chain": "ethereum",
        "created_at": 1_000,
        "expires_at": 2_000,
        "transaction": tx if tx is not None else declare(_derived(), "eoa"),
    }
    fields.update(over)
    return Intent(**fields)  # type: ignore[arg-type]


def test_declare_round_trips_a_derived_intent() -> None:
    tx = declare(_derived(), "eoa")
    assert tx.transfers[0].to == ALICE and tx.fee == 21_000 * 10**9
    assert tx.details == {"nonce": 3}
    again = declare(_derived(), "eoa")
    assert first_difference(tx.model_dump(), again.model_dump(), "transaction") is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"transfers": (Transfer(f"erc20:{TOKEN}", ALICE, 6),)}, "transaction.transfers[0].amount"),
        (
            {"transfers": (Transfer(f"erc20:{TOKEN}", TOKEN, 5),)},
            "transaction.transfers[0].to",
        ),
        (
            {"transfers": (Transfer(f"erc20:{TOKEN}", ALICE, 5, "approve"),)},
            "transaction.transfers[0].action",
        ),
        ({"fee": 1}, "transaction.fee"),
        ({"network": "1"}, "transaction.network"),
        ({"details": {"nonce": 4}}, "transaction.details.nonce"),
        ({"details": {}}, "transaction.details.nonce"),
        (
            {"transfers": (Transfer("ETH", ALICE, 1), Transfer("ETH", TOKEN, 1))},
            "transaction.transfers (the transaction has 2, the intent 1)",
        ),
        ({"calls": (ContractCall(TOKEN, "0xdeadbeef"),)}, "transaction.calls (the transaction"),
    ],
)
def test_first_difference_names_the_field(change: dict[str, object], field: str) -> None:
    declared = declare(_derived(), "eoa").model_dump()
    derived = declare(_derived(**change), "eoa").model_dump()
    found = first_difference(derived, declared, "transaction")
    assert found is not None and found.startswith(field)


def test_types_differ_is_a_difference() -> None:
    assert first_difference({"a": 1}, {"a": "1"}, "x") == "x.a"
    assert first_difference({"a": True}, {"a": 1}, "x") == "x.a"


def test_transaction_intent_refuses_plain_fields() -> None:
    with pytest.raises(ValidationError, match="no asset/destination/amount"):
        _intent(asset="ETH")
    with pytest.raises(ValidationError, match="no asset/destination/amount"):
        _intent(amount=5)
    with pytest.raises(ValidationError, match="no taproot"):
        _intent(taproot=True)
    with pytest.raises(ValidationError, match="asset and destination are required"):
        Intent(
            request_id="req-000001",
            initiator="ivan",
            key_id="k1",
            chain="btc",
            created_at=1,
            expires_at=2,
        )


def test_plain_digest_is_unchanged_by_the_new_fields() -> None:
    """A plain request's encoding carries no `transaction` key, so old digests still hold."""
    plain = Intent(
        request_id="req-000001",
        initiator="ivan",
        key_id="k1",
        chain="btc",
        asset="BTC",
        destination="addr-a",
        amount=5,
        created_at=1,
        expires_at=2,
    )
    assert "transaction" not in plain.model_dump(mode="json")
    assert "actions" not in Match().model_dump(mode="json")
    assert "max_fee" not in Rule(rule_id="r").model_dump(mode="json")
    tx = _intent()
    assert request_digest("c", plain, b"p") != request_digest("c", tx, b"p")
    assert "transaction" in tx.model_dump(mode="json")


def test_policy_items_one_per_transfer_and_call() -> None:
    tx = declare(
        _derived(
            transfers=(Transfer("ETH", ALICE, 7), Transfer(f"erc20:{TOKEN}", ALICE, 1, "approve")),
            calls=(ContractCall(TOKEN, "0x12345678", 9),),
        ),
        "eoa",
    )
    items = policy_items(_intent(tx))
    assert [(i.field, i.action) for i in items] == [
        ("transaction.transfers[0]", "transfer"),
        ("transaction.transfers[1]", "approve"),
        ("transaction.calls[0]", "contract_call"),
    ]
    assert items[2].call == f"{TOKEN}:0x12345678" and items[2].amount == 9


def test_spent_counts_one_asset() -> None:
    assert spent(_intent()) == (f"erc20:{TOKEN}", 5)
    two = declare(
        _derived(transfers=(Transfer("ETH", ALICE, 7), Transfer(f"erc20:{TOKEN}", ALICE, 1))),
        "eoa",
    )
    assert isinstance(spent(_intent(two)), Refuse)
    none = declare(_derived(transfers=(), calls=(ContractCall(TOKEN, "0x12345678"),)), "eoa")
    assert spent(_intent(none)) == ("ETH", 0)


def test_normalise_folds_evm_case_only() -> None:
    assert normalise(ALICE) == ALICE.lower()
    assert normalise(f"erc20:{TOKEN}") == f"erc20:{TOKEN.lower()}"
    assert normalise(f"{TOKEN}:0xdeadbeef") == f"{TOKEN.lower()}:0xdeadbeef"
    solana = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
    assert normalise(solana) == solana
    assert normalise("bc1pabc") == "bc1pabc"
