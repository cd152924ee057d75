"""What every chain connector offers (one per chain and backend)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

TxState = Literal["unknown", "pending", "confirmed", "failed"]


class ConnectorError(RuntimeError):
    """The chain backend refused or could not be reached; `retryable` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class TxStatus:
    txid: str
    state: TxState
    confirmations: int = 0
    block: int | None = None  # height / number / slot of the block that holds it
    detail: str = ""


@dataclass(frozen=True)
class Deposit:
    """Value that arrived at a watched address."""

    txid: str
    address: str
    asset: str
    amount: int
    block: int
    confirmations: int


@runtime_checkable
class Connector(Protocol):
    chain: str

    def height(self) -> int:
        """The backend's current block height (number, slot)."""
        ...

    def balance(self, address: str, asset: str = "") -> int:
        """Balance in base units; `asset` empty for the native asset."""
        ...

    def broadcast(self, raw: bytes) -> str:
        """Send a signed transaction; returns its id. Idempotent: sending it again is no error."""
        ...

    def status(self, txid: str) -> TxStatus: ...

    def deposits(self, addresses: Sequence[str], since: int) -> list[Deposit]:
        """Deposits to `addresses` in blocks after `since` (a height): native, and tokens where
        the connector reads them (Solana: `spl:<mint>` into the addresses' token accounts)."""
        ...


@runtime_checkable
class TokenBalances(Protocol):
    """A connector that can list an address's token holdings (Solana's token accounts)."""

    def token_balances(self, address: str) -> dict[str, int]:
        """Base units per asset (`spl:<mint>`) over every token account `address` owns."""
        ...
