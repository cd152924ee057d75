"""Tokens, permits and the other wallet kinds, signed by a governed cluster of real node and
gateway processes (mutual TLS) through the CLI (`tx build`, `tx sign --as initiator`, `requests
approve`), judged by engines nobody here wrote: an ERC-20 transfer and an EIP-2612 permit on anvil
(the vyper-compiled test token moves the balance, accepts the permit), a native transfer on
eth-tester/py-evm in-process, a P2WPKH spend on py-bitcoinkernel (the block connects; tampered, it
does not) and an SPL `transfer_checked` on LiteSVM (the token program moves the balance)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from embit.transaction import Transaction
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import function_signature_to_4byte_selector as selector
from eth_utils import to_checksum_address
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.token.associated import get_associated_token_address
from solders.token.state import TokenAccount
from solders.transaction import Transaction as SolanaTransaction
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from spl.token.instructions import (
    create_associated_token_account,
    initialize_mint2,
    mint_to_checked,
)
from spl.token.models import InitializeMint2Params, MintToCheckedParams

from tests.chains.ethereum_flow import permit_typed_data, token_bytecode
from tests.chains.test_ethereum_anvil import AnvilEngine
from tests.cluster.test_governance import GovCluster
from tests.cluster.test_governed_chains import (
    BTC_TO,
    ELSEWHERE,
    ETH_OTHER,
    ETH_TO,
    GWEI,
    LIMIT,
    SOL_TO,
    Cli,
    _refused_by_every_signer,
    governed_cluster,
)
from tests.engines import running_anvil
from tholos.chains.bitcoin import script_of
from tholos.chains.solana import TOKEN_PROGRAM
from tholos.connectors.regtest_chain import SUBSIDY, Regtest
from tholos.governance import ApprovalRequirement, Match, Policy, Rule

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SUPPLY = 10**24
MINT = Keypair.from_seed(b"\x44" * 32)  # the SPL mint's address is fixed, so the policy can name it
SPL_TO = str(get_associated_token_address(Pubkey.from_string(SOL_TO), MINT.pubkey(), TOKEN_PROGRAM))


def asset_policy() -> Policy:
    """One treasury approval for transfers to the listed destinations, LIMIT each (the SPL
    destination is the recipient's token account, which the transaction names), and for permits
    to ETH_TO (a rule covers permits only when its `actions` say so)."""
    return Policy(
        rules=(
            Rule(
                rule_id="payouts",
                match=Match(chains=("bitcoin", "ethereum", "solana")),
                allowed_destinations=(BTC_TO, ETH_TO, SOL_TO, SPL_TO),
                max_amount=LIMIT,
                max_fee=10**16,
                approvals=(ApprovalRequirement(group="treasury", count=1),),
            ),
            Rule(
                rule_id="permits",
                match=Match(chains=("ethereum",), actions=("permit",)),
                allowed_destinations=(ETH_TO,),
                max_amount=LIMIT,
                approvals=(ApprovalRequirement(group="treasury", count=1),),
            ),
        )
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GovCluster]:
    with governed_cluster(tmp_path_factory.mktemp("assets") / "g", asset_policy()) as c:
        yield c


def _call_data(signature: str, types: list[str], args: list[Any]) -> bytes:
    return bytes(selector(signature)) + abi_encode(types, args)


def _uint(
    engine: AnvilEngine, token: str, signature: str, types: list[str], args: list[Any]
) -> int:
    (value,) = abi_decode(["uint256"], engine.call(token, _call_data(signature, types, args)))
    return int(value)


def _deploy_token(engine: AnvilEngine) -> str:
    """The test token, deployed by anvil's own funded account (which holds the supply)."""
    init = token_bytecode() + abi_encode(["uint256"], [SUPPLY])
    tx = {"from": engine.funded, "data": "0x" + init.hex(), "gas": hex(3_000_000)}
    receipt = engine._receipt(engine.rpc("eth_sendTransaction", tx))
    assert receipt.status == 1 and receipt.contract_address, receipt
    return to_checksum_address(receipt.contract_address)


# -- ethereum --------------------------------------------------------------------------------------
def test_erc20_transfer_and_permit_signed_by_the_cluster_on_anvil(
    cluster: GovCluster, tmp_path: Path
) -> None:
    cli = Cli(cluster, tmp_path)
    wallet = cli.wallet("ethereum", "anvil")
    me = wallet["address"]
    with running_anvil(31337) as url:
        engine = AnvilEngine(url)
        engine.fund(me, 10**18)
        token = _deploy_token(engine)
        balance_of = ("balanceOf(address)", ["address"])
        r = engine.transact(
            engine.funded,
            token,
            _call_data("transfer(address,uint256)", ["address", "uint256"], [me, 5_000_000]),
        )
        assert r.status == 1, r
        fees = ("--gas", "100000", "--max-fee", str(30 * GWEI), "--priority-fee", str(2 * GWEI))

        # A recipient the policy does not list, inside the calldata: refused by every node.
        out = cli.sign(
            wallet,
            cli.build(wallet, "--to", ETH_OTHER, "--amount", "1000", "--token", token,
                      "--nonce", "0", *fees),
            ok=False,
        )  # fmt: skip
        _refused_by_every_signer(cluster, out, "destination")

        payload = cli.build(wallet, "--to", ETH_TO, "--amount", "1500000", "--token", token,
                            "--nonce", "0", *fees)  # fmt: skip
        shown = cli.signed(wallet, payload)
        (t,) = shown["intent"]["transaction"]["transfers"]
        assert (t["asset"], t["to"], t["amount"]) == (f"erc20:{token}", ETH_TO, 1_500_000), t
        raw = bytes.fromhex(shown["transaction"]["raw"].removeprefix("0x"))
        assert Account.recover_transaction(raw) == me
        receipt = engine.send_raw(raw)
        assert receipt.status == 1, receipt
        assert _uint(engine, token, *balance_of, [ETH_TO]) == 1_500_000
        assert _uint(engine, token, *balance_of, [me]) == 5_000_000 - 1_500_000

        # EIP-2612 permit: the cluster's signature recovers to the wallet, and the token accepts
        # it (anyone may submit a permit; here anvil's funded account does).
        deadline = 2**40
        typed = permit_typed_data(31337, token, me, ETH_TO, 500, deadline)
        permit = tmp_path / "permit.json"
        permit.write_text(json.dumps({"kind": "eip712", "index": 0, "typed_data": typed}))
        shown = cli.signed(wallet, permit)
        (p,) = shown["intent"]["transaction"]["transfers"]
        assert (p["action"], p["to"], p["amount"]) == ("permit", ETH_TO, 500), p
        signature = bytes.fromhex(shown["transaction"]["raw"].removeprefix("0x"))
        assert len(signature) == 65
        assert (
            Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
            == me
        )
        v, r_, s_ = signature[64], signature[:32], signature[32:64]
        receipt = engine.transact(
            engine.funded,
            token,
            _call_data(
                "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
                ["address", "address", "uint256", "uint256", "uint8", "bytes32", "bytes32"],
                [me, ETH_TO, 500, deadline, v, r_, s_],
            ),
        )
        assert receipt.status == 1, receipt
        allowance = ("allowance(address,address)", ["address", "address"])
        assert _uint(engine, token, *allowance, [me, ETH_TO]) == 500


def test_native_transfer_signed_by_the_cluster_on_py_evm(
    cluster: GovCluster, tmp_path: Path
) -> None:
    eth_tester = pytest.importorskip("eth_tester", reason="pip install 'eth-tester[py-evm]'")
    tester = eth_tester.EthereumTester(eth_tester.PyEVMBackend())
    chain_id = int(tester.backend.chain.chain_id)
    cli = Cli(cluster, tmp_path)
    wallet = cli.wallet("ethereum", str(chain_id))
    me = wallet["address"]
    funded = tester.get_accounts()[0]
    base = int(tester.get_block_by_number("pending")["base_fee_per_gas"])
    gas = {"max_fee_per_gas": 2 * base + GWEI, "max_priority_fee_per_gas": GWEI}
    tester.send_transaction({"from": funded, "to": me, "value": 10**18, "gas": 21_000, **gas})

    payload = cli.build(wallet, "--to", ETH_TO, "--amount", "1750000", "--nonce", "0",
                        "--gas", "21000", "--max-fee", str(gas["max_fee_per_gas"]),
                        "--priority-fee", str(GWEI))  # fmt: skip
    shown = cli.signed(wallet, payload)
    before = int(tester.get_balance(ETH_TO))
    txid = tester.send_raw_transaction(shown["transaction"]["raw"])
    receipt = tester.get_transaction_receipt(txid)
    assert int(receipt["status"]) == 1, receipt
    assert int(tester.get_balance(ETH_TO)) == before + 1_750_000
    paid = int(receipt["gas_used"]) * int(receipt["effective_gas_price"])
    assert int(tester.get_balance(me)) == 10**18 - 1_750_000 - paid


# -- bitcoin ---------------------------------------------------------------------------------------
def test_bitcoin_p2wpkh_spend_signed_by_the_cluster_connects(
    cluster: GovCluster, tmp_path: Path
) -> None:
    cli = Cli(cluster, tmp_path)
    wallet = cli.ok("wallets", "create", "--chain", "bitcoin", "--network", "regtest",
                    "--address-type", "p2wpkh")  # fmt: skip
    assert (wallet["address_type"], wallet["scheme"]) == ("p2wpkh", "ecdsa"), wallet
    assert cli.ok("keys", "presign", wallet["key_id"], "--count", "4")["available"] >= 4
    chain = Regtest(tmp_path / "regtest")
    coins = []
    for i in range(2):
        address = cli.ok("wallets", "address", wallet["wallet_id"], "--index", str(i))["address"]
        assert address.startswith("bcrt1q"), address
        cb = chain.mine(script_of(address, "regtest"))
        coins.append(f"{cb.txid().hex()}:0:{SUBSIDY}:m/0/{i}")
    for _ in range(99):
        chain.mine(ELSEWHERE)

    utxos = [a for coin in coins for a in ("--utxo", coin)]
    payload = cli.build(wallet, "--to", BTC_TO, "--amount", "1000000", "--fee", "2000",
                        "--change-index", "0", *utxos)  # fmt: skip
    shown = cli.signed(wallet, payload)
    tx = Transaction.parse(bytes.fromhex(shown["transaction"]["raw"]))
    assert tx.txid().hex() == shown["transaction"]["txid"]
    assert len(tx.vin) == 2 and all(len(i.witness.items) == 2 for i in tx.vin)

    # The second input's signature altered after signing (its S value): the block does not
    # connect; the spend as signed does.
    bad = Transaction.parse(tx.serialize())
    sig = bytearray(bad.vin[1].witness.items[0])
    sig[-3] ^= 1
    bad.vin[1].witness.items[0] = bytes(sig)
    block, _ = chain.block(ELSEWHERE, [bad], 2000)
    assert not chain.submit(block) and chain.height == 101
    block, _ = chain.block(ELSEWHERE, [tx], 2000)
    assert chain.submit(block) and chain.height == 102


# -- solana ----------------------------------------------------------------------------------------
def _admin_tx(svm: LiteSVM, admin: Keypair, *ixs: Any, signers: tuple[Keypair, ...] = ()) -> None:
    msg = Message.new_with_blockhash(list(ixs), admin.pubkey(), svm.latest_blockhash())
    result = svm.send_transaction(SolanaTransaction([admin, *signers], msg, svm.latest_blockhash()))
    assert not isinstance(result, FailedTransactionMetadata), result


def test_spl_transfer_checked_signed_by_the_cluster_executes_on_litesvm(
    cluster: GovCluster, tmp_path: Path
) -> None:
    cli = Cli(cluster, tmp_path)
    wallet = cli.wallet("solana", "localnet")
    me, to, mint = Pubkey.from_string(wallet["address"]), Pubkey.from_string(SOL_TO), MINT.pubkey()
    svm = LiteSVM()
    admin = Keypair()
    svm.airdrop(admin.pubkey(), 10**10)
    svm.airdrop(me, 10**9)
    _admin_tx(
        svm,
        admin,
        create_account(
            CreateAccountParams(
                from_pubkey=admin.pubkey(),
                to_pubkey=mint,
                lamports=svm.minimum_balance_for_rent_exemption(82),
                space=82,
                owner=TOKEN_PROGRAM,
            )
        ),
        initialize_mint2(
            InitializeMint2Params(
                decimals=6, program_id=TOKEN_PROGRAM, mint=mint, mint_authority=admin.pubkey()
            )
        ),
        create_associated_token_account(admin.pubkey(), me, mint, TOKEN_PROGRAM),
        create_associated_token_account(admin.pubkey(), to, mint, TOKEN_PROGRAM),
        signers=(MINT,),
    )
    mine = get_associated_token_address(me, mint, TOKEN_PROGRAM)
    theirs = get_associated_token_address(to, mint, TOKEN_PROGRAM)
    assert str(theirs) == SPL_TO
    _admin_tx(
        svm,
        admin,
        mint_to_checked(
            MintToCheckedParams(
                program_id=TOKEN_PROGRAM,
                mint=mint,
                dest=mine,
                mint_authority=admin.pubkey(),
                amount=5_000_000,
                decimals=6,
            )
        ),
    )
    blockhash = str(svm.latest_blockhash())

    def spl(amount: int) -> Path:
        return cli.build(wallet, "--to", SOL_TO, "--amount", str(amount), "--token", str(mint),
                         "--decimals", "6", "--blockhash", blockhash)  # fmt: skip

    out = cli.sign(wallet, spl(LIMIT + 1), ok=False)
    _refused_by_every_signer(cluster, out, "amount")

    shown = cli.signed(wallet, spl(1_250_000))
    (t,) = shown["intent"]["transaction"]["transfers"]
    assert (t["asset"], t["to"], t["amount"]) == (f"spl:{mint}", SPL_TO, 1_250_000), t
    raw = base64.b64decode(shown["transaction"]["raw"])
    tampered = bytearray(raw)
    tampered[-1] ^= 1  # the last byte of the message: the signature no longer covers it
    result = svm.send_transaction(VersionedTransaction.from_bytes(bytes(tampered)))
    assert isinstance(result, FailedTransactionMetadata), result
    result = svm.send_transaction(VersionedTransaction.from_bytes(raw))
    assert not isinstance(result, FailedTransactionMetadata), result

    def balance(account: Pubkey) -> int:
        acct = svm.get_account(account)
        assert acct is not None
        return TokenAccount.from_bytes(acct.data[:165]).amount

    assert (balance(mine), balance(theirs)) == (5_000_000 - 1_250_000, 1_250_000)
