"""An unsigned PSBT for a wallet's coins, as Bitcoin Core and Sparrow write them: the spent output
(witness_utxo, and the previous transaction when given), the BIP32 / BIP371 TAP_BIP32 derivation
of every input and of the change output from the wallet's fingerprint. For tests and the CLI; a
node never trusts it and parses what it is given (`BitcoinChain.parse`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from embit.ec import PublicKey as EmbitPublicKey
from embit.psbt import PSBT, DerivationPath
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from tholos.chains.base import ChainError, WalletRef
from tholos.chains.bitcoin.wallet import CHANGE, ChildKey, WalletKey, script_of, wallet_key
from tholos.crypto.bip32 import parse_path
from tholos.crypto.errors import InvalidInput

RBF_SEQUENCE = 0xFFFFFFFD  # opt-in replace-by-fee, locktime enabled (what Core writes by default)


@dataclass(frozen=True)
class Utxo:
    """A coin of the wallet: outpoint (txid in display order), amount, its path `m/0/i`/`m/1/i`."""

    txid: str
    vout: int
    amount: int
    path: str
    previous_tx: bytes | None = None  # the whole previous transaction (PSBT non_witness_utxo)


def _child(key: WalletKey, path: str, field: str) -> ChildKey:
    try:
        steps = parse_path(path)
    except InvalidInput as e:
        raise ChainError(str(e), field=field) from None
    if len(steps) != 2:
        raise ChainError("the layout's paths are m/0/i and m/1/i", field=field)
    return key.child(steps[0], steps[1])


def _derivation(key: WalletKey, child: ChildKey) -> DerivationPath:
    return DerivationPath(key.fingerprint, [child.branch, child.index])


def _describe(scope: object, key: WalletKey, child: ChildKey) -> None:
    pub = EmbitPublicKey.parse(child.public_key)
    if key.taproot:
        scope.taproot_bip32_derivations[pub] = ([], _derivation(key, child))  # type: ignore[attr-defined]
        scope.taproot_internal_key = pub  # type: ignore[attr-defined]
    else:
        scope.bip32_derivations[pub] = _derivation(key, child)  # type: ignore[attr-defined]


def build_psbt(
    wallet: WalletRef,
    utxos: Sequence[Utxo],
    destinations: Sequence[tuple[str, int]],
    *,
    fee: int,
    change_index: int | None = None,
    psbt_version: int = 0,
    locktime: int = 0,
    sequence: int = RBF_SEQUENCE,
) -> bytes:
    """Serialized unsigned PSBT spending `utxos` to `destinations` ((address, sat) pairs), paying
    `fee`, the rest to the change address `m/1/change_index` (no change output when None: the rest
    is then fee too, so the call refuses a remainder other than zero)."""
    key = wallet_key(wallet)
    if psbt_version not in (0, 2):
        raise ChainError("PSBT version 0 or 2", field="psbt_version")
    if not utxos:
        raise ChainError("no coins to spend", field="utxos")
    vin, owners = [], []
    for k, u in enumerate(utxos):
        owners.append(_child(key, u.path, f"utxos[{k}].path"))
        try:
            txid = bytes.fromhex(u.txid)
        except ValueError:
            raise ChainError("txid must be hex", field=f"utxos[{k}].txid") from None
        if len(txid) != 32:
            raise ChainError("txid must be 32 bytes", field=f"utxos[{k}].txid")
        vin.append(TransactionInput(txid, u.vout, sequence=sequence))
    vout = [
        TransactionOutput(amount, Script(script_of(addr, key.network)))
        for addr, amount in destinations
    ]
    remainder = sum(u.amount for u in utxos) - sum(a for _, a in destinations) - fee
    if remainder < 0:
        raise ChainError(f"coins short by {-remainder} sat", field="fee")
    change = None
    if change_index is not None and remainder > 0:
        change = key.child(CHANGE, change_index)
        vout.append(TransactionOutput(remainder, Script(change.script)))
    elif remainder:
        raise ChainError(f"{remainder} sat left over and no change index", field="change_index")
    psbt = PSBT(Transaction(version=2, vin=vin, vout=vout, locktime=locktime))
    if psbt_version == 2:
        psbt.version = 2
    for scope, u, owner in zip(psbt.inputs, utxos, owners, strict=True):
        scope.witness_utxo = TransactionOutput(u.amount, Script(owner.script))
        if u.previous_tx is not None:
            scope.non_witness_utxo = Transaction.parse(u.previous_tx)
        _describe(scope, key, owner)
    if change is not None:
        _describe(psbt.outputs[-1], key, change)
    return bytes(psbt.serialize())
