"""The node's hook seam: a no-op in production, test faults only by name and with the env gate."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tholos.node.hooks import NO_HOOKS
from tholos.node.server import StartupError, load_fault
from tholos.schemes import SCHEMES
from tholos.schemes.frost import FrostScheme
from tholos.testing.faults import FAULTS, CorruptShares


@pytest.mark.asyncio
async def test_production_hooks_change_nothing() -> None:
    scheme = SCHEMES["ed25519"]
    assert isinstance(scheme, FrostScheme)
    share = scheme.group.serialize_scalar(12345)
    assert NO_HOOKS.frost_share(scheme, share) == share
    assert NO_HOOKS.ecdsa_share(7) == 7
    assert NO_HOOKS.bls_message(b"m") == b"m"
    assert NO_HOOKS.before_refresh_commit() is None
    assert await NO_HOOKS.before_rpc("sign_batch") is None
    assert NO_HOOKS.name == ""
    assert CorruptShares().frost_share(scheme, share) == scheme.group.serialize_scalar(12346)


def test_a_fault_needs_the_env_gate_and_a_known_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THOLOS_ALLOW_FAULTS", raising=False)
    with pytest.raises(StartupError, match="THOLOS_ALLOW_FAULTS=1"):
        load_fault("corrupt-shares")
    monkeypatch.setenv("THOLOS_ALLOW_FAULTS", "1")
    with pytest.raises(StartupError, match="unknown fault 'nope'; known: corrupt-repair"):
        load_fault("nope")
    for name, cls in FAULTS.items():
        hooks = load_fault(name)
        assert type(hooks) is cls and hooks.name == name


def test_production_modules_do_not_load_the_faults() -> None:
    code = (
        "import sys, tholos.node.server, tholos.gateway.api, tholos.cli;"
        "print(sorted(m for m in sys.modules if m.startswith('tholos.testing')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
