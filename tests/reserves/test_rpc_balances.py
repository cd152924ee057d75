"""`tholos reserves prove|verify --btc-rpc/--sol-rpc` connectors: balances read through Bitcoin
Core's and Solana's JSON-RPC (facades over libbitcoinkernel and LiteSVM) at the chain's height,
and re-checked by verify while the chain stays there; a moved chain or a wrong amount is named."""

from __future__ import annotations

from pathlib import Path

import pytest
from solders.keypair import Keypair

from tests.chains.bitcoin_support import threshold_wallet
from tests.connectors.bitcoin_core_facade import BitcoinCoreFacade
from tests.connectors.solana_rpc_facade import SolanaRpcFacade
from tholos.chains.bitcoin import BITCOIN
from tholos.cli import build_parser
from tholos.cli.reserves_cmds import _connectors
from tholos.connectors.bitcoin_core import BitcoinCore
from tholos.connectors.bitcoin_regtest import BitcoinRegtest
from tholos.connectors.regtest_chain import SUBSIDY
from tholos.connectors.solana_rpc import SolanaRpc
from tholos.reserves.balances import balance_at, recheck

pytestmark = pytest.mark.slow  # mines 100 regtest blocks


def test_balances_through_the_rpc_connectors_and_their_recheck(tmp_path: Path) -> None:
    cookie = tmp_path / ".cookie"
    cookie.write_text("tholos:regtest-password")
    btc, sol = BitcoinCoreFacade(BitcoinRegtest(tmp_path / "chain")), SolanaRpcFacade()
    address = BITCOIN.address(threshold_wallet("p2tr").wallet, 0).address
    holder = str(Keypair().pubkey())
    with btc.server, sol.server:
        btc.mine(1, address)
        btc.mine(99)
        args = build_parser().parse_args(
            ["reserves", "verify", "proof.json", "--btc-rpc", btc.server.url,
             "--btc-cookie", str(cookie), "--sol-rpc", sol.server.url]
        )  # fmt: skip
        connectors = _connectors(args)
        assert isinstance(connectors["bitcoin"], BitcoinCore)
        assert isinstance(connectors["solana"], SolanaRpc)
        connectors["solana"].call("requestAirdrop", holder, 7 * 10**9)  # type: ignore[attr-defined]
        b = balance_at(connectors["bitcoin"], address)
        s = balance_at(connectors["solana"], holder)
        assert (b.asset, b.amount, b.height) == ("BTC", SUBSIDY, 100)
        assert (s.asset, s.amount) == ("SOL", 7 * 10**9)

        def doc(amount: int) -> dict[str, object]:
            return {
                "addresses": [
                    {"chain": "bitcoin", "address": address,
                     "balance": {"asset": "BTC", "amount": amount, "height": b.height}},
                    {"chain": "solana", "address": holder,
                     "balance": {"asset": "SOL", "amount": s.amount, "height": s.height}},
                ]
            }  # fmt: skip

        assert recheck(doc(SUBSIDY), connectors) == []
        (wrong,) = recheck(doc(SUBSIDY + 1), connectors)
        assert f"holds {SUBSIDY} at height 100" in wrong
        btc.mine()
        (moved,) = recheck(doc(SUBSIDY), connectors)
        assert "cannot re-read at height 100 (now 101)" in moved
