"""Chain transactions signed by a governed cluster of real node and gateway processes (mutual TLS),
driven by the CLI: `wallets create`, `tx build`, `tx sign --as initiator`, `requests approve`. The
result is judged by engines nobody here wrote: Bitcoin Core's consensus code (py-bitcoinkernel:
the block carrying the spend connects), anvil (revm: the receipt succeeds, balances move) and
LiteSVM (the Solana runtime executes it). Out-of-policy transactions (a destination not allowed,
an amount over the limit) and a payload hiding an output the intent does not declare are refused
by every node asked to sign (each parses and judges the payload itself), and nothing is signed."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from embit import script as embit_script
from embit.ec import PrivateKey as EmbitPrivateKey
from embit.networks import NETWORKS
from embit.transaction import Transaction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from tests.cluster.conftest import wait_until
from tests.cluster.test_governance import GovCluster
from tests.engines import running_anvil
from tholos.chains.bitcoin import BITCOIN, Utxo, build_psbt, script_of
from tholos.chains.wallet_kinds import ref_of
from tholos.cli import main as cli_main
from tholos.connectors.ethereum import EthereumRpc
from tholos.connectors.regtest_chain import SUBSIDY, Regtest
from tholos.governance import ApprovalRequirement, Intent, Match, Policy, Rule, new_request
from tholos.governance.transactions import declare

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ELSEWHERE = b"\x51"  # OP_TRUE: coinbases nobody here spends
BTC_PAY = EmbitPrivateKey(b"\x11" * 32).get_public_key()
BTC_TO = str(embit_script.p2tr(BTC_PAY).address(NETWORKS["regtest"]))
BTC_OTHER = str(
    embit_script.p2tr(EmbitPrivateKey(b"\x22" * 32).get_public_key()).address(NETWORKS["regtest"])
)
ETH_TO = "0x3535353535353535353535353535353535353535"
ETH_OTHER = "0x000000000000000000000000000000000000dEaD"
SOL_TO = str(Keypair.from_seed(b"\x33" * 32).pubkey())
LIMIT = 2_000_000  # base units per transfer, every chain
GWEI = 10**9


def chain_policy() -> Policy:
    """One treasury approval for transfers to the listed destinations, up to LIMIT each."""
    return Policy(
        rules=(
            Rule(
                rule_id="payouts",
                match=Match(chains=("bitcoin", "ethereum", "solana")),
                allowed_destinations=(BTC_TO, ETH_TO, SOL_TO),
                max_amount=LIMIT,
                max_fee=10**16,
                approvals=(ApprovalRequirement(group="treasury", count=1),),
            ),
        )
    )


def _cli(*args: str) -> tuple[int, dict[str, Any]]:
    """`tholos ARGS --json` in this process."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli_main([*args, "--json"])
    return code, json.loads(buf.getvalue() or "{}")


@contextlib.contextmanager
def governed_cluster(root: Path, policy: Policy) -> Iterator[GovCluster]:
    """4 nodes (t=2) and a gateway, every node on `policy`; closed on exit."""
    c = GovCluster(root, 4, 2)
    try:
        c.start()
        c.adopt(c.next_doc(policy=policy), "admin-1", "admin-2")
        version = c.document().document.version
        wait_until(
            lambda: set(c.get("/v1/governance")["versions"].values()) == {version},
            30,
            "every node on the chain policy",
        )
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GovCluster]:
    with governed_cluster(tmp_path_factory.mktemp("chains") / "g", chain_policy()) as c:
        yield c


