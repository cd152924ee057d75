"""The instructions the node decodes into value movements or fee settings, by program.

Every layout is checked exactly: the programs themselves ignore bytes after the fields they read
(bincode `allow_trailing_bytes` in the system program, `unpack` in SPL Token), so data longer than
the layout is refused rather than decoded one way and run another.

SPL Token `transfer` (3) names no mint: its asset is "spl:unknown-mint" (the mint is state of the
source account, which a pure parse cannot read); a policy that wants to know the token requires
`transfer_checked` (12), which names the mint and is what wallets send today.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM

from tholos.chains.base import ChainError, ContractCall, Transfer

TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
# Precompiles: each signature they verify costs the same 5000 lamports as a transaction signature.
SIGNATURE_PRECOMPILES = frozenset(
    Pubkey.from_string(s)
    for s in (
        "Ed25519SigVerify111111111111111111111111111",
        "KeccakSecp256k11111111111111111111111111111",
        "Secp256r1SigVerify1111111111111111111111111",
    )
)
TOKEN_PROGRAMS = frozenset((TOKEN_PROGRAM, TOKEN_2022_PROGRAM))
UNKNOWN_MINT = "spl:unknown-mint"

_SYSTEM_TRANSFER = 2
_SYSTEM_ADVANCE_NONCE = 4
_SYSTEM_TRANSFER_WITH_SEED = 11
_TOKEN_TRANSFER = 3
_TOKEN_APPROVE = 4
_TOKEN_TRANSFER_CHECKED = 12
_TOKEN_APPROVE_CHECKED = 13
# ComputeBudgetInstruction (borsh): 1 RequestHeapFrame(u32), 2 SetComputeUnitLimit(u32),
# 3 SetComputeUnitPrice(u64 micro-lamports), 4 SetLoadedAccountsDataSizeLimit(u32).
_BUDGET_LAYOUT = {
    1: ("heap_frame_bytes", 4),
    2: ("compute_unit_limit", 4),
    3: ("compute_unit_price", 8),
    4: ("loaded_accounts_data_size_limit", 4),
}


@dataclass(frozen=True)
class BudgetSetting:
    """One ComputeBudget instruction: `name` is the detail it sets (e.g. compute_unit_price)."""

    name: str
    value: int


Decoded = Transfer | ContractCall | BudgetSetting


def decode(where: str, program: Pubkey, accounts: Sequence[Pubkey], data: bytes) -> Decoded:
    """Decode one instruction; `where` ("instructions[2]") prefixes the field of any refusal."""
    if program == SYSTEM_PROGRAM:
        return _system(where, accounts, data)
    if program in TOKEN_PROGRAMS:
        return _token(where, accounts, data) or ContractCall(contract=str(program))
    if program == COMPUTE_BUDGET_PROGRAM:
        return _budget(where, data)
    return ContractCall(contract=str(program))


def _need(where: str, accounts: Sequence[Pubkey], n: int, what: str) -> None:
    if len(accounts) < n:
        raise ChainError(
            f"{what} needs {n} accounts, has {len(accounts)}", field=f"{where}.accounts"
        )


def _exact(where: str, data: bytes, n: int, what: str) -> None:
    if len(data) != n:
        raise ChainError(f"{what} data is {len(data)} bytes, its layout {n}", field=f"{where}.data")


def _system(where: str, accounts: Sequence[Pubkey], data: bytes) -> Decoded:
    tag = struct.unpack_from("<I", data)[0] if len(data) >= 4 else None
    if tag == _SYSTEM_TRANSFER:
        _exact(where, data, 12, "system transfer")
        _need(where, accounts, 2, "system transfer")
        (lamports,) = struct.unpack_from("<Q", data, 4)
        return Transfer(asset="SOL", to=str(accounts[1]), amount=lamports, source=str(accounts[0]))
    if tag == _SYSTEM_TRANSFER_WITH_SEED:
        # TransferWithSeed { lamports: u64, from_seed: String (u64 length), from_owner: Pubkey }
        if len(data) < 20:
            raise ChainError("system transfer_with_seed data too short", field=f"{where}.data")
        lamports, seed_len = struct.unpack_from("<QQ", data, 4)
        _exact(where, data, 20 + seed_len + 32, "system transfer_with_seed")
        _need(where, accounts, 3, "system transfer_with_seed")
        return Transfer(asset="SOL", to=str(accounts[2]), amount=lamports, source=str(accounts[0]))
    return ContractCall(contract=str(SYSTEM_PROGRAM))


def is_nonce_advance(program: Pubkey, data: bytes) -> bool:
    """System AdvanceNonceAccount, which makes `recent_blockhash` a durable nonce when first."""
    return program == SYSTEM_PROGRAM and data == struct.pack("<I", _SYSTEM_ADVANCE_NONCE)


def _token(where: str, accounts: Sequence[Pubkey], data: bytes) -> Transfer | None:
    tag = data[0] if data else None
    if tag in (_TOKEN_TRANSFER, _TOKEN_APPROVE):
        what = "token transfer" if tag == _TOKEN_TRANSFER else "token approve"
        _exact(where, data, 9, what)
        _need(where, accounts, 3, what)
        (amount,) = struct.unpack_from("<Q", data, 1)
        return Transfer(
            asset=UNKNOWN_MINT,
            to=str(accounts[1]),
            amount=amount,
            source=str(accounts[0]),
            action="transfer" if tag == _TOKEN_TRANSFER else "approve",
        )
    if tag in (_TOKEN_TRANSFER_CHECKED, _TOKEN_APPROVE_CHECKED):
        what = (
            "token transfer_checked" if tag == _TOKEN_TRANSFER_CHECKED else "token approve_checked"
        )
        _exact(where, data, 10, what)
        _need(where, accounts, 4, what)
        (amount,) = struct.unpack_from("<Q", data, 1)
        return Transfer(
            asset=f"spl:{accounts[1]}",
            to=str(accounts[2]),
            amount=amount,
            source=str(accounts[0]),
            action="transfer" if tag == _TOKEN_TRANSFER_CHECKED else "approve",
        )
    return None


def _budget(where: str, data: bytes) -> BudgetSetting:
    layout = _BUDGET_LAYOUT.get(data[0]) if data else None
    if layout is None:
        raise ChainError(
            "unknown or deprecated ComputeBudget instruction (the runtime refuses it)",
            field=f"{where}.data",
        )
    name, size = layout
    _exact(where, data, 1 + size, f"ComputeBudget {name}")
    return BudgetSetting(name, int.from_bytes(data[1:], "little"))


def precompile_signatures(program: Pubkey, data: bytes) -> int:
    """Signatures a precompile instruction verifies (its first data byte), each fee-charged."""
    return data[0] if program in SIGNATURE_PRECOMPILES and data else 0
