"""The digests a node signs, computed from the transaction and the outputs it spends.

Only the types tholos signs: BIP341 key path with SIGHASH_DEFAULT, BIP143 with SIGHASH_ALL.
embit computes them (its taproot sighash is wrong for SIGHASH_SINGLE and ANYONECANPAY, which are
refused before this point); tests check both against python-bitcointx and the BIP341 vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from embit.script import Script
from embit.transaction import SIGHASH


def bip341_key_path(tx: Any, index: int, scripts: Sequence[bytes], amounts: Sequence[int]) -> bytes:
    """BIP341 SignatureHash (key path, no annex, SIGHASH_DEFAULT) of input `index` of an embit
    Transaction; `scripts`/`amounts` are every input's spent output."""
    digest = tx.sighash_taproot(
        index,
        script_pubkeys=[Script(s) for s in scripts],
        values=list(amounts),
        sighash=SIGHASH.DEFAULT,
    )
    return bytes(digest)


def bip143_p2wpkh(tx: Any, index: int, key_hash: bytes, amount: int) -> bytes:
    """BIP143 SignatureHash (SIGHASH_ALL) of a P2WPKH input: the script code is the P2PKH script
    of the key hash."""
    code = Script(b"\x76\xa9\x14" + key_hash + b"\x88\xac")
    return bytes(tx.sighash_segwit(index, code, amount, sighash=SIGHASH.ALL))
