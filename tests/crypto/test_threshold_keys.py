"""The test helpers' DKG driver: a changed `run_dkg` must fail the tests that use it, not skip them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.crypto.threshold_keys import dkg_shares
from tholos.crypto import dkg
from tholos.crypto.groups import ED25519


def test_dkg_shares_are_one_per_participant() -> None:
    shares = dkg_shares(ED25519, 2, 3)
    assert [ks.identifier for ks in shares] == [1, 2, 3]
    assert len({ks.public.group_public_key for ks in shares}) == 1


@pytest.mark.parametrize(
    "changed",
    [
        lambda real: list(real.values()),  # a list instead of {id: share}
        lambda real: {i: ks for i, ks in real.items() if i != 2},  # a share missing
        lambda real: {i: ks.secret_share for i, ks in real.items()},  # not KeyShares
    ],
)
def test_changed_run_dkg_fails_instead_of_skipping(
    changed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = dkg.run_dkg
    monkeypatch.setattr(dkg, "run_dkg", lambda *a, **kw: changed(real(*a, **kw)))
    try:
        dkg_shares(ED25519, 2, 3)
    except BaseException as exc:  # pytest.skip raises a BaseException
        assert isinstance(exc, AssertionError), f"{type(exc).__name__}: {exc}"
    else:
        pytest.fail("a changed run_dkg result was accepted")
