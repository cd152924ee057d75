"""The seam where a node's own outputs pass on their way out, and its RPCs on their way in.

In production this is `NodeHooks` itself: every method hands back what it was given and does
nothing else. Tests make a node misbehave (a wrong share, a lying repair helper, a crash before
a commit, a hung RPC) with subclasses in `tholos.testing.faults`, so that they can check the
rest of the cluster notices; a node process loads one only when started with `--fault` and
THOLOS_ALLOW_FAULTS=1 (node/server.py), and no production module imports that package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from tholos.attestation import Measurement
    from tholos.crypto.dise import EvalRequest
    from tholos.crypto.repair import RepairSigma
    from tholos.schemes.frost import FrostScheme


class NodeHooks:
    """No-op hooks (what every production node runs)."""

    name: ClassVar[str] = ""
    """What `Info` reports as the node's fault mode: empty here."""

    async def before_rpc(self, method: str) -> None:
        """Called before every RPC handler except `Info` (node/server.py)."""

    def frost_share(self, scheme: FrostScheme, share: bytes) -> bytes:
        """A FROST signature share about to leave the node (node/vault.py)."""
        return share

    def ecdsa_share(self, s: int) -> int:
        """An ECDSA signature share (its scalar) about to leave the node (node/ecdsa.py)."""
        return s

    def bls_message(self, message: bytes) -> bytes:
        """The message a BLS partial signature is made over (node/bls.py)."""
        return message

    def dise_request(self, request: EvalRequest) -> EvalRequest:
        """The DiSE request a partial evaluation is made for (node/dise.py)."""
        return request

    def repair_sigma(self, sigma: RepairSigma[Any]) -> RepairSigma[Any]:
        """A repair helper's contribution to a lost share (node/repair.py)."""
        return sigma

    def before_refresh_commit(self) -> None:
        """Called when a refresh commit starts, before anything is replaced (node/protocols.py)."""

    def measurement(self, measured: Measurement) -> Measurement:
        """The node's own measurement as it will attest to it (node/attestation.py)."""
        return measured


NO_HOOKS = NodeHooks()
