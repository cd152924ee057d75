# ruff: noqa: F811  (the `governed` fixture is imported, then asked for by name)
"""Withdrawals from request to confirmations on each chain, through the outbox: a governed request
signed by an in-process cluster enters the outbox in the transaction that saves its signature,
and the broadcaster sends it to an engine nobody here wrote (Bitcoin Core's consensus code via
py-bitcoinkernel, anvil's revm over JSON-RPC, the Solana runtime in LiteSVM) and follows it to
its confirmations. Also: concurrent Ethereum withdrawals get consecutive nonces and all land; a
fee bump is a new governed request that replaces the stuck transaction; a Bitcoin reorganisation
that takes a confirmed transaction out has it sent again and re-confirmed, or flagged when its
input was spent on the new branch."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from embit.transaction import Transaction
from solders.pubkey import Pubkey

from tests.engines import running_anvil
from tests.gateway.test_governed_chain_transactions import (  # noqa: F401 (the fixture)
    CLUSTER,
    Governed,
    governed,
)
from tholos.chains.base import WalletRef
from tholos.chains.bitcoin import BITCOIN, Utxo, build_psbt
from tholos.chains.ethereum import Ethereum, build_transaction
from tholos.chains.registry import chain_for
from tholos.chains.solana import system_transfer, unsigned
from tholos.connectors.base import Connector
from tholos.connectors.bitcoin_regtest import BitcoinRegtest
from tholos.connectors.ethereum import EthereumRpc
from tholos.connectors.solana_litesvm import SolanaLiteSvm
from tholos.gateway.broadcaster import Backoff, Broadcaster
from tholos.gateway.errors import GatewayError
from tholos.gateway.outbox import OutboxEntry
from tholos.gateway.scheme_protocols import presignatures
from tholos.gateway.store import GatewayStore
from tholos.governance import Intent, SigningRequest, new_request
from tholos.governance.transactions import declare

GWEI = 10**9
ETH_TO = "0x3535353535353535353535353535353535353535"
BTC_FEE = 2_000
NOW_BACKOFF = Backoff(base=0.0, most=0.0, poll=0.0)  # every row due at once: steps, no sleeps


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with running_anvil(31337) as url:
        yield url


def _request(g: Governed, wallet: WalletRef, payload: bytes, rid: str = "") -> SigningRequest:
    chain = chain_for(wallet.chain)
    assert chain is not None
    now = int(time.time())
    intent = Intent(
        request_id=rid or f"req-{wallet.chain}-{time.monotonic_ns()}",
        initiator="initiator",
        key_id=wallet.wallet_id,
        chain=wallet.chain,
        created_at=now - 5,
        expires_at=now + 600,
        transaction=declare(chain.parse(wallet, payload).intent, wallet.address_type),
    )
    return new_request(CLUSTER, intent, payload, g.users["initiator"])


async def _signed(g: Governed, req: SigningRequest) -> OutboxEntry:
    """Sign `req` with its approval; its outbox row, queued, in the gateway's store."""
    (t,) = await g.signing.create([(req, g.approvals(req))])
    assert t.status == "signed", t.summary()
    entry = g.cluster.gateway.store.outbox.get(t.transaction["txid"])
    assert entry is not None and entry.state == "queued" and entry.request_id == t.request_id
    return entry


def _broadcaster(g: Governed, conn: Connector, network: str, **kw: object) -> Broadcaster:
    return Broadcaster(
        g.cluster.gateway.store.outbox,
        {(conn.chain, network): conn},
        backoff=NOW_BACKOFF,
        **kw,  # type: ignore[arg-type]
    )


def _state(g: Governed, tx_hash: str) -> OutboxEntry:
    entry = g.cluster.gateway.store.outbox.get(tx_hash)
    assert entry is not None
    return entry


