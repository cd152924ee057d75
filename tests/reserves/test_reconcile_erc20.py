"""Reconciliation of an ERC-20 token held by a threshold Ethereum wallet, against anvil (revm)
running the test token (vyper-compiled): a deposit from another holder and a token transfer the
governed cluster signed balance to the `balanceOf` anvil reports, the withdrawal tied to its
request by the Transfer log's transaction; its gas is a line of the wallet's ETH report, which
balances too. Planted faults (tokens moved with no request, a signed request never sent, a
balance changed without any Transfer log) are each listed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector as selector
from eth_utils import keccak

from tests.chains.ethereum_flow import token_bytecode
from tests.engines import running_anvil
from tests.reserves.test_proof_governed import Governed, governed_with
from tholos.chains.base import WalletRef
from tholos.chains.ethereum import ETHEREUM, build_erc20_transfer
from tholos.connectors.ethereum import EthereumRpc
from tholos.governance import Match, Policy, Rule
from tholos.reserves import erc20_history, ethereum_history
from tholos.reserves.reconcile import History, Reconciliation, SignedRequest, reconcile

pytestmark = pytest.mark.slow  # starts anvil and a governed cluster

ETH = 10**18
FUNDED = Account.from_key("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
ALICE = "0x3535353535353535353535353535353535353535"
BALANCE_OF_SLOT = 6  # the token's storage layout (vyper -f layout): balanceOf is slot 6


@pytest.fixture(scope="module")
def anvil() -> Iterator[EthereumRpc]:
    with running_anvil() as url:
        yield EthereumRpc(url)


@pytest.fixture(scope="module")
def token(anvil: EthereumRpc) -> str:
    """The test token, deployed by anvil's funded account (which holds the whole supply)."""
    init = token_bytecode() + abi_encode(["uint256"], [10**24])
    txid = _send(anvil, None, init, gas=3_000_000)
    return erc20_history.asset_of(str(_mined(anvil, txid)["contractAddress"]))[6:]


@pytest_asyncio.fixture
async def governed(tmp_path: Path) -> AsyncIterator[Governed]:
    policy = Policy(rules=(Rule(rule_id="eth", match=Match(chains=("ethereum",)), max_fee=10**17),))
    async for g in governed_with(tmp_path / "c", policy):
        yield g


def _mined(rpc: EthereumRpc, txid: str) -> dict[str, Any]:
    """The receipt, once anvil has mined the transaction (its automine runs apart from the
    answer to eth_sendRawTransaction)."""
    deadline = time.monotonic() + 60
    while (receipt := rpc.call("eth_getTransactionReceipt", txid)) is None:
        assert time.monotonic() < deadline, f"{txid} not mined"
        time.sleep(0.02)
    return dict(receipt)


def _send(rpc: EthereumRpc, to: str | None, data: bytes, gas: int = 100_000) -> str:
    fees = rpc.fees()
    tx = {"type": 2, "chainId": 31337, "nonce": rpc.nonce(FUNDED.address), "value": 0,
          "data": data, "gas": gas, "maxFeePerGas": fees.max_fee,
          "maxPriorityFeePerGas": fees.max_priority_fee}  # fmt: skip
    if to is not None:
        tx["to"] = to
    txid = rpc.broadcast(bytes(FUNDED.sign_transaction(tx).raw_transaction))
    _mined(rpc, txid)
    return txid


def _transfer_data(to: str, amount: int) -> bytes:
    return bytes(selector("transfer(address,uint256)")) + abi_encode(
        ["address", "uint256"], [to, amount]
    )


async def _withdraw(
    g: Governed, rpc: EthereumRpc, w: WalletRef, token: str, amount: int, send: bool = True
) -> tuple[SignedRequest, SignedRequest]:
    """The cluster signs a token transfer to ALICE; its request as the token and the ETH
    reports see it."""
    address = ETHEREUM.address(w, 0).address
    fees = rpc.fees()
    payload = build_erc20_transfer(
        chain_id=31337, nonce=rpc.nonce(address), token=token, to=ALICE, amount=amount,
        max_fee_per_gas=fees.max_fee, max_priority_fee_per_gas=fees.max_priority_fee,
    )  # fmt: skip
    signed = await g.sign(w, payload)
    if send:
        txid = rpc.broadcast(bytes.fromhex(str(signed.transaction["raw"]).removeprefix("0x")))
        assert txid == signed.transaction["txid"]
        _mined(rpc, txid)
    summary = g.signing.get(signed.request_id).summary()
    asset = erc20_history.asset_of(token)
    return SignedRequest.from_summary(summary, asset), SignedRequest.from_summary(summary, "ETH")


