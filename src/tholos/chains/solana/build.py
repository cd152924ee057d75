"""Unsigned transactions for tests and the CLI: a SOL transfer or an SPL `transfer_checked`, legacy
or v0 (no lookup tables), every signature slot empty, ready for `Solana.parse`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from tholos.chains.solana.programs import TOKEN_PROGRAM

Version = Literal["legacy", "0"]


def system_transfer(payer: Pubkey, to: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=payer, to_pubkey=to, lamports=lamports))


def token_transfer_checked(
    source: Pubkey,
    mint: Pubkey,
    destination: Pubkey,
    owner: Pubkey,
    amount: int,
    decimals: int,
    program: Pubkey = TOKEN_PROGRAM,
) -> Instruction:
    """SPL Token TransferChecked (tag 12, u64 amount, u8 decimals); same layout in Token-2022."""
    data = bytes([12]) + amount.to_bytes(8, "little") + bytes([decimals])
    return Instruction(
        program,
        data,
        [
            AccountMeta(source, is_signer=False, is_writable=True),
            AccountMeta(mint, is_signer=False, is_writable=False),
            AccountMeta(destination, is_signer=False, is_writable=True),
            AccountMeta(owner, is_signer=True, is_writable=False),
        ],
    )


def unsigned(
    payer: Pubkey,
    instructions: Sequence[Instruction],
    recent_blockhash: Hash,
    *,
    version: Version = "legacy",
    compute_unit_limit: int | None = None,
    compute_unit_price: int | None = None,
) -> bytes:
    """The wire transaction (fee payer `payer`) with every signature slot empty."""
    ixs: list[Instruction] = []
    if compute_unit_limit is not None:
        ixs.append(set_compute_unit_limit(compute_unit_limit))
    if compute_unit_price is not None:
        ixs.append(set_compute_unit_price(compute_unit_price))
    ixs.extend(instructions)
    msg: Message | MessageV0
    if version == "legacy":
        msg = Message.new_with_blockhash(ixs, payer, recent_blockhash)
    elif version == "0":
        msg = MessageV0.try_compile(payer, ixs, [], recent_blockhash)
    else:
        raise ValueError(f"message version {version!r}: legacy or 0")
    slots = [Signature.default()] * msg.header.num_required_signatures
    return bytes(VersionedTransaction.populate(msg, slots))