# -- bitcoin --------------------------------------------------------------------------------------
def _btc_funded(wallet: WalletRef, tmp: Path) -> tuple[BitcoinRegtest, list[Utxo]]:
    """Two coinbases to the wallet's m/0/0 and m/0/1, mature."""
    conn = BitcoinRegtest(tmp / "regtest", confirmations=1)
    coins = []
    for i in range(2):
        conn.mine(1, BITCOIN.address(wallet, i).address)
        _, cb, _ = conn._blocks[-1]
        coins.append(Utxo(cb.txid().hex(), 0, cb.vout[0].value, f"m/0/{i}", cb.serialize()))
    conn.mine(100)
    return conn, coins


def _btc_spend(wallet: WalletRef, coin: Utxo, index: int = 5) -> bytes:
    dest = BITCOIN.address(wallet, index).address
    return build_psbt(wallet, [coin], [(dest, 10**8)], fee=BTC_FEE, change_index=0)


@pytest.mark.asyncio
async def test_a_bitcoin_withdrawal_goes_from_request_to_confirmations(
    governed: Governed, tmp_path: Path
) -> None:
    wallet = await governed.wallet("bip340", "bitcoin")
    conn, coins = _btc_funded(wallet, tmp_path)
    entry = await _signed(governed, _request(governed, wallet, _btc_spend(wallet, coins[0])))
    b = _broadcaster(governed, conn, "regtest", confirmations=3)
    assert b.step() == 1
    sent = _state(governed, entry.tx_hash)
    assert (sent.state, sent.attempts, sent.confirmations) == ("sent", 1, 0)
    assert conn.status(entry.tx_hash).confirmations == 1  # in a block Bitcoin Core connected
    b.step()
    assert _state(governed, entry.tx_hash).confirmations == 1
    conn.mine(2)
    b.step()
    done = _state(governed, entry.tx_hash)
    assert (done.state, done.confirmations, done.attempts) == ("confirmed", 3, 1)
    assert done.block == conn.status(entry.tx_hash).block


@pytest.mark.asyncio
async def test_a_reorganised_bitcoin_withdrawal_is_sent_again_and_re_confirmed(
    governed: Governed, tmp_path: Path
) -> None:
    wallet = await governed.wallet("bip340", "bitcoin")
    conn, coins = _btc_funded(wallet, tmp_path)
    entry = await _signed(governed, _request(governed, wallet, _btc_spend(wallet, coins[0])))
    b = _broadcaster(governed, conn, "regtest", confirmations=2, settle=10)
    b.step()
    conn.mine(1)
    b.step()
    first = _state(governed, entry.tx_hash)
    assert (first.state, first.confirmations) == ("confirmed", 2)
    conn.reorganise(depth=2)  # the engine switches to a longer branch without the withdrawal
    assert conn.status(entry.tx_hash).state == "unknown"
    b.step()
    again = _state(governed, entry.tx_hash)
    assert again.state == "sent" and "reorganised" in again.last_error and again.attempts == 2
    conn.mine(1)
    b.step()
    final = _state(governed, entry.tx_hash)
    assert (final.state, final.confirmations) == ("confirmed", 2)
    assert final.block == conn.status(entry.tx_hash).block


@pytest.mark.asyncio
async def test_a_withdrawal_double_spent_on_the_new_branch_is_flagged(
    governed: Governed, tmp_path: Path
) -> None:
    wallet = await governed.wallet("bip340", "bitcoin")
    conn, coins = _btc_funded(wallet, tmp_path)
    entry = await _signed(governed, _request(governed, wallet, _btc_spend(wallet, coins[0])))
    rival = await _signed(governed, _request(governed, wallet, _btc_spend(wallet, coins[0], 6)))
    b = Broadcaster(
        governed.cluster.gateway.store.outbox,
        {("bitcoin", "regtest"): conn},
        backoff=NOW_BACKOFF,
        confirmations=1,
        settle=10,
    )
    # Send only the first: the rival (same input) is taken out of the outbox's hands here and
    # mined on the new branch instead, as a double spend by someone holding the key would be.
    governed.cluster.gateway.store.outbox.update(rival.tx_hash, state="flagged", settled=True)
    b.step()  # sent: Bitcoin Core connected its block
    b.step()
    assert _state(governed, entry.tx_hash).state == "confirmed"
    conn.reorganise(depth=1, txs=[Transaction.parse(rival.raw_bytes())])
    assert conn.status(rival.tx_hash).confirmations == 2
    b.step()
    flagged = _state(governed, entry.tx_hash)
    assert flagged.state == "flagged" and flagged.settled
    assert "reorganised out of the chain and refused again" in flagged.last_error
    b.step()
    assert _state(governed, entry.tx_hash).state == "flagged"  # settled: not worked again


