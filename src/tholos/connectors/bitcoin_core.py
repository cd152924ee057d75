"""Bitcoin over Bitcoin Core's JSON-RPC (production).

Auth: `http://user:password@host:8332/` (rpcauth) or `cookie=` the node's `.cookie` file, re-read
on every call since bitcoind writes a new one at each start. Balances and UTXOs come from
`scantxoutset` over `addr(...)` descriptors: stateless (no wallet to import into or rescan), at
the price of a scan of the UTXO set per call (seconds on mainnet). Deposits scan blocks with
`getblock` verbosity 2. `status` uses `getrawtransaction` verbose, which finds confirmed
transactions only on a node run with `-txindex=1` (mempool ones always); without it, a
confirmed transaction whose first output is still unspent is found through `gettxout`.
Amounts are satoshis; the node's BTC decimals are parsed exactly (`Decimal`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from embit.transaction import Transaction

from tholos.connectors import jsonrpc
from tholos.connectors.base import ConnectorError, Deposit, TxStatus

SATS = Decimal(100_000_000)
COINBASE_MATURITY = 100
# bitcoind's error codes (src/rpc/protocol.h)
RPC_IN_WARMUP = -28
RPC_CLIENT_IN_INITIAL_DOWNLOAD = -10
RPC_CLIENT_NOT_CONNECTED = -9
RPC_VERIFY_ALREADY_IN_CHAIN = -27
RPC_INVALID_ADDRESS_OR_KEY = -5
_RETRYABLE = {RPC_IN_WARMUP, RPC_CLIENT_IN_INITIAL_DOWNLOAD, RPC_CLIENT_NOT_CONNECTED}
_ALREADY_KNOWN = ("txn-already-known", "txn-already-in-mempool")
# getblockchaininfo's "chain" → the network name wallets carry
NETWORKS = {"main": "mainnet", "test": "testnet", "testnet4": "testnet", "signet": "signet"}


def sats(value: Any, what: str) -> int:
    """An amount in BTC as the node prints it → satoshis; exact, or ConnectorError."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ConnectorError(f"node answered a malformed {what}: {value!r}")
    amount = Decimal(value) * SATS
    if amount != amount.to_integral_value() or amount < 0:
        raise ConnectorError(f"node answered a {what} that is no whole number of satoshis")
    return int(amount)


