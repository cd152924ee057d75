"""Regression tests for the review of tholos.crypto: each test names the defect it pins down.

Untrusted input (wire dicts, objects built by a caller) must give a clear exception type and no
partial result; single-use secrets must stay single-use across threads.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.crypto.threshold_keys import deal
from tholos.crypto import dise, ecdsa
from tholos.crypto.bip32 import parse_path
from tholos.crypto.dkg import run_dkg
from tholos.crypto.errors import (
    InvalidInput,
    NonceReuse,
    ProtocolAbort,
    StateError,
)
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.hazmat import sigma
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.repair import RepairCommitment, repair_step1
from tholos.crypto.reshare import ReshareParticipant
from tholos.crypto.secret import SecretScalar


# -- ECDSA presignatures are single use, also across threads -----------------------------------------
class _SlowSecret(SecretScalar):
    """Widens the window between "is it used?" and "mark it used" so that a race shows reliably."""

    __slots__ = ()

    @property
    def wiped(self) -> bool:
        w = super().wiped
        time.sleep(0.05)
        return w

    def expose(self) -> int:
        time.sleep(0.05)
        return super().expose()


def test_presignature_consume_is_atomic_across_threads() -> None:
    shares = deal(SECP256K1, 2, 3)
    presigs, _ = ecdsa.run_presign(shares)
    pre = presigs[1]
    k, c = pre._k.expose(), pre._c.expose()
    pre._k, pre._c = _SlowSecret(k), _SlowSecret(c)
    results: list[object] = []
    barrier = threading.Barrier(2)

    def use() -> None:
        barrier.wait()
        try:
            results.append(pre.consume())
        except (NonceReuse, StateError) as exc:
            results.append(exc)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ok = [r for r in results if isinstance(r, tuple)]
    assert len(ok) == 1, "a presignature was handed out twice"
    assert any(isinstance(r, NonceReuse) for r in results)


# -- key packages from the wire: strict types, no silent coercion -------------------------------------
def _package_dict() -> dict[str, Any]:
    return deal(SECP256K1, 2, 3)[0].public.to_dict()


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d.update(threshold=2.9), id="float-threshold"),
        pytest.param(lambda d: d.update(threshold=True), id="bool-threshold"),
        pytest.param(lambda d: d.update(threshold="2"), id="str-threshold"),
        pytest.param(lambda d: d.pop("group"), id="missing-group"),
        pytest.param(lambda d: d.update(group=7), id="group-not-str"),
        pytest.param(lambda d: d.update(verifying_shares=[]), id="shares-not-map"),
        pytest.param(
            lambda d: d["verifying_shares"].update({"0_1": d["verifying_shares"]["1"]}),
            id="underscore-identifier",
        ),
        pytest.param(
            lambda d: d["verifying_shares"].update({"01": d["verifying_shares"].pop("1")}),
            id="leading-zero-identifier",
        ),
        pytest.param(lambda d: d.update(extra=1), id="unknown-field"),
    ],
)
def test_public_key_package_from_dict_is_strict(mutate: Any) -> None:
    d = _package_dict()
    mutate(d)
    with pytest.raises(InvalidInput):
        PublicKeyPackage.from_dict(d)


def test_public_key_package_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(InvalidInput):
        PublicKeyPackage.from_dict([])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d.pop("identifier"), id="missing-identifier"),
        pytest.param(lambda d: d.update(identifier="1"), id="str-identifier"),
        pytest.param(lambda d: d.update(identifier=1.0), id="float-identifier"),
        pytest.param(lambda d: d.pop("secret_share"), id="missing-secret"),
        pytest.param(lambda d: d.pop("public"), id="missing-public"),
    ],
)
def test_key_share_import_secret_is_strict(mutate: Any) -> None:
    d = deal(SECP256K1, 2, 3)[0].export_secret()
    mutate(d)
    with pytest.raises(InvalidInput):
        KeyShare.import_secret(d)


def test_key_share_round_trip_still_works() -> None:
    ks = deal(ED25519, 2, 3)[1]
    back = KeyShare.import_secret(ks.export_secret())
    assert back.identifier == ks.identifier
    assert back.secret_share.expose() == ks.secret_share.expose()
    assert PublicKeyPackage.from_dict(ks.public.to_dict()) == ks.public


# -- BIP32 paths: one spelling per path -------------------------------------------------------------
@pytest.mark.parametrize("path", ["m/\u0661", "m/0/\u00b2", "m/\uff11"])
def test_parse_path_refuses_non_ascii_digits(path: str) -> None:
    with pytest.raises(InvalidInput):
        parse_path(path)


# -- sigma proofs are not malleable -----------------------------------------------------------------
def _schnorr_statement() -> tuple[int, list[sigma.Equation[Any]]]:
    w = SECP256K1.random_scalar()
    eqs = [sigma.Equation(((0, SECP256K1.generator()),), SECP256K1.base_mul(w))]
    return w, eqs


def test_sigma_verify_refuses_extra_responses() -> None:
    w, eqs = _schnorr_statement()
    proof = sigma.prove(SECP256K1, b"t", b"ctx", [w], eqs)
    assert sigma.verify(SECP256K1, b"t", b"ctx", eqs, proof)
    padded = sigma.LinearProof(proof.challenge, (*proof.responses, 5))
    assert not sigma.verify(SECP256K1, b"t", b"ctx", eqs, padded)


def test_sigma_verify_returns_false_for_too_few_responses() -> None:
    w, eqs = _schnorr_statement()
    proof = sigma.prove(SECP256K1, b"t", b"ctx", [w], eqs)
    assert not sigma.verify(SECP256K1, b"t", b"ctx", eqs, sigma.LinearProof(proof.challenge, ()))


# -- DiSE: a partial with a small-order component is refused ----------------------------------------
_ED25519_ORDER_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")


def test_dise_partial_with_torsion_component_is_refused() -> None:
    shares = deal(ED25519, 2, 3)
    public = shares[0].public
    _, request = dise.encrypt_begin(public, "alice", b"hello")
    partial = dise.evaluate(shares[0], request)
    tainted = ED25519.add(partial.point, _ED25519_ORDER_8)
    # Before the fix libsodium refused the point inside the proof check and raised its own
    # RuntimeError (not a CryptoError): the gateway could not name node 1. Now: InvalidProof([1]).
    bad = dise.PartialEval(partial.identifier, tainted, partial.proof)
    with pytest.raises(dise.InvalidProof):
        dise.verify_partial(public, request, bad)
    with pytest.raises(dise.InvalidProof) as exc:
        dise.combine_evaluations(public, request, [bad, dise.evaluate(shares[1], request)])
    assert exc.value.culprits == (partial.identifier,)


def test_dise_eval_request_checks_field_types() -> None:
    with pytest.raises(InvalidInput):
        dise.EvalRequest("k" * 32, "alice", b"a" * 32, "encrypt")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        dise.EvalRequest(b"k" * 32, "alice", "a" * 32, "decrypt")  # type: ignore[arg-type]


# -- reshare: the dealt constants must interpolate to the group key ----------------------------------
def test_reshare_with_inconsistent_old_package_aborts_cleanly() -> None:
    """A new member handed an old package whose verifying share of a dealer was replaced (same group
    key, so the session id matches) must abort with ProtocolAbort and wipe, not raise InvalidInput
    from inside finish (state left at ROUND3, shares kept)."""
    old = run_dkg(SECP256K1, 2, [1, 2, 3], b"k")
    real = old[1].public
    dealers, new = [1, 2], [4, 5]
    # Dealer 2 deals a different constant and the package given to the new members agrees with it.
    fake_share = SECP256K1.random_scalar()
    forged = PublicKeyPackage(
        SECP256K1,
        real.threshold,
        real.group_public_key,
        {**real.verifying_shares, 2: SECP256K1.base_mul(fake_share)},
    )

    class Forger(ReshareParticipant[Any]):
        def _constant(self) -> int:
            return fake_share

    p1 = ReshareParticipant(1, real, dealers, 2, new, b"c", key_share=old[1])
    p2 = Forger(2, real, dealers, 2, new, b"c", key_share=old[2])
    p4 = ReshareParticipant(4, forged, dealers, 2, new, b"c")
    r1 = {1: p1.round1(), 2: p2.round1()}
    p4.skip_round1()
    assert p4.round2(r1) == {}
    out1 = p1.round2({2: r1[2]})
    out2 = p2.round2({1: r1[1]})
    complaints = p4.round3({1: out1[4], 2: out2[4]})
    assert complaints.complaints == ()  # the forged view accepts dealer 2's dealing
    with pytest.raises(ProtocolAbort):
        p4.finish({})
    assert p4.state.value == "failed"


# -- key packages: consistency means every verifying share -------------------------------------------
@pytest.mark.parametrize(("t", "n", "bad"), [(3, 7, 4), (2, 5, 3), (2, 4, 2)])
def test_check_consistent_checks_every_verifying_share(t: int, n: int, bad: int) -> None:
    public = deal(SECP256K1, t, n)[0].public
    public.check_consistent()
    shares = dict(public.verifying_shares)
    shares[bad] = SECP256K1.add(shares[bad], SECP256K1.generator())
    broken = PublicKeyPackage(SECP256K1, t, public.group_public_key, shares)
    with pytest.raises(InvalidInput):
        broken.check_consistent()


@pytest.mark.parametrize("key", ["01", "1_0", " 1", "+1", "\u0661"])
def test_repair_commitment_from_dict_wants_canonical_identifiers(key: str) -> None:
    shares = run_dkg(ED25519, 2, [1, 2, 3], b"k")
    commitment, _ = repair_step1(shares[1], [1, 2], 3, b"ctx")
    d = commitment.to_dict()
    d["commitments"][key] = d["commitments"].pop("1")
    with pytest.raises(InvalidInput):
        RepairCommitment.from_dict(d)


@pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)
def test_public_key_package_refuses_identity_elements(group: Any) -> None:
    """A package with the identity as group key or verifying share is degenerate (secret 0) and has
    no wire encoding; it must be refused when built, not fail later in signing or to_dict."""
    public = deal(group, 2, 3)[0].public
    with pytest.raises(InvalidInput):
        PublicKeyPackage(group, 2, group.identity(), public.verifying_shares)
    with pytest.raises(InvalidInput):
        PublicKeyPackage(
            group, 2, public.group_public_key, {**public.verifying_shares, 2: group.identity()}
        )