# -- solana ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_solana_withdrawal_goes_from_request_to_confirmations(governed: Governed) -> None:
    wallet = await governed.wallet("ed25519", "solana")
    conn = SolanaLiteSvm()
    me, to = Pubkey.from_bytes(wallet.public_key), Pubkey.new_unique()
    conn.fund(str(me), 2 * 10**9)
    payload = unsigned(me, [system_transfer(me, to, 1_234_567)], conn.svm.latest_blockhash())
    entry = await _signed(governed, _request(governed, wallet, payload))
    assert entry.encoding == "base64"
    elsewhere = _broadcaster(governed, SolanaLiteSvm(), "devnet")  # another network's
    assert elsewhere.step() == 0 and _state(governed, entry.tx_hash).lease_until == 0
    b = _broadcaster(governed, conn, "localnet", confirmations=3)
    b.step()
    assert _state(governed, entry.tx_hash).state == "sent"
    assert conn.balance(str(to)) == 1_234_567
    conn.advance()
    conn.advance()
    b.step()
    assert _state(governed, entry.tx_hash).state == "confirmed"
    assert b.step() == 1 and conn.balance(str(to)) == 1_234_567  # watched, never sent twice


# -- ethereum -------------------------------------------------------------------------------------
async def _eth_wallet(g: Governed, rpc: EthereumRpc, presign: int) -> tuple[WalletRef, str]:
    wallet = await g.wallet("ecdsa", "ethereum")
    assert await presignatures(g.cluster.gateway).presign(wallet.wallet_id, presign) == presign
    address = Ethereum().address(wallet, 0).address
    rpc.call("anvil_setBalance", address, hex(10**19))
    return wallet, address


def _eth_tx(nonce: int, value: int, max_fee: int = 30 * GWEI, tip: int = 2 * GWEI) -> bytes:
    return build_transaction(
        chain_id=31337,
        nonce=nonce,
        to=ETH_TO,
        value=value,
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=tip,
    )


