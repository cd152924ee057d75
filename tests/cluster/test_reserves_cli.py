"""`tholos reserves prove`, `tholos reserves verify` and `tholos report reconcile` against a governed cluster of real
processes and anvil: the nodes sign proof-of-control envelopes the policy allows (action
`proof_of_control`), the balance is anvil's at the stated block, and the proof passes the CLI's
standalone check and the auditor's script (eth-account, embit, PyNaCl only)."""

from __future__ import annotations

import csv
import http.server
import io
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from nacl.signing import VerifyKey

from tests.cluster.conftest import wait_until
from tests.cluster.test_governance import GovCluster
from tests.cluster.test_governed_chains import _cli, governed_cluster
from tests.engines import running_anvil
from tests.reserves.test_proof_governed import _audit
from tholos.connectors.ethereum import EthereumRpc
from tholos.governance import ApprovalRequirement, Match, Policy, Rule

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHALLENGE = "cli-audit 2026-12-03 5e2b"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GovCluster]:
    policy = Policy(
        rules=(
            Rule(
                rule_id="reserves",
                match=Match(actions=("proof_of_control",)),
                approvals=(ApprovalRequirement(group="treasury", count=1),),
            ),
            Rule(rule_id="payouts", match=Match(chains=("ethereum", "bitcoin")), max_fee=10**16),
        )
    )
    with governed_cluster(tmp_path_factory.mktemp("reserves") / "g", policy) as c:
        yield c


