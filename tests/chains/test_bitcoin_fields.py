"""The node's PSBT field reader (`chains.bitcoin.fields`) against embit's full parser: whatever
the reader accepts, embit parses too, to the same outpoints, sequences, amounts, scripts,
sighash types, derivations and internal keys; keys that are not curve points are refused."""

from __future__ import annotations

from typing import Any

import pytest
from embit.base import EmbitError
from embit.psbt import PSBT
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.chains.test_bitcoin_parse import P2TR, P2WPKH, _mutate, _psbt
from tholos.chains.base import ChainError
from tholos.chains.bitcoin import BITCOIN
from tholos.chains.bitcoin.fields import read_psbt

NOT_A_POINT = b"\x02" + b"\x00" * 32  # x = 0 is not on secp256k1


def _embit_view(p: Any) -> Any:
    def der(d: Any) -> tuple[bytes, tuple[int, ...]]:
        return bytes(d.fingerprint), tuple(d.derivation)

    ins = [
        (
            i.txid,
            i.vout,
            i.sequence,
            None if i.witness_utxo is None else i.witness_utxo.serialize(),
            i.sighash_type,
            {k.sec(): der(d) for k, d in i.bip32_derivations.items()},
            {k.xonly(): (list(ls), der(d)) for k, (ls, d) in i.taproot_bip32_derivations.items()},
            None if i.taproot_internal_key is None else i.taproot_internal_key.xonly(),
        )
        for i in p.inputs
    ]
    outs = [
        (
            o.value,
            bytes(o.script_pubkey.data),
            {k.sec(): der(d) for k, d in o.bip32_derivations.items()},
            {k.xonly(): (list(ls), der(d)) for k, (ls, d) in o.taproot_bip32_derivations.items()},
        )
        for o in p.outputs
    ]
    return (p.version or 0, p.tx_version, p.locktime or 0, ins, outs)


def _fields_view(f: Any) -> Any:
    def der(d: Any) -> tuple[bytes, tuple[int, ...]]:
        return d.fingerprint, d.derivation

    ins = [
        (
            i.txid,
            i.vout,
            i.sequence,
            None if i.witness_utxo is None else i.witness_utxo.serialize(),
            i.sighash_type,
            {k: der(d) for k, d in i.bip32_derivations.items()},
            {k: (ls, der(d)) for k, (ls, d) in i.taproot_bip32_derivations.items()},
            i.taproot_internal_key,
        )
        for i in f.inputs
    ]
    outs = [
        (
            o.value,
            bytes(o.script_pubkey.data),
            {k: der(d) for k, d in o.bip32_derivations.items()},
            {k: (ls, der(d)) for k, (ls, d) in o.taproot_bip32_derivations.items()},
        )
        for o in f.outputs
    ]
    return (f.version, f.tx_version, f.locktime, ins, outs)


@pytest.mark.parametrize("tw", [P2TR, P2WPKH], ids=["p2tr", "p2wpkh"])
@pytest.mark.parametrize("version", [0, 2])
@pytest.mark.parametrize("with_prev", [False, True])
def test_reads_what_embit_reads(tw: Any, version: int, with_prev: bool) -> None:
    raw = _psbt(tw, version, with_prev)
    assert _fields_view(read_psbt(raw)) == _embit_view(PSBT.parse(raw))


_V2 = _psbt(P2TR, 2, with_prev=True)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([(P2TR, _psbt(P2TR, 0, True)), (P2TR, _V2), (P2WPKH, _psbt(P2WPKH, 0))]),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_whatever_the_node_accepts_embit_reads_the_same(
    case: tuple[Any, bytes], edits: list[tuple[int, int]]
) -> None:
    """Byte edits of valid PSBTs: a PSBT the node's parse accepts (the reader, then the
    analysis, which checks the derivation keys it does not derive itself) embit parses too,
    to the same fields."""
    tw, raw = case
    data = bytearray(raw)
    for pos, value in edits:
        data[pos % len(data)] = value
    try:
        BITCOIN.parse(tw.wallet, bytes(data))
    except ChainError:
        return
    assert _fields_view(read_psbt(bytes(data))) == _embit_view(PSBT.parse(bytes(data)))


def _refused_field(raw: bytes) -> str | None:
    with pytest.raises(ChainError) as err:
        BITCOIN.parse(P2TR.wallet, raw)
    return err.value.field


def test_a_derivation_key_that_is_not_a_point_is_refused() -> None:
    """A second TAP_BIP32 derivation (beside the wallet's own) whose key is not on the curve."""
    raw = _psbt(P2TR)
    p = PSBT.parse(raw)
    ((own, _),) = p.inputs[0].taproot_bip32_derivations.items()
    framed = bytes(p.serialize())
    key = b"\x16" + own.xonly()
    bad_key = b"\x16" + NOT_A_POINT[1:]
    assert framed.count(bytes([len(key)]) + key) == 1
    entry = bytes([len(key)]) + key
    start = framed.index(entry)
    value_len = framed[start + len(entry)]
    value = framed[start + len(entry) + 1 : start + len(entry) + 1 + value_len]
    extra = bytes([len(bad_key)]) + bad_key + bytes([len(value)]) + value
    tampered = framed[:start] + extra + framed[start:]
    assert _refused_field(tampered) == "inputs[0].bip32_derivation"
    with pytest.raises((EmbitError, ValueError)):
        PSBT.parse(tampered)  # embit refuses it too


def test_v2_fields_in_a_v0_psbt_are_refused() -> None:
    def add_sequence(p: Any) -> None:
        p.inputs[0].unknown[b"\x10"] = (5).to_bytes(4, "little")

    raw = _mutate(_psbt(P2TR), add_sequence)
    with pytest.raises(ChainError) as err:
        read_psbt(raw)
    assert err.value.field == "inputs[0]"
