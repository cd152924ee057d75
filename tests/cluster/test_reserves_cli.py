"""`tholos reserves prove` and `tholos reserves verify` against a governed cluster of real
processes and anvil: the nodes sign proof-of-control envelopes the policy allows (action
`proof_of_control`), the balance is anvil's at the stated block, and the proof passes the CLI's
standalone check and the auditor's script (eth-account, embit, PyNaCl only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.test_governance import GovCluster
from tests.cluster.test_governed_chains import _cli, governed_cluster
from tests.engines import running_anvil
from tests.reserves.test_proof_governed import _audit
from tholos.connectors.ethereum import EthereumRpc
from tholos.governance import Match, Policy, Rule

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHALLENGE = "cli-audit 2026-12-03 5e2b"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GovCluster]:
    policy = Policy(rules=(Rule(rule_id="reserves", match=Match(actions=("proof_of_control",))),))
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
        code, out = _cli(*base, "--wallet", eth["wallet_id"], "--index", "0", "--index", "1")
        assert code == 0, out
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
