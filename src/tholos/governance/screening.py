"""Counterparty screening (KYT) that every node checks itself.

A screening service (an analytics provider's adapter, or `tholos.screening.service` in tests)
signs attestations "address A on chain C has risk score S, valid until T" with an Ed25519 key. The
keys of the services a cluster trusts are registered in the policy (`Policy.screening_services`),
so adding one takes a quorum-signed document. A rule with `max_risk_score` then requires, for every
destination it judges, a valid attestation from a registered service with a score at most that:
missing, expired, forged or unregistered attestations refuse the request (fail closed). No node
calls out: attestations travel with the request, like approvals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field

from tholos.governance import _keys
from tholos.governance._canonical import canonical_model, tagged_digest
from tholos.governance._model import FORMAT_VERSION, Hex64, Model, Name, UnixTime
from tholos.governance.decision import Refuse
from tholos.governance.errors import InvalidSignature
from tholos.governance.transactions import normalise

SCREENING_TAG = b"tholos/screening/v1"
RiskScore = Annotated[int, Field(ge=0, le=100)]


class ScreeningAttestation(Model):
    """A service's signed risk score for one address."""

    format: Literal[1] = FORMAT_VERSION
    kind: Literal["screening_attestation"] = "screening_attestation"
    service: Name
    chain: Annotated[str, Field(min_length=1, max_length=64)]
    address: Annotated[str, Field(min_length=1, max_length=256)]
    risk_score: RiskScore
    issued_at: UnixTime
    expires_at: UnixTime
    signature: Hex64

    def signing_message(self) -> bytes:
        return tagged_digest(SCREENING_TAG, canonical_model(self, exclude={"signature"}))


def issue(
    service: str,
    key: Ed25519PrivateKey,
    *,
    chain: str,
    address: str,
    risk_score: int,
    issued_at: int,
    lifetime: int = 3600,
) -> ScreeningAttestation:
    """What a screening service returns (the reference service and tests use this)."""
    unsigned = ScreeningAttestation(
        service=service,
        chain=chain,
        address=address,
        risk_score=risk_score,
        issued_at=issued_at,
        expires_at=issued_at + lifetime,
        signature="00" * 64,
    )
    signature = _keys.sign(key, unsigned.signing_message())
    return unsigned.model_copy(update={"signature": signature})


def check_screening(
    services: Mapping[str, str],
    attestations: Sequence[ScreeningAttestation],
    *,
    rule_id: str,
    max_risk_score: int,
    chain: str,
    destination: str,
    where: str,
    now: int,
    max_clock_skew: int,
) -> Refuse | None:
    """None if a valid attestation scores `destination` at most `max_risk_score`; else why not.

    Among several valid attestations the highest score counts (the most cautious reading)."""
    scores = []
    target = normalise(destination)
    for att in attestations:
        key = services.get(att.service)
        if key is None or att.chain != chain or normalise(att.address) != target:
            continue
        if not att.issued_at <= now + max_clock_skew or now >= att.expires_at:
            continue
        try:
            _keys.verify(
                _keys.public_key_from_hex(key), att.signature, att.signing_message(), att.service
            )
        except InvalidSignature:
            continue
        scores.append(att.risk_score)
    if not scores:
        return Refuse(rule_id, f"{where}no valid screening attestation for {destination}")
    if max(scores) > max_risk_score:
        return Refuse(
            rule_id, f"{where}risk score {max(scores)} of {destination} above {max_risk_score}"
        )
    return None
