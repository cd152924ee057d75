"""Balances read from a chain connector at a stated height.

Ethereum reads at the block number first read (eth_getBalance at that block), so the stated
height is the height of the amount. The in-process regtest and LiteSVM backends have no history:
the height is read before and after the balance and a change in between is an error (retry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def recheck(doc: Mapping[str, Any], connectors: Mapping[str, Connector]) -> list[str]:
    """Re-read each stated balance where a connector for its chain is given; one error string
    per balance that differs (or cannot be read at its stated height)."""
    errors: list[str] = []
    for i, entry in enumerate(doc.get("addresses") or []):
        connector = connectors.get(str(entry.get("chain")))
        if connector is None:
            continue
        stated = entry.get("balance") or {}
        address, height = str(entry.get("address")), stated.get("height")
        try:
            if isinstance(connector, EthereumRpc) and stated.get("asset") == "ETH":
                raw = connector.call("eth_getBalance", address, hex(int(str(height))))
                amount = int(str(raw), 16)
            elif connector.height() == height:
                amount = balance_at(connector, address, str(stated.get("asset"))).amount
            else:
                errors.append(
                    f"addresses[{i}]: {connector.chain} backend keeps no history: "
                    f"cannot re-read at height {height} (now {connector.height()})"
                )
                continue
        except (ConnectorError, ValueError, TypeError) as exc:
            errors.append(f"addresses[{i}]: balance not re-read: {exc}")
            continue
        if amount != stated.get("amount"):
            errors.append(
                f"addresses[{i}]: {address} holds {amount} at height {height}, "
                f"the proof states {stated.get('amount')}"
            )
    return errors
