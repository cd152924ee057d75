"""Kill switch: one authorised user engages it alone; only an admin quorum releases it.

Engaging is a single-signer document. Releasing is a governance document (admin quorum, next
version) with `release_kill_switch = true`. An engage document names the governance version it was
issued at; once a release at version r is adopted, engage documents issued before r are stale, so
an old engage document cannot be replayed to re-engage the switch.
"""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.governance import _keys
from tholos.governance._canonical import tagged_digest
from tholos.governance._model import FORMAT_VERSION, Hex64, Model, Name, UnixTime

KILL_SWITCH_TAG = b"tholos/kill-switch/v1"


class KillSwitchEngage(Model):
    """Stop all signing now. Signed by `signer`, who needs a role listed in kill_switch_roles."""

    format: Literal[1] = FORMAT_VERSION
    kind: Literal["kill_switch_engage"] = "kill_switch_engage"
    cluster_id: Name
    governance_version: int
    signer: Name
    issued_at: UnixTime
    reason: str = ""

    def signing_message(self) -> bytes:
        return tagged_digest(KILL_SWITCH_TAG, self.canonical())


class SignedKillSwitch(Model):
    """An engage document with its single signature."""

    engage: KillSwitchEngage
    signature: Hex64


def sign_kill_switch(engage: KillSwitchEngage, key: Ed25519PrivateKey) -> SignedKillSwitch:
    return SignedKillSwitch(engage=engage, signature=_keys.sign(key, engage.signing_message()))