class BitcoinCore:
    """`Connector` for Bitcoin over Bitcoin Core's JSON-RPC at `url`."""

    chain = "bitcoin"

    def __init__(
        self,
        url: str,
        *,
        cookie: Path | None = None,
        timeout: float = 30.0,
        confirmations: int = 1,
        scan_from: int = 0,
    ) -> None:
        """`scan_from`: the first block `deposits` reads (e.g. the wallets' creation height), so
        a watcher starting with no history does not walk the chain from genesis."""
        self.url, self._auth = jsonrpc.split_credentials(url)
        self.scan_from = scan_from
        self.cookie = cookie
        self.timeout = timeout
        self.required_confirmations = confirmations
        self._next_id = 0

    def __repr__(self) -> str:  # never the credentials
        return f"BitcoinCore({self.url!r})"

    # -- transport ----------------------------------------------------------------------------
    def _credentials(self) -> str | None:
        if self.cookie is None:
            return self._auth
        try:
            user, _, password = self.cookie.read_text().strip().partition(":")
        except OSError as exc:
            raise ConnectorError(
                f"cannot read the cookie file {self.cookie}: {exc.strerror}", retryable=True
            ) from None
        return jsonrpc.basic_auth(user, password)

    def call(self, method: str, *params: Any) -> Any:
        self._next_id += 1
        try:
            return jsonrpc.call(
                self.url,
                method,
                list(params),
                timeout=self.timeout,
                request_id=self._next_id,
                auth=self._credentials(),
                version="1.0",
            )
        except jsonrpc.RpcError as exc:
            if exc.code in _RETRYABLE:
                raise jsonrpc.RpcError(method, exc.code, exc.node_message, retryable=True) from None
            raise

    # -- reading ------------------------------------------------------------------------------
    def network(self) -> str:
        """The node's network as wallets name it (mainnet, testnet, signet, regtest)."""
        chain = str(self.call("getblockchaininfo")["chain"])
        return NETWORKS.get(chain, chain)

    def height(self) -> int:
        return int(self.call("getblockcount"))

    def utxos(self, address: str) -> list[dict[str, Any]]:
        """Unspent outputs to `address` (scantxoutset: txid, vout, amount in sats, height,
        coinbase), immature coinbases included as the node reports them."""
        result = self.call("scantxoutset", "start", [f"addr({address})"])
        if not result or not result.get("success", False):
            raise ConnectorError("scantxoutset did not complete", retryable=True)
        return [
            {
                "txid": u["txid"],
                "vout": int(u["vout"]),
                "amount": sats(u["amount"], "amount"),
                "height": int(u["height"]),
                "coinbase": bool(u.get("coinbase", False)),
            }
            for u in result.get("unspents", [])
        ]

    def balance(self, address: str, asset: str = "") -> int:
        """Spendable satoshis: immature coinbase outputs (under 100 confirmations) left out."""
        if asset not in ("", "BTC"):
            raise ConnectorError(f"bitcoin has no asset {asset!r}")
        head = self.height()
        return sum(
            u["amount"]
            for u in self.utxos(address)
            if not u["coinbase"] or head - u["height"] + 1 >= COINBASE_MATURITY
        )

    def fee_rate(self, target_blocks: int = 6) -> int:
        """estimatesmartfee for `target_blocks`, in sat/vB rounded up; retryable ConnectorError
        while the node has no estimate (fresh node, regtest)."""
        result = self.call("estimatesmartfee", target_blocks)
        if not result or "feerate" not in result:
            errors = "; ".join(result.get("errors", [])) if result else ""
            raise ConnectorError(f"no fee estimate: {errors or 'none'}", retryable=True)
        return math.ceil(sats(result["feerate"], "fee rate") / 1000)

    # -- sending and following ------------------------------------------------------------------
    def broadcast(self, raw: bytes) -> str:
        try:
            txid = str(Transaction.parse(raw).txid().hex())
        except Exception as exc:  # embit raises several types on malformed bytes
            raise ConnectorError(f"not a Bitcoin transaction: {exc}") from None
        try:
            sent = self.call("sendrawtransaction", raw.hex())
        except jsonrpc.RpcError as exc:
            known = exc.code == RPC_VERIFY_ALREADY_IN_CHAIN or any(
                t in exc.node_message for t in _ALREADY_KNOWN
            )
            if known:
                return txid  # idempotent: the same bytes are in the mempool or the chain
            raise
        if sent != txid:
            raise ConnectorError(f"node reports txid {sent}, the transaction's is {txid}")
        return txid

    def status(self, txid: str) -> TxStatus:
        try:
            tx = self.call("getrawtransaction", txid, True)
        except jsonrpc.RpcError as exc:
            if exc.code != RPC_INVALID_ADDRESS_OR_KEY:
                raise
            return self._status_from_utxo(txid)
        confirmations = int(tx.get("confirmations", 0) or 0)
        if not tx.get("blockhash") or confirmations <= 0:
            return TxStatus(txid, "pending")  # in the mempool
        return self._judged(txid, confirmations)

    def _status_from_utxo(self, txid: str) -> TxStatus:
        out = self.call("gettxout", txid, 0, True)
        if out is None:
            return TxStatus(txid, "unknown")
        confirmations = int(out.get("confirmations", 0))
        return (
            TxStatus(txid, "pending") if confirmations <= 0 else self._judged(txid, confirmations)
        )

    def _judged(self, txid: str, confirmations: int) -> TxStatus:
        block = self.height() - confirmations + 1
        done = confirmations >= self.required_confirmations
        return TxStatus(txid, "confirmed" if done else "pending", confirmations, block)

    def deposits(self, addresses: Sequence[str], since: int) -> list[Deposit]:
        """Outputs paying `addresses` in blocks (since, tip], read with getblock verbosity 2."""
        watched = set(addresses)
        head = self.height()
        found: list[Deposit] = []
        for number in range(max(since + 1, self.scan_from), head + 1) if watched else ():
            block = self.call("getblock", self.call("getblockhash", number), 2)
            for tx in block.get("tx", []):
                for out in tx.get("vout", []):
                    to = out.get("scriptPubKey", {}).get("address")
                    if to in watched:
                        amount = sats(out["value"], "output value")
                        found.append(
                            Deposit(tx["txid"], to, "BTC", amount, number, head - number + 1)
                        )
        return found
