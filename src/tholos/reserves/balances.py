"""Balances read from a chain connector at a stated height.

Ethereum reads at the block number first read (eth_getBalance at that block), so the stated
height is the height of the amount. The in-process regtest and LiteSVM backends have no history:
the height is read before and after the balance and a change in between is an error (retry).
"""

from __future__ import annotations

from tholos.connectors.base import Connector, ConnectorError
from tholos.connectors.ethereum import EthereumRpc
from tholos.reserves.proof import Balance

NATIVE = {"bitcoin": "BTC", "ethereum": "ETH", "solana": "SOL"}


def balance_at(connector: Connector, address: str, asset: str = "") -> Balance:
    """The balance of `address` in `asset` (native if empty) and the height it holds at."""
    asset = asset or NATIVE[connector.chain]
    height = connector.height()
    if isinstance(connector, EthereumRpc) and asset == "ETH":
        raw = connector.call("eth_getBalance", address, hex(height))
        return Balance(asset, int(str(raw), 16), height)
    amount = connector.balance(address, "" if asset == NATIVE[connector.chain] else asset)
    if connector.height() != height:
        raise ConnectorError("the chain moved while reading a balance", retryable=True)
    return Balance(asset, amount, height)
