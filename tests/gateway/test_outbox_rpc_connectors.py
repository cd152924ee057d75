# ruff: noqa: F811  (the `governed` fixture is imported, then asked for by name)
"""Withdrawals through the outbox with the production connectors as the broadcaster gets them
(`chain_connectors`, keyed by the network each node reports): Bitcoin Core's JSON-RPC over the
facade on the kernel regtest chain, Solana's JSON-RPC over the facade on LiteSVM. The engines
judge the transactions; the facades only translate (see tests/connectors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from solders.hash import Hash
from solders.pubkey import Pubkey

from tests.connectors.bitcoin_core_facade import BitcoinCoreFacade
from tests.connectors.solana_rpc_facade import SolanaRpcFacade
from tests.gateway.test_governed_chain_transactions import (  # noqa: F401 (the fixture)
    Governed,
    governed,
)
from tests.gateway.test_outbox_chains import (
    NOW_BACKOFF,
    _btc_funded,
    _btc_spend,
    _request,
    _signed,
    _state,
)
from tholos.chains.solana import system_transfer, unsigned
from tholos.connectors.bitcoin_core import BitcoinCore
from tholos.connectors.solana_rpc import SolanaRpc
from tholos.gateway.broadcast_service import BroadcastSettings, chain_connectors
from tholos.gateway.broadcaster import Broadcaster
from tholos.gateway.monitor_service import MonitorSettings


@pytest.mark.asyncio
async def test_a_bitcoin_withdrawal_through_bitcoin_core_rpc(
    governed: Governed, tmp_path: Path
) -> None:
    wallet = await governed.wallet("bip340", "bitcoin")
    backend, coins = _btc_funded(wallet, tmp_path)
    facade = BitcoinCoreFacade(backend)
    cookie = tmp_path / ".cookie"
    cookie.write_text("tholos:regtest-password")
    entry = await _signed(governed, _request(governed, wallet, _btc_spend(wallet, coins[0])))
    with facade.server:
        connectors = chain_connectors([], 2, bitcoin=[facade.server.url], bitcoin_cookie=cookie)
        assert list(connectors) == [("bitcoin", "regtest")]
        assert isinstance(connectors[("bitcoin", "regtest")], BitcoinCore)
        b = Broadcaster(
            governed.cluster.gateway.store.outbox, connectors, backoff=NOW_BACKOFF, confirmations=2
        )
        b.step()
        assert _state(governed, entry.tx_hash).state == "sent"
        b.step()
        assert _state(governed, entry.tx_hash).state == "sent"
        facade.mine()
        b.step()
        done = _state(governed, entry.tx_hash)
        assert (done.state, done.confirmations, done.attempts) == ("confirmed", 2, 1)


@pytest.mark.asyncio
async def test_a_solana_withdrawal_through_solana_rpc(governed: Governed) -> None:
    wallet = await governed.wallet("ed25519", "solana")
    facade = SolanaRpcFacade()
    me, to = Pubkey.from_bytes(wallet.public_key), Pubkey.new_unique()
    with facade.server:
        settings = BroadcastSettings.from_config(
            {"solana_rpc": [facade.server.url], "confirmations": 2}
        )
        connectors = settings.connectors()
        assert list(connectors) == [("solana", "localnet")]
        rpc = connectors[("solana", "localnet")]
        assert isinstance(rpc, SolanaRpc)
        rpc.call("requestAirdrop", str(me), 2 * 10**9)
        blockhash = Hash.from_string(rpc.recent_blockhash())
        payload = unsigned(me, [system_transfer(me, to, 1_234_567)], blockhash)
        entry = await _signed(governed, _request(governed, wallet, payload))
        b = Broadcaster(
            governed.cluster.gateway.store.outbox, connectors, backoff=NOW_BACKOFF, confirmations=2
        )
        b.step()
        assert _state(governed, entry.tx_hash).state == "sent"
        assert rpc.balance(str(to)) == 1_234_567
        facade.advance()
        b.step()
        assert _state(governed, entry.tx_hash).state == "confirmed"
        monitor = MonitorSettings.from_config({"solana_rpc": facade.server.url}).connectors()
        (deposit,) = monitor["solana"].deposits([str(to)], since=-1)
        assert (deposit.txid, deposit.amount) == (entry.tx_hash, 1_234_567)


def test_broadcast_run_takes_bitcoin_and_solana_nodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tholos.cli import main
    from tholos.connectors.bitcoin_regtest import BitcoinRegtest
    from tholos.gateway.store import GatewayStore

    db = tmp_path / "gateway.db"
    GatewayStore(db).close()
    cookie = tmp_path / ".cookie"
    cookie.write_text("tholos:regtest-password")
    btc, sol = BitcoinCoreFacade(BitcoinRegtest(tmp_path / "chain")), SolanaRpcFacade()
    with btc.server, sol.server:
        argv = ["broadcast", "run", "--once", "--json", "--db", str(db)]
        assert main([*argv, "--bitcoin-rpc", btc.server.url, "--bitcoin-cookie", str(cookie),
                     "--solana-rpc", sol.server.url]) == 0  # fmt: skip
        out = json.loads(capsys.readouterr().out)
        assert out == {"worked": 0, "chains": ["bitcoin:regtest", "solana:localnet"]}
        assert main([*argv, "--bitcoin-rpc", btc.server.url]) == 1  # no credentials
        err = json.loads(capsys.readouterr().out)["error"]
        assert err["code"] == "unavailable" and "refused the credentials" in err["message"]
