"""Chain transactions in governed requests: the node's own parse, held against the declared intent,
and the items the policy judges (one per transfer or contract call).

The initiator's client parses the unsigned transaction with the same chain package and declares
the result (`TransactionIntent`); approvers sign the digest of that intent and the payload. Each
node parses the payload again with its own copy of the chain package, from its own key material
(`WalletRef`), and refuses on the first difference, naming the field (the one rule of
`chains/intent_check.py`). Policy and velocity then see only derived fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tholos.chains.base import ChainError, DerivedIntent, ParsedTransaction, WalletRef
from tholos.chains.intent_check import first_difference
from tholos.chains.registry import chain_for
from tholos.governance.decision import Refuse
from tholos.governance.requests import Intent, TransactionIntent

WalletResolver = Callable[[Intent], WalletRef]
"""The node's view of the wallet an intent names: its own group key and chain code for `key_id`,
with the chain, network and address type the approved intent states. Raises KeyError for a key
the node does not hold."""

VALUE_ACTIONS = frozenset({"transfer", "transfer_from", "approve", "permit", "contract_creation"})


def declare(derived: DerivedIntent, address_type: str) -> TransactionIntent:
    """The declared intent a client puts in a request, from its own parse of the payload."""
    body = derived.as_dict()
    del body["chain"]
    return TransactionIntent.model_validate({**body, "address_type": address_type}, strict=False)


def parse_and_compare(
    intent: Intent, payload: bytes, resolve: WalletResolver | None
) -> ParsedTransaction | Refuse:
    """Parse `payload` as the node does and hold the result against `intent.transaction`."""
    declared = intent.transaction
    if declared is None:
        raise ValueError("not a transaction intent")
    if resolve is None:
        return Refuse("payload", "this node parses no chain transactions (no wallet resolver)")
    chain = chain_for(intent.chain)
    if chain is None:
        return Refuse("payload", f"no chain package for {intent.chain!r}")
    try:
        wallet = resolve(intent)
    except KeyError:
        return Refuse("payload", f"key {intent.key_id} is not held here")
    except ChainError as exc:
        return Refuse("payload", f"wallet: {exc}")
    try:
        parsed = chain.parse(wallet, payload)
    except ChainError as exc:
        return Refuse("payload", f"transaction refused by the node's parser: {exc}")
    if parsed.intent.chain != intent.chain:
        return Refuse("payload", "transaction.chain differs from the declared intent")
    derived = declare(parsed.intent, declared.address_type)
    field = first_difference(
        derived.model_dump(mode="python"), declared.model_dump(mode="python"), "transaction"
    )
    if field is not None:
        return Refuse("payload", f"{field} differs from the declared intent")
    if not parsed.targets:
        return Refuse("payload", "the transaction needs no signature from this wallet")
    return parsed


@dataclass(frozen=True)
class PolicyItem:
    """What one policy judgement is about: a transfer, an authorisation or a contract call."""

    field: str  # where it is in the intent, for refusals ("transaction.transfers[1]")
    asset: str
    destination: str
    amount: int
    action: str  # transfer | transfer_from | approve | permit | contract_creation | contract_call
    #              | proof_of_control (a proof-of-reserves signature over the node's own text)
    call: str = ""  # "contract" or "contract:0xselector" for contract calls


def policy_items(intent: Intent) -> list[PolicyItem]:
    """Every item the policy must allow; a plain request is one transfer."""
    tx = intent.transaction
    if tx is None:
        return [PolicyItem("intent", intent.asset, intent.destination, intent.amount, "transfer")]
    if tx.kind == "proof_of_control":  # moves nothing; allowed only by a rule naming the action
        address = str(tx.details.get("address", ""))
        return [PolicyItem("transaction", "", address, 0, "proof_of_control")]
    items = [
        PolicyItem(f"transaction.transfers[{i}]", t.asset, t.to, t.amount, t.action)
        for i, t in enumerate(tx.transfers)
    ]
    for i, c in enumerate(tx.calls):
        call = f"{c.contract}:{c.selector}" if c.selector else c.contract
        items.append(
            PolicyItem(
                f"transaction.calls[{i}]", tx.fee_asset, c.contract, c.value, "contract_call", call
            )
        )
    return items


def spent(intent: Intent) -> tuple[str, int] | Refuse:
    """(asset, amount) the request counts against velocity limits: the sum of its value items.

    A journal entry holds one asset, so a transaction moving two assets is refused where a
    velocity limit applies (split it). Change is not spent; fees are not counted."""
    tx = intent.transaction
    if tx is None:
        return intent.asset, intent.amount
    totals: dict[str, int] = {}
    for t in tx.transfers:
        totals[t.asset] = totals.get(t.asset, 0) + t.amount
    for c in tx.calls:
        if c.value:
            totals[tx.fee_asset] = totals.get(tx.fee_asset, 0) + c.value
    if len(totals) > 1:
        return Refuse(
            "velocity", f"the transaction moves {len(totals)} assets; velocity counts one"
        )
    if not totals:
        return tx.fee_asset, 0
    ((asset, amount),) = totals.items()
    return asset, amount


def normalise(value: str) -> str:
    """Case-fold what is case-insensitive (EVM hex addresses, also inside `erc20:` assets),
    so a policy list written in lower case matches an EIP-55 checksummed address."""
    return ":".join(part.lower() if _is_evm(part) else part for part in value.split(":"))


def _is_evm(value: str) -> bool:
    return len(value) == 42 and value[:2] in ("0x", "0X") and _is_hex(value[2:])


def _is_hex(value: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in value)


def normalised_set(values: Sequence[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(normalise(v) for v in values)
