"""A threshold ECDSA ethereum wallet for the chain tests: trusted-dealer shares (a stand-in for the
DKG), the wallet reference a node would hold, and in-process threshold signing at a BIP32 path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.crypto.threshold_keys import deal
from tholos.chains.base import WalletRef
from tholos.crypto import bip32, ecdsa
from tholos.crypto.groups.secp256k1 import SECP256K1
from tholos.crypto.keys import KeyShare
from tholos.schemes import chain_code_for


@dataclass
class ThresholdWallet:
    shares: list[KeyShare[Any]]
    wallet: WalletRef
    root: bip32.ExtendedPublicKey

    def sign(self, digest: bytes, path: str) -> ecdsa.EcdsaSignature:
        """One threshold signature (fresh presignatures, 2t-1 signers) under the key at `path`."""
        tweak = bip32.derive(self.root, path).tweak
        presigs, public = ecdsa.run_presign(self.shares)
        signers = self.shares[: ecdsa.min_participants(self.shares[0].public.threshold)]
        return ecdsa.sign(signers, presigs, public, digest, tweak=tweak)


def threshold_wallet(
    network: str = "1", t: int = 2, n: int = 3, secret: int | None = None
) -> ThresholdWallet:
    shares = deal(SECP256K1, t, n, secret=secret)
    public = shares[0].public
    chain_code = chain_code_for(public)
    root = bip32.ExtendedPublicKey.from_public_package(public, chain_code)
    wallet = WalletRef(
        wallet_id="w-eth",
        chain="ethereum",
        network=network,
        scheme="ecdsa",
        address_type="eoa",
        public_key=root.key_bytes,
        chain_code=chain_code,
    )
    return ThresholdWallet(shares=shares, wallet=wallet, root=root)
