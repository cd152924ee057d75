"""The reference screening service signs what the policy engine accepts, over real HTTP (ASGI)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from tholos.governance import public_key_hex
from tholos.governance.screening import ScreeningAttestation, check_screening
from tholos.screening.service import ScreeningService

ADDR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_served_attestations_verify_and_score() -> None:
    key = Ed25519PrivateKey.generate()
    service = ScreeningService(
        "kyt", key, {("ethereum", ADDR.lower()): 12}, default_score=90, clock=lambda: 1_000
    )
    client = TestClient(service.app())
    answer = client.get("/v1/screen", params={"chain": "ethereum", "address": ADDR})
    assert answer.status_code == 200
    att = ScreeningAttestation.model_validate(answer.json())
    assert att.risk_score == 12 and att.expires_at == 1_000 + 3600
    services = {"kyt": public_key_hex(key)}
    common = {"rule_id": "r", "chain": "ethereum", "where": "", "now": 1_001, "max_clock_skew": 60}
    assert check_screening(services, [att], max_risk_score=20, destination=ADDR, **common) is None  # type: ignore[arg-type]
    unknown = ScreeningAttestation.model_validate(
        client.get("/v1/screen", params={"chain": "ethereum", "address": "0x" + "11" * 20}).json()
    )
    assert unknown.risk_score == 90
    assert client.get("/v1/screen", params={"chain": "ethereum"}).status_code == 422
