"""The ethereum chain package against anvil (foundry's revm node) over JSON-RPC on 127.0.0.1.

anvil comes from npm: `npm ci --prefix tests/chains/engines` (pinned @foundry-rs/anvil 1.7.1; npm 11
skips its postinstall, the binary in node_modules/.bin runs anyway), or set THOLOS_ANVIL to a binary.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import to_checksum_address

from tests.chains.ethereum_flow import Receipt, run_scenario
from tests.chains.ethereum_support import threshold_wallet

pytestmark = pytest.mark.slow
ENGINES = Path(__file__).parent / "engines"


def _anvil_binary() -> str:
    for candidate in (
        os.environ.get("THOLOS_ANVIL", ""),
        str(ENGINES / "node_modules" / ".bin" / "anvil"),
        shutil.which("anvil") or "",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(
        "anvil not found: npm ci --prefix tests/chains/engines "
        "(or npm install --prefix tests/chains/engines @foundry-rs/anvil@1.7.1), or set THOLOS_ANVIL"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AnvilEngine:
    def __init__(self, url: str) -> None:
        self.url = url
        self._id = 0
        self.chain_id = int(self.rpc("eth_chainId"), 16)
        self.funded = to_checksum_address(self.rpc("eth_accounts")[0])

    def rpc(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        )
        req = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            reply = json.loads(resp.read())
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        return reply["result"]

    def fees(self) -> dict[str, int]:
        base = int(self.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
        return {"max_fee_per_gas": 2 * base + 10**9, "max_priority_fee_per_gas": 10**9}

    def _receipt(self, tx_hash: str) -> Receipt:
        for _ in range(100):
            r = self.rpc("eth_getTransactionReceipt", tx_hash)
            if r is not None:
                return Receipt(
                    status=int(r["status"], 16),
                    tx_hash=r["transactionHash"],
                    contract_address=r.get("contractAddress"),
                    gas_used=int(r["gasUsed"], 16),
                    effective_gas_price=int(r["effectiveGasPrice"], 16),
                )
            time.sleep(0.05)
        raise AssertionError(f"no receipt for {tx_hash}")

    def fund(self, address: str, wei: int) -> None:
        self.rpc("anvil_setBalance", address, hex(wei))

    def balance(self, address: str) -> int:
        return int(self.rpc("eth_getBalance", address, "latest"), 16)

    def nonce(self, address: str) -> int:
        return int(self.rpc("eth_getTransactionCount", address, "latest"), 16)

    def send_raw(self, raw: bytes) -> Receipt:
        return self._receipt(self.rpc("eth_sendRawTransaction", "0x" + raw.hex()))

    def call(self, to: str, data: bytes) -> bytes:
        out = self.rpc(
            "eth_call", {"from": self.funded, "to": to, "data": "0x" + data.hex()}, "latest"
        )
        return bytes.fromhex(out.removeprefix("0x"))

    def transact(self, sender: str, to: str, data: bytes) -> Receipt:
        tx = {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(500_000)}
        return self._receipt(self.rpc("eth_sendTransaction", tx))


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilEngine]:
    binary = _anvil_binary()
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        engine = None
        for _ in range(200):
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"anvil exited: {err}")
            try:
                engine = AnvilEngine(url)
                break
            except OSError:
                time.sleep(0.05)
        if engine is None:
            raise AssertionError("anvil did not answer in 10 s")
        yield engine
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_threshold_wallet_on_anvil(anvil: AnvilEngine) -> None:
    assert anvil.chain_id == 31337
    run_scenario(anvil, threshold_wallet(network="31337"), index=2)
