"""Solana over its JSON-RPC (production: a validator's RPC port or a provider).

Heights are slots (`getSlot`), as on the LiteSVM backend. A transaction is confirmed once the
cluster has finalized it, or once it is at least "confirmed" (supermajority voted) and
`confirmations` slots deep counting its own. Deposits are native (lamport) credits to watched
addresses, read per address with `getSignaturesForAddress` and `getTransaction` (post minus pre
balance, so transfers by any program count), and SPL token credits (`spl:<mint>`) to the token
accounts each address owns (its associated token accounts and any other; both token programs,
found with `getTokenAccountsByOwner`), read the same way per token account from the
transaction's pre and post token balances. A token account closed before it is scanned is not
seen. Reads use commitment "confirmed".
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from tholos.chains.solana.programs import TOKEN_2022_PROGRAM, TOKEN_PROGRAM
from tholos.connectors import jsonrpc
from tholos.connectors.base import ConnectorError, Deposit, TxStatus

COMMITMENT = {"commitment": "confirmed"}
# JSON-RPC server errors of a node that is behind or busy (agave rpc custom_error.rs)
_RETRYABLE = {-32004, -32005, -32014, -32016}
_ALREADY = ("already been processed", "AlreadyProcessed")
# getGenesisHash → the network name wallets carry; any other genesis is a local cluster
GENESIS = {
    "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d": "mainnet-beta",
    "EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG": "devnet",
    "4uhcVJyU9pJkvQyS88uRDiswHXSCkY3zQawwpjk2NsNY": "testnet",
}
PAGE = 1000
TOKEN_PROGRAM_IDS = (str(TOKEN_PROGRAM), str(TOKEN_2022_PROGRAM))


class SolanaRpc:
    """`Connector` for Solana over JSON-RPC at `url`."""

    chain = "solana"

    def __init__(self, url: str, *, timeout: float = 15.0, confirmations: int = 1) -> None:
        self.url, self._auth = jsonrpc.split_credentials(url)
        self.timeout = timeout
        self.required_confirmations = confirmations
        self._next_id = 0

    def __repr__(self) -> str:
        return f"SolanaRpc({self.url!r})"

    def call(self, method: str, *params: Any) -> Any:
        self._next_id += 1
        try:
            return jsonrpc.call(
                self.url,
                method,
                list(params),
                timeout=self.timeout,
                request_id=self._next_id,
                auth=self._auth,
            )
        except jsonrpc.RpcError as exc:
            if exc.code in _RETRYABLE:
                raise jsonrpc.RpcError(method, exc.code, exc.node_message, retryable=True) from None
            raise

    # -- reading ------------------------------------------------------------------------------
    def network(self) -> str:
        """mainnet-beta, devnet, testnet by genesis hash; localnet otherwise."""
        return GENESIS.get(str(self.call("getGenesisHash")), "localnet")

    def height(self) -> int:
        return int(self.call("getSlot", COMMITMENT))

    def block_height(self) -> int:
        return int(self.call("getBlockHeight", COMMITMENT))

    def balance(self, address: str, asset: str = "") -> int:
        """Lamports; `spl-account:<token account>` or `spl:<mint>` (all of the owner's accounts
        of that mint, by getTokenAccountsByOwner) for tokens."""
        if not asset or asset == "SOL":
            return int(self.call("getBalance", address, COMMITMENT)["value"])
        if asset.startswith("spl-account:"):
            value = self.call("getTokenAccountBalance", asset.split(":", 1)[1], COMMITMENT)
            return int(value["value"]["amount"])
        if asset.startswith("spl:"):
            result = self.call(
                "getTokenAccountsByOwner",
                address,
                {"mint": asset[4:]},
                {**COMMITMENT, "encoding": "jsonParsed"},
            )
            return sum(
                int(a["account"]["data"]["parsed"]["info"]["tokenAmount"]["amount"])
                for a in result["value"]
            )
        raise ConnectorError(f"unknown solana asset {asset!r} (SOL, spl:<mint>, spl-account:<a>)")

    def token_accounts(self, owner: str) -> list[tuple[str, str, int]]:
        """(token account, mint, amount) of every token account `owner` holds, both programs."""
        out = []
        for program in TOKEN_PROGRAM_IDS:
            result = self.call(
                "getTokenAccountsByOwner",
                owner,
                {"programId": program},
                {**COMMITMENT, "encoding": "jsonParsed"},
            )
            for a in result["value"]:
                info = a["account"]["data"]["parsed"]["info"]
                out.append(
                    (str(a["pubkey"]), str(info["mint"]), int(info["tokenAmount"]["amount"]))
                )
        return out

    def token_balances(self, address: str) -> dict[str, int]:
        """Base units per `spl:<mint>` over every token account `address` owns."""
        totals: dict[str, int] = {}
        for _, mint, amount in self.token_accounts(address):
            totals[f"spl:{mint}"] = totals.get(f"spl:{mint}", 0) + amount
        return totals

    def recent_blockhash(self) -> str:
        return str(self.call("getLatestBlockhash", COMMITMENT)["value"]["blockhash"])

    def fee_for_message(self, message: bytes) -> int:
        """Lamports the cluster charges for this serialized message; retryable if its blockhash
        is unknown to the node (null answer)."""
        encoded = base64.b64encode(message).decode()
        fee = self.call("getFeeForMessage", encoded, COMMITMENT)["value"]
        if fee is None:
            raise ConnectorError(
                "getFeeForMessage: blockhash not known to the node", retryable=True
            )
        return int(fee)

    # -- sending and following ------------------------------------------------------------------
    def broadcast(self, raw: bytes) -> str:
        from solders.transaction import VersionedTransaction

        try:
            txid = str(VersionedTransaction.from_bytes(raw).signatures[0])
        except (ValueError, IndexError) as exc:
            raise ConnectorError(f"not a Solana transaction: {exc}") from None
        options = {"encoding": "base64", "preflightCommitment": "confirmed", "maxRetries": 0}
        try:
            sent = self.call("sendTransaction", base64.b64encode(raw).decode(), options)
        except jsonrpc.RpcError as exc:
            if any(t in exc.node_message for t in _ALREADY) or self._seen(txid):
                return txid  # idempotent by signature
            raise
        if sent != txid:
            raise ConnectorError(f"node reports signature {sent}, the transaction's is {txid}")
        return txid

    def _statuses(self, txid: str) -> Any:
        result = self.call("getSignatureStatuses", [txid], {"searchTransactionHistory": True})
        return result["value"][0]

    def _seen(self, txid: str) -> bool:
        try:
            return self._statuses(txid) is not None
        except ConnectorError:
            return False

    def status(self, txid: str) -> TxStatus:
        found = self._statuses(txid)
        if found is None:
            return TxStatus(txid, "unknown")
        slot = int(found["slot"])
        confirmations = max(self.height() - slot + 1, 1)
        if found.get("err") is not None:
            return TxStatus(txid, "failed", confirmations, slot, str(found["err"]))
        level = found.get("confirmationStatus")
        done = level == "finalized" or (
            level == "confirmed" and confirmations >= self.required_confirmations
        )
        return TxStatus(txid, "confirmed" if done else "pending", confirmations, slot)

    def deposits(self, addresses: Sequence[str], since: int) -> list[Deposit]:
        """Lamport and SPL token credits to `addresses` in slots after `since`."""
        head = self.height()
        found: list[Deposit] = []
        read: dict[str, Any] = {}  # one getTransaction per signature and call

        def transaction(signature: str) -> Any:
            if signature not in read:
                read[signature] = self.call(
                    "getTransaction",
                    signature,
                    {**COMMITMENT, "encoding": "json", "maxSupportedTransactionVersion": 0},
                )
            return read[signature]

        for address in addresses:
            for signature, slot in self._signatures(address, since):
                tx = transaction(signature)
                credit = _credit(tx, address) if tx else 0
                if credit > 0:
                    found.append(Deposit(signature, address, "SOL", credit, slot, head - slot + 1))
            accounts = {account for account, _, _ in self.token_accounts(address)}
            touched: dict[str, int] = {}
            for account in sorted(accounts):
                touched.update(self._signatures(account, since))
            for signature, slot in touched.items():
                tx = transaction(signature)
                for mint, amount in (_token_credits(tx, address, accounts) if tx else {}).items():
                    if amount > 0:
                        found.append(
                            Deposit(
                                signature, address, f"spl:{mint}", amount, slot, head - slot + 1
                            )
                        )
        return sorted(found, key=lambda d: (d.block, d.txid, d.asset))

    def signatures(
        self, address: str, before: str | None = None, limit: int = PAGE
    ) -> list[dict[str, Any]]:
        """One page of `getSignaturesForAddress` (newest first, failed ones included)."""
        options: dict[str, Any] = {**COMMITMENT, "limit": limit}
        if before:
            options["before"] = before
        page = self.call("getSignaturesForAddress", address, options)
        if not isinstance(page, list):
            raise ConnectorError("getSignaturesForAddress answered no list")
        return page

    def transaction(self, signature: str) -> dict[str, Any] | None:
        """`getTransaction` in json encoding (v0 messages included); None when unknown."""
        found = self.call(
            "getTransaction",
            signature,
            {**COMMITMENT, "encoding": "json", "maxSupportedTransactionVersion": 0},
        )
        return dict(found) if found else None

    def _signatures(self, address: str, since: int) -> list[tuple[str, int]]:
        """Successful signatures touching `address` in slots after `since`, paged newest first."""
        out: list[tuple[str, int]] = []
        before: str | None = None
        while True:
            options: dict[str, Any] = {**COMMITMENT, "limit": PAGE}
            if before:
                options["before"] = before
            page = self.call("getSignaturesForAddress", address, options)
            for entry in page:
                if int(entry["slot"]) <= since:
                    return out
                if entry.get("err") is None:
                    out.append((entry["signature"], int(entry["slot"])))
            if len(page) < PAGE:
                return out
            before = page[-1]["signature"]


def _keys(tx: dict[str, Any]) -> list[str]:
    """The transaction's account keys in index order (static, then loaded writable)."""
    meta = tx.get("meta") or {}
    keys = tx["transaction"]["message"]["accountKeys"]
    keys = [k if isinstance(k, str) else k.get("pubkey") for k in keys]
    return keys + list((meta.get("loadedAddresses") or {}).get("writable", []))


def _token_credits(tx: dict[str, Any], owner: str, accounts: set[str]) -> dict[str, int]:
    """Per mint, what the token accounts of `owner` (those in `accounts`, or any the node names
    with that owner) gained in this transaction: post minus pre token balance (none before: 0)."""
    meta = tx.get("meta") or {}
    if meta.get("err") is not None:
        return {}
    keys = _keys(tx)
    change: dict[str, int] = {}
    for sign, entries in ((-1, meta.get("preTokenBalances")), (1, meta.get("postTokenBalances"))):
        for entry in entries or []:
            index = int(entry["accountIndex"])
            key = keys[index] if index < len(keys) else ""
            if key in accounts or entry.get("owner") == owner:
                amount = int(entry["uiTokenAmount"]["amount"])
                change[entry["mint"]] = change.get(entry["mint"], 0) + sign * amount
    return change


def _credit(tx: dict[str, Any], address: str) -> int:
    meta = tx.get("meta") or {}
    if meta.get("err") is not None:
        return 0
    keys = _keys(tx)
    if address not in keys:
        return 0
    i = keys.index(address)
    return int(meta["postBalances"][i]) - int(meta["preBalances"][i])
