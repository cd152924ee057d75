"""The Bitcoin chain package: addresses, the node's own parse of a PSBT, and finalisation.

A node signs only what it derived itself: every input must carry the output it spends and be
provably the wallet's (its BIP32 / TAP_BIP32 derivation, from the wallet's fingerprint, leads by
our derivation to exactly its script); the node computes each input's sighash (BIP341 key path
with SIGHASH_DEFAULT, or BIP143 with SIGHASH_ALL) from the transaction and the spent outputs; an
output is change only when its derivation fields lead to exactly its script, every other output
is a transfer. Sighashes are computed with embit restricted to SIGHASH_DEFAULT / SIGHASH_ALL: its
known faults (SIGHASH_SINGLE, ANYONECANPAY) are in the types this module refuses, and the tests
check every sighash against python-bitcointx and the BIP341 vectors (bitcointx itself needs
~0.9 ms to build a 2-in/2-out transaction object, more than the whole parse budget).

A JSON payload is a proof-of-reserves envelope (`chains/proof_of_control.py`): the node signs a
BIP322 "simple" proof of control of the address it derives (`bip322.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coincurve import PublicKey, PublicKeyXOnly
from embit.script import Witness
from embit.transaction import SIGHASH, Transaction, TransactionInput

from tholos.chains import proof_of_control
from tholos.chains.base import (
    AddressInfo,
    ChainError,
    DerivedIntent,
    ParsedTransaction,
    SignedTransaction,
    SigningTarget,
    Transfer,
    WalletRef,
)
from tholos.chains.bitcoin import bip322
from tholos.chains.bitcoin.fields import PsbtFields, check_points, read_psbt
from tholos.chains.bitcoin.psbt import IN_REQUIRED_LOCKTIMES, TAP_KEY_SIG, load_psbt
from tholos.chains.bitcoin.sighash import bip143_p2wpkh, bip341_key_path
from tholos.chains.bitcoin.wallet import CHANGE, ChildKey, WalletKey, wallet_key
from tholos.crypto.ecdsa.signature import HALF_N, EcdsaSignature
from tholos.crypto.errors import InvalidInput
from tholos.crypto.groups.secp256k1 import N

MAX_MONEY = 21_000_000 * 100_000_000
# vsize estimate: witness bytes per input (items count + one 64-byte Schnorr signature, or a
# DER signature of at most 72 bytes with its sighash byte and a 33-byte key)
WITNESS_BYTES = {"p2tr": 1 + 1 + 64, "p2wpkh": 1 + 1 + 72 + 1 + 33}


@dataclass(frozen=True)
class _Input:
    owner: ChildKey
    amount: int


@dataclass(frozen=True)
class _Analysis:
    psbt: PsbtFields
    tx: Any  # embit Transaction (unsigned)
    inputs: tuple[_Input, ...]
    intent: DerivedIntent
    targets: tuple[SigningTarget, ...]


def _layout_path(der: Any, key: WalletKey) -> tuple[int, int] | None:
    """(branch, index) of a derivation field from this wallet's root, or None if it is not."""
    if der.fingerprint != key.fingerprint:
        return None
    path = list(der.derivation)
    if len(path) != 2 or path[0] not in (0, 1) or not 0 <= path[1] < 2**31:
        return None
    return path[0], path[1]


def _derivations(scope: Any, key: WalletKey) -> list[tuple[bytes, Any, list[bytes]]]:
    """(key bytes, DerivationPath, leaf hashes) of the scope's derivation fields of the wallet's
    address type (TAP_BIP32 for p2tr, BIP32 for p2wpkh)."""
    if key.taproot:
        return [
            (pub, der, list(leaves))
            for pub, (leaves, der) in scope.taproot_bip32_derivations.items()
        ]
    return [(pub, der, []) for pub, der in scope.bip32_derivations.items()]


