"""The package's transactions, signed by a FROST-Ed25519 threshold signature, run in LiteSVM (the
Solana runtime with signature verification on): balances move; a tampered transaction fails."""

from __future__ import annotations

from typing import Literal

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.token.associated import get_associated_token_address
from solders.token.state import TokenAccount
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from spl.token.instructions import (
    create_associated_token_account,
    initialize_mint2,
    mint_to_checked,
)
from spl.token.models import InitializeMint2Params, MintToCheckedParams

from tests.chains.solana.threshold import ThresholdWallet
from tholos.chains.solana import (
    SOLANA,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    system_transfer,
    token_transfer_checked,
    unsigned,
)

SOL = 1_000_000_000


def send(svm: LiteSVM, raw: bytes) -> object:
    return svm.send_transaction(VersionedTransaction.from_bytes(raw))


def admin_tx(
    svm: LiteSVM, admin: Keypair, *ixs: Instruction, signers: tuple[Keypair, ...] = ()
) -> None:
    """Set-up transaction signed by ordinary keypairs (mint, token accounts)."""
    msg = Message.new_with_blockhash(list(ixs), admin.pubkey(), svm.latest_blockhash())
    tx = Transaction([admin, *signers], msg, svm.latest_blockhash())
    result = svm.send_transaction(tx)
    assert not isinstance(result, FailedTransactionMetadata), result


@pytest.mark.parametrize("version", ["legacy", "0"])
def test_threshold_signed_sol_transfer_executes(version: Literal["legacy", "0"]) -> None:
    svm = LiteSVM()
    wallet = ThresholdWallet()
    me = Pubkey.from_bytes(wallet.public_key)
    to = Pubkey.new_unique()
    svm.airdrop(me, 2 * SOL)
    raw = unsigned(
        me,
        [system_transfer(me, to, 1_234_567)],
        svm.latest_blockhash(),
        version=version,
        compute_unit_limit=1_000,
        compute_unit_price=5_000,
    )
    parsed = SOLANA.parse(wallet.ref, raw)
    assert parsed.intent.transfers[0].amount == 1_234_567
    signed = SOLANA.finalize(wallet.ref, raw, [wallet.sign(parsed.targets[0].message)])
    result = send(svm, signed.raw)
    assert not isinstance(result, FailedTransactionMetadata), result
    assert svm.get_balance(to) == 1_234_567
    # The engine charged exactly the fee the node derived.
    assert svm.get_balance(me) == 2 * SOL - 1_234_567 - parsed.intent.fee
    assert signed.txid == str(VersionedTransaction.from_bytes(signed.raw).signatures[0])


@pytest.mark.parametrize(
    "program", [TOKEN_PROGRAM, TOKEN_2022_PROGRAM], ids=["token", "token-2022"]
)
def test_threshold_signed_spl_transfer_checked_executes(program: Pubkey) -> None:
    svm = LiteSVM()
    wallet = ThresholdWallet()
    me = Pubkey.from_bytes(wallet.public_key)
    admin, mint, bob = Keypair(), Keypair(), Pubkey.new_unique()
    svm.airdrop(admin.pubkey(), 10 * SOL)
    svm.airdrop(me, SOL)
    rent = svm.minimum_balance_for_rent_exemption(82)
    admin_tx(
        svm,
        admin,
        create_account(
            CreateAccountParams(
                from_pubkey=admin.pubkey(),
                to_pubkey=mint.pubkey(),
                lamports=rent,
                space=82,
                owner=program,
            )
        ),
        initialize_mint2(
            InitializeMint2Params(
                decimals=6,
                program_id=program,
                mint=mint.pubkey(),
                mint_authority=admin.pubkey(),
            )
        ),
        create_associated_token_account(admin.pubkey(), me, mint.pubkey(), program),
        create_associated_token_account(admin.pubkey(), bob, mint.pubkey(), program),
        signers=(mint,),
    )
    mine = get_associated_token_address(me, mint.pubkey(), program)
    bobs = get_associated_token_address(bob, mint.pubkey(), program)
    admin_tx(
        svm,
        admin,
        mint_to_checked(
            MintToCheckedParams(
                program_id=program,
                mint=mint.pubkey(),
                dest=mine,
                mint_authority=admin.pubkey(),
                amount=1_000_000,
                decimals=6,
            )
        ),
    )
    ix = token_transfer_checked(mine, mint.pubkey(), bobs, me, 250_000, 6, program)
    raw = unsigned(me, [ix], svm.latest_blockhash(), version="0")
    parsed = SOLANA.parse(wallet.ref, raw)
    t = parsed.intent.transfers[0]
    assert (t.asset, t.to, t.amount, t.source) == (
        f"spl:{mint.pubkey()}",
        str(bobs),
        250_000,
        str(mine),
    )
    signed = SOLANA.finalize(wallet.ref, raw, [wallet.sign(parsed.targets[0].message)])
    result = send(svm, signed.raw)
    assert not isinstance(result, FailedTransactionMetadata), result

    def balance(account: Pubkey) -> int:
        acct = svm.get_account(account)
        assert acct is not None
        return TokenAccount.from_bytes(acct.data[:165]).amount

    assert (balance(mine), balance(bobs)) == (750_000, 250_000)


