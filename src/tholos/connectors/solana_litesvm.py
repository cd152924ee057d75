"""Solana on LiteSVM, the Solana runtime in-process (signature verification on), for tests and
the demo. Production uses a Solana JSON-RPC node; this backend keeps the same `Connector` face.

LiteSVM has no blocks: each accepted transaction lands in the next slot (the backend warps one
slot per transaction), so confirmations count the slots since. Deposits are the native transfers
seen in transactions broadcast through this backend (and airdrops made through it), and the SPL
token credits to token accounts they touched (credited to each account's owner as `spl:<mint>`).

Each transaction through this backend is kept as `getTransaction` would answer it (account keys,
fee, the lamport and token balances the runtime left before and after it), with the signatures
per address, newest first, as `getSignaturesForAddress` pages them: the history a JSON-RPC node
serves, here read from LiteSVM's accounts around each transaction. Accounts of address lookup
tables are not resolved (static keys only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.token.state import Mint, TokenAccount
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from tholos.chains.solana.programs import TOKEN_PROGRAMS
from tholos.connectors.base import ConnectorError, Deposit, TxStatus


@dataclass(frozen=True)
class _Landed:
    slot: int
    ok: bool
    detail: str
    deposits: tuple[tuple[str, str, int], ...]  # (destination, asset, base units)


def _system_transfers(tx: VersionedTransaction) -> tuple[tuple[str, str, int], ...]:
    message = tx.message
    keys = list(message.account_keys)
    found = []
    for ix in message.instructions:
        program = keys[ix.program_id_index]
        data = bytes(ix.data)
        if program == SYSTEM_PROGRAM and len(data) == 12 and data[:4] == b"\x02\x00\x00\x00":
            found.append((str(keys[ix.accounts[1]]), "SOL", int.from_bytes(data[4:], "little")))
    return tuple(found)


def _token_credits(
    before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]
) -> tuple[tuple[str, str, int], ...]:
    """(owner, `spl:<mint>`, base units) for each token account a transaction credited, from the
    token balances before and after it (an account it created had 0 before)."""
    held = {t["accountIndex"]: int(t["uiTokenAmount"]["amount"]) for t in before}
    credits = []
    for t in after:
        gained = int(t["uiTokenAmount"]["amount"]) - held.get(t["accountIndex"], 0)
        if gained > 0:
            credits.append((str(t["owner"]), f"spl:{t['mint']}", gained))
    return tuple(credits)


class SolanaLiteSvm:
    """`Connector` over an in-process LiteSVM."""

    chain = "solana"

    def __init__(self, svm: LiteSVM | None = None, *, confirmations: int = 1) -> None:
        self.svm = svm or LiteSVM()
        self.required_confirmations = confirmations
        self._landed: dict[str, _Landed] = {}
        self._history: dict[str, dict[str, Any]] = {}  # signature → getTransaction's answer
        self._by_address: dict[str, list[tuple[str, int]]] = {}  # oldest first
        self._token_accounts: set[Pubkey] = set()  # every token account a transaction touched

    def height(self) -> int:
        return int(self.svm.get_clock().slot)

    def advance(self) -> int:
        """Let one slot pass (LiteSVM has no clock of its own); returns the new slot."""
        slot = self.height() + 1
        self.svm.warp_to_slot(slot)
        self.svm.expire_blockhash()
        return slot

    def recent_blockhash(self) -> str:
        return str(self.svm.latest_blockhash())

    def fund(self, address: str, lamports: int) -> None:
        """Airdrop (tests and the demo); recorded as a deposit."""
        before = self._balances([address])
        result = self.svm.airdrop(Pubkey.from_string(address), lamports)
        if isinstance(result, FailedTransactionMetadata):
            raise ConnectorError(f"airdrop failed: {result.err()}")
        slot = self.advance()
        signature = str(result.signature())
        self._landed[signature] = _Landed(slot, True, "airdrop", ((address, "SOL", lamports),))
        self._keep(signature, slot, [address], 0, before, self._balances([address]))

    def _token(self, key: Pubkey) -> TokenAccount | None:
        account = self.svm.get_account(key)
        if account is None or account.owner not in TOKEN_PROGRAMS or len(account.data) < 165:
            return None  # not a token account (a mint is 82 bytes)
        return TokenAccount.from_bytes(bytes(account.data)[:165])

    def _holdings(self, keys: Sequence[Pubkey]) -> dict[Pubkey, TokenAccount]:
        return {k: t for k in keys if (t := self._token(k)) is not None}

    def token_balances(self, address: str) -> dict[str, int]:
        """Base units per `spl:<mint>` over the token accounts of `address` seen here."""
        owner = Pubkey.from_string(address)
        totals: dict[str, int] = {}
        for token in self._holdings(sorted(self._token_accounts, key=str)).values():
            if token.owner == owner:
                asset = f"spl:{token.mint}"
                totals[asset] = totals.get(asset, 0) + int(token.amount)
        return totals

    def balance(self, address: str, asset: str = "") -> int:
        if not asset or asset == "SOL":
            return int(self.svm.get_balance(Pubkey.from_string(address)) or 0)
        if not asset.startswith("spl-account:"):
            raise ConnectorError("token balances are read per token account: 'spl-account:<addr>'")
        account = self.svm.get_account(Pubkey.from_string(asset.split(":", 1)[1]))
        return 0 if account is None else int(TokenAccount.from_bytes(bytes(account.data)).amount)

    def broadcast(self, raw: bytes) -> str:
        try:
            tx = VersionedTransaction.from_bytes(raw)
        except ValueError as exc:
            raise ConnectorError(f"not a Solana transaction: {exc}") from None
        txid = str(tx.signatures[0])
        if txid in self._landed:
            return txid  # idempotent by signature
        keys = [str(k) for k in tx.message.account_keys]
        before = self._balances(keys)
        result = self.svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            raise ConnectorError(f"transaction refused by the runtime: {result.err()}")
        after = self._balances(keys)
        slot = self.advance()
        deposits = _system_transfers(tx) + _token_credits(before[1], after[1])
        self._token_accounts.update(Pubkey.from_string(keys[t["accountIndex"]]) for t in after[1])
        self._landed[txid] = _Landed(slot, True, "", deposits)
        self._keep(txid, slot, keys, int(result.fee()), before, after)
        return txid

    def _balances(self, keys: Sequence[str]) -> tuple[list[int], list[dict[str, Any]]]:
        """Lamports of each key, and the token balances of those that are token accounts (in
        getTransaction's `preTokenBalances` shape)."""
        lamports, tokens = [], []
        for i, key in enumerate(keys):
            account = self.svm.get_account(Pubkey.from_string(key))
            lamports.append(0 if account is None else int(account.lamports))
            if account is None or account.owner not in TOKEN_PROGRAMS:
                continue
            try:
                state = TokenAccount.from_bytes(bytes(account.data)[:165])
            except ValueError:
                continue  # a mint or another account of the token program
            mint = self.svm.get_account(state.mint)
            decimals = Mint.from_bytes(bytes(mint.data)[:82]).decimals if mint else 0
            tokens.append(
                {"accountIndex": i, "mint": str(state.mint), "owner": str(state.owner),
                 "programId": str(account.owner),
                 "uiTokenAmount": {"amount": str(state.amount), "decimals": decimals}}
            )  # fmt: skip
        return lamports, tokens

    def _keep(
        self,
        signature: str,
        slot: int,
        keys: Sequence[str],
        fee: int,
        before: tuple[list[int], list[dict[str, Any]]],
        after: tuple[list[int], list[dict[str, Any]]],
    ) -> None:
        self._history[signature] = {
            "slot": slot,
            "blockTime": int(self.svm.get_clock().unix_timestamp),
            "transaction": {"signatures": [signature], "message": {"accountKeys": list(keys)}},
            "meta": {
                "err": None,
                "fee": fee,
                "preBalances": before[0],
                "postBalances": after[0],
                "preTokenBalances": before[1],
                "postTokenBalances": after[1],
            },
        }
        for key in keys:
            self._by_address.setdefault(key, []).append((signature, slot))

    def signatures(
        self, address: str, before: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """`getSignaturesForAddress`: the transactions touching `address`, newest first,
        starting after `before`."""
        found = list(reversed(self._by_address.get(address, [])))
        if before is not None:
            newer = [s for s, _ in found]
            found = found[newer.index(before) + 1 :] if before in newer else []
        return [{"signature": s, "slot": slot, "err": None} for s, slot in found[:limit]]

    def transaction(self, signature: str) -> dict[str, Any] | None:
        """`getTransaction` (json encoding) of a transaction that went through this backend."""
        return self._history.get(signature)

    def status(self, txid: str) -> TxStatus:
        landed = self._landed.get(txid)
        if landed is None:
            return TxStatus(txid, "unknown")
        confirmations = self.height() - landed.slot + 1
        done = confirmations >= self.required_confirmations
        return TxStatus(txid, "confirmed" if done else "pending", confirmations, landed.slot)

    def deposits(self, addresses: Sequence[str], since: int) -> list[Deposit]:
        watched = set(addresses)
        head = self.height()
        return [
            Deposit(txid, to, asset, amount, landed.slot, head - landed.slot + 1)
            for txid, landed in self._landed.items()
            if landed.slot > since
            for to, asset, amount in landed.deposits
            if to in watched
        ]
