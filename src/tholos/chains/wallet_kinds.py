"""Which wallets a threshold key can be: per chain, the networks and address types, and the
signing scheme each address type needs. Pure; the gateway checks a new wallet with it, the CLI
rebuilds a `WalletRef` from what the gateway shows (`ref_of`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tholos.chains.base import ChainError, WalletRef
from tholos.crypto import bip32
from tholos.crypto.errors import InvalidElement, InvalidInput

# chain -> address type -> scheme; the first address type is the default.
ADDRESS_TYPES: dict[str, dict[str, str]] = {
    "bitcoin": {"p2tr": "bip340", "p2wpkh": "ecdsa"},
    "ethereum": {"eoa": "ecdsa"},
    "solana": {"account": "ed25519"},
}
BITCOIN_NETWORKS = ("mainnet", "testnet", "signet", "regtest")
SOLANA_NETWORKS = ("mainnet-beta", "devnet", "testnet", "localnet")


@dataclass(frozen=True)
class WalletKind:
    chain: str
    network: str  # normalised (ethereum: the chain id in decimal)
    address_type: str
    scheme: str  # the signing scheme the key must have


def wallet_kind(
    chain: str, network: str, address_type: str | None = None, scheme: str | None = None
) -> WalletKind:
    """Check and normalise a wallet's chain, network and address type. With no address type, the
    one the key's `scheme` gives (or the chain's default); ChainError naming the field otherwise."""
    types = ADDRESS_TYPES.get(chain)
    if types is None:
        raise ChainError(
            f"unknown chain {chain!r} (one of {', '.join(ADDRESS_TYPES)})", field="chain"
        )
    if address_type is None:
        fits = [t for t, s in types.items() if s == scheme] if scheme else list(types)
        if not fits:
            raise ChainError(
                f"{chain} wallets need a {' or '.join(sorted(set(types.values())))} key, "
                f"not {scheme}",
                field="key_id",
            )
        address_type = fits[0]
    need = types.get(address_type)
    if need is None:
        raise ChainError(
            f"unknown {chain} address type {address_type!r} (one of {', '.join(types)})",
            field="address_type",
        )
    if scheme is not None and scheme != need:
        raise ChainError(
            f"{chain} {address_type} wallets need a {need} key, not {scheme}", field="key_id"
        )
    return WalletKind(chain, _network(chain, network), address_type, need)


def _network(chain: str, network: str) -> str:
    if chain == "ethereum":
        from tholos.chains.ethereum.wallet import normalise_network

        return normalise_network(network)
    known = BITCOIN_NETWORKS if chain == "bitcoin" else SOLANA_NETWORKS
    if network not in known:
        raise ChainError(
            f"unknown {chain} network {network[:64]!r} (one of {', '.join(known)})",
            field="network",
        )
    return network


def root_node(ref: WalletRef) -> bip32.ExtendedPublicKey | None:
    """The wallet's xpub node (depth 0), or None for wallets that derive nothing (Solana)."""
    if ref.chain_code is None:
        return None
    from tholos.crypto.groups.secp256k1 import SECP256K1

    try:
        point = SECP256K1.deserialize_element(ref.public_key)
    except (InvalidInput, InvalidElement):
        raise ChainError("not a secp256k1 public key", field="public_key") from None
    testnet = ref.chain == "bitcoin" and ref.network != "mainnet"
    return bip32.ExtendedPublicKey(public_key=point, chain_code=ref.chain_code, testnet=testnet)


def ref_of(shown: Mapping[str, Any]) -> WalletRef:
    """A WalletRef from a wallet as `GET /v1/wallets/{id}` shows it (xpub or public key)."""
    chain_code = None
    if shown.get("xpub"):
        node = bip32.ExtendedPublicKey.from_xpub(str(shown["xpub"]))
        key, chain_code = node.key_bytes, node.chain_code
    else:
        key = bytes.fromhex(str(shown["public_key"]))
    return WalletRef(
        wallet_id=str(shown["wallet_id"]),
        chain=str(shown["chain"]),
        network=str(shown["network"]),
        scheme=str(shown["scheme"]),
        address_type=str(shown["address_type"]),
        public_key=key,
        chain_code=chain_code,
    )
