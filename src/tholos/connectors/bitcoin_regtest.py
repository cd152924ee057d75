"""Bitcoin on an in-process regtest chain judged by libbitcoinkernel (tests and the demo).

Production talks to Bitcoin Core's JSON-RPC; this backend has the same `Connector` face over a
chain we mine ourselves (`regtest_chain.Regtest`), where only Bitcoin Core's consensus code decides
whether a block connects. There is no mempool: `broadcast` mines the transaction into the next
block at once, and a transaction the engine rejects (bad signature, lying amount, double spend)
raises, its block not connected. The UTXO set per address comes from the blocks mined here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from embit.transaction import Transaction

from tholos.chains.bitcoin.wallet import script_of
from tholos.connectors.base import ConnectorError, Deposit, TxStatus
from tholos.connectors.regtest_chain import Regtest


@dataclass(frozen=True)
class Coin:
    """A transaction output: where it is, what it pays, the height of the block holding it."""

    txid: str
    vout: int
    amount: int
    script: bytes
    height: int


@dataclass
class _Index:
    outputs: dict[tuple[str, int], Coin] = field(default_factory=dict)
    spent: set[tuple[str, int]] = field(default_factory=set)
    heights: dict[str, int] = field(default_factory=dict)
    coinbases: set[str] = field(default_factory=set)


class BitcoinRegtest:
    """`Connector` over a regtest chain in `datadir` (a temporary directory if None)."""

    chain = "bitcoin"
    network = "regtest"

    def __init__(self, datadir: Path | None = None, *, confirmations: int = 1) -> None:
        if datadir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tholos-regtest-")
            datadir = Path(self._tmp.name)
        self.regtest = Regtest(datadir)
        self.required_confirmations = confirmations
        self._index = _Index()
        self._blocks: list[tuple[int, Transaction, tuple[Transaction, ...]]] = []
        self._burn = bytes.fromhex("6a")  # OP_RETURN: coinbase of blocks nobody is paid by

    def height(self) -> int:
        return self.regtest.height

    def _record(self, coinbase: Transaction, txs: Sequence[Transaction], height: int) -> None:
        self._blocks.append((height, coinbase, tuple(txs)))
        self._index_block(coinbase, txs, height)

    def _index_block(self, coinbase: Transaction, txs: Sequence[Transaction], height: int) -> None:
        self._index.coinbases.add(coinbase.txid().hex())
        for tx in (coinbase, *txs):
            txid = tx.txid().hex()
            self._index.heights[txid] = height
            for vin in tx.vin:
                self._index.spent.add((vin.txid.hex(), vin.vout))
            for n, out in enumerate(tx.vout):
                self._index.outputs[(txid, n)] = Coin(
                    txid, n, out.value, out.script_pubkey.data, height
                )

    def mine(self, blocks: int = 1, to_address: str | None = None) -> None:
        """Mine empty blocks paying `to_address` (or nobody); coinbases mature after 100."""
        script = self._burn if to_address is None else script_of(to_address, self.network)
        for _ in range(blocks):
            self._record(self.regtest.mine(script), (), self.regtest.height)

    def reorganise(self, depth: int, txs: Sequence[Transaction] = ()) -> None:
        """Replace the top `depth` blocks by a longer branch of empty blocks (`txs`, e.g. a double
        spend, in its first one); the transactions of the blocks left behind are no longer in the
        chain (there is no mempool to take them back). Bitcoin Core's engine makes the switch."""
        fork = self.height() - depth
        kept = [b for b in self._blocks if b[0] <= fork]
        self._blocks, self._index = [], _Index()
        for height, cb, block_txs in kept:
            self._record(cb, block_txs, height)
        fee = sum(self._fee(tx) for tx in txs)
        coinbases = self.regtest.reorganise(depth, self._burn, txs, fee)
        for k, cb in enumerate(coinbases):
            self._record(cb, txs if k == 0 else (), fork + k + 1)

    def utxos(self, address: str) -> list[Coin]:
        """Unspent outputs to `address`, mature ones only (coinbases need 100 confirmations)."""
        script = script_of(address, self.network)
        head = self.height()
        return [
            u
            for key, u in sorted(self._index.outputs.items())
            if u.script == script
            and key not in self._index.spent
            and (u.txid not in self._index.coinbases or head - u.height + 1 >= 100)
        ]

    def unspent(self, scripts: Sequence[bytes]) -> list[Coin]:
        """Every unspent output to `scripts`, immature coinbases included (a UTXO-set scan)."""
        wanted = set(scripts)
        return [
            u
            for key, u in sorted(self._index.outputs.items())
            if u.script in wanted and key not in self._index.spent
        ]

    def balance(self, address: str, asset: str = "") -> int:
        if asset not in ("", "BTC"):
            raise ConnectorError(f"bitcoin has no asset {asset!r}")
        return sum(u.amount for u in self.utxos(address))

    def broadcast(self, raw: bytes) -> str:
        try:
            tx = Transaction.parse(raw)
        except Exception as exc:  # embit raises several types on malformed bytes
            raise ConnectorError(f"not a Bitcoin transaction: {exc}") from None
        txid = str(tx.txid().hex())
        if txid in self._index.heights:
            return txid  # idempotent: already in the chain
        fee = self._fee(tx)
        block, cb = self.regtest.block(self._burn, [tx], fee)
        if not self.regtest.submit(block):
            raise ConnectorError("rejected by Bitcoin Core's consensus engine: block not connected")
        self._record(cb, [tx], self.regtest.height)
        return txid

    def _fee(self, tx: Transaction) -> int:
        spent = 0
        for i, vin in enumerate(tx.vin):
            utxo = self._index.outputs.get((vin.txid.hex(), vin.vout))
            if utxo is None or (vin.txid.hex(), vin.vout) in self._index.spent:
                raise ConnectorError(f"input {i} spends an unknown or spent output")
            spent += utxo.amount
        fee = spent - sum(int(out.value) for out in tx.vout)
        if fee < 0:
            raise ConnectorError("outputs exceed inputs")
        return fee

    def status(self, txid: str) -> TxStatus:
        height = self._index.heights.get(txid)
        if height is None:
            return TxStatus(txid, "unknown")
        confirmations = self.height() - height + 1
        done = confirmations >= self.required_confirmations
        return TxStatus(txid, "confirmed" if done else "pending", confirmations, height)

    def deposits(self, addresses: Sequence[str], since: int) -> list[Deposit]:
        scripts = {script_of(a, self.network): a for a in addresses}
        head = self.height()
        return [
            Deposit(u.txid, scripts[u.script], "BTC", u.amount, u.height, head - u.height + 1)
            for u in sorted(self._index.outputs.values(), key=lambda u: (u.height, u.txid, u.vout))
            if u.script in scripts and u.height > since
        ]
