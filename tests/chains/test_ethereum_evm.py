"""The ethereum chain package against py-evm (through eth-tester), an EVM nobody here wrote."""

from __future__ import annotations

import pytest

from tests.chains.ethereum_flow import Receipt, run_scenario
from tests.chains.ethereum_support import threshold_wallet

eth_tester = pytest.importorskip("eth_tester", reason="pip install 'eth-tester[py-evm]==0.14.0b1'")


class PyEvmEngine:
    def __init__(self) -> None:
        self.tester = eth_tester.EthereumTester(eth_tester.PyEVMBackend())
        self.chain_id = int(self.tester.backend.chain.chain_id)
        self.funded = self.tester.get_accounts()[0]

    def fees(self) -> dict[str, int]:
        base = int(self.tester.get_block_by_number("pending")["base_fee_per_gas"])
        return {"max_fee_per_gas": 2 * base + 10**9, "max_priority_fee_per_gas": 10**9}

    def _receipt(self, tx_hash: str) -> Receipt:
        r = self.tester.get_transaction_receipt(tx_hash)
        return Receipt(
            status=int(r["status"]),
            tx_hash=str(r["transaction_hash"]),
            contract_address=r["contract_address"],
            gas_used=int(r["gas_used"]),
            effective_gas_price=int(r["effective_gas_price"]),
        )

    def fund(self, address: str, wei: int) -> None:
        self.transact(self.funded, address, b"", value=wei)

    def balance(self, address: str) -> int:
        return int(self.tester.get_balance(address))

    def nonce(self, address: str) -> int:
        return int(self.tester.get_nonce(address))

    def send_raw(self, raw: bytes) -> Receipt:
        return self._receipt(self.tester.send_raw_transaction("0x" + raw.hex()))

    def call(self, to: str, data: bytes) -> bytes:
        out = self.tester.call({"from": self.funded, "to": to, "data": "0x" + data.hex()})
        return bytes.fromhex(str(out).removeprefix("0x"))

    def transact(self, sender: str, to: str, data: bytes, value: int = 0) -> Receipt:
        tx_hash = self.tester.send_transaction(
            {
                "from": sender,
                "to": to,
                "data": "0x" + data.hex(),
                "value": value,
                "gas": 500_000,
                **self.fees(),
            }
        )
        return self._receipt(tx_hash)


def test_threshold_wallet_on_py_evm() -> None:
    engine = PyEvmEngine()
    result = run_scenario(engine, threshold_wallet(), index=1)
    assert result["sender"] != engine.funded