@pytest.mark.asyncio
async def test_concurrent_ethereum_withdrawals_get_consecutive_nonces_and_all_land(
    governed: Governed, anvil_url: str
) -> None:
    rpc = EthereumRpc(anvil_url, confirmations=2)
    wallet, address = await _eth_wallet(governed, rpc, 6)
    floor = rpc.nonce(address)
    db = Path(governed.cluster.gateway.store.db.execute("PRAGMA database_list").fetchone()[2])
    got: dict[str, int] = {}

    def allocate(k: int) -> None:  # each its own connection, as several gateways on one store
        store = GatewayStore(db)
        try:
            got[f"withdrawal-{k}"] = store.nonces.allocate(
                31337, address, f"withdrawal-{k}", floor=floor
            ).nonce
        finally:
            store.close()

    threads = [threading.Thread(target=allocate, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got.values()) == list(range(floor, floor + 6))
    requests = [
        _request(governed, wallet, _eth_tx(nonce, 1000 + nonce), rid) for rid, nonce in got.items()
    ]
    results = await asyncio.gather(
        *(governed.signing.create([(r, governed.approvals(r))]) for r in requests)
    )
    assert all(t.status == "signed" for (t,) in results), [t.summary() for (t,) in results]
    b = _broadcaster(governed, rpc, "31337", confirmations=2)
    b.step()
    rpc.call("anvil_mine", "0x2")
    b.step()
    entries = [_state(governed, t.transaction["txid"]) for (t,) in results]
    assert {e.state for e in entries} == {"confirmed"}
    assert sorted(e.nonce or 0 for e in entries) == list(range(floor, floor + 6))
    assert rpc.nonce(address, pending=False) == floor + 6
    for e in entries:
        tx = rpc.call("eth_getTransactionByHash", e.tx_hash)
        assert int(tx["nonce"], 16) == e.nonce
    # A request whose transaction takes a nonce another request holds is refused, unsigned.
    clash = _request(governed, wallet, _eth_tx(floor + 2, 7))
    with pytest.raises(GatewayError) as held:
        await governed.signing.create([(clash, governed.approvals(clash))])
    assert held.value.status == 409 and held.value.code == "nonce_in_use"


@pytest.mark.asyncio
async def test_a_fee_bump_is_a_new_governed_request_that_replaces_the_stuck_one(
    governed: Governed, anvil_url: str
) -> None:
    rpc = EthereumRpc(anvil_url, confirmations=1)
    wallet, address = await _eth_wallet(governed, rpc, 3)
    store = governed.cluster.gateway.store
    nonce = store.nonces.allocate(
        31337, address, "stuck-withdrawal", floor=rpc.nonce(address)
    ).nonce
    stuck = await _signed(
        governed, _request(governed, wallet, _eth_tx(nonce, 5), "stuck-withdrawal")
    )
    b = _broadcaster(governed, rpc, "31337", confirmations=1)
    rpc.call("evm_setAutomine", False)  # nothing is mined: the transaction waits in the pool
    try:
        b.step()
        assert _state(governed, stuck.tx_hash).state == "sent"
        assert rpc.status(stuck.tx_hash).state == "pending"
        store.nonces.allocate_replacement(
            "fee-bump-request", "31337", address, nonce, stuck.tx_hash
        )
        bump_req = _request(
            governed, wallet, _eth_tx(nonce, 5, 60 * GWEI, 10 * GWEI), "fee-bump-request"
        )
        (waiting,) = await governed.signing.create([(bump_req, [])])  # no approval yet
        assert waiting.status == "awaiting-approval", waiting.summary()
        assert (
            store.outbox.page(request_id="fee-bump-request")[1] == 0
        )  # nothing to send without approval
        t = await governed.signing.approve("fee-bump-request", governed.approvals(bump_req)[0])
        assert t.status == "signed", t.summary()
        bump = _state(governed, t.transaction["txid"])
        assert (bump.state, bump.nonce) == ("queued", nonce)
        b.step()  # the bump replaces the stuck one in anvil's pool
        rpc.call("evm_mine")
    finally:
        rpc.call("evm_setAutomine", True)
    b.step()
    b.step()
    assert _state(governed, bump.tx_hash).state == "confirmed"
    old = _state(governed, stuck.tx_hash)
    assert old.state == "replaced" and bump.tx_hash in old.last_error
    assert rpc.status(stuck.tx_hash).state == "unknown"
    assert rpc.nonce(address, pending=False) == nonce + 1


@pytest.mark.asyncio
async def test_an_ethereum_withdrawal_goes_from_request_to_confirmations_once(
    governed: Governed, anvil_url: str
) -> None:
    rpc = EthereumRpc(anvil_url, confirmations=3)
    wallet, address = await _eth_wallet(governed, rpc, 2)
    before = rpc.balance(ETH_TO)
    nonce = governed.cluster.gateway.store.nonces.allocate(
        31337, address, "withdrawal-1", floor=rpc.nonce(address)
    ).nonce
    entry = await _signed(
        governed, _request(governed, wallet, _eth_tx(nonce, 4242), "withdrawal-1")
    )
    # Saving the request again (as every later status change does) enqueues nothing new.
    governed.signing._save([governed.signing.get("withdrawal-1")])
    assert governed.cluster.gateway.store.outbox.page(request_id="withdrawal-1")[1] == 1
    b = _broadcaster(governed, rpc, "31337", confirmations=3)
    outbox = governed.cluster.gateway.store.outbox
    (leased,) = outbox.claim(time.time(), 30.0)  # as another broadcaster would hold it
    assert leased.tx_hash == entry.tx_hash and b.step() == 0  # not worked while leased
    outbox.update(entry.tx_hash)  # that broadcaster gives it back (or its lease runs out)
    assert b.step() == 1
    rpc.call("anvil_mine", "0x2")
    b.step()
    done = _state(governed, entry.tx_hash)
    assert (done.state, done.confirmations, done.attempts) == ("confirmed", 3, 1)
    assert rpc.balance(ETH_TO) - before == 4242
    assert rpc.nonce(address, pending=False) == nonce + 1


@pytest.mark.asyncio
async def test_a_transaction_sent_by_a_broadcaster_that_died_before_recording_it_is_not_resent(
    governed: Governed, anvil_url: str
) -> None:
    """The chain already has it (the row still says queued): recorded as sent, attempts 0."""
    rpc = EthereumRpc(anvil_url, confirmations=1)
    wallet, address = await _eth_wallet(governed, rpc, 2)
    nonce = rpc.nonce(address)
    entry = await _signed(governed, _request(governed, wallet, _eth_tx(nonce, 77)))
    rpc.call("evm_setAutomine", False)
    try:
        assert rpc.broadcast(entry.raw_bytes()) == entry.tx_hash  # the send before the crash
        b = _broadcaster(governed, rpc, "31337", confirmations=1)
        b.step()
        seen = _state(governed, entry.tx_hash)
        assert (seen.state, seen.attempts) == ("sent", 0)
        rpc.call("evm_mine")
    finally:
        rpc.call("evm_setAutomine", True)
    b.step()
    assert _state(governed, entry.tx_hash).state == "confirmed"
    assert rpc.nonce(address, pending=False) == nonce + 1


@pytest.mark.asyncio
async def test_a_cancelled_withdrawal_gives_its_nonce_back_and_a_signed_one_keeps_it(
    governed: Governed, anvil_url: str
) -> None:
    rpc = EthereumRpc(anvil_url)
    wallet, address = await _eth_wallet(governed, rpc, 2)
    book = governed.cluster.gateway.store.nonces
    floor = rpc.nonce(address)
    kept = book.allocate(31337, address, "withdrawal-kept", floor=floor).nonce
    await _signed(governed, _request(governed, wallet, _eth_tx(kept, 1), "withdrawal-kept"))
    given = book.allocate(31337, address, "withdrawal-given", floor=floor).nonce
    req = _request(governed, wallet, _eth_tx(given, 2), "withdrawal-given")
    (t,) = await governed.signing.create([(req, [])])  # waits for its approval
    assert t.status == "awaiting-approval" and book.get("withdrawal-given") is not None
    await governed.signing.cancel("withdrawal-given", "", "", admin=True)
    assert book.get("withdrawal-given") is None
    assert book.allocate(31337, address, "withdrawal-next", floor=floor).nonce == given
    assert book.get("withdrawal-kept").state == "signed"  # type: ignore[union-attr]
    assert (kept, given) == (floor, floor + 1)


@pytest.mark.asyncio
async def test_an_unreachable_node_is_retried_with_backoff_and_a_refusal_is_flagged(
    governed: Governed, anvil_url: str
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    rpc = EthereumRpc(anvil_url)
    wallet, address = await _eth_wallet(governed, rpc, 2)
    rpc.call("anvil_setBalance", address, "0x0")  # it cannot pay: anvil refuses it
    entry = await _signed(governed, _request(governed, wallet, _eth_tx(rpc.nonce(address), 3)))
    outbox = governed.cluster.gateway.store.outbox
    down = Broadcaster(
        outbox,
        {("ethereum", "31337"): EthereumRpc(closed, timeout=2)},
        backoff=Backoff(base=1.0, most=5.0),
    )
    t0 = time.time() + 10  # steps at chosen times: no sleeps
    delays = []
    now = t0
    for _ in range(5):
        assert down.step(now) == 1
        e = _state(governed, entry.tx_hash)
        delays.append(e.next_attempt - now)
        assert e.state == "queued" and "unreachable" in e.last_error
        assert down.step(now) == 0  # not due before its next attempt
        now = e.next_attempt
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0] and _state(governed, entry.tx_hash).attempts == 5
    up = _broadcaster(governed, rpc, "31337")
    up.step(now)
    refused = _state(governed, entry.tx_hash)
    assert refused.state == "flagged" and "refused by the chain" in refused.last_error
    assert up.step(now + 100) == 0  # flagged: an operator's, never sent again
