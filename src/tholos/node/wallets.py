"""The node's own view of a wallet: the `WalletRef` a chain package parses a transaction against,
built from this node's key store (never from what the gateway sends), with the chain, network and
address type of the approved intent (`tholos.schemes.wallets`)."""

from __future__ import annotations

from collections.abc import Callable

from tholos.chains.base import WalletRef
from tholos.governance.requests import Intent
from tholos.node.vault import KeyVault, VaultError
from tholos.schemes.wallets import wallet_ref


def wallet_resolver(vault: KeyVault) -> Callable[[Intent], WalletRef]:
    """A `WalletResolver` over this node's vault (KeyError for a key it does not hold)."""

    def resolve(intent: Intent) -> WalletRef:
        declared = intent.transaction
        if declared is None:
            raise ValueError("not a transaction intent")
        try:
            rec = vault.view(intent.key_id)
        except VaultError:
            raise KeyError(intent.key_id) from None
        return wallet_ref(
            intent.key_id,
            rec.scheme,
            rec.public,
            rec.meta,
            chain=intent.chain,
            network=declared.network,
            address_type=declared.address_type,
        )

    return resolve
