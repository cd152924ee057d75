"""A Bitcoin wallet's history over blocks (from, to], for reconciliation, read from the blocks
and the UTXO set (no wallet on the node, no index of our own).

Per transaction: outputs paying a wallet address are deposits when no wallet coin is spent; a
transaction spending wallet coins withdraws what its outputs pay outside the wallet (change to
the wallet's own addresses is not a withdrawal) and pays a fee of inputs − outputs. When
foreign coins are spent beside the wallet's (a shared transaction: coinjoin, payjoin), the fee
cannot be split: the wallet's net outflow is one withdrawal line, so its request shows
`amount_differs`.

Balances at a height are the wallet's coins that existed then: the UTXO set now (created at or
below the height) plus the wallet coins that blocks after the height spend (their prevouts,
created at or below it). Both ends therefore come from Bitcoin Core's UTXO set and the blocks
up to the tip: a period far below the tip costs a walk of every block after it. Only the
addresses given are the wallet's: a coin on an address index not named is foreign.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tholos.chains.bitcoin.wallet import address_of, script_of
from tholos.connectors import jsonrpc
from tholos.connectors.base import ConnectorError
from tholos.connectors.bitcoin_core import BitcoinCore, sats
from tholos.connectors.bitcoin_regtest import BitcoinRegtest, Coin
from tholos.reserves.reconcile import History, Kind, Movement

ASSET = "BTC"


@dataclass(frozen=True)
class BlockTx:
    """A transaction of a block: the coins it spends (none for a coinbase) and those it makes."""

    txid: str
    spent: tuple[Coin, ...]
    outputs: tuple[Coin, ...]


class BlockSource(Protocol):
    """Blocks with their spent coins, and the UTXO set, of a Bitcoin backend."""

    network: str

    def transactions(self, height: int) -> list[BlockTx]: ...

    def unspent(self, addresses: Sequence[str]) -> tuple[int, list[Coin]]:
        """(the tip height the scan saw, the unspent coins of `addresses` then)."""
        ...

    def time(self, height: int) -> int | None: ...


class CoreBlocks:
    """Bitcoin Core's JSON-RPC: `getblock` verbosity 3 (Core 23 and later: each input's prevout
    with its value, script and height) and `scantxoutset`."""

    def __init__(self, core: BitcoinCore, network: str) -> None:
        self.core, self.network = core, network
        self._times: dict[int, int] = {}

    def transactions(self, height: int) -> list[BlockTx]:
        try:
            block = self.core.call("getblock", self.core.call("getblockhash", height), 3)
        except jsonrpc.RpcError as exc:
            raise ConnectorError(
                f"getblock verbosity 3 (Bitcoin Core 23 or later) at height {height}: "
                f"{exc.node_message}"
            ) from None
        if "time" in block:
            self._times[height] = int(block["time"])
        return [_core_tx(tx, height) for tx in block.get("tx", [])]

    def unspent(self, addresses: Sequence[str]) -> tuple[int, list[Coin]]:
        result = self.core.call("scantxoutset", "start", [f"addr({a})" for a in addresses])
        if not result or not result.get("success", False):
            raise ConnectorError("scantxoutset did not complete", retryable=True)
        coins = [
            Coin(
                str(u["txid"]),
                int(u["vout"]),
                sats(u["amount"], "amount"),
                bytes.fromhex(str(u["scriptPubKey"])),
                int(u["height"]),
            )
            for u in result.get("unspents", [])
        ]
        return int(result["height"]), coins

    def time(self, height: int) -> int | None:
        if height not in self._times:
            header = self.core.call("getblockheader", self.core.call("getblockhash", height))
            self._times[height] = int(header["time"])
        return self._times[height]


def _core_tx(tx: Mapping[str, Any], height: int) -> BlockTx:
    txid = str(tx["txid"])
    spent = []
    for i, vin in enumerate(tx.get("vin", [])):
        if "coinbase" in vin:
            continue
        prev = vin.get("prevout")
        if prev is None:
            raise ConnectorError(f"input {i} of {txid} has no prevout: the node needs Core 23+")
        spent.append(
            Coin(
                str(vin["txid"]),
                int(vin["vout"]),
                sats(prev["value"], "prevout value"),
                bytes.fromhex(str(prev["scriptPubKey"]["hex"])),
                int(prev["height"]),
            )
        )
    outputs = tuple(
        Coin(txid, int(o["n"]), sats(o["value"], "output value"),
             bytes.fromhex(str(o["scriptPubKey"]["hex"])), height)
        for o in tx.get("vout", [])
    )  # fmt: skip
    return BlockTx(txid, tuple(spent), outputs)


class RegtestBlocks:
    """The in-process regtest chain, read from libbitcoinkernel itself: its block files and undo
    data (the coins each block spent, with their heights) and its headers' times; the UTXO set
    from the backend's index of the blocks it mined."""

    def __init__(self, backend: BitcoinRegtest) -> None:
        self.backend = backend
        self.network = backend.network

    def transactions(self, height: int) -> list[BlockTx]:
        chainman = self.backend.regtest.chainman
        entry = chainman.get_active_chain().block_tree_entries[height]
        txs = list(chainman.blocks[entry].transactions)
        undo = list(chainman.block_spent_outputs[entry].transactions)  # the coinbase has none
        found = []
        for k, tx in enumerate(txs):
            txid = str(tx.txid)
            spent = []
            if k > 0:
                for vin, coin in zip(tx.inputs, undo[k - 1].coins, strict=True):
                    out = coin.output
                    spent.append(
                        Coin(str(vin.out_point.txid), int(vin.out_point.index), int(out.amount),
                             bytes(out.script_pubkey), int(coin.confirmation_height))
                    )  # fmt: skip
            outputs = tuple(
                Coin(txid, n, int(o.amount), bytes(o.script_pubkey), height)
                for n, o in enumerate(tx.outputs)
            )
            found.append(BlockTx(txid, tuple(spent), outputs))
        return found

    def unspent(self, addresses: Sequence[str]) -> tuple[int, list[Coin]]:
        scripts = [script_of(a, self.network) for a in addresses]
        coins = [
            Coin(c.txid, c.vout, c.amount, c.script, c.height)
            for c in self.backend.unspent(scripts)
        ]
        return self.backend.height(), coins

    def time(self, height: int) -> int | None:
        entry = self.backend.regtest.chainman.get_active_chain().block_tree_entries[height]
        return int(entry.block_header.timestamp.timestamp())


