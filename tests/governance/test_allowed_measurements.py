"""The pinned measurements of a policy (governance/measurements.py): strict like every governance
field, and absent from the encoding (so from the digest) of a policy that pins none."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import ValidationError

from tholos.cluster.governance_init import default_policy
from tholos.governance import Policy
from tholos.governance._model import from_obj

SW = hashlib.sha256(b"build a").hexdigest()
LAUNCH = "3c" * 48


def with_pins(*pins: dict[str, Any]) -> Policy:
    return from_obj(
        Policy, {**default_policy().model_dump(mode="json"), "allowed_measurements": pins}
    )


def test_a_pinned_policy_round_trips_and_an_unpinned_one_keeps_its_encoding() -> None:
    p = with_pins(
        {"kind": "software", "software_measurement": SW, "label": "0.1.0 wheel"},
        {"kind": "sev-snp", "software_measurement": SW, "launch_measurement": LAUNCH},
    )
    assert p.allowed_measurements is not None and len(p.allowed_measurements) == 2
    assert from_obj(Policy, p.model_dump(mode="json")) == p
    dumped = p.model_dump(mode="json")["allowed_measurements"]
    assert "launch_measurement" not in dumped[0]  # omitted while None, like every newer field
    assert "allowed_measurements" not in default_policy().model_dump(mode="json")
    assert (
        default_policy().canonical()
        == from_obj(Policy, default_policy().model_dump(mode="json")).canonical()
    )


@pytest.mark.parametrize(
    ("pin", "why"),
    [
        ({"kind": "sev-snp", "software_measurement": SW}, "needs its launch_measurement"),
        (
            {"kind": "software", "software_measurement": SW, "launch_measurement": LAUNCH},
            "has no launch",
        ),
        ({"kind": "sgx", "software_measurement": SW}, "kind"),
        ({"kind": "software", "software_measurement": SW[:-2]}, "software_measurement"),
        ({"kind": "software", "software_measurement": SW.upper()}, "software_measurement"),
        (
            {"kind": "tdx", "software_measurement": SW, "launch_measurement": "3c" * 32},
            "launch_measurement",
        ),
        ({"kind": "software", "software_measurement": SW, "note": "x"}, "note"),
    ],
)
def test_a_malformed_pin_is_refused_naming_what_is_wrong(pin: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        with_pins(pin)


def test_the_same_build_pinned_twice_is_refused() -> None:
    pin = {"kind": "software", "software_measurement": SW}
    with pytest.raises(ValidationError, match="pinned twice"):
        with_pins(pin, {**pin, "label": "again"})
