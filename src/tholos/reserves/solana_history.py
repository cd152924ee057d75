"""A Solana wallet's history over slots (from, to], for reconciliation, from what a node records
per transaction: `getSignaturesForAddress` pages an address's transactions, `getTransaction`
gives each one's fee and the balances the runtime left before and after it.

SOL: the change of the wallet's lamports in each transaction, the fee line where the wallet
paid it (it is the fee payer, first account key), the rest a deposit or a withdrawal. SPL tokens
(`spl:<mint>`): the change of each of the wallet's token accounts of the mint (its associated
token accounts of both token programs) in `preTokenBalances`/`postTokenBalances`; their fees are
lines of the SOL report.

Balances: the opening is what the last transaction at or before the opening slot left (none
yet: zero); the closing is what the first transaction after the closing slot found, or the
balance now when there is none. A change no transaction records (rent collection, a validator
reward, an account edited outside the runtime) is therefore an unexplained balance. A token
account closed before the report is not found (only accounts that exist now are walked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from tholos.chains.solana import TOKEN_2022_PROGRAM, TOKEN_PROGRAM
from tholos.connectors.base import ConnectorError
from tholos.reserves.reconcile import History, Kind, Movement

ASSET = "SOL"
TOKEN_PROGRAMS = (TOKEN_PROGRAM, TOKEN_2022_PROGRAM)
PAGE = 1000

Amounts = Callable[[dict[str, Any], str], tuple[int, int] | None]


class SignatureSource(Protocol):
    """What a Solana backend answers about an address's transactions."""

    def signatures(
        self, address: str, before: str | None = None, limit: int = PAGE
    ) -> list[dict[str, Any]]: ...

    def transaction(self, signature: str) -> dict[str, Any] | None: ...

    def balance(self, address: str, asset: str = "") -> int: ...


def token_accounts(owner: str, mint: str) -> list[str]:
    """The owner's associated token accounts of `mint` under both token programs."""
    o, m = Pubkey.from_string(owner), Pubkey.from_string(mint)
    return [str(get_associated_token_address(o, m, p)) for p in TOKEN_PROGRAMS]


def _keys(tx: dict[str, Any]) -> list[str]:
    keys = [k if isinstance(k, str) else str(k.get("pubkey")) for k in
            tx["transaction"]["message"]["accountKeys"]]  # fmt: skip
    loaded = (tx.get("meta") or {}).get("loadedAddresses") or {}
    return keys + list(loaded.get("writable", [])) + list(loaded.get("readonly", []))


def _lamports(tx: dict[str, Any], address: str) -> tuple[int, int] | None:
    keys = _keys(tx)
    if address not in keys:
        return None
    i, meta = keys.index(address), tx["meta"]
    return int(meta["preBalances"][i]), int(meta["postBalances"][i])


def _token(mint: str) -> Amounts:
    def amounts(tx: dict[str, Any], account: str) -> tuple[int, int] | None:
        keys, meta = _keys(tx), tx.get("meta") or {}
        if account not in keys:
            return None
        i = keys.index(account)

        def amount(entries: list[dict[str, Any]] | None) -> int:
            for e in entries or []:
                if int(e["accountIndex"]) == i and e.get("mint") == mint:
                    return int(e["uiTokenAmount"]["amount"])
            return 0  # not a token account of the mint at that moment (not created, closed)

        return amount(meta.get("preTokenBalances")), amount(meta.get("postTokenBalances"))

    return amounts


def _walk(source: SignatureSource, address: str, start: int) -> list[dict[str, Any]]:
    """The address's signatures, newest first, down to the first at or below slot `start`."""
    out: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        page = source.signatures(address, before, PAGE)
        for entry in page:
            out.append(entry)
            if int(entry["slot"]) <= start:
                return out
        if len(page) < PAGE:
            return out
        before = str(page[-1]["signature"])


def _fetch(source: SignatureSource, signature: str) -> dict[str, Any]:
    tx = source.transaction(signature)
    if tx is None or "meta" not in tx:
        raise ConnectorError(f"the node has no transaction {signature} (pruned history?)")
    return tx


def _account_history(
    source: SignatureSource, account: str, asset: str, amounts: Amounts, start: int, end: int,
    fees_of: str | None,
) -> History:  # fmt: skip
    entries = _walk(source, account, start)
    if not entries and asset != ASSET:
        return History([], 0, 0)  # a token account no transaction ever created: none
    anchor = next((e for e in entries if int(e["slot"]) <= start), None)
    after = [e for e in entries if int(e["slot"]) > end]
    period = [e for e in reversed(entries) if start < int(e["slot"]) <= end]
    opening = 0
    if anchor is not None:
        found = amounts(_fetch(source, str(anchor["signature"])), account)
        opening = found[1] if found else 0
    if after:
        found = amounts(_fetch(source, str(after[-1]["signature"])), account)
        closing = found[0] if found else 0
    else:
        closing = source.balance(account, "" if asset == ASSET else f"spl-account:{account}")
    moves: list[Movement] = []
    for e in period:
        txid, slot = str(e["signature"]), int(e["slot"])
        tx = _fetch(source, txid)
        found = amounts(tx, account)
        if found is None:
            continue
        keys = _keys(tx)
        fee = int(tx["meta"]["fee"]) if fees_of is not None and keys[0] == fees_of else 0
        if fee:
            moves.append(Movement(txid, slot, "fee", asset, fee, account))
        value = found[1] - found[0] + fee
        if value:
            other = _counterparty(tx, account, amounts, value)
            kind: Kind = "deposit" if value > 0 else "withdrawal"
            moves.append(Movement(txid, slot, kind, asset, abs(value), account, other))
    return History(moves, opening, closing)


def _counterparty(tx: dict[str, Any], account: str, amounts: Amounts, value: int) -> str:
    """The account whose balance moved most the other way (the sender of a deposit, the
    receiver of a withdrawal); "" when none did."""
    best, best_delta = "", 0
    for key in _keys(tx):
        found = amounts(tx, key) if key != account else None
        if found is None:
            continue
        delta = found[1] - found[0]
        if (value > 0 and delta < best_delta) or (value < 0 and delta > best_delta):
            best, best_delta = key, delta
    return best


def history(source: SignatureSource, address: str, asset: str, start: int, end: int) -> History:
    """The wallet's (its one address) history of `asset` ("SOL" or "spl:<mint>") over slots
    (start, end]."""
    if start > end:
        raise ValueError(f"the period starts at {start}, after its end {end}")
    if asset == ASSET:
        return _account_history(source, address, ASSET, _lamports, start, end, address)
    if not asset.startswith("spl:"):
        raise ValueError(f"solana asset {asset!r}: SOL or spl:<mint>")
    mint = asset[4:]
    try:
        accounts = token_accounts(address, mint)
    except ValueError:
        raise ValueError(f"not a mint address: {mint[:60]!r}") from None
    parts = [_account_history(source, a, asset, _token(mint), start, end, None) for a in accounts]
    return History(
        [m for p in parts for m in p.movements],
        sum(p.opening for p in parts),
        sum(p.closing for p in parts),
    )
