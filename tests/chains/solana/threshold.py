"""A FROST-Ed25519 threshold wallet for the Solana tests: trusted-dealer shares (2 of 3) and an
in-process signing round by tholos.crypto, so the engine checks a real threshold signature."""

from __future__ import annotations

from typing import Any

from tests.crypto.helpers import trusted_dealer_keygen
from tholos.chains.base import WalletRef
from tholos.crypto.frost import (
    FROST_ED25519_SHA512,
    SigningPackage,
    aggregate,
    commit,
    sign,
    signing_public_key,
)
from tholos.crypto.keys import KeyShare, PublicKeyPackage


class ThresholdWallet:
    """2-of-3 FROST-Ed25519 key; `sign` runs both rounds with signers 1 and 3."""

    def __init__(self, network: str = "localnet") -> None:
        suite = FROST_ED25519_SHA512
        shares, public = trusted_dealer_keygen(suite.group, 2, 3)
        self._shares: dict[int, KeyShare[Any]] = shares
        self._public: PublicKeyPackage[Any] = public
        self.public_key = signing_public_key(suite, public)
        self.ref = WalletRef(
            wallet_id="w-sol",
            chain="solana",
            network=network,
            scheme="ed25519",
            address_type="account",
            public_key=self.public_key,
        )

    def sign(self, message: bytes, signers: tuple[int, ...] = (1, 3)) -> bytes:
        suite = FROST_ED25519_SHA512
        round1 = {i: commit(suite, self._shares[i]) for i in signers}
        package = SigningPackage({i: c for i, (_, c) in round1.items()}, message)
        z = {i: sign(suite, package, round1[i][0], self._shares[i]) for i in signers}
        return aggregate(suite, package, z, self._public)