class Cli:
    """The CLI against the module's cluster, with payload files in `tmp`."""

    def __init__(self, c: GovCluster, tmp: Path) -> None:
        self.c, self.tmp, self.d = c, tmp, ("--dir", str(c.cd.root))

    def ok(self, *args: str) -> dict[str, Any]:
        code, out = _cli(*args, *self.d)
        assert code == 0, out
        return out

    def wallet(self, chain: str, network: str) -> dict[str, Any]:
        w = self.ok("wallets", "create", "--chain", chain, "--network", network)
        if chain == "ethereum" or w["scheme"] == "ecdsa":
            assert self.ok("keys", "presign", w["key_id"], "--count", "4")["available"] >= 4
        return w

    def build(self, wallet: dict[str, Any], *args: str) -> Path:
        out = self.ok("tx", "build", wallet["wallet_id"], *args)
        flag = {"bitcoin": "psbt", "ethereum": "eth", "solana": "sol"}[wallet["chain"]]
        path = self.tmp / f"{flag}-{time.monotonic_ns()}.txt"
        path.write_text(out["payload"])
        return path

    def sign(self, wallet: dict[str, Any], payload: Path, *, ok: bool = True) -> dict[str, Any]:
        flag = {"bitcoin": "--psbt", "ethereum": "--eth-tx", "solana": "--sol-tx"}
        code, out = _cli(
            "tx", "sign", wallet["wallet_id"], flag[wallet["chain"]], str(payload),
            "--as", "initiator", *self.d,
        )  # fmt: skip
        assert (code == 0) is ok, out
        return out

    def signed(self, wallet: dict[str, Any], payload: Path) -> dict[str, Any]:
        """tx sign (awaiting one approval), requests approve: the signed request as shown."""
        out = self.sign(wallet, payload)
        assert out["status"] == "awaiting-approval" and "raw" not in out, out
        assert "treasury" in out["error"], out
        approved = self.ok("requests", "approve", out["request_id"], "--as", "approver-1")
        assert approved["status"] in ("signed", "reserved"), approved  # reserved: still signing
        shown = wait_until(
            lambda: (
                (s := self.ok("requests", "show", out["request_id"]))["status"] != "reserved" and s
            ),
            60,
            "the approved request signed",
        )
        assert shown["status"] == "signed", shown
        assert shown["intent"]["transaction"]["transfers"] == out["intent"]["transfers"]
        return shown


def _refused_by_every_signer(c: GovCluster, out: dict[str, Any], words: str) -> None:
    err = out["error"]
    assert err["code"] == "refused" and err["status"] == "refused", out
    assert "raw" not in err, out
    assert len(err["refusals"]) >= c.t, out  # every signer asked refused
    assert all(words in r["reason"] for r in err["refusals"].values()), out


# -- bitcoin ---------------------------------------------------------------------------------------
def test_bitcoin_taproot_spend_signed_by_the_cluster_connects(
    cluster: GovCluster, tmp_path: Path
) -> None:
    cli = Cli(cluster, tmp_path)
    wallet = cli.wallet("bitcoin", "regtest")
    chain = Regtest(tmp_path / "regtest")
    coins = []
    for i in range(2):
        address = cli.ok("wallets", "address", wallet["wallet_id"], "--index", str(i))["address"]
        cb = chain.mine(script_of(address, "regtest"))
        coins.append(f"{cb.txid().hex()}:0:{SUBSIDY}:m/0/{i}")
    for _ in range(99):
        chain.mine(ELSEWHERE)

    def psbt(to: str, amount: int) -> Path:
        utxos = [a for coin in coins for a in ("--utxo", coin)]
        return cli.build(wallet, "--to", to, "--amount", str(amount), "--fee", "2000",
                         "--change-index", "0", *utxos)  # fmt: skip

    # Out of policy: refused by every node, whatever the CLI declared.
    out = cli.sign(wallet, psbt(BTC_OTHER, 1_000_000), ok=False)
    _refused_by_every_signer(cluster, out, "destination")
    out = cli.sign(wallet, psbt(BTC_TO, LIMIT + 1), ok=False)
    _refused_by_every_signer(cluster, out, "amount")

    shown = cli.signed(wallet, psbt(BTC_TO, 1_000_000))
    intent = shown["intent"]["transaction"]
    assert intent["transfers"] == [
        {"asset": "BTC", "to": BTC_TO, "amount": 1_000_000, "action": "transfer", "source": ""}
    ]
    assert [c["amount"] for c in intent["change"]] == [2 * SUBSIDY - 1_000_000 - 2000]
    tx = Transaction.parse(bytes.fromhex(shown["transaction"]["raw"]))
    assert tx.txid().hex() == shown["transaction"]["txid"]
    assert len(tx.vin) == 2 and len(tx.vout) == 2

    # A witness altered after signing does not connect; the spend as signed does.
    bad = Transaction.parse(tx.serialize())
    sig = bytearray(bad.vin[1].witness.items[0])
    sig[5] ^= 1
    bad.vin[1].witness.items[0] = bytes(sig)
    block, _ = chain.block(ELSEWHERE, [bad], 2000)
    assert not chain.submit(block) and chain.height == 101
    block, _ = chain.block(ELSEWHERE, [tx], 2000)
    assert chain.submit(block) and chain.height == 102


