"""Ethereum wallets on a threshold ECDSA key: chain ids, Keccak-256, EIP-55 addresses, derivation.

The wallet's xpub is the ecdsa key's root node (depth 0); the address at index i is the
Keccak-256 address of the BIP32 child `m/0/i`, derived from the public side only.
"""

from __future__ import annotations

from functools import lru_cache

from Crypto.Hash import keccak as _keccak

from tholos.chains.base import ChainError, WalletRef
from tholos.crypto import bip32
from tholos.crypto.errors import InvalidElement, InvalidInput
from tholos.crypto.groups.secp256k1 import SECP256K1

CHAIN = "ethereum"
SCHEME = "ecdsa"
ADDRESS_TYPE = "eoa"
MAX_INDEX = bip32.HARDENED - 1

NETWORK_NAMES = {
    "mainnet": 1,
    "sepolia": 11155111,
    "holesky": 17000,
    "anvil": 31337,
    "devnet": 31337,
}


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (the pre-standard SHA-3 padding Ethereum uses), from pycryptodome."""
    return bytes(_keccak.new(digest_bits=256, data=data).digest())


def normalise_network(network: str | int) -> str:
    """A chain id in decimal from a name (mainnet, sepolia, holesky, anvil/devnet) or an id."""
    if isinstance(network, bool):
        raise ChainError("a chain id or a network name", field="network")
    if isinstance(network, int):
        chain_id = network
    elif isinstance(network, str) and network.lower() in NETWORK_NAMES:
        chain_id = NETWORK_NAMES[network.lower()]
    elif isinstance(network, str) and network.isascii() and network.isdigit():
        chain_id = int(network)
    else:
        raise ChainError(
            f"unknown network {network!r}: a chain id in decimal or one of "
            + ", ".join(sorted(NETWORK_NAMES)),
            field="network",
        )
    if not 0 < chain_id < 2**64:
        raise ChainError("chain id out of range (1 .. 2^64-1)", field="network")
    return str(chain_id)


def chain_id_of(wallet: WalletRef) -> int:
    """The wallet's chain id; refuses anything but a canonical decimal id."""
    net = wallet.network
    if (
        not (isinstance(net, str) and net.isascii() and net.isdigit())
        or normalise_network(net) != net
    ):
        raise ChainError("an ethereum wallet's network is its chain id in decimal", field="network")
    return int(net)


def check_wallet(wallet: WalletRef) -> int:
    """Refuse a wallet this package cannot sign for; returns its chain id."""
    if wallet.chain != CHAIN:
        raise ChainError(f"not an ethereum wallet ({wallet.chain!r})", field="chain")
    if wallet.scheme != SCHEME:
        raise ChainError("ethereum wallets use the ecdsa scheme", field="scheme")
    if wallet.address_type != ADDRESS_TYPE:
        raise ChainError("ethereum wallets have address type 'eoa'", field="address_type")
    if not isinstance(wallet.public_key, bytes) or len(wallet.public_key) != 33:
        raise ChainError("33-byte compressed secp256k1 root key expected", field="public_key")
    if not isinstance(wallet.chain_code, bytes) or len(wallet.chain_code) != 32:
        raise ChainError("32-byte BIP32 chain code expected", field="chain_code")
    return chain_id_of(wallet)


@lru_cache(maxsize=4096)
def checksum_address(address20: bytes) -> str:
    """EIP-55 mixed-case checksum encoding of a 20-byte address (a letter is upper case where the
    nibble of Keccak-256(lower-case hex) at its position is >= 8); cached, addresses recur."""
    if len(address20) != 20:
        raise ChainError("an address is 20 bytes", field="address")
    low = address20.hex()
    digest = keccak256(low.encode("ascii")).hex()
    return "0x" + "".join([c.upper() if d > "7" else c for c, d in zip(low, digest, strict=False)])


def parse_address(text: object, field: str) -> bytes:
    """A 20-byte address from "0x" + 40 hex digits: all lower, all upper, or a valid EIP-55
    checksum (a mixed-case string with a wrong checksum is a typo and refused)."""
    if not isinstance(text, str) or len(text) != 42 or text[:2] not in ("0x", "0X"):
        raise ChainError("an address is 0x followed by 40 hex digits", field=field)
    body = text[2:]
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise ChainError("an address is 0x followed by 40 hex digits", field=field) from None
    if body != body.lower() and body != body.upper() and checksum_address(raw) != "0x" + body:
        raise ChainError("bad EIP-55 checksum", field=field)
    return raw


def public_key_address(uncompressed64: bytes) -> bytes:
    """The 20-byte address of a public key (last 20 bytes of Keccak-256 of x || y)."""
    return keccak256(uncompressed64)[12:]


def address_path(index: int) -> str:
    return f"m/0/{index}"


def check_index(index: object, field: str = "index") -> int:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= MAX_INDEX:
        raise ChainError(f"address index must be an integer 0 .. {MAX_INDEX}", field=field)
    return index


@lru_cache(maxsize=4096)
def _derive(public_key: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    """(20-byte address, 33-byte compressed key) of `m/0/index`; cached (pure, public data)."""
    try:
        root = bip32.ExtendedPublicKey(
            public_key=SECP256K1.deserialize_element(public_key), chain_code=chain_code
        )
        child = bip32.derive(root, [0, index]).public_key
    except (InvalidInput, InvalidElement) as exc:
        raise ChainError(str(exc), field="public_key") from None
    assert child is not None
    return public_key_address(child.format(compressed=False)[1:]), child.format(compressed=True)


def derive_address(wallet: WalletRef, index: int) -> tuple[bytes, bytes]:
    """(address, compressed child key) of the wallet's address `index`."""
    check_wallet(wallet)
    assert wallet.chain_code is not None
    return _derive(wallet.public_key, wallet.chain_code, check_index(index))
