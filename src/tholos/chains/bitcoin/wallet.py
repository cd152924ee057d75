"""A threshold key as a Bitcoin wallet: the documented layout, child keys and their scripts.

Layout (ours, documented; BIP86's hardened `m/86'/0'/0'` cannot be derived from the public side):
the wallet's xpub is the key's root node (depth 0; for DKG keys the chain code is
`tholos.schemes.chain_code_for`), receive addresses at `m/0/i`, change at `m/1/i`, non-hardened.

- "p2tr" (bip340 keys): internal key = x-only of the child key; output key = BIP341 tweak with no
  script tree (as BIP86); bech32m `bc1p`/`tb1p`/`bcrt1p`.
- "p2wpkh" (ecdsa keys): HASH160 of the compressed child key; bech32 `bc1q`/`tb1q`/`bcrt1q`.

Derivations are cached (pure functions of the root key, chain code and path).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from coincurve import PublicKeyXOnly
from embit.networks import NETWORKS
from embit.script import Script

from tholos.chains.base import ChainError, WalletRef
from tholos.crypto import bip32
from tholos.crypto.errors import InvalidElement, InvalidInput
from tholos.crypto.frost.bip340 import taproot_tweak
from tholos.crypto.groups.secp256k1 import SECP256K1

RECEIVE, CHANGE = 0, 1
MAX_INDEX = bip32.HARDENED - 1
# Which signing scheme each address type needs.
ADDRESS_SCHEMES = {"p2tr": "bip340", "p2wpkh": "ecdsa"}
EMBIT_NETWORKS: dict[str, dict[str, Any]] = {
    "mainnet": NETWORKS["main"],
    "testnet": NETWORKS["test"],
    "signet": NETWORKS["signet"],
    "regtest": NETWORKS["regtest"],
}


@dataclass(frozen=True)
class ChildKey:
    """The wallet's key at `m/branch/index` and the output script it owns."""

    branch: int
    index: int
    public_key: bytes  # 33-byte compressed child key
    internal_key: bytes  # x-only child key (the taproot internal key)
    script: bytes  # scriptPubKey of the wallet's address type

    @property
    def path(self) -> str:
        return f"m/{self.branch}/{self.index}"


@dataclass(frozen=True)
class WalletKey:
    """What a node needs of a wallet to derive and recognise its scripts."""

    root_key: bytes  # 33-byte compressed root key
    chain_code: bytes
    address_type: str  # "p2tr" | "p2wpkh"
    network: str
    fingerprint: bytes  # BIP32 fingerprint of the root node (the PSBT derivation fields' origin)

    @property
    def taproot(self) -> bool:
        return self.address_type == "p2tr"

    def child(self, branch: int, index: int) -> ChildKey:
        if branch not in (RECEIVE, CHANGE):
            raise ChainError(
                f"branch {branch} is not in the layout (0 receive, 1 change)", field="path"
            )
        if not 0 <= index <= MAX_INDEX:
            raise ChainError("index must be non-hardened (0 .. 2^31-1)", field="index")
        return _child(self.root_key, self.chain_code, self.address_type, branch, index)

    def address(self, script: bytes) -> str:
        return address_of(script, self.network)


def wallet_key(wallet: WalletRef) -> WalletKey:
    """Check a wallet reference for Bitcoin and return its derivation root; ChainError otherwise."""
    if wallet.chain != "bitcoin":
        raise ChainError(f"not a bitcoin wallet ({wallet.chain!r})", field="wallet.chain")
    if wallet.network not in EMBIT_NETWORKS:
        raise ChainError(
            f"unknown network {wallet.network!r} (mainnet, testnet, signet, regtest)",
            field="wallet.network",
        )
    scheme = ADDRESS_SCHEMES.get(wallet.address_type)
    if scheme is None:
        raise ChainError(
            f"unknown address type {wallet.address_type!r} (p2tr, p2wpkh)",
            field="wallet.address_type",
        )
    if wallet.scheme != scheme:
        raise ChainError(
            f"{wallet.address_type} needs a {scheme} key, not {wallet.scheme}",
            field="wallet.scheme",
        )
    if wallet.chain_code is None or len(wallet.chain_code) != 32:
        raise ChainError("a 32-byte BIP32 chain code is needed", field="wallet.chain_code")
    key = bytes(wallet.public_key)
    return _wallet_key(key, bytes(wallet.chain_code), wallet.address_type, wallet.network)


@lru_cache(maxsize=1024)
def _wallet_key(key: bytes, chain_code: bytes, address_type: str, network: str) -> WalletKey:
    root = _root(key, chain_code)
    return WalletKey(key, chain_code, address_type, network, root.fingerprint)


def _root(key: bytes, chain_code: bytes) -> bip32.ExtendedPublicKey:
    if len(key) != 33:
        raise ChainError("the root key must be 33-byte compressed SEC1", field="wallet.public_key")
    try:
        point = SECP256K1.deserialize_element(key)
        return bip32.ExtendedPublicKey(public_key=point, chain_code=chain_code)
    except (InvalidInput, InvalidElement):
        raise ChainError("not a secp256k1 public key", field="wallet.public_key") from None


@lru_cache(maxsize=4096)
def _branch(key: bytes, chain_code: bytes, branch: int) -> bip32.ExtendedPublicKey:
    return _root(key, chain_code).child(branch)[0]


@lru_cache(maxsize=65536)
def _child(key: bytes, chain_code: bytes, address_type: str, branch: int, index: int) -> ChildKey:
    try:
        node = _branch(key, chain_code, branch).child(index)[0]
    except InvalidInput as e:  # BIP32's "invalid child, use the next index" (probability 2^-127)
        raise ChainError(str(e), field="index") from None
    public_key = node.key_bytes
    internal = public_key[1:]
    if address_type == "p2tr":
        script = taproot_script(internal)
    else:
        script = b"\x00\x14" + bip32.hash160(public_key)
    return ChildKey(branch, index, public_key, internal, script)


def taproot_script(internal_key: bytes) -> bytes:
    """P2TR scriptPubKey of an x-only internal key with no script tree: output key
    Q = P + TapTweak(x(P))·G (BIP341, as BIP86 uses it)."""
    output = PublicKeyXOnly(internal_key)
    output.tweak_add(taproot_tweak(internal_key, b"").to_bytes(32, "big"))
    return b"\x51\x20" + output.format()


@lru_cache(maxsize=65536)
def address_of(script: bytes, network: str) -> str:
    """(Cached: embit's pure-Python bech32 is half of a parse otherwise.) The normalised (lower-case bech32/bech32m or base58) address of a script; scripts without
    an address form (OP_RETURN, bare scripts) as "script:<hex>"."""
    try:
        return str(Script(script).address(EMBIT_NETWORKS[network]))
    except Exception:  # embit raises ValueError or its own errors for address-less scripts
        return "script:" + script.hex()


def script_of(address: str, network: str) -> bytes:
    """The scriptPubKey of an address of this network; ChainError otherwise."""
    from embit.script import address_to_scriptpubkey

    try:
        script = bytes(address_to_scriptpubkey(address.strip()).data)
    except Exception:
        raise ChainError(f"not a bitcoin address: {address[:100]!r}", field="address") from None
    if (
        address_of(script, network) != address.strip().lower()
        and address_of(script, network) != address.strip()
    ):
        raise ChainError(f"address is not a {network} address", field="address")
    return script
