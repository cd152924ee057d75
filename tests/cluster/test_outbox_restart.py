"""The outbox across a gateway crash, with real processes (4 nodes, a gateway, mutual TLS) and
anvil: an Ethereum withdrawal is allocated its nonce (`tx nonce`), signed through governance
(`tx sign --request-id`, one approval), and the gateway is killed (SIGKILL) before anything is
broadcast. After the restart the outbox still holds it, queued; two broadcasters started at once
(`tholos broadcast run --once`, separate processes on the gateway's database) send it exactly
once, and it reaches its confirmations on the chain (`outbox show`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import wait_until
from tests.cluster.test_governance import GovCluster
from tests.cluster.test_governed_chains import ETH_TO, GWEI, Cli, chain_policy, governed_cluster
from tests.engines import running_anvil
from tholos.connectors.ethereum import EthereumRpc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GovCluster]:
    with governed_cluster(tmp_path_factory.mktemp("outbox") / "g", chain_policy()) as c:
        yield c


def _broadcasters(cli: Cli, url: str, count: int) -> list[dict[str, object]]:
    """`count` broadcaster passes started at once, each its own process."""
    cmd = [sys.executable, "-m", "tholos", "broadcast", "run", "--once", "--json",
           "--ethereum-rpc", url, "--confirmations", "2", "--backoff", "0", "--interval", "0",
           *cli.d]  # fmt: skip
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    outs = []
    for p in procs:
        stdout, _ = p.communicate(timeout=120)
        assert p.returncode == 0, stdout
        outs.append(json.loads(stdout))
    return outs


def test_a_withdrawal_signed_before_a_gateway_crash_is_sent_exactly_once(
    cluster: GovCluster, tmp_path: Path
) -> None:
    cli = Cli(cluster, tmp_path)
    wallet = cli.wallet("ethereum", "anvil")
    with running_anvil(31337) as url:
        rpc = EthereumRpc(url)
        address = wallet["address"]
        rpc.call("anvil_setBalance", address, hex(10**18))
        rid = "withdrawal-after-crash"
        allocated = cli.ok("tx", "nonce", wallet["wallet_id"], "--request-id", rid, "--floor", "0")
        assert allocated["nonce"] == rpc.nonce(address) == 0
        payload = cli.build(
            wallet, "--to", ETH_TO, "--amount", "1500000", "--nonce", str(allocated["nonce"]),
            "--gas", "21000", "--max-fee", str(30 * GWEI), "--priority-fee", str(2 * GWEI),
        )  # fmt: skip
        out = cli.ok(
            "tx", "sign", wallet["wallet_id"], "--eth-tx", str(payload), "--as", "initiator",
            "--request-id", rid,
        )  # fmt: skip
        assert out["status"] == "awaiting-approval", out
        cli.ok("requests", "approve", rid, "--as", "approver-1")
        shown = wait_until(
            lambda: (s := cli.ok("requests", "show", rid))["status"] != "reserved" and s,
            60,
            "the approved request signed",
        )
        assert shown["status"] == "signed", shown
        txid = shown["transaction"]["txid"]
        assert cli.ok("outbox", "show", txid)["state"] == "queued"

        cluster.kill("gateway")  # signed, recorded, not broadcast
        assert rpc.status(txid).state == "unknown"
        cluster.start_gateway()
        cluster.wait_healthy()
        again = cli.ok("outbox", "show", txid)
        assert (again["state"], again["attempts"], again["nonce"]) == ("queued", 0, 0), again

        before = rpc.balance(ETH_TO)
        worked = _broadcasters(cli, url, 2)
        assert sum(int(str(w["worked"])) for w in worked) >= 1, worked
        rpc.call("anvil_mine", "0x1")
        _broadcasters(cli, url, 1)
        done = cli.ok("outbox", "show", txid)
        assert (done["state"], done["attempts"]) == ("confirmed", 1), done
        assert done["confirmations"] >= 2 and done["raw"]
        assert rpc.nonce(address, pending=False) == 1  # one transaction from the wallet
        assert rpc.balance(ETH_TO) - before == 1_500_000
        listed = cli.ok("outbox", "list", "--request-id", rid)
        assert listed["total"] == 1 and listed["items"][0]["tx_hash"] == txid


def test_the_gateway_broadcasts_by_itself_when_configured_to(
    cluster: GovCluster, tmp_path: Path
) -> None:
    """`broadcast` in gateway.json: the gateway's own thread sends and confirms a withdrawal."""
    cli = Cli(cluster, tmp_path)
    wallet = cli.wallet("ethereum", "anvil")
    with running_anvil(31337) as url:
        rpc = EthereumRpc(url)
        rpc.call("anvil_setBalance", wallet["address"], hex(10**18))
        cluster.configure_gateway(
            broadcast={"ethereum_rpc": [url], "confirmations": 1, "interval": 0.2}
        )
        cluster.kill("gateway")
        cluster.start_gateway()
        cluster.wait_healthy()
        rid = "withdrawal-by-the-gateway"
        nonce = cli.ok("tx", "nonce", wallet["wallet_id"], "--request-id", rid)["nonce"]
        payload = cli.build(
            wallet, "--to", ETH_TO, "--amount", "1000", "--nonce", str(nonce),
            "--gas", "21000", "--max-fee", str(30 * GWEI), "--priority-fee", str(2 * GWEI),
        )  # fmt: skip
        cli.ok(
            "tx", "sign", wallet["wallet_id"], "--eth-tx", str(payload), "--as", "initiator",
            "--request-id", rid,
        )  # fmt: skip
        cli.ok("requests", "approve", rid, "--as", "approver-1")
        shown = wait_until(
            lambda: (s := cli.ok("requests", "show", rid))["status"] != "reserved" and s,
            60,
            "the approved request signed",
        )
        txid = shown["transaction"]["txid"]
        done = wait_until(
            lambda: (s := cli.ok("outbox", "show", txid))["state"] == "confirmed" and s,
            60,
            "the gateway's broadcaster confirmed it",
        )
        assert done["attempts"] == 1
        assert rpc.status(txid).state == "confirmed"