def test_a_hidden_output_is_refused_by_every_signer(cluster: GovCluster, tmp_path: Path) -> None:
    """The initiator's client declares one transfer; the payload carries a second output the
    intent does not show (a compromised client or gateway). Every node parses the payload and
    refuses, naming the field; nothing is signed."""
    cli = Cli(cluster, tmp_path)
    wallet = cli.wallet("bitcoin", "regtest")
    ref = ref_of(wallet)
    coins = [Utxo("ab" * 32, 0, 5_000_000, "m/0/0")]
    shown = build_psbt(ref, coins, [(BTC_TO, 1_000_000)], fee=2000, change_index=0)
    hidden = build_psbt(
        ref, coins, [(BTC_TO, 1_000_000), (BTC_OTHER, 500_000)], fee=2000, change_index=0
    )
    now = int(time.time())
    intent = Intent(
        request_id=f"hidden-{now}",
        initiator="initiator",
        key_id=wallet["key_id"],
        chain="bitcoin",
        created_at=now - 5,
        expires_at=now + 600,
        transaction=declare(BITCOIN.parse(ref, shown).intent, "p2tr"),
    )
    req = new_request(cluster.cluster_id, intent, hidden, cluster.key_of("initiator"))
    out = cluster.submit(req, "approver-1")
    assert out["status"] == "refused" and "transaction" not in out, out
    assert len(out["refusals"]) >= cluster.t, out  # every signer asked refused
    assert all("transaction.transfers" in r["reason"] for r in out["refusals"].values()), out


