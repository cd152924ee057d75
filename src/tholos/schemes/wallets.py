"""A threshold key's wallet as a chain package sees it (`tholos.chains.WalletRef`), from the key's
public side only: node and gateway build it from their own copy of the key's public package.

bip340 and ecdsa wallets carry the 33-byte compressed root key and BIP32 chain code (the stored
xpub of an imported key, else `chain_code_for` the DKG key); ed25519 wallets the 32-byte key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tholos.chains.base import ChainError, WalletRef
from tholos.crypto import bip32
from tholos.crypto.keys import PublicKeyPackage
from tholos.schemes.base import Scheme, chain_code_for

# The scheme each (chain, address type) signs with.
ADDRESS_SCHEMES: dict[tuple[str, str], str] = {
    ("bitcoin", "p2tr"): "bip340",
    ("bitcoin", "p2wpkh"): "ecdsa",
    ("ethereum", "eoa"): "ecdsa",
    ("solana", "account"): "ed25519",
}


def wallet_ref(
    wallet_id: str,
    scheme: Scheme,
    public: PublicKeyPackage[Any],
    meta: Mapping[str, Any],
    *,
    chain: str,
    network: str,
    address_type: str,
) -> WalletRef:
    """The wallet of one key for (chain, network, address type); a scheme that cannot sign for
    that address type is refused (ChainError naming `transaction.address_type`)."""
    wanted = ADDRESS_SCHEMES.get((chain, address_type))
    if wanted is None:
        raise ChainError(
            f"no {address_type!r} wallets on {chain}", field="transaction.address_type"
        )
    if scheme.name != wanted:
        raise ChainError(
            f"{address_type} on {chain} needs a {wanted} key, key {wallet_id} is {scheme.name}",
            field="transaction.address_type",
        )
    chain_code: bytes | None = None
    if wanted == "ed25519":
        key = scheme.group.serialize_element(public.group_public_key)
    else:
        if meta.get("xpub"):
            root = bip32.ExtendedPublicKey.from_xpub(str(meta["xpub"]))
            if not scheme.group.eq(root.public_key, public.group_public_key):
                raise ChainError("stored xpub does not match the key", field="wallet.xpub")
        else:
            root = bip32.ExtendedPublicKey.from_public_package(public, chain_code_for(public))
        key, chain_code = root.key_bytes, root.chain_code
    return WalletRef(
        wallet_id=wallet_id,
        chain=chain,
        network=network,
        scheme=scheme.name,
        address_type=address_type,
        public_key=bytes(key),
        chain_code=chain_code,
    )