def _lines(tx: BlockTx, height: int, wallet: Mapping[bytes, str], network: str) -> list[Movement]:
    mine_in = [c for c in tx.spent if c.script in wallet]
    mine_out = [c for c in tx.outputs if c.script in wallet]
    if not mine_in:
        sender = address_of(tx.spent[0].script, network) if tx.spent else "coinbase"
        return [
            Movement(tx.txid, height, "deposit", ASSET, c.amount, wallet[c.script], sender)
            for c in mine_out
            if c.amount
        ]
    own = wallet[mine_in[0].script]
    if len(mine_in) < len(tx.spent):  # shared with foreign coins: only the net is the wallet's
        net = sum(c.amount for c in mine_in) - sum(c.amount for c in mine_out)
        kind: Kind = "withdrawal" if net > 0 else "deposit"
        return [Movement(tx.txid, height, kind, ASSET, abs(net), own, "shared transaction")]
    fee = sum(c.amount for c in tx.spent) - sum(c.amount for c in tx.outputs)
    lines = [Movement(tx.txid, height, "fee", ASSET, fee, own)]
    lines += [
        Movement(tx.txid, height, "withdrawal", ASSET, c.amount, own, address_of(c.script, network))
        for c in tx.outputs
        if c.script not in wallet and c.amount
    ]
    return lines


def history(source: BlockSource, addresses: Sequence[str], start: int, end: int) -> History:
    """The wallet's (every address in `addresses`, change included) BTC history in blocks
    (start, end], with its balances at `start` and `end`."""
    if start > end:
        raise ValueError(f"the period starts at {start}, after its end {end}")
    wallet = {script_of(a, source.network): a for a in addresses}
    tip, unspent = source.unspent(list(addresses))
    if end > tip:
        raise ConnectorError(f"block {end} is above the chain's tip {tip}")
    moves: list[Movement] = []
    spent_after: list[tuple[Coin, int]] = []  # a wallet coin and the height that spent it
    for height in range(start + 1, tip + 1):
        for tx in source.transactions(height):
            spent_after += [(c, height) for c in tx.spent if c.script in wallet]
            if height <= end:
                moves += _lines(tx, height, wallet, source.network)

    def balance(at: int) -> int:
        held = sum(c.amount for c in unspent if c.height <= at)
        return held + sum(c.amount for c, spender in spent_after if c.height <= at < spender)

    first, last = source.time(start), source.time(end)
    times = (first, last) if first is not None and last is not None else None
    return History(moves, balance(start), balance(end), times)
