"""Which builds may run in the cluster: the measurements governance pins (attestation/pinning.py
checks a peer's verified attestation against them). An empty list pins nothing and enforces
nothing (development); a cluster that lists any entry refuses every node not matching one."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from tholos.governance._model import Hex32, Model

Hex48 = Annotated[str, Field(pattern=r"^[0-9a-f]{96}$")]
"""48 bytes as lowercase hex (SEV-SNP MEASUREMENT, TDX MRTD)."""


class AllowedMeasurement(Model):
    """One allowed build: the distribution digest (`tholos.attestation.measure`) and, for a
    confidential VM, the launch measurement the CPU reports for its image."""

    OMIT_WHEN_NONE = frozenset({"launch_measurement"})

    kind: Literal["software", "sev-snp", "tdx"]
    software_measurement: Hex32
    launch_measurement: Hex48 | None = None
    label: Annotated[str, Field(max_length=200)] = ""

    @model_validator(mode="after")
    def _check(self) -> AllowedMeasurement:
        if self.kind == "software" and self.launch_measurement is not None:
            raise ValueError("a software measurement has no launch_measurement")
        if self.kind != "software" and self.launch_measurement is None:
            raise ValueError(f"a {self.kind} measurement needs its launch_measurement")
        return self


def _distinct(values: tuple[AllowedMeasurement, ...]) -> tuple[AllowedMeasurement, ...]:
    keys = [(m.kind, m.software_measurement, m.launch_measurement) for m in values]
    if len(set(keys)) != len(keys):
        raise ValueError("the same measurement is pinned twice")
    return values


AllowedMeasurements = Annotated[
    tuple[AllowedMeasurement, ...], Field(max_length=256), AfterValidator(_distinct)
]
"""The pinned builds of a policy (`Policy.allowed_measurements`)."""
