"""Metrics, logs and audit export on a real cluster (4 node processes, a gateway, mutual TLS):
after signing, the gateway's and the nodes' /metrics moved by what was done; one request id is
in the gateway's JSON log and in the logs of the nodes that signed; `tholos audit export` (jsonl
and syslog) carries what `tholos audit verify` verified."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.conftest import LocalCluster, wait_until
from tholos.audit import verify_chain
from tholos.audit.syslog import message_of

pytestmark = pytest.mark.slow
SIGN = "/v1/keys/{key_id}/sign"
# JSON lines, and the one-line-per-call logs that are DEBUG when the call went well
JSON_LOGS = {
    "THOLOS_LOG_FORMAT": "json",
    "THOLOS_LOG": "INFO,tholos.gateway.http=DEBUG,tholos.node.rpc=DEBUG",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return str(r.read().decode())


def total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` matching `labels` (0 when none)."""
    return sum(
        float(s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue  # the node's "ready" line on stdout
        if isinstance(d, dict):
            out.append(d)
    return out


def cli(*args: str) -> tuple[int, dict[str, Any]]:
    p = subprocess.run(
        [sys.executable, "-m", "tholos", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return p.returncode, json.loads(p.stdout or "{}")


def start(c: LocalCluster) -> tuple[int, dict[int, int]]:
    gw_port = free_port()
    c.configure_gateway(metrics_port=gw_port)
    node_ports = {}
    for i in range(1, c.n + 1):
        path = c.cd.node_config(i)
        cfg = json.loads(path.read_text())
        node_ports[i] = cfg["metrics_port"] = free_port()
        path.write_text(json.dumps(cfg))
        c.start_node(i, env=JSON_LOGS)
    c._spawn("gateway", ["gateway", "--config", str(c.cd.gateway_config)], JSON_LOGS)
    c.wait_healthy()
    return gw_port, node_ports


def test_metrics_request_id_and_audit_export(make_cluster: Any, tmp_path: Path) -> None:
    c: LocalCluster = make_cluster(4, 2)
    gw_port, node_ports = start(c)
    key = c.create_key("ed25519")
    c.sign(key["key_id"], b"warm-up")  # pools filled, every counter series exists
    gw_before = scrape(gw_port)
    nodes_before = {i: scrape(p) for i, p in node_ports.items()}

    rid = "trace-observability-1"
    r = c.http.post(
        f"/v1/keys/{key['key_id']}/sign", json={"message": "01"}, headers={"X-Request-Id": rid}
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == rid
    for m in (b"\x02", b"\x03"):
        c.sign(key["key_id"], m)
    bad = c.http.post(f"/v1/keys/{key['key_id']}/sign", json={"message": "zz"})
    assert bad.status_code == 400

    gw_after = scrape(gw_port)
    assert c.http.get("/metrics").text.count("tholos_gateway_requests_total{") > 0  # mTLS route

    def moved(name: str, **labels: str) -> float:
        return total(gw_after, name, **labels) - total(gw_before, name, **labels)

    ok = {"route": SIGN, "scheme": "ed25519", "outcome": "ok"}
    assert moved("tholos_gateway_requests_total", **ok) == 3
    assert moved("tholos_gateway_request_seconds_count", **ok) == 3
    assert moved("tholos_gateway_requests_total", route=SIGN, outcome="refused") == 1
    assert total(gw_after, "tholos_gateway_nodes", state="up") == 4
    assert total(gw_after, "tholos_gateway_nodes", state="excluded") == 0

    nodes_after = {i: scrape(p) for i, p in node_ports.items()}
    shares = sum(
        total(nodes_after[i], "tholos_node_signature_shares_total", outcome="signed")
        - total(nodes_before[i], "tholos_node_signature_shares_total", outcome="signed")
        for i in node_ports
    )
    batches = sum(
        total(nodes_after[i], "tholos_node_rpc_total", method="sign_batch", outcome="ok")
        - total(nodes_before[i], "tholos_node_rpc_total", method="sign_batch", outcome="ok")
        for i in node_ports
    )
    assert shares == 3 * c.t and batches == 3 * c.t  # t signers per request, one item each
    for i in node_ports:
        assert total(nodes_after[i], "tholos_node_keys", node=str(i)) == 1
        assert total(nodes_after[i], "tholos_node_nonces", node=str(i)) > 0
        assert total(nodes_after[i], "tholos_node_stale_keys", node=str(i)) == 0

    # one request id, followed from the gateway into the nodes that signed
    def logged() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        gw = [d for d in json_lines(c.log("gateway")) if d.get("request_id") == rid]
        nodes = [
            d
            for i in node_ports
            for d in json_lines(c.log(f"node-{i}"))
            if d.get("request_id") == rid and d.get("method") == "sign_batch"
        ]
        return gw, nodes

    gw_lines, node_lines = wait_until(lambda: all(logged()) and logged(), 10, "log lines")
    assert [d["status"] for d in gw_lines if d["event"] == "request"] == [200]
    assert len(node_lines) == c.t and {d["node"] for d in node_lines} <= set(node_ports)
    assert all(d["outcome"] == "ok" and d["process"] == "node" for d in node_lines)


def test_policy_refusals_and_audit_export(tmp_path: Path) -> None:
    """Governed: plain signing refused by rule "governed" (counted on the nodes), a governed
    request signed; `audit export` jsonl is what `audit verify` verified, and syslog carries it."""
    from tests.cluster.test_governance import GovCluster

    c = GovCluster(tmp_path / "g", 4, 2)
    try:
        _, node_ports = start(c)
        key = c.create_key("bip340")
        before = {i: scrape(p) for i, p in node_ports.items()}
        r = c.http.post(f"/v1/keys/{key['key_id']}/sign", json={"message": "00" * 32})
        assert r.status_code == 400 and "governed" in r.text, r.text
        after = {i: scrape(p) for i, p in node_ports.items()}
        refused = sum(
            total(after[i], "tholos_policy_refusals_total", rule="governed")
            - total(before[i], "tholos_policy_refusals_total", rule="governed")
            for i in node_ports
        )
        assert refused >= c.t  # each signer asked refused, by the built-in rule "governed"
        ok = c.submit(c.request(key["key_id"], "addr-a", 100), "approver-1")
        assert ok["status"] == "signed", ok

        d = str(c.cd.root)
        code, report = cli("audit", "verify", "--dir", d)
        assert code == 0 and report["ok"], report
        code, out = cli("audit", "export", "--dir", d, "--out", str(tmp_path / "jsonl"))
        assert code == 0, out
        code, out_sys = cli(
            "audit", "export", "--dir", d, "--out", str(tmp_path / "sys"), "--format", "syslog"
        )
        assert code == 0, out_sys
        heights = {f"node-{i}": scrape(p) for i, p in node_ports.items()}
        manifest = json.loads(c.cd.manifest.read_text())
        keys = {f"node-{r['node_id']}": r["signing_key"] for r in manifest["roster"]}
        keys["gateway"] = manifest["gateway_audit_public_key"]
        assert set(out["exported"]) == set(keys)
        for name, info in out["exported"].items():
            lines = Path(info["file"]).read_text().splitlines()
            assert all(isinstance(json.loads(x), dict) for x in lines)
            rep = verify_chain(lines, keys[name], node_id=name)
            assert rep.ok, rep.issues
            verified = report["chains"][name]["entries"]
            assert verified <= len(rep.entries)  # exports after verify may log their reads
            sys_lines = Path(out_sys["exported"][name]["file"]).read_text().splitlines()
            carried = [message_of(x) for x in sys_lines]
            assert carried[0] == lines[0] and len(carried) >= len(lines)
            assert verify_chain(carried, keys[name], node_id=name).ok
            if name in heights:
                height = total(heights[name], "tholos_audit_chain_height", chain=name)
                assert height >= len(rep.entries) > 0
    finally:
        c.close()
