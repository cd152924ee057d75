"""A wallet's native (ETH) history from an Ethereum JSON-RPC node, for reconciliation: every
top-level transaction from or to its addresses in a range of blocks, with the fee each outgoing
one paid (gasUsed x effectiveGasPrice from its receipt; a reverted transaction pays its fee and
moves no value). Internal transfers by contracts need a tracing node and are not seen: they
show as an unexplained balance."""

from __future__ import annotations

from collections.abc import Sequence

from tholos.connectors.ethereum import EthereumRpc
from tholos.reserves.reconcile import History, Movement


def _int(value: object) -> int:
    return int(str(value), 16)


def movements(
    rpc: EthereumRpc, addresses: Sequence[str], from_height: int, to_height: int
) -> list[Movement]:
    """Movements of ETH in blocks (from_height, to_height]."""
    watched = {a.lower(): a for a in addresses}
    found: list[Movement] = []
    for number in range(from_height + 1, to_height + 1):
        block = rpc.call("eth_getBlockByNumber", hex(number), True)
        for tx in block.get("transactions", []) if block else []:
            sender, to = str(tx.get("from") or "").lower(), str(tx.get("to") or "").lower()
            if sender not in watched and to not in watched:
                continue
            receipt = rpc.call("eth_getTransactionReceipt", tx["hash"])
            ok = _int(receipt.get("status", "0x1")) == 1
            value = _int(tx.get("value", "0x0")) if ok else 0
            txid = str(tx["hash"])
            if sender in watched:
                fee = _int(receipt["gasUsed"]) * _int(receipt["effectiveGasPrice"])
                found.append(Movement(txid, number, "fee", "ETH", fee, watched[sender]))
                if value:
                    found.append(
                        Movement(txid, number, "withdrawal", "ETH", value, watched[sender], to)
                    )
            if to in watched and value:
                found.append(Movement(txid, number, "deposit", "ETH", value, watched[to], sender))
    return found


def balance(rpc: EthereumRpc, addresses: Sequence[str], height: int) -> int:
    """The wallet's ETH balance (all `addresses`) at block `height`."""
    return sum(_int(rpc.call("eth_getBalance", a, hex(height))) for a in addresses)


def block_time(rpc: EthereumRpc, height: int) -> int:
    """The timestamp (unix seconds) of block `height`."""
    return _int(rpc.call("eth_getBlockByNumber", hex(height), False)["timestamp"])


def history(rpc: EthereumRpc, addresses: Sequence[str], start: int, end: int) -> History:
    """The wallet's ETH movements over (start, end], its balances and block times at both ends."""
    return History(
        movements(rpc, addresses, start, end),
        balance(rpc, addresses, start),
        balance(rpc, addresses, end),
        (block_time(rpc, start), block_time(rpc, end)),
    )
