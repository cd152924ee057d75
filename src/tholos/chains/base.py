"""What every chain package offers: wallet addresses, a parse of an unsigned transaction into the
intent it really carries, and the assembly of the signed transaction.

Chain code is pure (no I/O) and shared: the nodes use it to decide what they sign, the gateway,
CLI and console to build and display. Only a node's own parse counts. A chain package imports
`tholos.crypto` (BIP32 public derivation) and chain libraries, never node, gateway or governance.

Layout of a wallet on a threshold key (BIP32 non-hardened, from the key's public side only; the
wallet's xpub is the key's root node, depth 0): receive addresses at `m/0/i`, change at `m/1/i`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Encoding = Literal["hex", "base64"]


class ChainError(ValueError):
    """A transaction or address the chain package refuses. `field` names what is wrong
    (e.g. "outputs[1].amount", "chain_id", "inputs[0].sighash_type"), for the refusal message."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


@dataclass(frozen=True)
class WalletRef:
    """What a node knows of a wallet from its own key store; enough to derive every address.

    `public_key` is the key's group public key as the scheme serialises it (bip340: 32-byte x-only
    is *not* enough for BIP32, so bip340 and ecdsa wallets carry the 33-byte compressed root key);
    `chain_code` is the BIP32 chain code of the root node (None where the chain derives nothing).
    `network`: bitcoin `mainnet|testnet|signet|regtest`; ethereum the chain id in decimal
    ("1", "11155111", "31337"); solana `mainnet-beta|devnet|testnet|localnet`.
    """

    wallet_id: str
    chain: str
    network: str
    scheme: str
    address_type: str  # bitcoin "p2tr" | "p2wpkh"; ethereum "eoa"; solana "account"
    public_key: bytes
    chain_code: bytes | None = None


@dataclass(frozen=True)
class AddressInfo:
    address: str
    index: int
    path: str  # relative to the wallet's xpub, e.g. "m/0/7"
    public_key: bytes  # taproot: the x-only internal key before the BIP341 tweak
    change: bool = False


@dataclass(frozen=True)
class Transfer:
    """One movement of value the transaction makes (or authorises)."""

    asset: str  # "BTC", "ETH", "SOL", "erc20:0x<checksummed contract>", "spl:<mint>"
    to: str  # normalised destination (checksummed EIP-55, bech32 lower case, base58)
    amount: int  # base units (sat, wei, lamports, token base units)
    action: str = "transfer"  # transfer | approve | transfer_from | permit | contract_creation
    source: str = ""  # where it comes from when that is not the wallet (transferFrom, SPL account)


@dataclass(frozen=True)
class ContractCall:
    """Calldata or an instruction the chain package does not decode into a transfer."""

    contract: str  # contract address / program id
    selector: str = ""  # "0x" + 4 bytes for EVM; "" for Solana programs
    value: int = 0


@dataclass(frozen=True)
class DerivedIntent:
    """The intent a node derives from the transaction itself: what policy and approvers see."""

    chain: str
    network: str
    kind: str  # "transaction" | "typed_data" | "message"
    transfers: tuple[Transfer, ...] = ()
    change: tuple[Transfer, ...] = ()  # outputs proven (by derivation) to return to the wallet
    fee: int = 0  # the most the transaction can pay in fees, native base units
    fee_asset: str = ""
    calls: tuple[ContractCall, ...] = ()
    details: Mapping[str, str | int] = field(default_factory=dict)  # nonce, gas, deadline, ...

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON form (ints stay ints); what is displayed, approved and policy-checked."""
        return {
            "chain": self.chain,
            "network": self.network,
            "kind": self.kind,
            "transfers": [t.__dict__.copy() for t in self.transfers],
            "change": [t.__dict__.copy() for t in self.change],
            "fee": self.fee,
            "fee_asset": self.fee_asset,
            "calls": [c.__dict__.copy() for c in self.calls],
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class SigningTarget:
    """One signature the transaction needs, computed by the node from the transaction itself."""

    message: bytes  # 32-byte sighash / digest (bitcoin, ethereum) or the message bytes (solana)
    path: str = "m"  # derivation path relative to the wallet's xpub
    taproot: bool = False  # sign under the BIP341 key-path output key (no script tree)


@dataclass(frozen=True)
class ParsedTransaction:
    intent: DerivedIntent
    targets: tuple[SigningTarget, ...]


@dataclass(frozen=True)
class SignedTransaction:
    raw: bytes  # broadcastable transaction
    encoding: Encoding  # how `raw` is shown: hex (bitcoin, ethereum) or base64 (solana)
    txid: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)  # e.g. {"psbt": base64 finalised PSBT}


@runtime_checkable
class Chain(Protocol):
    """One per chain. Every method raises ChainError (naming the field) on what it refuses."""

    name: str

    def address(self, wallet: WalletRef, index: int, *, change: bool = False) -> AddressInfo: ...

    def parse(self, wallet: WalletRef, payload: bytes) -> ParsedTransaction: ...

    def finalize(
        self, wallet: WalletRef, payload: bytes, signatures: Sequence[bytes]
    ) -> SignedTransaction:
        """Put one signature per target (in `parse`'s order) into the transaction."""
        ...
