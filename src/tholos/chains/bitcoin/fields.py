"""The PSBT fields a node judges, read straight from the maps `psbt.frame_psbt` already split
(BIP174 v0, BIP370 v2, BIP371 Taproot), without building embit's whole PSBT (which parses and
validates every public key and re-reads the framing: most of a 2-in/2-out parse).

Only what the node's analysis uses is read: per input the outpoint, sequence, spent output
(witness_utxo, non_witness_utxo), sighash type, BIP32 / TAP_BIP32 derivations and the Taproot
internal key; per output the amount, script and derivations. Each of those must have its exact
BIP174 length; keys are kept as bytes (a key that is not a curve point matches no derived key).
Fields only v2 has are refused in a v0 PSBT. Every refusal is a ChainError naming the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coincurve import PublicKey, PublicKeyXOnly
from embit.script import Script, Witness
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from tholos.chains.base import ChainError
from tholos.chains.bitcoin.psbt import frame_psbt

V2_INPUT_KEYS = (b"\x0e", b"\x0f", b"\x10", b"\x11", b"\x12")
V2_OUTPUT_KEYS = (b"\x03", b"\x04")
# input key types that are the type byte alone (BIP174); embit refuses any other length too
SINGLE_BYTE_INPUT_KEYS = frozenset({0x00, 0x01, 0x03, 0x04, 0x05, 0x07, 0x08})


@dataclass(frozen=True)
class Derivation:
    fingerprint: bytes
    derivation: tuple[int, ...]


@dataclass
class InputFields:
    txid: bytes | None = None  # display order, as embit's TransactionInput holds it
    vout: int | None = None
    sequence: int | None = None
    witness_utxo: Any = None  # embit TransactionOutput
    non_witness_utxo: Any = None  # embit Transaction
    sighash_type: int | None = None
    bip32_derivations: dict[bytes, Derivation] = field(default_factory=dict)  # sec -> path
    taproot_bip32_derivations: dict[bytes, tuple[list[bytes], Derivation]] = field(
        default_factory=dict
    )  # x-only key -> (leaf hashes, path)
    taproot_internal_key: bytes | None = None
    keys: frozenset[bytes] = frozenset()  # every key of the map


@dataclass
class OutputFields:
    value: int | None = None
    script_pubkey: Any = None  # embit Script
    bip32_derivations: dict[bytes, Derivation] = field(default_factory=dict)
    taproot_bip32_derivations: dict[bytes, tuple[list[bytes], Derivation]] = field(
        default_factory=dict
    )
    taproot_internal_key: bytes | None = None  # x-only, not yet checked to be a point

    @property
    def vout(self) -> Any:
        return TransactionOutput(self.value, self.script_pubkey)


@dataclass
class PsbtFields:
    version: int
    tx_version: int
    locktime: int
    inputs: list[InputFields]
    outputs: list[OutputFields]
    tx: Any = None  # the unsigned transaction exactly as the PSBT states it (embit Transaction)
    stripped_size: int = 0  # its serialised size, no witness


def _unsigned(psbt: PsbtFields) -> Any:
    """The unsigned transaction as the PSBT states it (embit's `PSBT.tx` turns a sequence or a
    transaction version of 0 into its defaults, 0xffffffff and 2)."""
    vin = [
        TransactionInput(
            inp.txid, inp.vout, sequence=0xFFFFFFFF if inp.sequence is None else inp.sequence
        )
        for inp in psbt.inputs
    ]
    return Transaction(
        version=psbt.tx_version,
        vin=vin,
        vout=[out.vout for out in psbt.outputs],
        locktime=psbt.locktime,
    )


def _uint(value: bytes, size: int, where: str) -> int:
    if len(value) != size:
        raise ChainError(f"{size} bytes expected", field=where)
    return int.from_bytes(value, "little")


def _compact(data: bytes, pos: int, where: str) -> tuple[int, int]:
    if pos >= len(data):
        raise ChainError("truncated", field=where)
    first = data[pos]
    if first < 0xFD:
        return first, pos + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    end = pos + 1 + size
    if end > len(data):
        raise ChainError("truncated", field=where)
    return int.from_bytes(data[pos + 1 : end], "little"), end


def _path(value: bytes, pos: int, where: str) -> Derivation:
    rest = len(value) - pos
    if rest < 4 or rest % 4:
        raise ChainError("a derivation is a fingerprint and 4-byte indexes", field=where)
    idx = tuple(int.from_bytes(value[i : i + 4], "little") for i in range(pos + 4, len(value), 4))
    return Derivation(value[pos : pos + 4], idx)


def _tap_path(value: bytes, where: str) -> tuple[list[bytes], Derivation]:
    n, pos = _compact(value, 0, where)
    end = pos + 32 * n
    if end > len(value):
        raise ChainError("truncated leaf hashes", field=where)
    leaves = [value[i : i + 32] for i in range(pos, end, 32)]
    return leaves, _path(value, end, where)


def _txout(value: bytes, where: str) -> Any:
    if len(value) < 9:
        raise ChainError("truncated spent output", field=where)
    n, pos = _compact(value, 8, where)
    if pos + n != len(value):
        raise ChainError("spent output length", field=where)
    return TransactionOutput(int.from_bytes(value[:8], "little"), Script(value[pos:]))


def _point(key: bytes, where: str) -> None:
    """Refuse a public key (33/65-byte SEC or 32-byte x-only) that is not a curve point."""
    try:
        if len(key) == 32:
            PublicKeyXOnly(key)
        else:
            PublicKey(key)
    except ValueError:
        raise ChainError("not a public key on secp256k1", field=where) from None


def _check_unread_input(key: bytes, value: bytes, where: str) -> None:
    """Fields the node does not use, refused when malformed (as a full PSBT parser would):
    partial signatures' keys, final witnesses, Taproot script-path signatures' keys."""
    kind = key[0]
    if kind == 0x02:
        if len(key) not in (34, 66):
            raise ChainError("malformed partial signature key", field=f"{where}.partial_sig")
        _point(key[1:], f"{where}.partial_sig")
    elif kind == 0x08:
        try:
            Witness.parse(value)
        except Exception:
            raise ChainError("malformed", field=f"{where}.final_scriptwitness") from None
    else:
        if len(key) != 65:
            raise ChainError("malformed key", field=f"{where}.tap_script_sig")
        _point(key[1:33], f"{where}.tap_script_sig")


def _derivation_key(key: bytes, sizes: tuple[int, ...], where: str) -> bytes:
    if len(key) - 1 not in sizes:
        raise ChainError("malformed derivation key", field=where)
    return key[1:]


def _input(m: dict[bytes, bytes], version: int, where: str) -> InputFields:
    f = InputFields(keys=frozenset(m))
    if version == 0 and any(k in m for k in V2_INPUT_KEYS):
        raise ChainError("a v2 field in a v0 PSBT", field=where)
    for key, value in m.items():
        kind = key[0]
        if kind in SINGLE_BYTE_INPUT_KEYS and len(key) != 1:
            raise ChainError(f"malformed key 0x{key[:34].hex()}", field=where)
        if kind in (0x02, 0x08, 0x14):
            _check_unread_input(key, value, where)
        elif kind == 0x00:
            try:
                f.non_witness_utxo = Transaction.parse(value)
            except Exception:
                raise ChainError("malformed", field=f"{where}.non_witness_utxo") from None
        elif kind == 0x01:
            f.witness_utxo = _txout(value, f"{where}.witness_utxo")
        elif kind == 0x03:
            f.sighash_type = _uint(value, 4, f"{where}.sighash_type")
        elif kind == 0x06:
            pub = _derivation_key(key, (33, 65), f"{where}.bip32_derivation")
            f.bip32_derivations[pub] = _path(value, 0, f"{where}.bip32_derivation")
        elif key == b"\x0e":
            f.txid = bytes(reversed(value)) if len(value) == 32 else b""
        elif key == b"\x0f":
            f.vout = _uint(value, 4, f"{where}.vout")
        elif key == b"\x10":
            f.sequence = _uint(value, 4, f"{where}.sequence")
        elif kind == 0x16:
            xonly = _derivation_key(key, (32,), f"{where}.tap_bip32_derivation")
            f.taproot_bip32_derivations[xonly] = _tap_path(value, f"{where}.tap_bip32_derivation")
        elif kind == 0x17:
            if len(value) != 32:
                raise ChainError("an x-only key is 32 bytes", field=f"{where}.tap_internal_key")
            f.taproot_internal_key = value
    return f


def _output(m: dict[bytes, bytes], version: int, where: str) -> OutputFields:
    f = OutputFields()
    if version == 0 and any(k in m for k in V2_OUTPUT_KEYS):
        raise ChainError("a v2 field in a v0 PSBT", field=where)
    for key, value in m.items():
        kind = key[0]
        if kind in (0x00, 0x01) and len(key) != 1:
            raise ChainError(f"malformed key 0x{key[:34].hex()}", field=where)
        if kind == 0x05:
            if len(value) != 32:
                raise ChainError("an x-only key is 32 bytes", field=f"{where}.tap_internal_key")
            f.taproot_internal_key = value
        elif kind == 0x02:
            pub = _derivation_key(key, (33, 65), f"{where}.bip32_derivation")
            f.bip32_derivations[pub] = _path(value, 0, f"{where}.bip32_derivation")
        elif key == b"\x03":
            f.value = _uint(value, 8, f"{where}.amount")
        elif key == b"\x04":
            f.script_pubkey = Script(value)
        elif kind == 0x07:
            xonly = _derivation_key(key, (32,), f"{where}.tap_bip32_derivation")
            f.taproot_bip32_derivations[xonly] = _tap_path(value, f"{where}.tap_bip32_derivation")
    return f


def check_points(keys: list[bytes], known: bytes | None, where: str) -> None:
    """Derivation keys are kept as bytes; the caller checks each is a curve point unless it is
    `known` (one the wallet derived, a point by construction): the common case costs nothing."""
    for key in keys:
        if key != known:
            _point(key, where)


def read_psbt(payload: bytes | str) -> PsbtFields:
    """The fields of a payload whose framing is sound; ChainError naming the field otherwise."""
    fr = frame_psbt(payload, round_trip=False)
    glob = fr.maps[0]
    for key in glob:
        if key[0] == 0x01:  # a global xpub: 78 bytes serialised, its key a point
            if len(key) != 79:
                raise ChainError("malformed global xpub", field="psbt.xpub")
            _point(key[46:79], "psbt.xpub")
    ins = [_input(m, fr.version, f"inputs[{i}]") for i, m in enumerate(fr.maps[1 : 1 + fr.n_in])]
    outs = [_output(m, fr.version, f"outputs[{j}]") for j, m in enumerate(fr.maps[1 + fr.n_in :])]
    if fr.version == 0:
        tx = fr.tx
        for inp, vin in zip(ins, tx.vin, strict=True):
            inp.txid, inp.vout, inp.sequence = vin.txid, vin.vout, vin.sequence
        for out, vout in zip(outs, tx.vout, strict=True):
            out.value, out.script_pubkey = vout.value, vout.script_pubkey
        fields = PsbtFields(0, tx.version, tx.locktime, ins, outs)
    else:
        tx_version = _uint(glob[b"\x02"], 4, "psbt.tx_version")
        locktime = _uint(glob[b"\x03"], 4, "psbt.locktime") if b"\x03" in glob else 0
        fields = PsbtFields(2, tx_version, locktime, ins, outs)
    if any(o.value is None or o.script_pubkey is None for o in outs):
        j = next(j for j, o in enumerate(outs) if o.value is None or o.script_pubkey is None)
        raise ChainError("no amount or script", field=f"outputs[{j}]")
    if any(i.txid is None or i.vout is None or len(i.txid) != 32 for i in ins):
        i = next(
            i for i, x in enumerate(ins) if x.txid is None or x.vout is None or len(x.txid) != 32
        )
        raise ChainError("no previous output (txid, vout)", field=f"inputs[{i}].previous_output")
    fields.tx = _unsigned(fields)
    unsigned = fields.tx.serialize()
    if fr.version == 0 and unsigned != glob[b"\x00"]:
        raise ChainError("the unsigned transaction is not bare and unsigned", field="psbt.tx")
    fields.stripped_size = len(unsigned)
    return fields
