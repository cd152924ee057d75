"""One scenario run on every EVM engine (eth-tester/py-evm in-process, anvil over JSON-RPC): a
threshold wallet address is funded, sends ETH, deploys an ERC-20 (vyper-compiled), transfers
tokens, and signs an EIP-2612 permit the token accepts. Every transaction is built, parsed and
finalized by tholos.chains.ethereum and signed by an in-process threshold ECDSA signature."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import function_signature_to_4byte_selector as selector

from tests.chains.ethereum_support import ThresholdWallet
from tholos.chains.ethereum import (
    Ethereum,
    build_erc20_transfer,
    build_transaction,
    transaction_payload,
    typed_data_payload,
)

ETH = Ethereum()
ALICE = "0x3535353535353535353535353535353535353535"
CAROL = "0x000000000000000000000000000000000000c0De"
SUPPLY = 10**24
CONTRACT = Path(__file__).parent / "contracts" / "token.vy"


@dataclass(frozen=True)
class Receipt:
    status: int
    tx_hash: str
    contract_address: str | None
    gas_used: int
    effective_gas_price: int


class Engine(Protocol):
    chain_id: int
    funded: str  # an account the engine funds and signs for itself

    def fund(self, address: str, wei: int) -> None: ...
    def balance(self, address: str) -> int: ...
    def nonce(self, address: str) -> int: ...
    def fees(self) -> dict[str, int]: ...
    def send_raw(self, raw: bytes) -> Receipt: ...
    def call(self, to: str, data: bytes) -> bytes: ...
    def transact(self, sender: str, to: str, data: bytes) -> Receipt: ...


@lru_cache(maxsize=1)
def token_bytecode() -> bytes:
    """The test token, compiled offline by vyper 0.4.3."""
    import vyper

    out = vyper.compile_code(CONTRACT.read_text(), output_formats=["bytecode"])
    return bytes.fromhex(out["bytecode"].removeprefix("0x"))


def _call_data(signature: str, types: list[str], args: list[Any]) -> bytes:
    return bytes(selector(signature)) + abi_encode(types, args)


def _uint_call(
    engine: Engine, token: str, signature: str, types: list[str], args: list[Any]
) -> int:
    (value,) = abi_decode(["uint256"], engine.call(token, _call_data(signature, types, args)))
    return int(value)


def run_scenario(engine: Engine, tw: ThresholdWallet, index: int = 1) -> dict[str, Any]:
    wallet = replace(tw.wallet, network=str(engine.chain_id))
    sender = ETH.address(wallet, index).address
    engine.fund(sender, 10**19)
    chain_id = engine.chain_id

    def send(unsigned: bytes) -> tuple[Any, Receipt]:
        payload = transaction_payload(unsigned, index, sender=sender)
        parsed = ETH.parse(wallet, payload)
        (target,) = parsed.targets
        sig = tw.sign(target.message, target.path)
        signed = ETH.finalize(wallet, payload, [sig.to_compact()])
        assert Account.recover_transaction(signed.raw) == sender
        receipt = engine.send_raw(signed.raw)
        assert receipt.status == 1, receipt
        assert receipt.tx_hash.lower() == signed.txid
        assert receipt.gas_used * receipt.effective_gas_price <= parsed.intent.fee
        return parsed, receipt

    # Native transfer: the recipient gains exactly the value, the sender pays value + fee.
    alice_before, sender_before = engine.balance(ALICE), engine.balance(sender)
    _, r = send(
        build_transaction(
            chain_id=chain_id, nonce=engine.nonce(sender), to=ALICE, value=12_345, **engine.fees()
        )
    )
    assert engine.balance(ALICE) - alice_before == 12_345
    assert sender_before - engine.balance(sender) == 12_345 + r.gas_used * r.effective_gas_price

    # Contract creation: the intent names the address the engine deploys to.
    init = token_bytecode() + abi_encode(["uint256"], [SUPPLY])
    parsed, r = send(
        build_transaction(
            chain_id=chain_id,
            nonce=engine.nonce(sender),
            to=None,
            data=init,
            gas=3_000_000,
            **engine.fees(),
        )
    )
    (creation,) = parsed.intent.transfers
    token = creation.to
    assert creation.action == "contract_creation" and r.contract_address is not None
    assert r.contract_address.lower() == token.lower()
    balance_of = ["balanceOf(address)", ["address"]]
    assert _uint_call(engine, token, *balance_of, [sender]) == SUPPLY  # type: ignore[arg-type]

    # ERC-20 transfer.
    parsed, _ = send(
        build_erc20_transfer(
            chain_id=chain_id,
            nonce=engine.nonce(sender),
            token=token,
            to=ALICE,
            amount=1_000,
            **engine.fees(),
        )
    )
    (t,) = parsed.intent.transfers
    assert (t.asset, t.to, t.amount, t.action) == (f"erc20:{token}", ALICE, 1_000, "transfer")
    assert _uint_call(engine, token, *balance_of, [ALICE]) == 1_000  # type: ignore[arg-type]
    assert _uint_call(engine, token, *balance_of, [sender]) == SUPPLY - 1_000  # type: ignore[arg-type]

    # EIP-2612 permit signed by the threshold key; the token checks it with ecrecover.
    spender = engine.funded
    deadline = 2**40
    typed = permit_typed_data(chain_id, token, sender, spender, 500, deadline)
    payload = typed_data_payload(typed, index)
    parsed = ETH.parse(wallet, payload)
    (permit,) = parsed.intent.transfers
    assert (permit.action, permit.to, permit.amount) == ("permit", spender, 500)
    sig = tw.sign(parsed.targets[0].message, parsed.targets[0].path)
    signature = ETH.finalize(wallet, payload, [sig.to_compact()]).raw
    assert (
        Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
        == sender
    )
    v, r_, s_ = signature[64], signature[:32], signature[32:64]
    receipt = engine.transact(
        spender,
        token,
        _call_data(
            "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
            ["address", "address", "uint256", "uint256", "uint8", "bytes32", "bytes32"],
            [sender, spender, 500, deadline, v, r_, s_],
        ),
    )
    assert receipt.status == 1
    allowance = _uint_call(
        engine, token, "allowance(address,address)", ["address", "address"], [sender, spender]
    )
    assert allowance == 500
    receipt = engine.transact(
        spender,
        token,
        _call_data(
            "transferFrom(address,address,uint256)",
            ["address", "address", "uint256"],
            [sender, CAROL, 500],
        ),
    )
    assert receipt.status == 1
    assert _uint_call(engine, token, *balance_of, [CAROL]) == 500  # type: ignore[arg-type]
    return {"sender": sender, "token": token}


def eip712_domain() -> list[dict[str, str]]:
    """The EIP-712 domain fields of every typed-data example here (a new list: tests mutate it)."""
    return [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ]


def permit_typed_data(
    chain_id: int, token: str, owner: str, spender: str, value: int, deadline: int = 2**40
) -> dict[str, Any]:
    """An EIP-2612 permit of the test token (nonce 0), as EIP-712 typed data."""
    return {
        "types": {
            "EIP712Domain": eip712_domain(),
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": "Test Token",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": token,
        },
        "message": {
            "owner": owner,
            "spender": spender,
            "value": value,
            "nonce": 0,
            "deadline": deadline,
        },
    }
