"""Reconciliation of a threshold Bitcoin wallet on a regtest chain whose blocks libbitcoinkernel
(Bitcoin Core's consensus code) connected: a customer's deposit, a withdrawal the governed
cluster signed (FROST, change to the wallet's own change address) and its fee balance to the
closing balance; the history read from the kernel's block and undo files and the one read over
Bitcoin Core's JSON-RPC (`getblock` verbosity 3 and `scantxoutset`, served from the same chain)
agree; planted faults (a spend with no request, a signed request never sent, a request
declaring another amount) are each listed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.chains.bitcoin_support import plain_wallet
from tests.connectors.bitcoin_core_facade import BitcoinCoreFacade
from tests.reserves.test_proof_governed import Governed, governed_with
from tholos.chains.base import WalletRef
from tholos.chains.bitcoin import BITCOIN, Utxo, build_psbt
from tholos.connectors.base import ConnectorError
from tholos.connectors.bitcoin_core import BitcoinCore
from tholos.connectors.bitcoin_regtest import BitcoinRegtest
from tholos.connectors.regtest_chain import SUBSIDY
from tholos.governance import Match, Policy, Rule
from tholos.reserves.bitcoin_history import CoreBlocks, RegtestBlocks, history
from tholos.reserves.reconcile import SignedRequest, reconcile

pytestmark = pytest.mark.slow  # a governed cluster

BTC = 10**8
CUSTOMER = plain_wallet("p2wpkh")  # an ordinary single-key wallet paying the custodian
OUTSIDER = BITCOIN.address(plain_wallet("p2wpkh", bytes(range(1, 33))).wallet, 0).address


@pytest_asyncio.fixture
async def governed(tmp_path: Path) -> AsyncIterator[Governed]:
    policy = Policy(rules=(Rule(rule_id="btc", match=Match(chains=("bitcoin",))),))
    async for g in governed_with(tmp_path / "c", policy):
        yield g


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[BitcoinRegtest]:
    yield BitcoinRegtest(tmp_path / "regtest")


def _addresses(w: WalletRef) -> list[str]:
    return [
        BITCOIN.address(w, 0).address,
        BITCOIN.address(w, 1).address,
        BITCOIN.address(w, 0, change=True).address,
    ]


def _customer_pays(chain: BitcoinRegtest, to: str, amount: int) -> str:
    """The customer spends its mature coinbase to `to` (its own key, not the cluster's)."""
    address = BITCOIN.address(CUSTOMER.wallet, 0).address
    coin = chain.utxos(address)[0]
    psbt = build_psbt(
        CUSTOMER.wallet, [Utxo(coin.txid, coin.vout, coin.amount, "m/0/0")], [(to, amount)],
        fee=2_000, change_index=0,
    )  # fmt: skip
    parsed = BITCOIN.parse(CUSTOMER.wallet, psbt)
    signed = BITCOIN.finalize(CUSTOMER.wallet, psbt, [CUSTOMER.sign(t) for t in parsed.targets])
    return chain.broadcast(signed.raw)


async def _withdraw(
    g: Governed, chain: BitcoinRegtest, w: WalletRef, amount: int, fee: int, send: bool = True
) -> tuple[SignedRequest, int]:
    """The cluster signs a spend of the wallet's largest coin to OUTSIDER (change to m/1/0)."""
    coins = [
        (c, path)
        for path, a in (("m/0/0", _addresses(w)[0]), ("m/1/0", _addresses(w)[2]))
        for c in chain.utxos(a)
    ]
    coin, path = max(coins, key=lambda cp: cp[0].amount)
    psbt = build_psbt(
        w, [Utxo(coin.txid, coin.vout, coin.amount, path)], [(OUTSIDER, amount)], fee=fee,
        change_index=0,
    )  # fmt: skip
    signed = await g.sign(w, psbt)
    if send:
        assert chain.broadcast(bytes.fromhex(str(signed.transaction["raw"]))) == str(
            signed.transaction["txid"]
        )
    return SignedRequest.from_summary(g.signing.get(signed.request_id).summary(), "BTC"), fee


async def _funded(g: Governed, chain: BitcoinRegtest) -> tuple[WalletRef, int]:
    w = await g.wallet("bip340", "bitcoin", "p2tr")
    chain.mine(1, _addresses(w)[0])  # the wallet's opening coin: a coinbase, mature below
    chain.mine(1, BITCOIN.address(CUSTOMER.wallet, 0).address)
    chain.mine(100)
    return w, chain.height()


@pytest.mark.asyncio
async def test_a_period_with_a_deposit_and_a_signed_withdrawal_balances(
    governed: Governed, chain: BitcoinRegtest
) -> None:
    w, start = await _funded(governed, chain)
    addresses = _addresses(w)
    deposit = _customer_pays(chain, addresses[1], 3 * BTC)
    request, fee = await _withdraw(governed, chain, w, 7 * BTC, fee=1_500)
    chain.mine(2)
    end = chain.height() - 1  # the period ends below the tip: balances are read back from it
    h = history(RegtestBlocks(chain), addresses, start, end)
    r = reconcile(w.wallet_id, "BTC", (start, end), (h.opening, h.closing), h.movements, [request])
    assert r.balances, r.mismatches
    assert [
        (line["kind"], line["txid"], line["request_id"], line["amount"]) for line in r.lines
    ] == [
        ("deposit", deposit, "", 3 * BTC),
        ("fee", request.txid, request.request_id, fee),
        ("withdrawal", request.txid, request.request_id, 7 * BTC),
    ]
    assert r.lines[2]["counterparty"] == OUTSIDER  # the change output is not a withdrawal
    assert (r.opening, r.closing) == (SUBSIDY, SUBSIDY + 3 * BTC - 7 * BTC - fee)
    assert r.closing == sum(chain.balance(a) for a in addresses)
    assert h.times is not None and h.times[0] < h.times[1]

    # The same report over Bitcoin Core's JSON-RPC (the documented shapes, from the same chain).
    facade = BitcoinCoreFacade(chain)
    with facade.server:
        core = BitcoinCore(facade.server.url.replace("//", "//tholos:regtest-password@"))
        over_rpc = history(CoreBlocks(core, "regtest"), addresses, start, end)
        assert over_rpc == h
        with pytest.raises(ConnectorError, match="above the chain's tip"):
            history(CoreBlocks(core, "regtest"), addresses, start, chain.height() + 1)


@pytest.mark.asyncio
async def test_planted_faults_are_listed(governed: Governed, chain: BitcoinRegtest) -> None:
    w, start = await _funded(governed, chain)
    addresses = _addresses(w)
    honest, _ = await _withdraw(governed, chain, w, BTC, fee=1_000)
    never_sent, _ = await _withdraw(governed, chain, w, 2 * BTC, fee=1_000, send=False)
    unshown, _ = await _withdraw(governed, chain, w, 3 * BTC, fee=1_000)  # not among the requests
    lying = SignedRequest(honest.request_id, honest.txid, "BTC", BTC + 1)
    h = history(RegtestBlocks(chain), addresses, start, chain.height())
    period = (start, chain.height())
    r = reconcile(w.wallet_id, "BTC", period, (h.opening, h.closing), h.movements,
                  [lying, never_sent])  # fmt: skip
    found = {(m.kind, m.txid, m.request_id) for m in r.mismatches}
    assert found == {
        ("amount_differs", honest.txid, honest.request_id),
        ("request_not_on_chain", never_sent.txid, never_sent.request_id),
        ("unrequested_movement", unshown.txid, ""),
    }, r.mismatches
    # every movement is seen: the balance itself is explained
    assert r.opening + r.total("deposit") - r.total("withdrawal") - r.total("fee") == r.closing
    # an address the report is not told about: its coins are foreign, the wallet's closing
    # balance shrinks by the change sent there
    partial = history(RegtestBlocks(chain), addresses[:2], start, chain.height())
    assert partial.closing == h.closing - sum(chain.balance(a) for a in addresses[2:])
    with pytest.raises(ValueError, match="after its end"):
        history(RegtestBlocks(chain), addresses, 5, 4)
