"""Bitcoin test support: threshold and plain-key wallets, their signers, and the independent
sighash oracle (python-bitcointx: BIP341 right on all vectors, BIP143)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bitcointx.core import CTransaction, CTxOut
from bitcointx.core.script import (
    SIGHASH_ALL,
    SIGVERSION_WITNESS_V0,
    CScript,
    SignatureHash,
    SignatureHashSchnorr,
)
from coincurve import PrivateKey
from embit import bip32 as embit_bip32
from embit.psbt import PSBT

from tests.crypto.helpers import trusted_dealer_keygen
from tests.crypto.threshold_keys import deal
from tholos.chains.base import SigningTarget, WalletRef
from tholos.crypto import bip32, ecdsa
from tholos.crypto.frost import FROST_BIP340, SigningPackage, aggregate, commit, sign
from tholos.crypto.groups.secp256k1 import SECP256K1
from tholos.schemes import chain_code_for

Signer = Callable[[SigningTarget], bytes]
SCHEMES = {"p2tr": "bip340", "p2wpkh": "ecdsa"}


@dataclass
class WalletUnderTest:
    wallet: WalletRef
    sign: Signer


def threshold_wallet(address_type: str, network: str = "regtest") -> WalletUnderTest:
    """A 2-of-3 trusted-dealer key; signatures by FROST-BIP340 (path tweak + taproot tweak) or
    threshold ECDSA (path tweak), computed in-process by tholos.crypto."""
    if address_type == "p2tr":
        shares, public = trusted_dealer_keygen(SECP256K1, 2, 3)
    else:
        dealt = deal(SECP256K1, 2, 3)
        shares, public = {s.identifier: s for s in dealt}, dealt[0].public
    root_key = SECP256K1.serialize_element(public.group_public_key)
    chain_code = chain_code_for(public)
    wallet = WalletRef(
        "w-" + address_type,
        "bitcoin",
        network,
        SCHEMES[address_type],
        address_type,
        root_key,
        chain_code,
    )
    root = bip32.ExtendedPublicKey(public_key=public.group_public_key, chain_code=chain_code)

    def frost(target: SigningTarget) -> bytes:
        tweak = bip32.derive(root, target.path).tweak
        signers = [1, 3]
        kw: dict[str, Any] = {"tweak": tweak, "merkle_root": b"" if target.taproot else None}
        r1 = {i: commit(FROST_BIP340, shares[i]) for i in signers}
        pkg = SigningPackage({i: c for i, (_, c) in r1.items()}, target.message)
        zs = {i: sign(FROST_BIP340, pkg, r1[i][0], shares[i], **kw) for i in signers}
        return bytes(aggregate(FROST_BIP340, pkg, zs, public, **kw))

    def threshold_ecdsa(target: SigningTarget) -> bytes:
        tweak = bip32.derive(root, target.path).tweak
        key_shares = list(shares.values())
        presigs, pre = ecdsa.run_presign(key_shares)
        return ecdsa.sign(key_shares, presigs, pre, target.message, tweak=tweak).to_recoverable()

    return WalletUnderTest(wallet, frost if address_type == "p2tr" else threshold_ecdsa)


def plain_wallet(address_type: str, seed: bytes = bytes(range(32))) -> WalletUnderTest:
    """A standard single-key wallet (embit xprv): signs with the child private key the xprv
    derives from the private side, to show our public-side layout is what wallets compute."""
    root = embit_bip32.HDKey.from_seed(seed)
    wallet = WalletRef(
        "w-plain-" + address_type,
        "bitcoin",
        "regtest",
        SCHEMES[address_type],
        address_type,
        root.key.get_public_key().sec(),
        root.chain_code,
    )

    def signer(target: SigningTarget) -> bytes:
        steps = [int(p) for p in target.path.split("/")[1:]]
        child = root.derive(steps).key
        if target.taproot:
            return bytes(child.taproot_tweak(b"").schnorr_sign(target.message).serialize())
        return bytes(PrivateKey(child.secret).sign_recoverable(target.message, hasher=None))

    return WalletUnderTest(wallet, signer)


def oracle_sighashes(psbt_raw: bytes) -> list[bytes]:
    """Each input's sighash recomputed by python-bitcointx from the PSBT's transaction and spent
    outputs: BIP341 SIGHASH_DEFAULT for p2tr inputs, BIP143 SIGHASH_ALL for p2wpkh."""
    psbt = PSBT.parse(psbt_raw)
    tx_version = psbt.tx_version
    vin = b"".join(
        bytes(reversed(inp.txid))
        + inp.vout.to_bytes(4, "little")
        + b"\x00"
        + (0xFFFFFFFF if inp.sequence is None else inp.sequence).to_bytes(4, "little")
        for inp in psbt.inputs
    )
    vout = b"".join(out.vout.serialize() for out in psbt.outputs)
    unsigned = (
        tx_version.to_bytes(4, "little")
        + bytes([len(psbt.inputs)])
        + vin
        + bytes([len(psbt.outputs)])
        + vout
        + (psbt.locktime or 0).to_bytes(4, "little")
    )
    tx = CTransaction.deserialize(unsigned)
    spent = [
        CTxOut(inp.witness_utxo.value, CScript(inp.witness_utxo.script_pubkey.data))
        for inp in psbt.inputs
    ]
    out = []
    for i, s in enumerate(spent):
        script = bytes(s.scriptPubKey)
        if script[0] == 0x51:
            out.append(bytes(SignatureHashSchnorr(tx, i, spent)))
        else:
            code = CScript(b"\x76\xa9\x14" + script[2:] + b"\x88\xac")
            out.append(
                bytes(
                    SignatureHash(
                        code, tx, i, SIGHASH_ALL, amount=s.nValue, sigversion=SIGVERSION_WITNESS_V0
                    )
                )
            )
    return out