def test_prove_then_verify_with_the_cli_and_the_auditor(
    cluster: GovCluster, tmp_path: Path
) -> None:
    d = ("--dir", str(cluster.cd.root))
    code, eth = _cli("wallets", "create", "--chain", "ethereum", "--network", "anvil", *d)
    assert code == 0, eth
    code, out = _cli("keys", "presign", eth["key_id"], "--count", "2", *d)
    assert code == 0, out
    code, btc = _cli("wallets", "create", "--chain", "bitcoin", "--network", "regtest", *d)
    assert code == 0, btc
    csv = tmp_path / "liabilities.csv"
    csv.write_text("customer_id,asset,amount\nalice,ETH,4000000000000000000\nbob,ETH,1\n")
    proof = tmp_path / "proof.json"
    with running_anvil() as url:
        rpc = EthereumRpc(url)
        rpc.call("anvil_setBalance", eth["address"], hex(5 * 10**18))
        base = ("reserves", "prove", "--challenge", CHALLENGE, "--liabilities", str(csv),
                "--out", str(proof), "--eth-rpc", url, "--as", "initiator", *d)  # fmt: skip
        # every wallet: the bitcoin one has no connector here; refused before anything is signed
        code, out = _cli(*base)
        assert code == 2 and "no connector for bitcoin" in out["error"]["message"], out
        assert not proof.exists()
        # Both requests are submitted first, then approved by treasury while prove waits.
        proving = subprocess.Popen(
            [sys.executable, "-m", "tholos", *base, "--wallet", eth["wallet_id"],
             "--index", "0", "--index", "1", "--json"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            approved: set[str] = set()
            seen: dict[str, str] = {}

            def approve_what_waits() -> bool:
                """Approve each proof request once it awaits approval (as treasury would)."""
                if proving.poll() is not None:
                    pytest.fail(f"prove ended early: {proving.communicate()[0]}")
                for r in cluster.get("/v1/signing-requests")["requests"]:
                    rid = r["request_id"]
                    kind = (r["intent"].get("transaction") or {}).get("kind")
                    seen[rid] = r["status"]
                    waits = kind == "proof_of_control" and r["status"] == "awaiting-approval"
                    if waits and rid not in approved:
                        code, out = _cli("requests", "approve", rid, "--as", "approver-1", *d)
                        assert code == 0, out
                        approved.add(rid)
                return len(approved) == 2

            try:
                wait_until(approve_what_waits, 240, "both proof requests approved")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; requests seen: {seen}") from None
            stdout, _ = proving.communicate(timeout=300)
        finally:
            if proving.poll() is None:
                proving.kill()
                proving.wait()
        assert proving.returncode == 0, stdout
        out = json.loads(stdout)
        assert out["addresses"] == 2 and out["customers"] == 2
        assert out["reserves"] == {"ETH": 5 * 10**18}
        doc = json.loads(proof.read_text())
        assert {a["format"] for a in doc["addresses"]} == {"eip191"}
        assert all(a["request_id"] for a in doc["addresses"])
        code, report = _cli(
            "reserves", "verify", str(proof), "--inclusion-dir", out["inclusion_dir"],
            "--eth-rpc", url,
        )  # fmt: skip
        assert code == 0 and report["ok"] and len(report["inclusion"]) == 2, report
        # the stated balance re-read at its block: a changed figure is found
        doc["addresses"][0]["balance"]["amount"] += 1
        doc["reserves"]["ETH"] += 1
        tampered = tmp_path / "tampered.json"
        tampered.write_text(json.dumps(doc))
        code, bad = _cli("reserves", "verify", str(tampered), "--eth-rpc", url)
        assert code == 1 and bad["error"]["code"] == "proof_invalid", bad
        assert "the proof states" in bad["error"]["message"]
    code, none = _cli("webhooks", "list", *d)  # this gateway runs no connectors
    assert code == 1 and none["error"]["code"] == "no_monitor", none
    customers = sorted(Path(out["inclusion_dir"]).iterdir())
    audited = _audit(proof, *customers)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    # the requests the nodes signed show what they were: challenge and address
    shown = cluster.get(
        f"/v1/signing-requests/{json.loads(proof.read_text())['addresses'][0]['request_id']}"
    )
    details = shown["intent"]["transaction"]["details"]
    assert shown["intent"]["transaction"]["kind"] == "proof_of_control"
    assert details["challenge"] == CHALLENGE and details["address"] == eth["address"]


def test_report_reconcile_ties_a_cli_signed_withdrawal_and_lists_a_request_never_sent(
    cluster: GovCluster, tmp_path: Path
) -> None:
    from eth_account import Account

    d = ("--dir", str(cluster.cd.root))
    code, w = _cli("wallets", "create", "--chain", "ethereum", "--network", "anvil", *d)
    assert code == 0, w
    assert _cli("keys", "presign", w["key_id"], "--count", "2", *d)[0] == 0
    funded = Account.from_key("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
    fees = ("--gas", "21000", "--max-fee", str(30 * 10**9), "--priority-fee", str(2 * 10**9))
    to = "0x3535353535353535353535353535353535353535"
    with running_anvil() as url:
        rpc = EthereumRpc(url)
        rpc.call("anvil_setBalance", w["address"], hex(10**18))
        rpc.call("anvil_mine", "0x1")
        start = rpc.height()
        deposit = funded.sign_transaction(
            {"type": 2, "chainId": 31337, "nonce": 0, "to": w["address"], "value": 5 * 10**17,
             "gas": 21000, "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 2 * 10**9}
        )  # fmt: skip
        deposit_id = rpc.broadcast(bytes(deposit.raw_transaction))
        signed = []
        for nonce in ("0", "1"):
            code, built = _cli("tx", "build", w["wallet_id"], "--to", to, "--amount", "1234",
                               "--nonce", nonce, *fees, *d)  # fmt: skip
            assert code == 0, built
            payload = tmp_path / f"eth-{nonce}.txt"
            payload.write_text(built["payload"])
            code, out = _cli("tx", "sign", w["wallet_id"], "--eth-tx", str(payload),
                             "--as", "initiator", "--wait", "60", *d)  # fmt: skip
            assert code == 0 and out["status"] == "signed", out
            signed.append(out)
        sent = rpc.broadcast(bytes.fromhex(signed[0]["raw"].removeprefix("0x")))  # [1] never sent
        for txid in (deposit_id, sent):  # anvil's automine answers before it has mined
            wait_until(
                lambda t=txid: rpc.call("eth_getTransactionReceipt", t) is not None,  # type: ignore[misc]
                60,
                "anvil mined the transaction",
            )
        end = rpc.height()
        base = ("report", "reconcile", "--wallet", w["wallet_id"], "--from", str(start),
                "--to", str(end), "--eth-rpc", url, *d)  # fmt: skip
        code, report = _cli(*base)
        assert code == 0, report
        assert report["opening"] == 10**18 and report["deposits"] == 5 * 10**17
        assert report["withdrawals"] == 1234 and report["fees"] > 0
        assert report["closing"] == rpc.balance(w["address"])
        assert [(ln["kind"], ln["txid"], ln["request_id"]) for ln in report["lines"]] == [
            ("deposit", deposit_id, ""),
            ("fee", sent, signed[0]["request_id"]),
            ("withdrawal", sent, signed[0]["request_id"]),
        ]
        assert [(m["kind"], m["request_id"]) for m in report["mismatches"]] == [
            ("request_not_on_chain", signed[1]["request_id"])
        ]
        out_csv = tmp_path / "reconcile.csv"
        code, written = _cli(*base, "--format", "csv", "--out", str(out_csv))
        assert code == 0 and written["balances"] is False, written
        rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
        assert [r["row"] for r in rows] == [
            "opening",
            "line",
            "line",
            "line",
            "closing",
            "mismatch",
        ]
        assert rows[-1]["kind"] == "request_not_on_chain"
        code, bad = _cli("report", "reconcile", "--wallet", w["wallet_id"], "--from", str(end),
                         "--to", str(start), "--eth-rpc", url, *d)  # fmt: skip
        assert code == 2 and "--from is after --to" in bad["error"]["message"], bad


def test_report_reconcile_of_a_bitcoin_wallet_over_bitcoin_core_rpc(
    cluster: GovCluster, tmp_path: Path
) -> None:
    """The Bitcoin report over Bitcoin Core's JSON-RPC (getblock verbosity 3, scantxoutset;
    served from a regtest chain libbitcoinkernel connected): a CLI-signed spend with change,
    its fee, and a signed request never sent, dated by the blocks' times."""
    import time

    from tests.cluster.test_governed_chains import BTC_TO
    from tests.connectors.bitcoin_core_facade import BitcoinCoreFacade
    from tholos.connectors.bitcoin_regtest import BitcoinRegtest
    from tholos.connectors.regtest_chain import SUBSIDY

    d = ("--dir", str(cluster.cd.root))
    code, w = _cli("wallets", "create", "--chain", "bitcoin", "--network", "regtest", *d)
    assert code == 0, w
    if w["scheme"] == "ecdsa":
        assert _cli("keys", "presign", w["key_id"], "--count", "2", *d)[0] == 0
    chain = BitcoinRegtest(tmp_path / "regtest")
    chain.regtest.time = int(time.time()) - 3600  # block times near the wall clock: requests
    chain.mine(1, w["address"])  # are dated against them
    chain.mine(100)
    start = chain.height()
    (coin,) = chain.utxos(w["address"])
    to = BTC_TO
    signed = []
    for amount in ("100000000", "200000000"):
        code, built = _cli("tx", "build", w["wallet_id"], "--to", to, "--amount", amount,
                           "--fee", "2000", "--change-index", "0",
                           "--utxo", f"{coin.txid}:{coin.vout}:{coin.amount}:m/0/0", *d)  # fmt: skip
        assert code == 0, built
        payload = tmp_path / f"btc-{amount}.txt"
        payload.write_text(built["payload"])
        code, out = _cli("tx", "sign", w["wallet_id"], "--psbt", str(payload),
                         "--as", "initiator", "--wait", "60", *d)  # fmt: skip
        assert code == 0 and out["status"] == "signed", out
        signed.append(out)
    chain.regtest.time = int(time.time()) + 60
    sent = chain.broadcast(bytes.fromhex(signed[0]["raw"]))  # [1] spends the same coin: never sent
    chain.mine(1)
    facade = BitcoinCoreFacade(chain)
    with facade.server:
        url = facade.server.url.replace("//", "//tholos:regtest-password@")
        code, report = _cli("report", "reconcile", "--wallet", w["wallet_id"], "--from",
                            str(start), "--to", str(chain.height()), "--btc-rpc", url, *d)  # fmt: skip
        assert code == 0, report
        code, wrong = _cli("report", "reconcile", "--wallet", w["wallet_id"], "--from", "1",
                           "--to", "2", "--asset", "ETH", "--btc-rpc", url, *d)  # fmt: skip
    assert report["asset"] == "BTC" and report["requests_dated"] is True
    assert [(ln["kind"], ln["txid"], ln["request_id"]) for ln in report["lines"]] == [
        ("fee", sent, signed[0]["request_id"]),
        ("withdrawal", sent, signed[0]["request_id"]),
    ]
    assert (report["opening"], report["withdrawals"], report["fees"]) == (SUBSIDY, 10**8, 2000)
    assert report["closing"] == SUBSIDY - 10**8 - 2000  # the change came back to m/1/0
    assert [(m["kind"], m["request_id"]) for m in report["mismatches"]] == [
        ("request_not_on_chain", signed[1]["request_id"])
    ]
    assert code == 2 and "BTC only" in wrong["error"]["message"], wrong


class _Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver: keeps each POST's headers and body (the class attribute)."""

    got: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_gateway_with_a_monitor_reports_a_deposit_and_delivers_signed_webhooks(
    cluster: GovCluster,
) -> None:
    """`monitor` in gateway.json: the gateway process watches the wallet on anvil itself, lists
    the deposit with its confirmations and POSTs signed events (checked with PyNaCl)."""
    d = ("--dir", str(cluster.cd.root))
    code, eth = _cli("wallets", "create", "--chain", "ethereum", "--network", "anvil", *d)
    assert code == 0, eth
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    before = json.loads(cluster.cd.gateway_config.read_text())
    try:
        with running_anvil() as url:
            cluster.configure_gateway(monitor={"ethereum_rpc": url, "interval": 0.5})
            cluster.kill("gateway", signal.SIGTERM)
            cluster.start_gateway()
            cluster.wait_healthy()
            hook_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
            hook = cluster.post(
                "/v1/webhooks", {"url": hook_url, "events": ["deposit.seen", "deposit.confirmed"]}
            )
            public = cluster.get("/v1/webhooks/key")["public_key"]
            rpc = EthereumRpc(url)
            funder = rpc.call("eth_accounts")[0]
            txid = rpc.call(
                "eth_sendTransaction",
                {"from": funder, "to": eth["address"], "value": hex(7 * 10**15)},
            )

            def confirmed() -> bool:
                shown = cluster.get(f"/v1/wallets/{eth['wallet_id']}/deposits")["deposits"]
                events = {h.get("x-tholos-event") for h, _ in _Receiver.got}
                return bool(shown) and shown[0]["confirmed"] and "deposit.confirmed" in events

            wait_until(confirmed, 120, "the deposit confirmed and delivered")
            (dep,) = cluster.get(f"/v1/wallets/{eth['wallet_id']}/deposits")["deposits"]
            assert (dep["txid"], dep["amount"], dep["asset"]) == (txid, str(7 * 10**15), "ETH"), dep
            for headers, body in _Receiver.got:
                sig = bytes.fromhex(headers["x-tholos-signature"].removeprefix("ed25519="))
                signed = headers["x-tholos-timestamp"].encode() + b"." + body
                VerifyKey(bytes.fromhex(public)).verify(signed, sig)  # raises if forged
                assert json.loads(body)["data"]["txid"] == txid
            log = cluster.get(f"/v1/webhooks/{hook['webhook_id']}/deliveries")["deliveries"]
            assert {x["delivery"] for x in log} == {"delivered"}, log
    finally:
        receiver.shutdown()
        receiver.server_close()
        cluster.cd.gateway_config.write_text(json.dumps(before))
        cluster.kill("gateway", signal.SIGTERM)
        cluster.start_gateway()
        cluster.wait_healthy()