def test_tampered_after_signing_fails_in_the_engine() -> None:
    svm = LiteSVM()
    wallet = ThresholdWallet()
    me = Pubkey.from_bytes(wallet.public_key)
    to = Pubkey.new_unique()
    svm.airdrop(me, SOL)
    raw = unsigned(me, [system_transfer(me, to, 1_000_000)], svm.latest_blockhash())
    parsed = SOLANA.parse(wallet.ref, raw)
    signed = SOLANA.finalize(wallet.ref, raw, [wallet.sign(parsed.targets[0].message)]).raw
    # The lamports are the last 8 bytes of the message (the transfer's data): raise them.
    tampered = signed[:-8] + (900_000_000).to_bytes(8, "little")
    result = send(svm, tampered)
    assert isinstance(result, FailedTransactionMetadata)
    assert "Signature" in str(result.err())
    assert svm.get_balance(to) is None or svm.get_balance(to) == 0
    # The untampered one still executes: the failure was the signature, not the set-up.
    assert not isinstance(send(svm, signed), FailedTransactionMetadata)
    assert svm.get_balance(to) == 1_000_000


def test_fee_is_an_upper_bound_of_what_the_engine_charges_without_a_limit() -> None:
    """No SetComputeUnitLimit: the node assumes 200 000 units per instruction (3 000 for a
    compute-budget one); the runtime gives builtins less, so it charges no more than that."""
    svm = LiteSVM()
    wallet = ThresholdWallet()
    me = Pubkey.from_bytes(wallet.public_key)
    to = Pubkey.new_unique()
    svm.airdrop(me, 2 * SOL)
    raw = unsigned(
        me, [system_transfer(me, to, SOL)], svm.latest_blockhash(), compute_unit_price=1_000_000
    )
    parsed = SOLANA.parse(wallet.ref, raw)
    assert parsed.intent.fee == 5_000 + 203_000
    signed = SOLANA.finalize(wallet.ref, raw, [wallet.sign(parsed.targets[0].message)])
    assert not isinstance(send(svm, signed.raw), FailedTransactionMetadata)
    charged = 2 * SOL - SOL - (svm.get_balance(me) or 0)
    assert 5_000 < charged <= parsed.intent.fee


def test_wallet_as_second_signer_then_fee_payer_signs() -> None:
    """A multi-signer transaction: the wallet signs its slot (not the first), the fee payer signs
    after; the engine accepts both signatures."""
    svm = LiteSVM()
    wallet = ThresholdWallet()
    me = Pubkey.from_bytes(wallet.public_key)
    payer, to = Keypair(), Pubkey.new_unique()
    svm.airdrop(payer.pubkey(), SOL)
    svm.airdrop(me, SOL)
    raw = unsigned(payer.pubkey(), [system_transfer(me, to, SOL // 2)], svm.latest_blockhash())
    parsed = SOLANA.parse(wallet.ref, raw)
    assert parsed.intent.details["co_signers"] == str(payer.pubkey())
    half = SOLANA.finalize(wallet.ref, raw, [wallet.sign(parsed.targets[0].message)])
    assert half.txid == ""
    tx = VersionedTransaction.from_bytes(half.raw)
    sigs = list(tx.signatures)
    sigs[0] = payer.sign_message(parsed.targets[0].message)
    result = svm.send_transaction(VersionedTransaction.populate(tx.message, sigs))
    assert not isinstance(result, FailedTransactionMetadata), result
    assert svm.get_balance(to) == SOL // 2
    assert svm.get_balance(me) == SOL // 2  # the fee payer paid the fee