def _owner(scope: Any, key: WalletKey, script: bytes) -> ChildKey | None:
    """The wallet's child key whose script is `script`, proven by a derivation field."""
    for field_key, der, leaves in _derivations(scope, key):
        where = _layout_path(der, key)
        if where is None or leaves:
            continue
        child = key.child(*where)
        expected = child.internal_key if key.taproot else child.public_key
        if field_key == expected and child.script == script:
            return child
    return None


def _check_points(scope: Any, key: WalletKey, owner: ChildKey | None, field: str) -> None:
    """Every derivation key of the scope (both kinds) is a curve point; the owner's needs no
    check (the wallet derived it)."""
    known = None if owner is None else owner.internal_key if key.taproot else owner.public_key
    check_points(list(scope.bip32_derivations), known, field)
    check_points(list(scope.taproot_bip32_derivations), known, field)


def _amount(value: Any, field: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= MAX_MONEY:
        raise ChainError("amount out of range (0 .. 21e14 sat)", field=field)
    return value


def _check_input(i: int, inp: Any, key: WalletKey, psbt_version: int) -> _Input:
    name = f"inputs[{i}]"
    if inp.txid is None or inp.vout is None or len(inp.txid) != 32:
        raise ChainError("no previous output (txid, vout)", field=f"{name}.previous_output")
    if psbt_version == 2 and any(k in inp.keys for k in IN_REQUIRED_LOCKTIMES):
        raise ChainError("required locktimes are not supported", field=f"{name}.locktime")
    spent = inp.witness_utxo
    if spent is None:
        raise ChainError("the spent output (witness_utxo) is missing", field=f"{name}.witness_utxo")
    amount = _amount(spent.value, f"{name}.amount")
    script = bytes(spent.script_pubkey.data)
    if inp.non_witness_utxo is not None:
        prev = inp.non_witness_utxo
        if prev.txid() != inp.txid or inp.vout >= len(prev.vout):
            raise ChainError(
                "the previous transaction is not the one spent", field=f"{name}.non_witness_utxo"
            )
        out = prev.vout[inp.vout]
        if out.value != amount or bytes(out.script_pubkey.data) != script:
            raise ChainError(
                "contradicts witness_utxo (amount or script)", field=f"{name}.non_witness_utxo"
            )
    allowed = (SIGHASH.DEFAULT,) if key.taproot else (SIGHASH.ALL,)
    if inp.sighash_type is not None and inp.sighash_type not in allowed:
        want = "SIGHASH_DEFAULT" if key.taproot else "SIGHASH_ALL"
        raise ChainError(
            f"sighash type 0x{inp.sighash_type:02x} refused (only {want})",
            field=f"{name}.sighash_type",
        )
    if not any(der.fingerprint == key.fingerprint for _, der, _ in _derivations(inp, key)):
        raise ChainError(
            f"no {'TAP_BIP32' if key.taproot else 'BIP32'} derivation from the wallet's key",
            field=f"{name}.bip32_derivation",
        )
    owner = _owner(inp, key, script)
    if owner is None:
        raise ChainError(
            "not provably the wallet's: no derivation from the wallet's key leads to its script",
            field=f"{name}.witness_utxo.script",
        )
    _check_points(inp, key, owner, f"{name}.bip32_derivation")
    internal = inp.taproot_internal_key if key.taproot else None
    if internal is not None and internal != owner.internal_key:
        raise ChainError("not the derived internal key", field=f"{name}.tap_internal_key")
    return _Input(owner, amount)


def _vsize(stripped_size: int, n_in: int, key: WalletKey) -> int:
    weight = 4 * stripped_size + 2 + WITNESS_BYTES[key.address_type] * n_in
    return -(-weight // 4)


def _analyse(wallet: WalletRef, payload: bytes) -> _Analysis:
    key = wallet_key(wallet)
    psbt = read_psbt(payload)
    version = psbt.version
    inputs = tuple(_check_input(i, inp, key, version) for i, inp in enumerate(psbt.inputs))
    seen: set[tuple[bytes | None, int | None]] = set()
    for i, inp in enumerate(psbt.inputs):
        if (inp.txid, inp.vout) in seen:
            raise ChainError("spends the same output twice", field=f"inputs[{i}].previous_output")
        seen.add((inp.txid, inp.vout))
    tx = psbt.tx
    transfers: list[Transfer] = []
    change: list[Transfer] = []
    total_out = 0
    for j, out in enumerate(psbt.outputs):
        amount = _amount(out.value, f"outputs[{j}].amount")
        script = bytes(out.script_pubkey.data)
        total_out += amount
        entry = Transfer(asset="BTC", to=key.address(script), amount=amount)
        owner = _owner(out, key, script)
        _check_points(out, key, owner, f"outputs[{j}].bip32_derivation")
        if out.taproot_internal_key is not None:
            known = owner.internal_key if owner is not None and key.taproot else None
            check_points([out.taproot_internal_key], known, f"outputs[{j}].tap_internal_key")
        (change if owner is not None else transfers).append(entry)
    total_in = sum(i.amount for i in inputs)
    fee = total_in - total_out
    if fee < 0:
        raise ChainError(f"outputs exceed inputs by {-fee} sat", field="fee")
    scripts = [i.owner.script for i in inputs]
    amounts = [i.amount for i in inputs]
    targets = []
    for i, spent in enumerate(inputs):
        if key.taproot:
            msg = bip341_key_path(tx, i, scripts, amounts)
        else:
            msg = bip143_p2wpkh(tx, i, spent.owner.script[2:], spent.amount)
        targets.append(
            SigningTarget(message=bytes(msg), path=spent.owner.path, taproot=key.taproot)
        )
    intent = DerivedIntent(
        chain="bitcoin",
        network=key.network,
        kind="transaction",
        transfers=tuple(transfers),
        change=tuple(change),
        fee=fee,
        fee_asset="BTC",
        details={
            "psbt_version": version,
            "version": tx.version,
            "locktime": tx.locktime,
            "inputs": len(inputs),
            "outputs": len(psbt.outputs),
            "vsize": _vsize(psbt.stripped_size, len(inputs), key),
            "address_type": key.address_type,
        },
    )
    return _Analysis(psbt, tx, inputs, intent, tuple(targets))


def _taproot_witness(i: int, sig: bytes, target: SigningTarget, child: ChildKey) -> bytes:
    if len(sig) != 64:
        raise ChainError(
            "a key-path signature is 64 bytes (SIGHASH_DEFAULT)", field=f"inputs[{i}].signature"
        )
    output_key = PublicKeyXOnly(child.script[2:])
    try:
        ok = output_key.verify(sig, target.message)
    except ValueError:
        ok = False
    if not ok:
        raise ChainError(
            "does not verify under the input's output key", field=f"inputs[{i}].signature"
        )
    return sig


def _ecdsa_der(i: int, sig: bytes, target: SigningTarget, child: ChildKey) -> bytes:
    if len(sig) not in (64, 65):
        raise ChainError("ECDSA signature is r||s or r||s||v", field=f"inputs[{i}].signature")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    if not (0 < r < N and 0 < s <= HALF_N):
        raise ChainError("r, s out of range or high-S", field=f"inputs[{i}].signature")
    try:
        der = EcdsaSignature(r, s, 0).to_der()
    except (InvalidInput, ValueError):
        raise ChainError("not an ECDSA signature", field=f"inputs[{i}].signature") from None
    if not PublicKey(child.public_key).verify(der, target.message, hasher=None):
        raise ChainError("does not verify under the input's key", field=f"inputs[{i}].signature")
    return der + bytes([SIGHASH.ALL])


class BitcoinChain:
    """`tholos.chains.base.Chain` for Bitcoin (p2tr key path on bip340 keys, p2wpkh on ecdsa)."""

    name = "bitcoin"

    def address(self, wallet: WalletRef, index: int, *, change: bool = False) -> AddressInfo:
        key = wallet_key(wallet)
        child = key.child(CHANGE if change else 0, index)
        return AddressInfo(
            address=key.address(child.script),
            index=index,
            path=child.path,
            public_key=child.internal_key if key.taproot else child.public_key,
            change=change,
        )

    def parse(self, wallet: WalletRef, payload: bytes) -> ParsedTransaction:
        if proof_of_control.is_envelope(payload):
            return _proof(wallet, payload)[0]
        a = _analyse(wallet, payload)
        return ParsedTransaction(intent=a.intent, targets=a.targets)

    def finalize(
        self, wallet: WalletRef, payload: bytes, signatures: Sequence[bytes]
    ) -> SignedTransaction:
        if proof_of_control.is_envelope(payload):
            return _proof_signature(wallet, payload, signatures)
        a = _analyse(wallet, payload)
        if len(signatures) != len(a.targets):
            raise ChainError(
                f"{len(signatures)} signatures for {len(a.targets)} inputs", field="signatures"
            )
        key = wallet_key(wallet)
        psbt = load_psbt(payload)  # embit's, to carry the signatures in the PSBT it returns
        witnesses = []
        for i, (sig, target, inp) in enumerate(zip(signatures, a.targets, a.inputs, strict=True)):
            sig = bytes(sig)
            scope = psbt.inputs[i]
            if key.taproot:
                wsig = _taproot_witness(i, sig, target, inp.owner)
                scope.unknown[TAP_KEY_SIG] = wsig
                witness = Witness([wsig])
            else:
                wsig = _ecdsa_der(i, sig, target, inp.owner)
                pub = _embit_key(inp.owner.public_key)
                scope.partial_sigs[pub] = wsig
                witness = Witness([wsig, inp.owner.public_key])
            scope.final_scriptwitness = witness
            witnesses.append(witness)
        vin = []
        for vin_u, witness in zip(a.tx.vin, witnesses, strict=True):
            vin.append(
                TransactionInput(vin_u.txid, vin_u.vout, sequence=vin_u.sequence, witness=witness)
            )
        signed = Transaction(version=a.tx.version, vin=vin, vout=a.tx.vout, locktime=a.tx.locktime)
        return SignedTransaction(
            raw=signed.serialize(),
            encoding="hex",
            txid=signed.txid().hex(),
            extra={"psbt": psbt.to_base64()},
        )


def _proof(wallet: WalletRef, payload: bytes) -> tuple[ParsedTransaction, ChildKey]:
    """A BIP322 proof of control of the wallet's address named by the envelope."""
    request = proof_of_control.decode(payload, allow_change=True)
    key = wallet_key(wallet)
    child = key.child(CHANGE if request.change else 0, request.index)
    address = key.address(child.script)
    text = proof_of_control.message_text("bitcoin", key.network, address, request.challenge)
    digest = bip322.sighash(child.script, text.encode())
    intent = DerivedIntent(
        chain="bitcoin",
        network=key.network,
        kind=proof_of_control.INTENT_KIND,
        details=proof_of_control.details(
            bip322.FORMAT, address, child.path, request.index, request.challenge, text
        ),
    )
    target = SigningTarget(message=digest, path=child.path, taproot=key.taproot)
    return ParsedTransaction(intent, (target,)), child


def _proof_signature(
    wallet: WalletRef, payload: bytes, signatures: Sequence[bytes]
) -> SignedTransaction:
    """The BIP322 simple signature: to_sign's witness, checked under the address's key."""
    parsed, child = _proof(wallet, payload)
    if len(signatures) != 1:
        raise ChainError(f"one signature expected, got {len(signatures)}", field="signatures")
    (target,) = parsed.targets
    sig = bytes(signatures[0])
    if wallet_key(wallet).taproot:
        witness = Witness([_taproot_witness(0, sig, target, child)])
    else:
        witness = Witness([_ecdsa_der(0, sig, target, child), child.public_key])
    address = str(parsed.intent.details["address"])
    return SignedTransaction(
        raw=witness.serialize(),
        encoding="base64",
        extra={"address": address, "format": bip322.FORMAT},
    )


def _embit_key(sec: bytes) -> Any:
    from embit.ec import PublicKey as EmbitPublicKey

    return EmbitPublicKey.parse(sec)
