"""Solana on LiteSVM, the Solana runtime in-process (signature verification on), for tests and
the demo. Production uses a Solana JSON-RPC node; this backend keeps the same `Connector` face.

LiteSVM has no blocks: each accepted transaction lands in the next slot (the backend warps one
slot per transaction), so confirmations count the slots since. Deposits are the native transfers
seen in transactions broadcast through this backend (and airdrops made through it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.token.state import TokenAccount
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from tholos.connectors.base import ConnectorError, Deposit, TxStatus


@dataclass(frozen=True)
class _Landed:
    slot: int
    ok: bool
    detail: str
    deposits: tuple[tuple[str, int], ...]  # (destination, lamports)


def _system_transfers(tx: VersionedTransaction) -> tuple[tuple[str, int], ...]:
    message = tx.message
    keys = list(message.account_keys)
    found = []
    for ix in message.instructions:
        program = keys[ix.program_id_index]
        data = bytes(ix.data)
        if program == SYSTEM_PROGRAM and len(data) == 12 and data[:4] == b"\x02\x00\x00\x00":
            found.append((str(keys[ix.accounts[1]]), int.from_bytes(data[4:], "little")))
    return tuple(found)


class SolanaLiteSvm:
    """`Connector` over an in-process LiteSVM."""

    chain = "solana"

    def __init__(self, svm: LiteSVM | None = None, *, confirmations: int = 1) -> None:
        self.svm = svm or LiteSVM()
        self.required_confirmations = confirmations
        self._landed: dict[str, _Landed] = {}

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
        result = self.svm.airdrop(Pubkey.from_string(address), lamports)
        if isinstance(result, FailedTransactionMetadata):
            raise ConnectorError(f"airdrop failed: {result.err()}")
        slot = self.advance()
        self._landed[str(result.signature())] = _Landed(
            slot, True, "airdrop", ((address, lamports),)
        )

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
        result = self.svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            raise ConnectorError(f"transaction refused by the runtime: {result.err()}")
        slot = self.advance()
        deposits = _system_transfers(tx)
        self._landed[txid] = _Landed(slot, True, "", deposits)
        return txid

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
            Deposit(txid, to, "SOL", amount, landed.slot, head - landed.slot + 1)
            for txid, landed in self._landed.items()
            if landed.slot > since
            for to, amount in landed.deposits
            if to in watched
        ]
