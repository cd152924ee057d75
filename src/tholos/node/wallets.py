"""The node's own view of a wallet: the `WalletRef` a chain package parses a transaction against,
built from this node's key store (never from what the gateway sends).

bip340 and ecdsa wallets carry the 33-byte compressed root key and BIP32 chain code (the stored
xpub of an imported key, else `chain_code_for` the DKG key); ed25519 wallets the 32-byte key.
Chain, network and address type come from the approved intent; a scheme that cannot sign for that
address type is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from tholos.chains.base import ChainError, WalletRef
from tholos.crypto import bip32
from tholos.governance.requests import Intent
from tholos.node.vault import KeyVault, VaultError
from tholos.schemes import chain_code_for

# The scheme each (chain, address type) signs with.
ADDRESS_SCHEMES: dict[tuple[str, str], str] = {
    ("bitcoin", "p2tr"): "bip340",
    ("bitcoin", "p2wpkh"): "ecdsa",
    ("ethereum", "eoa"): "ecdsa",
    ("solana", "account"): "ed25519",
}


def wallet_resolver(vault: KeyVault) -> Callable[[Intent], WalletRef]:
    """A `WalletResolver` over this node's vault (KeyError for a key it does not hold)."""

    def resolve(intent: Intent) -> WalletRef:
        declared = intent.transaction
        if declared is None:
            raise ValueError("not a transaction intent")
        wanted = ADDRESS_SCHEMES.get((intent.chain, declared.address_type))
        if wanted is None:
            raise ChainError(
                f"no {declared.address_type!r} wallets on {intent.chain}",
                field="transaction.address_type",
            )
        try:
            rec = vault.record(intent.key_id)
        except VaultError:
            raise KeyError(intent.key_id) from None
        scheme = rec.scheme
        if scheme.name != wanted:
            raise ChainError(
                f"{declared.address_type} on {intent.chain} needs a {wanted} key, "
                f"key {intent.key_id} is {scheme.name}",
                field="transaction.address_type",
            )
        public = rec.share.public
        meta = rec.meta
        if wanted == "ed25519":
            key, chain_code = scheme.group.serialize_element(public.group_public_key), None
        else:
            if meta.get("xpub"):
                root = bip32.ExtendedPublicKey.from_xpub(str(meta["xpub"]))
            else:
                root = bip32.ExtendedPublicKey.from_public_package(public, chain_code_for(public))
            key, chain_code = root.key_bytes, root.chain_code
        return WalletRef(
            wallet_id=intent.key_id,
            chain=intent.chain,
            network=declared.network,
            scheme=scheme.name,
            address_type=declared.address_type,
            public_key=bytes(key),
            chain_code=chain_code,
        )

    return resolve