# -- ethereum --------------------------------------------------------------------------------------
def test_ethereum_eip1559_transfer_signed_by_the_cluster_lands_on_anvil(
    cluster: GovCluster, tmp_path: Path
) -> None:
    cli = Cli(cluster, tmp_path)
    wallet = cli.wallet("ethereum", "anvil")
    with running_anvil(31337) as url:
        rpc = EthereumRpc(url)
        rpc.call("anvil_setBalance", wallet["address"], hex(10**18))
        fees = ("--gas", "21000", "--max-fee", str(30 * GWEI), "--priority-fee", str(2 * GWEI))

        out = cli.sign(
            wallet,
            cli.build(wallet, "--to", ETH_OTHER, "--amount", "1000", "--nonce", "0", *fees),
            ok=False,
        )
        _refused_by_every_signer(cluster, out, "destination")

        # --wait: the CLI waits while an approver approves from elsewhere.
        payload = cli.build(wallet, "--to", ETH_TO, "--amount", "1500000", "--nonce", "0", *fees)
        waiting = subprocess.Popen(
            [sys.executable, "-m", "tholos", "tx", "sign", wallet["wallet_id"],
             "--eth-tx", str(payload), "--as", "initiator", "--wait", "120", "--json", *cli.d],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            pending = wait_until(
                lambda: cli.ok("requests", "list", "--status", "awaiting-approval")["requests"],
                60,
                "the request awaiting approval",
            )
            (rid,) = [r["request_id"] for r in pending]
            assert cli.ok("requests", "approve", rid, "--as", "approver-1")["status"] == "signed"
            stdout, _ = waiting.communicate(timeout=60)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
        assert waiting.returncode == 0, stdout
        signed = json.loads(stdout)
        assert signed["status"] == "signed" and signed["request_id"] == rid, signed
        assert signed["intent"]["transfers"][0]["to"] == ETH_TO

        before = rpc.balance(ETH_TO)
        txid = rpc.broadcast(bytes.fromhex(signed["raw"].removeprefix("0x")))
        assert txid == signed["txid"] or not signed["txid"], signed
        receipt = wait_until(lambda: rpc.call("eth_getTransactionReceipt", txid), 30, "receipt")
        assert int(receipt["status"], 16) == 1, receipt
        assert rpc.balance(ETH_TO) == before + 1_500_000


# -- solana ----------------------------------------------------------------------------------------
def test_solana_transfer_signed_by_the_cluster_executes_on_litesvm(
    cluster: GovCluster, tmp_path: Path
) -> None:
    cli = Cli(cluster, tmp_path)
    wallet = cli.wallet("solana", "localnet")
    svm = LiteSVM()
    svm.airdrop(Pubkey.from_string(wallet["address"]), 10**9)
    blockhash = str(svm.latest_blockhash())

    out = cli.sign(
        wallet, cli.build(wallet, "--to", SOL_TO, "--amount", str(LIMIT + 1),
                          "--blockhash", blockhash), ok=False,
    )  # fmt: skip
    _refused_by_every_signer(cluster, out, "amount")

    payload = cli.build(wallet, "--to", SOL_TO, "--amount", "1234567", "--blockhash", blockhash)
    shown = cli.signed(wallet, payload)
    raw = base64.b64decode(shown["transaction"]["raw"])
    tampered = bytearray(raw)
    tampered[-1] ^= 1  # the last byte of the message: the signature no longer covers it
    result = svm.send_transaction(VersionedTransaction.from_bytes(bytes(tampered)))
    assert isinstance(result, FailedTransactionMetadata), result
    result = svm.send_transaction(VersionedTransaction.from_bytes(raw))
    assert not isinstance(result, FailedTransactionMetadata), result
    assert svm.get_balance(Pubkey.from_string(SOL_TO)) == 1234567


def test_tx_sign_refuses_bad_input_and_creates_no_request(
    cluster: GovCluster, tmp_path: Path
) -> None:
    cli = Cli(cluster, tmp_path)
    wallet = cli.wallet("bitcoin", "regtest")
    before = len(cli.ok("requests", "list")["requests"])
    junk = tmp_path / "junk.txt"
    junk.write_text("cHNidP8B-not-a-psbt")
    w = wallet["wallet_id"]
    code, out = _cli("tx", "sign", w, "--eth-tx", str(junk), "--as", "initiator", *cli.d)
    assert code == 2 and "--psbt" in out["error"]["message"], out
    code, out = _cli("tx", "sign", w, "--psbt", str(junk), "--as", "initiator", *cli.d)
    assert code == 1 and out["error"]["code"] == "invalid_transaction", out
    assert out["error"]["field"] == "psbt", out
    valid = tmp_path / "valid.psbt"
    coins = [Utxo("ab" * 32, 0, 5_000_000, "m/0/0")]
    valid.write_bytes(build_psbt(ref_of(wallet), coins, [(BTC_TO, 1000)], fee=2000, change_index=0))
    code, out = _cli("tx", "sign", w, "--psbt", str(valid), *cli.d)  # no signing user
    assert code == 2 and "--as" in out["error"]["message"], out
    code, out = _cli("tx", "sign", "0" * 32, "--psbt", str(junk), "--as", "initiator", *cli.d)
    assert code == 1 and out["error"]["status"] == 404, out
    assert len(cli.ok("requests", "list")["requests"]) == before
