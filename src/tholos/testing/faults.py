"""Test-only node faults: `NodeHooks` subclasses that make one node misbehave on purpose.

Each answers a question a test asks of the rest of the system: are wrong shares caught and the
culprit named (corrupt-shares), is a lying repair helper caught (corrupt-repair), does a refresh
survive a crash between finish and commit (crash-before-commit), is a hung node skipped (slow),
is a node attesting to an unpinned build refused (other-build), does another gateway
complete a request whose gateway died mid-signing (slow-signing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from typing import Any, ClassVar

from tholos.attestation import Measurement
from tholos.crypto.dise import EvalRequest
from tholos.crypto.groups.secp256k1 import N
from tholos.crypto.repair import RepairSigma
from tholos.crypto.secret import SecretScalar
from tholos.node.hooks import NodeHooks
from tholos.schemes.frost import FrostScheme

CRASH_EXIT = 70
HANG_SECONDS = 30  # longer than any gateway timeout
SLOW_SIGN_SECONDS = 4.0


class CorruptShares(NodeHooks):
    """Every signature share or partial evaluation this node makes is wrong (but well formed)."""

    name: ClassVar[str] = "corrupt-shares"

    def frost_share(self, scheme: FrostScheme, share: bytes) -> bytes:
        g = scheme.group
        return g.serialize_scalar((g.deserialize_scalar(share) + 1) % g.order)

    def ecdsa_share(self, s: int) -> int:
        return (s + 1) % N

    def bls_message(self, message: bytes) -> bytes:
        return message + b"\x00"  # a partial of another message: detectable

    def dise_request(self, request: EvalRequest) -> EvalRequest:
        return EvalRequest(request.key_id, request.encryptor, os.urandom(32), request.purpose)


class CorruptRepair(NodeHooks):
    """As a repair helper, this node sends a contribution off by one."""

    name: ClassVar[str] = "corrupt-repair"

    def repair_sigma(self, sigma: RepairSigma[Any]) -> RepairSigma[Any]:
        g = sigma.group
        bad = SecretScalar((sigma.value.expose() + 1) % g.order)
        return RepairSigma(g, sigma.session, sigma.sender, bad)


class CrashBeforeCommit(NodeHooks):
    """The process dies when a refresh commit reaches it (finish done, commit not)."""

    name: ClassVar[str] = "crash-before-commit"

    def before_refresh_commit(self) -> None:
        os._exit(CRASH_EXIT)


class Slow(NodeHooks):
    """Answers `Info` at once, every other RPC only after any gateway has given up."""

    name: ClassVar[str] = "slow"

    async def before_rpc(self, method: str) -> None:
        await asyncio.sleep(HANG_SECONDS)


def other_build_digest(measured: bytes) -> bytes:
    """The measurement `OtherBuild` reports for a node whose real one is `measured`."""
    return hashlib.sha256(b"tholos-test-other-build" + measured).digest()


class OtherBuild(NodeHooks):
    """Attests to another build than the one installed (as an upgraded or tampered node would),
    so tests can pin, refuse and roll out measurements without building two distributions."""

    name: ClassVar[str] = "other-build"

    def measurement(self, measured: Measurement) -> Measurement:
        return dataclasses.replace(
            measured,
            digest=other_build_digest(measured.digest),
            version=measured.version + "+other",
        )


class SlowSigning(NodeHooks):
    """Signs, but only after SLOW_SIGN_SECONDS: a gateway waits on it while the other signers
    of the session have signed already (a gateway killed then dies mid-signing)."""

    name: ClassVar[str] = "slow-signing"

    async def before_rpc(self, method: str) -> None:
        if method == "sign_batch":
            await asyncio.sleep(SLOW_SIGN_SECONDS)


FAULTS: dict[str, type[NodeHooks]] = {
    f.name: f
    for f in (CorruptShares, CorruptRepair, CrashBeforeCommit, Slow, OtherBuild, SlowSigning)
}


def fault(name: str) -> NodeHooks:
    """The hooks of fault `name`; ValueError naming the known ones otherwise."""
    cls = FAULTS.get(name)
    if cls is None:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
    return cls()
