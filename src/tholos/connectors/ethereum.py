"""Ethereum over standard JSON-RPC (any node: geth, reth, anvil, a provider).

Sync on purpose: the gateway calls connectors from worker threads, and one HTTP request per call
keeps failure handling plain. Amounts are wei / token base units as ints.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tholos.connectors.base import ConnectorError, Deposit, TxState, TxStatus

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
BALANCE_OF = "0x70a08231"
_ALREADY_KNOWN = ("already known", "known transaction", "already imported")


def keccak(data: bytes) -> bytes:
    from eth_hash.auto import keccak as _keccak

    return bytes(_keccak(data))


def _hex_int(value: Any, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ConnectorError(f"node answered a malformed {what}: {value!r}")
    return int(value, 16)


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fee suggestion (wei per gas)."""

    base_fee: int
    max_priority_fee: int

    @property
    def max_fee(self) -> int:
        """Room for the base fee to double twice (as wallets suggest), plus the tip."""
        return 2 * self.base_fee + self.max_priority_fee


class EthereumRpc:
    """`Connector` for Ethereum over JSON-RPC at `url`."""

    chain = "ethereum"

    def __init__(self, url: str, *, timeout: float = 10.0, confirmations: int = 1) -> None:
        self.url = url
        self.timeout = timeout
        self.required_confirmations = confirmations
        self._next_id = 0

    # -- transport ----------------------------------------------------------------------------
    def call(self, method: str, *params: Any) -> Any:
        self._next_id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": list(params)}
        ).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise ConnectorError(f"{method}: node unreachable ({exc})", retryable=True) from None
        except json.JSONDecodeError:
            raise ConnectorError(f"{method}: node answered no JSON", retryable=True) from None
        if not isinstance(answer, dict):
            raise ConnectorError(f"{method}: malformed answer")
        if answer.get("error"):
            err = answer["error"]
            message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            raise ConnectorError(f"{method}: {message}")
        return answer.get("result")

    # -- reading ------------------------------------------------------------------------------
    def chain_id(self) -> int:
        return _hex_int(self.call("eth_chainId"), "chain id")

    def height(self) -> int:
        return _hex_int(self.call("eth_blockNumber"), "block number")

    def balance(self, address: str, asset: str = "") -> int:
        if not asset or asset == "ETH":
            return _hex_int(self.call("eth_getBalance", address, "latest"), "balance")
        if not asset.startswith("erc20:"):
            raise ConnectorError(f"unknown ethereum asset {asset!r}")
        data = BALANCE_OF + "00" * 12 + address[2:].lower()
        result = self.call("eth_call", {"to": asset[6:], "data": data}, "latest")
        return _hex_int(result, "token balance") if result not in (None, "0x") else 0

    def nonce(self, address: str, *, pending: bool = True) -> int:
        """The next nonce the chain expects for `address` (pending pool included)."""
        block = "pending" if pending else "latest"
        return _hex_int(self.call("eth_getTransactionCount", address, block), "nonce")

    def fees(self) -> Fees:
        block = self.call("eth_getBlockByNumber", "latest", False)
        base = _hex_int(block.get("baseFeePerGas", "0x0"), "base fee") if block else 0
        try:
            tip = _hex_int(self.call("eth_maxPriorityFeePerGas"), "priority fee")
        except ConnectorError:
            tip = 10**9
        return Fees(base_fee=base, max_priority_fee=tip)

    # -- sending and following ------------------------------------------------------------------
    def broadcast(self, raw: bytes) -> str:
        txid = "0x" + keccak(raw).hex()
        try:
            sent = self.call("eth_sendRawTransaction", "0x" + raw.hex())
        except ConnectorError as exc:
            if any(text in str(exc).lower() for text in _ALREADY_KNOWN) or self._known(txid):
                return txid  # idempotent by hash: the same bytes were sent before
            raise
        if sent != txid:
            raise ConnectorError(f"node reports hash {sent}, the transaction's is {txid}")
        return txid

    def _known(self, txid: str) -> bool:
        try:
            return self.call("eth_getTransactionByHash", txid) is not None
        except ConnectorError:
            return False

    def status(self, txid: str) -> TxStatus:
        receipt = self.call("eth_getTransactionReceipt", txid)
        if receipt is None:
            state: TxState = "pending" if self._known(txid) else "unknown"
            return TxStatus(txid, state)
        block = _hex_int(receipt["blockNumber"], "block number")
        confirmations = self.height() - block + 1
        ok = _hex_int(receipt.get("status", "0x1"), "status") == 1
        if not ok:
            return TxStatus(txid, "failed", confirmations, block, "reverted")
        done = confirmations >= self.required_confirmations
        return TxStatus(txid, "confirmed" if done else "pending", confirmations, block)

    def deposits(self, addresses: Sequence[str], since: int) -> list[Deposit]:
        """Native transfers (top-level `to`) and ERC-20 Transfer events to `addresses` in blocks
        (since, latest]. Internal transfers by contracts need a tracing node and are not seen."""
        watched = {a.lower(): a for a in addresses}
        head = self.height()
        found: list[Deposit] = []
        for number in range(since + 1, head + 1):
            block = self.call("eth_getBlockByNumber", hex(number), True)
            for tx in block.get("transactions", []) if block else []:
                to = (tx.get("to") or "").lower()
                value = _hex_int(tx.get("value", "0x0"), "value")
                if to in watched and value:
                    found.append(
                        Deposit(tx["hash"], watched[to], "ETH", value, number, head - number + 1)
                    )
        if since < head and watched:
            topics = [TRANSFER_TOPIC, None, ["0x" + "00" * 12 + a[2:] for a in watched]]
            logs = self.call(
                "eth_getLogs", {"fromBlock": hex(since + 1), "toBlock": hex(head), "topics": topics}
            )
            for log in logs or []:
                to = "0x" + log["topics"][2][-40:]
                number = _hex_int(log["blockNumber"], "block number")
                found.append(
                    Deposit(
                        log["transactionHash"],
                        watched[to],
                        "erc20:" + log["address"],
                        _hex_int(log["data"], "amount"),
                        number,
                        head - number + 1,
                    )
                )
        return found
