"""Reconciliation of a threshold Ethereum wallet against anvil (revm), a node nobody here wrote:
a deposit, a withdrawal the cluster signed (governed request, broadcast) and its fee balance to
the closing balance anvil reports, each line tied to its request and transaction; planted
faults (value moved without a request, a signed request never sent, value appearing from
nowhere) are each listed."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from eth_account import Account

from tests.engines import running_anvil
from tests.reserves.test_proof_governed import Governed, governed_with
from tholos.chains.base import WalletRef
from tholos.chains.ethereum import ETHEREUM, build_transaction
from tholos.connectors.ethereum import EthereumRpc
from tholos.governance import Match, Policy, Rule
from tholos.reserves.ethereum_history import balance, movements
from tholos.reserves.reconcile import Reconciliation, SignedRequest, reconcile

pytestmark = pytest.mark.slow  # starts anvil

ETH = 10**18
# anvil's first dev account (its well-known test mnemonic)
FUNDED = Account.from_key("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
ALICE = "0x3535353535353535353535353535353535353535"


@pytest.fixture(scope="module")
def anvil() -> Iterator[EthereumRpc]:
    with running_anvil() as url:
        yield EthereumRpc(url)


@pytest_asyncio.fixture
async def governed(tmp_path: Path) -> AsyncIterator[Governed]:
    policy = Policy(rules=(Rule(rule_id="eth", match=Match(chains=("ethereum",)), max_fee=10**17),))
    async for g in governed_with(tmp_path / "c", policy):
        yield g


def _deposit(rpc: EthereumRpc, to: str, value: int) -> str:
    fees = rpc.fees()
    tx = {"type": 2, "chainId": 31337, "nonce": rpc.nonce(FUNDED.address), "to": to,
          "value": value, "gas": 21_000, "maxFeePerGas": fees.max_fee,
          "maxPriorityFeePerGas": fees.max_priority_fee}  # fmt: skip
    return _mined(rpc, rpc.broadcast(bytes(FUNDED.sign_transaction(tx).raw_transaction)))


def _mined(rpc: EthereumRpc, txid: str) -> str:
    """`txid` once anvil has mined it (its automine answers eth_sendRawTransaction first)."""
    deadline = time.monotonic() + 60
    while rpc.call("eth_getTransactionReceipt", txid) is None:
        assert time.monotonic() < deadline, f"{txid} not mined"
        time.sleep(0.02)
    return txid


async def _withdraw(
    g: Governed, rpc: EthereumRpc, w: WalletRef, value: int, send: bool = True
) -> SignedRequest:
    address = ETHEREUM.address(w, 0).address
    fees = rpc.fees()
    payload = build_transaction(
        chain_id=31337, nonce=rpc.nonce(address), to=ALICE, value=value,
        max_fee_per_gas=fees.max_fee, max_priority_fee_per_gas=fees.max_priority_fee,
    )  # fmt: skip
    signed = await g.sign(w, payload)
    if send:
        txid = rpc.broadcast(bytes.fromhex(str(signed.transaction["raw"]).removeprefix("0x")))
        assert txid == signed.transaction["txid"]
        _mined(rpc, txid)
    return SignedRequest.from_summary(g.signing.get(signed.request_id).summary(), "ETH")


async def _wallet(g: Governed, rpc: EthereumRpc) -> tuple[WalletRef, str, int]:
    w = await g.wallet("ecdsa", "ethereum", "eoa")
    address = ETHEREUM.address(w, 0).address
    rpc.call("anvil_setBalance", address, hex(ETH))
    rpc.call("anvil_mine", "0x1")
    return w, address, rpc.height()


def _report(
    rpc: EthereumRpc, w: WalletRef, address: str, start: int, requests: list[SignedRequest]
) -> Reconciliation:
    end = rpc.height()
    return reconcile(
        w.wallet_id, "ETH", (start, end),
        (balance(rpc, [address], start), balance(rpc, [address], end)),
        movements(rpc, [address], start, end), requests,
    )  # fmt: skip


@pytest.mark.asyncio
async def test_a_period_with_a_deposit_and_a_signed_withdrawal_balances(
    governed: Governed, anvil: EthereumRpc
) -> None:
    w, address, start = await _wallet(governed, anvil)
    deposit = _deposit(anvil, address, 2 * ETH)
    request = await _withdraw(governed, anvil, w, ETH // 2)
    r = _report(anvil, w, address, start, [request])
    assert r.balances, r.mismatches
    kinds = [(line["kind"], line["txid"], line["request_id"]) for line in r.lines]
    assert kinds == [
        ("deposit", deposit, ""),
        ("fee", request.txid, request.request_id),
        ("withdrawal", request.txid, request.request_id),
    ]
    fee = r.total("fee")
    receipt = anvil.call("eth_getTransactionReceipt", request.txid)
    assert fee == int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16) > 0
    assert r.opening == ETH and r.closing == ETH + 2 * ETH - ETH // 2 - fee
    assert r.closing == anvil.balance(address)
    rows = list(csv.DictReader(io.StringIO(r.as_csv())))
    assert [row["row"] for row in rows] == ["opening", "line", "line", "line", "closing"]
    assert rows[-1]["amount"] == str(r.closing) and rows[3]["request_id"] == request.request_id
    out = r.as_dict()
    assert (out["deposits"], out["withdrawals"], out["balances"]) == (2 * ETH, ETH // 2, True)


@pytest.mark.asyncio
async def test_planted_faults_are_listed(governed: Governed, anvil: EthereumRpc) -> None:
    w, address, start = await _wallet(governed, anvil)
    honest = await _withdraw(governed, anvil, w, 1000)
    never_sent = await _withdraw(governed, anvil, w, 2000, send=False)
    # value leaves without any request: anvil lets the account send unsigned (impersonation)
    anvil.call("anvil_impersonateAccount", address)
    stolen = anvil.call(
        "eth_sendTransaction", {"from": address, "to": ALICE, "value": hex(ETH // 10)}
    )
    anvil.call("anvil_stopImpersonatingAccount", address)
    _mined(anvil, stolen)
    anvil.call("anvil_mine", "0x1")
    r = _report(anvil, w, address, start, [honest, never_sent])
    assert not r.balances
    found = {(m.kind, m.txid, m.request_id) for m in r.mismatches}
    assert found == {
        ("unrequested_movement", stolen, ""),
        ("request_not_on_chain", never_sent.txid, never_sent.request_id),
    }, r.mismatches
    # every movement is seen, so the balance itself is explained
    assert r.opening + r.total("deposit") - r.total("withdrawal") - r.total("fee") == r.closing
    # value from nowhere (no transaction) and a request declaring another amount
    start2 = anvil.height()
    anvil.call("anvil_mine", "0x1")  # anvil_setBalance edits the latest block's state: not start2's
    anvil.call("anvil_setBalance", address, hex(anvil.balance(address) + 777))
    anvil.call("anvil_mine", "0x1")
    lying = SignedRequest(honest.request_id, honest.txid, "ETH", 999)
    r2 = _report(anvil, w, address, start2, [])
    assert [m.kind for m in r2.mismatches] == ["unexplained_balance"]
    assert "difference 777" in r2.mismatches[0].detail
    r3 = reconcile(w.wallet_id, "ETH", (start, start2), (0, 0),
                   movements(anvil, [address], start, start2), [lying, never_sent])  # fmt: skip
    assert "amount_differs" in {m.kind for m in r3.mismatches}
    with pytest.raises(ValueError, match="after its end"):
        reconcile(w.wallet_id, "ETH", (5, 4), (0, 0), [], [])


def test_a_period_by_times_maps_to_anvil_blocks(anvil: EthereumRpc) -> None:
    from tholos.reserves.ethereum_history import block_time
    from tholos.reserves.wallet_history import height_at, time_reader

    base = block_time(anvil, anvil.height()) + 1_000
    first = anvil.height() + 1
    for k in range(4):  # four blocks a minute apart
        anvil.call("evm_setNextBlockTimestamp", hex(base + 60 * k))
        anvil.call("anvil_mine", "0x1")
    read = time_reader(anvil)
    tip = anvil.height()
    assert [read(first + k) for k in range(4)] == [base + 60 * k for k in range(4)]
    assert height_at(read, tip, base + 59) == first
    assert height_at(read, tip, base + 120) == first + 2
    assert height_at(read, tip, base - 1) == first - 1
    assert height_at(read, tip, base + 10**6) == tip
