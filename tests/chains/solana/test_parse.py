"""Solana parse, finalize and address: the intent a node derives, checked against independent
builders and signers (solders, solana-py's spl.token, libsodium), and every refusal's field."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import (
    AssignParams,
    TransferWithSeedParams,
    assign,
    transfer_with_seed,
)
from solders.transaction import VersionedTransaction
from spl.token.instructions import (
    approve_checked,
    decode_transfer_checked,
    transfer,
    transfer_checked,
)
from spl.token.models import ApproveCheckedParams, TransferCheckedParams, TransferParams

from tholos.chains.base import Chain, ChainError, WalletRef
from tholos.chains.intent_check import check_intent
from tholos.chains.solana import (
    SOLANA,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    UNKNOWN_MINT,
    system_transfer,
    token_transfer_checked,
    unsigned,
)

BLOCKHASH = Hash.new_unique()


@pytest.fixture
def key() -> Keypair:
    return Keypair()


@pytest.fixture
def wallet(key: Keypair) -> WalletRef:
    return WalletRef("w", "solana", "devnet", "ed25519", "account", bytes(key.pubkey()))


def refused(field: str, fn: object, *args: object) -> ChainError:
    with pytest.raises(ChainError) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.field == field, info.value
    return info.value


def test_is_a_chain() -> None:
    import tholos.chains.solana as package

    assert isinstance(SOLANA, Chain)
    assert SOLANA.name == "solana"
    assert all(hasattr(package, name) for name in package.__all__)


# -- addresses ---------------------------------------------------------------------------------
def test_address_is_the_base58_account_of_the_key() -> None:
    seed = bytes(range(32))
    signing = SigningKey(seed)  # libsodium's key from the seed, solders' keypair independently
    w = WalletRef("w", "solana", "mainnet-beta", "ed25519", "account", bytes(signing.verify_key))
    info = SOLANA.address(w, 0)
    assert info.address == str(Keypair.from_seed(seed).pubkey())
    assert (info.index, info.path, info.public_key) == (0, "m", w.public_key)


def test_only_index_zero(wallet: WalletRef) -> None:
    err = refused("index", SOLANA.address, wallet, 1)
    assert "SLIP-10" in str(err) and "more keys" in str(err)
    with pytest.raises(ChainError) as info:
        SOLANA.address(wallet, 0, change=True)
    assert info.value.field == "change"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"chain": "ethereum"}, "chain"),
        ({"network": "mainnet"}, "network"),
        ({"scheme": "bip340"}, "scheme"),
        ({"address_type": "p2tr"}, "address_type"),
        ({"public_key": bytes(33)}, "public_key"),
    ],
)
def test_wallet_checked(wallet: WalletRef, change: dict[str, object], field: str) -> None:
    refused(field, SOLANA.address, dataclasses.replace(wallet, **change), 0)  # type: ignore[arg-type]


# -- parse -------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["legacy", "0"])
def test_system_transfer(key: Keypair, wallet: WalletRef, version: str) -> None:
    me, to = key.pubkey(), Pubkey.new_unique()
    raw = unsigned(me, [system_transfer(me, to, 42)], BLOCKHASH, version=version)  # type: ignore[arg-type]
    parsed = SOLANA.parse(wallet, raw)
    intent = parsed.intent.as_dict()
    assert intent["transfers"] == [
        {"asset": "SOL", "to": str(to), "amount": 42, "action": "transfer", "source": str(me)}
    ]
    assert intent["calls"] == [] and intent["fee"] == 5000 and intent["fee_asset"] == "SOL"
    assert intent["network"] == "devnet"
    d = intent["details"]
    assert (d["message_version"], d["recent_blockhash"], d["signer_count"]) == (
        version,
        str(BLOCKHASH),
        1,
    )
    assert d["fee_payer"] == str(me) and d["co_signers"] == ""
    # The target is what solders signs: its own keypair signature equals libsodium's over it.
    (target,) = parsed.targets
    tx = VersionedTransaction.from_bytes(raw)
    own = VersionedTransaction(tx.message, [key])
    assert bytes(own.signatures[0]) == bytes(key.sign_message(target.message))
    if version == "0":
        assert target.message == to_bytes_versioned(tx.message) != bytes(tx.message)
    signed = SOLANA.finalize(wallet, raw, [bytes(key.sign_message(target.message))])
    assert signed.raw == bytes(own) and signed.encoding == "base64"
    assert signed.txid == str(own.signatures[0])


def test_base64_payload(key: Keypair, wallet: WalletRef) -> None:
    me = key.pubkey()
    raw = unsigned(me, [system_transfer(me, Pubkey.new_unique(), 7)], BLOCKHASH)
    assert SOLANA.parse(wallet, base64.b64encode(raw)) == SOLANA.parse(wallet, raw)
    text = base64.b64encode(raw)[:-2] + b"!!"
    refused("payload", SOLANA.parse, wallet, text)


@pytest.mark.parametrize("program", [TOKEN_PROGRAM, TOKEN_2022_PROGRAM])
def test_spl_transfer_checked(key: Keypair, wallet: WalletRef, program: Pubkey) -> None:
    me = key.pubkey()
    src, mint, dst = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
    ours = token_transfer_checked(src, mint, dst, me, 10**9, 6, program)
    theirs = transfer_checked(
        TransferCheckedParams(
            program_id=program, source=src, mint=mint, dest=dst, owner=me, amount=10**9, decimals=6
        )
    )
    assert ours == theirs
    assert decode_transfer_checked(ours).amount == 10**9
    intent = SOLANA.parse(wallet, unsigned(me, [theirs], BLOCKHASH, version="0")).intent
    assert intent.transfers[0].__dict__ == {
        "asset": f"spl:{mint}",
        "to": str(dst),
        "amount": 10**9,
        "action": "transfer",
        "source": str(src),
    }


def test_spl_transfer_names_no_mint(key: Keypair, wallet: WalletRef) -> None:
    me = key.pubkey()
    src, dst = Pubkey.new_unique(), Pubkey.new_unique()
    ix = transfer(
        TransferParams(program_id=TOKEN_PROGRAM, source=src, dest=dst, owner=me, amount=5)
    )
    (t,) = SOLANA.parse(wallet, unsigned(me, [ix], BLOCKHASH)).intent.transfers
    assert (t.asset, t.to, t.amount, t.source) == (UNKNOWN_MINT, str(dst), 5, str(src))


def test_spl_approve_is_an_approval(key: Keypair, wallet: WalletRef) -> None:
    me = key.pubkey()
    src, mint, delegate = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
    ix = approve_checked(
        ApproveCheckedParams(
            program_id=TOKEN_PROGRAM,
            source=src,
            mint=mint,
            delegate=delegate,
            owner=me,
            amount=99,
            decimals=2,
        )
    )
    (t,) = SOLANA.parse(wallet, unsigned(me, [ix], BLOCKHASH)).intent.transfers
    assert (t.action, t.asset, t.to, t.amount) == ("approve", f"spl:{mint}", str(delegate), 99)


def test_transfer_with_seed(key: Keypair, wallet: WalletRef) -> None:
    me, to = key.pubkey(), Pubkey.new_unique()
    owner = Pubkey.new_unique()
    derived = Pubkey.create_with_seed(me, "vault-seed", owner)
    ix = transfer_with_seed(
        TransferWithSeedParams(
            from_pubkey=derived,
            from_base=me,
            from_seed="vault-seed",
            from_owner=owner,
            to_pubkey=to,
            lamports=77,
        )
    )
    (t,) = SOLANA.parse(wallet, unsigned(me, [ix], BLOCKHASH)).intent.transfers
    assert (t.asset, t.to, t.amount, t.source) == ("SOL", str(to), 77, str(derived))


def test_compute_budget_fee(key: Keypair, wallet: WalletRef) -> None:
    me = key.pubkey()
    ixs = [system_transfer(me, Pubkey.new_unique(), 1)]
    raw = unsigned(me, ixs, BLOCKHASH, compute_unit_limit=300_001, compute_unit_price=3)
    intent = SOLANA.parse(wallet, raw).intent
    # ceil(300001 * 3 / 1e6) = 1 lamport of priority fee
    assert intent.fee == 5001
    assert intent.details["compute_unit_limit"] == 300_001
    assert intent.details["compute_unit_price"] == 3
    assert intent.details["priority_fee"] == 1
    assert intent.calls == ()  # ComputeBudget instructions are fee settings, not calls
    # Above the runtime's maximum the limit is clamped to 1.4M units.
    raw = unsigned(me, ixs, BLOCKHASH, compute_unit_limit=5_000_000, compute_unit_price=10**6)
    assert SOLANA.parse(wallet, raw).intent.fee == 5000 + 1_400_000


def test_duplicate_compute_budget_refused(key: Keypair, wallet: WalletRef) -> None:
    from solders.compute_budget import set_compute_unit_price

    me = key.pubkey()
    raw = unsigned(me, [set_compute_unit_price(1), set_compute_unit_price(10**9)], BLOCKHASH)
    refused("instructions[1]", SOLANA.parse, wallet, raw)


def test_other_programs_are_calls(key: Keypair, wallet: WalletRef) -> None:
    me = key.pubkey()
    program = Pubkey.new_unique()
    unknown = Instruction(program, b"\x01\x02", [AccountMeta(me, True, True)])
    ixs = [unknown, assign(AssignParams(pubkey=me, owner=program))]
    intent = SOLANA.parse(wallet, unsigned(me, ixs, BLOCKHASH)).intent
    assert [c.contract for c in intent.calls] == [str(program), "11111111111111111111111111111111"]
    assert intent.transfers == ()


def test_co_signers_listed_and_wallet_signs_its_own_slot(key: Keypair, wallet: WalletRef) -> None:
    payer = Keypair()
    me = key.pubkey()
    msg = Message.new_with_blockhash(
        [system_transfer(me, Pubkey.new_unique(), 3)], payer.pubkey(), BLOCKHASH
    )
    raw = bytes(VersionedTransaction.populate(msg, [Signature.default()] * 2))
    parsed = SOLANA.parse(wallet, raw)
    d = parsed.intent.details
    assert (d["fee_payer"], d["co_signers"], d["co_signers_signed"]) == (
        str(payer.pubkey()),
        str(payer.pubkey()),
        "",
    )
    assert parsed.intent.fee == 10_000
    signed = SOLANA.finalize(wallet, raw, [bytes(key.sign_message(parsed.targets[0].message))])
    assert signed.txid == ""  # the fee payer's signature, the txid, is still missing
    tx = VersionedTransaction.from_bytes(signed.raw)
    assert tx.signatures[1] == key.sign_message(bytes(msg))
    assert tx.signatures[0] == Signature.default()


# -- refusals ----------------------------------------------------------------------------------
def test_wallet_not_a_signer(wallet: WalletRef) -> None:
    other = Pubkey.new_unique()
    raw = unsigned(other, [system_transfer(other, Pubkey.new_unique(), 1)], BLOCKHASH)
    refused("signers", SOLANA.parse, wallet, raw)


def test_wallet_only_read_as_account_is_not_a_signer(key: Keypair, wallet: WalletRef) -> None:
    other = Pubkey.new_unique()
    raw = unsigned(other, [system_transfer(other, key.pubkey(), 1)], BLOCKHASH)
    refused("signers", SOLANA.parse, wallet, raw)


def test_lookup_tables_refused(key: Keypair, wallet: WalletRef) -> None:
    me, to = key.pubkey(), Pubkey.new_unique()
    table = AddressLookupTableAccount(Pubkey.new_unique(), [to])
    msg = MessageV0.try_compile(me, [system_transfer(me, to, 1)], [table], BLOCKHASH)
    assert msg.address_table_lookups
    raw = bytes(VersionedTransaction.populate(msg, [Signature.default()]))
    err = refused("message.address_table_lookups", SOLANA.parse, wallet, raw)
    assert "cannot resolve" in str(err)


def test_malformed_wire(key: Keypair, wallet: WalletRef) -> None:
    me = key.pubkey()
    raw = unsigned(me, [system_transfer(me, Pubkey.new_unique(), 1)], BLOCKHASH)
    refused("payload", SOLANA.parse, wallet, raw + b"\x00")  # trailing bytes
    refused("payload", SOLANA.parse, wallet, raw[:-1])
    refused("payload", SOLANA.parse, wallet, b"")
    refused("payload", SOLANA.parse, wallet, "text")
    refused("payload", SOLANA.parse, wallet, raw + bytes(1100))
    # A second signature slot the header does not ask for.
    refused("signatures", SOLANA.parse, wallet, b"\x02" + bytes(128) + raw[65:])


def test_signed_slot_refused(key: Keypair, wallet: WalletRef) -> None:
    me = key.pubkey()
    raw = unsigned(me, [system_transfer(me, Pubkey.new_unique(), 1)], BLOCKHASH)
    signed = SOLANA.finalize(
        wallet, raw, [bytes(key.sign_message(SOLANA.parse(wallet, raw).targets[0].message))]
    ).raw
    refused("signatures[0]", SOLANA.parse, wallet, signed)


def test_instruction_data_longer_than_its_layout(key: Keypair, wallet: WalletRef) -> None:
    me = key.pubkey()
    ix = system_transfer(me, Pubkey.new_unique(), 1)
    long = Instruction(ix.program_id, bytes(ix.data) + b"\x00", ix.accounts)
    refused("instructions[0].data", SOLANA.parse, wallet, unsigned(me, [long], BLOCKHASH))
    short = Instruction(TOKEN_PROGRAM, b"\x0c" + bytes(8), [AccountMeta(me, True, False)])
    refused("instructions[0].data", SOLANA.parse, wallet, unsigned(me, [short], BLOCKHASH))
    few = Instruction(TOKEN_PROGRAM, b"\x0c" + bytes(9), [AccountMeta(me, True, False)])
    refused("instructions[0].accounts", SOLANA.parse, wallet, unsigned(me, [few], BLOCKHASH))


def test_finalize_checks_the_signature(key: Keypair, wallet: WalletRef) -> None:
    me = key.pubkey()
    raw = unsigned(me, [system_transfer(me, Pubkey.new_unique(), 1)], BLOCKHASH)
    message = SOLANA.parse(wallet, raw).targets[0].message
    good = bytes(key.sign_message(message))
    refused("signatures[0]", SOLANA.finalize, wallet, raw, [bytes(Keypair().sign_message(message))])
    refused(
        "signatures[0]", SOLANA.finalize, wallet, raw, [bytes(key.sign_message(message + b"x"))]
    )
    refused("signatures[0]", SOLANA.finalize, wallet, raw, [good[:63]])
    refused("signatures", SOLANA.finalize, wallet, raw, [good, good])
    refused("signatures", SOLANA.finalize, wallet, raw, [])


# -- the node's comparison with the approved intent -------------------------------------------
def test_hostile_transactions_differ_from_the_approved_intent(
    key: Keypair, wallet: WalletRef
) -> None:
    me, to = key.pubkey(), Pubkey.new_unique()
    approved = SOLANA.parse(wallet, unsigned(me, [system_transfer(me, to, 500)], BLOCKHASH))
    check_intent(approved.intent, approved.intent)

    def derived(*ixs: Instruction, **kw: int) -> object:
        return SOLANA.parse(wallet, unsigned(me, list(ixs), BLOCKHASH, **kw)).intent  # type: ignore[arg-type]

    cases = {
        "transfers[0].to": derived(system_transfer(me, Pubkey.new_unique(), 500)),
        "transfers[0].amount": derived(system_transfer(me, to, 501)),
        "transfers": derived(system_transfer(me, to, 500), system_transfer(me, to, 500)),
        "calls": derived(
            system_transfer(me, to, 500), assign(AssignParams(pubkey=me, owner=Pubkey.new_unique()))
        ),
        "fee": derived(system_transfer(me, to, 500), compute_unit_price=10**6),
        "details.recent_blockhash": SOLANA.parse(
            wallet, unsigned(me, [system_transfer(me, to, 500)], Hash.new_unique())
        ).intent,
    }
    for field, intent in cases.items():
        with pytest.raises(ChainError) as info:
            check_intent(approved.intent, intent)  # type: ignore[arg-type]
        assert info.value.field == field
    other_net = dataclasses.replace(wallet, network="mainnet-beta")
    with pytest.raises(ChainError) as info:
        check_intent(
            approved.intent,
            SOLANA.parse(other_net, unsigned(me, [system_transfer(me, to, 500)], BLOCKHASH)).intent,
        )
    assert info.value.field == "network"


# -- properties --------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=1300))
def test_random_bytes_only_chain_errors(data: bytes) -> None:
    wallet = WalletRef("w", "solana", "devnet", "ed25519", "account", bytes(32))
    with pytest.raises(ChainError):
        SOLANA.parse(wallet, data)


_KEY = Keypair.from_seed(bytes(32))
_WALLET = WalletRef("w", "solana", "devnet", "ed25519", "account", bytes(_KEY.pubkey()))
_VALID = unsigned(
    _KEY.pubkey(),
    [
        system_transfer(_KEY.pubkey(), Pubkey.new_unique(), 9),
        token_transfer_checked(
            Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique(), _KEY.pubkey(), 3, 6
        ),
    ],
    BLOCKHASH,
    version="0",
    compute_unit_limit=10_000,
    compute_unit_price=7,
)


@settings(max_examples=400, deadline=None)
@given(at=st.integers(0, len(_VALID) - 1), byte=st.integers(0, 255), cut=st.integers(0, 3))
def test_mutated_transactions_parse_or_chain_error(at: int, byte: int, cut: int) -> None:
    mutated = _VALID[:at] + bytes([byte]) + _VALID[at + 1 : len(_VALID) - cut]
    try:
        parsed = SOLANA.parse(_WALLET, mutated)
    except ChainError:
        return
    # What parses is canonical: the signed message is exactly the wire bytes after the slots.
    n = len(parsed.targets[0].message)
    assert mutated[-n:] == parsed.targets[0].message
    assert len(mutated) == n + 1 + 64 * int(parsed.intent.details["signer_count"])


def test_durable_nonce_shown(key: Keypair, wallet: WalletRef) -> None:
    from solders.system_program import AdvanceNonceAccountParams, advance_nonce_account

    me, nonce = key.pubkey(), Pubkey.new_unique()
    ixs = [
        advance_nonce_account(AdvanceNonceAccountParams(nonce_pubkey=nonce, authorized_pubkey=me)),
        system_transfer(me, Pubkey.new_unique(), 1),
    ]
    intent = SOLANA.parse(wallet, unsigned(me, ixs, BLOCKHASH)).intent
    assert intent.details["durable_nonce_account"] == str(nonce)
    assert intent.calls == () and len(intent.transfers) == 1
    # Anywhere but first, AdvanceNonceAccount is an ordinary system-program call.
    later = SOLANA.parse(wallet, unsigned(me, ixs[::-1], BLOCKHASH)).intent
    assert "durable_nonce_account" not in later.details
    assert [c.contract for c in later.calls] == ["11111111111111111111111111111111"]


def test_precompile_signatures_are_fee_charged(key: Keypair, wallet: WalletRef) -> None:
    me = key.pubkey()
    ed25519_program = Pubkey.from_string("Ed25519SigVerify111111111111111111111111111")
    ix = Instruction(ed25519_program, bytes([3, 0]), [])
    intent = SOLANA.parse(wallet, unsigned(me, [ix], BLOCKHASH)).intent
    assert intent.fee == 4 * 5000
    assert [c.contract for c in intent.calls] == [str(ed25519_program)]