async def _wallet(g: Governed, rpc: EthereumRpc) -> tuple[WalletRef, str, int]:
    w = await g.wallet("ecdsa", "ethereum", "eoa")
    address = ETHEREUM.address(w, 0).address
    rpc.call("anvil_setBalance", address, hex(ETH))
    rpc.call("anvil_mine", "0x1")
    return w, address, rpc.height()


def _report(w: WalletRef, asset: str, start: int, end: int, h: History,
            requests: list[SignedRequest]) -> Reconciliation:  # fmt: skip
    return reconcile(
        w.wallet_id, asset, (start, end), (h.opening, h.closing), h.movements, requests
    )


@pytest.mark.asyncio
async def test_a_token_deposit_and_a_signed_token_withdrawal_balance(
    governed: Governed, anvil: EthereumRpc, token: str
) -> None:
    w, address, start = await _wallet(governed, anvil)
    asset = erc20_history.asset_of(token)
    deposit = _send(anvil, token, _transfer_data(address, 5_000))
    as_token, as_eth = await _withdraw(governed, anvil, w, token, 1_200)
    end = anvil.height()
    h = erc20_history.history(anvil, [address], token.lower(), start, end)
    r = _report(w, asset, start, end, h, [as_token])
    assert r.balances, r.mismatches
    assert [(ln["kind"], ln["txid"], ln["request_id"], ln["amount"]) for ln in r.lines] == [
        ("deposit", deposit, "", 5_000),
        ("withdrawal", as_token.txid, as_token.request_id, 1_200),
    ]
    assert (r.opening, r.closing) == (0, 3_800) and r.closing == anvil.balance(address, asset)
    assert r.lines[1]["counterparty"] == ALICE and r.lines[0]["counterparty"] == FUNDED.address
    assert h.times is not None and h.times[0] <= h.times[1]
    # The transfer's gas is the ETH report's: a fee line tied to the same request, no value.
    eth = ethereum_history.history(anvil, [address], start, end)
    e = _report(w, "ETH", start, end, eth, [as_eth])
    assert e.balances, e.mismatches
    assert [(ln["kind"], ln["request_id"]) for ln in e.lines] == [("fee", as_eth.request_id)]
    assert e.closing == ETH - e.total("fee") and e.total("fee") > 0
    with pytest.raises(ValueError, match="not an ERC-20 contract address"):
        erc20_history.asset_of("USDC")


@pytest.mark.asyncio
async def test_planted_token_faults_are_listed(
    governed: Governed, anvil: EthereumRpc, token: str
) -> None:
    w, address, start = await _wallet(governed, anvil)
    asset = erc20_history.asset_of(token)
    _send(anvil, token, _transfer_data(address, 9_000))
    honest, _ = await _withdraw(governed, anvil, w, token, 1_000)
    never_sent, _ = await _withdraw(governed, anvil, w, token, 2_000, send=False)
    # tokens leave without any request: anvil lets the account send unsigned (impersonation)
    anvil.call("anvil_impersonateAccount", address)
    stolen = anvil.call(
        "eth_sendTransaction",
        {"from": address, "to": token, "data": "0x" + _transfer_data(ALICE, 300).hex()},
    )
    anvil.call("anvil_stopImpersonatingAccount", address)
    _mined(anvil, stolen)
    end = anvil.height()
    h = erc20_history.history(anvil, [address], token, start, end)
    r = _report(w, asset, start, end, h, [honest, never_sent])
    assert {(m.kind, m.txid, m.request_id) for m in r.mismatches} == {
        ("unrequested_movement", stolen, ""),
        ("request_not_on_chain", never_sent.txid, never_sent.request_id),
    }, r.mismatches
    assert r.closing == 9_000 - 1_000 - 300
    # a balance written into the token's storage: no Transfer log, so unexplained
    start2 = anvil.height()
    anvil.call("anvil_mine", "0x1")  # anvil_setStorageAt edits the latest block's state
    slot = keccak(abi_encode(["uint256", "address"], [BALANCE_OF_SLOT, address]))
    anvil.call(
        "anvil_setStorageAt", token, "0x" + slot.hex(), "0x" + (r.closing + 55).to_bytes(32).hex()
    )
    anvil.call("anvil_mine", "0x1")
    assert anvil.balance(address, asset) == r.closing + 55  # the slot is balanceOf[address]
    h2 = erc20_history.history(anvil, [address], token, start2, anvil.height())
    r2 = _report(w, asset, start2, anvil.height(), h2, [])
    assert [m.kind for m in r2.mismatches] == ["unexplained_balance"]
    assert "difference 55" in r2.mismatches[0].detail
