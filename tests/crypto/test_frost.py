"""FROST safe API: properties over random (t, n) and signer sets, culprits, bad input, wire forms."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.crypto.helpers import INDEPENDENT_VERIFIERS, trusted_dealer_keygen
from tholos.crypto.errors import (
    InvalidElement,
    InvalidInput,
    InvalidParticipants,
    InvalidScalar,
    InvalidSignature,
    InvalidSignatureShare,
    NonceReuse,
)
from tholos.crypto.frost import (
    FROST_BIP340,
    FROST_ED25519_SHA512,
    FROST_SECP256K1_SHA256,
    Ciphersuite,
    SignatureShare,
    SigningCommitments,
    SigningNonces,
    SigningPackage,
    aggregate,
    commit,
    commit_many,
    sign,
    signing_public_key,
    tweak_for_signing,
    verify_signature_share,
)
from tholos.crypto.keys import KeyShare, PublicKeyPackage

SUITES: list[Ciphersuite[Any]] = [FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, FROST_BIP340]
SUITE_IDS = [s.name for s in SUITES]


def run_frost(
    suite: Ciphersuite[Any],
    key_shares: dict[int, KeyShare[Any]],
    public: PublicKeyPackage[Any],
    signers: list[int],
    message: bytes,
    **tweaks: Any,
) -> bytes:
    """Both rounds and aggregation; returns the signature (each share verified on the way)."""
    round1 = {i: commit(suite, key_shares[i]) for i in signers}
    package = SigningPackage({i: c for i, (_, c) in round1.items()}, message)
    shares = {i: sign(suite, package, round1[i][0], key_shares[i], **tweaks) for i in signers}
    for i, s in shares.items():
        verify_signature_share(suite, i, s, package, public, **tweaks)
    return aggregate(suite, package, shares, public, **tweaks)


def check_valid(suite: Ciphersuite[Any], message: bytes, sig: bytes, pk: bytes) -> None:
    suite.verify(message, sig, pk)
    INDEPENDENT_VERIFIERS[suite.name](message, sig, pk)


def check_invalid(suite: Ciphersuite[Any], message: bytes, sig: bytes, pk: bytes) -> None:
    with pytest.raises(InvalidSignature):
        suite.verify(message, sig, pk)
    with pytest.raises(Exception):  # noqa: B017 - independent verifiers raise their own types
        INDEPENDENT_VERIFIERS[suite.name](message, sig, pk)


@st.composite
def configurations(draw: st.DrawFn) -> tuple[int, int, list[int], bytes]:
    n = draw(st.integers(1, 10))
    t = draw(st.integers(1, n))
    k = draw(st.integers(t, n))
    signers = sorted(draw(st.permutations(range(1, n + 1)))[:k])
    message = draw(st.binary(min_size=0, max_size=80))
    return t, n, signers, message


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cfg=configurations(), use_tweak=st.booleans())
def test_sign_verify_property(
    suite: Ciphersuite[Any], cfg: tuple[int, int, list[int], bytes], use_tweak: bool
) -> None:
    t, n, signers, message = cfg
    key_shares, public = trusted_dealer_keygen(suite.group, t, n)
    tweaks: dict[str, Any] = {}
    if use_tweak:
        tweaks["tweak"] = suite.group.random_scalar()
        if suite is FROST_BIP340:
            tweaks["merkle_root"] = secrets.choice([b"", secrets.token_bytes(32)])
    sig = run_frost(suite, key_shares, public, signers, message, **tweaks)
    pk = signing_public_key(suite, public, **tweaks)
    check_valid(suite, message, sig, pk)
    # Change the message: verification fails.
    check_invalid(suite, message + b"\x00", sig, pk)
    # Change the key: verification fails.
    _, other = trusted_dealer_keygen(suite.group, 1, 1)
    check_invalid(suite, message, sig, signing_public_key(suite, other))
    # Flip a bit of the signature: verification fails.
    bad = bytearray(sig)
    bad[-1] ^= 1
    check_invalid(suite, message, bytes(bad), pk)


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_corrupted_shares_name_their_signers(suite: Ciphersuite[Any], data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 7))
    t = data.draw(st.integers(1, n))
    signers = sorted(data.draw(st.permutations(range(1, n + 1)))[: data.draw(st.integers(t, n))])
    bad = set(data.draw(st.lists(st.sampled_from(signers), min_size=1, unique=True)))
    key_shares, public = trusted_dealer_keygen(suite.group, t, n)
    round1 = {i: commit(suite, key_shares[i]) for i in signers}
    package = SigningPackage({i: c for i, (_, c) in round1.items()}, b"pay 1 BTC")
    shares = {i: sign(suite, package, round1[i][0], key_shares[i]) for i in signers}
    q = suite.group.order
    for i in bad:
        shares[i] = SignatureShare(suite, (shares[i].share + 1) % q)
        with pytest.raises(InvalidSignatureShare) as exc:
            verify_signature_share(suite, i, shares[i], package, public)
        assert exc.value.culprits == (i,)
    with pytest.raises(InvalidSignatureShare) as exc:
        aggregate(suite, package, shares, public)
    assert set(exc.value.culprits) == bad


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_tweak_routes_agree(suite: Ciphersuite[Any]) -> None:
    """sign(..., tweak=) and signing with tweak_for_signing(...) packages give the same key."""
    key_shares, public = trusted_dealer_keygen(suite.group, 2, 3)
    tweak = suite.group.random_scalar()
    kw: dict[str, Any] = {"tweak": tweak}
    if suite is FROST_BIP340:
        kw["merkle_root"] = b""
    pk = signing_public_key(suite, public, **kw)
    t_public = tweak_for_signing(suite, public, **kw)
    t_shares = {i: tweak_for_signing(suite, ks, **kw) for i, ks in key_shares.items()}
    assert signing_public_key(suite, t_public) == pk
    msg = b"derived child"
    check_valid(suite, msg, run_frost(suite, t_shares, t_public, [1, 3], msg), pk)
    check_valid(suite, msg, run_frost(suite, key_shares, public, [2, 3], msg, **kw), pk)
    if suite is not FROST_BIP340:
        g = suite.group
        expected = g.add(public.group_public_key, g.base_mul(tweak))
        assert pk == suite.serialize_public_key(expected)
        with pytest.raises(InvalidInput):
            signing_public_key(suite, public, merkle_root=b"")


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_safe_api_rejects_bad_input(suite: Ciphersuite[Any]) -> None:
    g = suite.group
    key_shares, public = trusted_dealer_keygen(g, 2, 3)
    msg = b"m"
    (n1, c1), (n2, c2), (_n3, c3) = (commit(suite, key_shares[i]) for i in (1, 2, 3))

    # Fewer than t signers: refused, nonces not consumed.
    with pytest.raises(InvalidParticipants):
        sign(suite, SigningPackage({1: c1}, msg), n1, key_shares[1])
    assert not n1.used
    # Signer not in the package / own commitment replaced: refused, nonces not consumed.
    with pytest.raises(InvalidParticipants):
        sign(suite, SigningPackage({2: c2, 3: c3}, msg), n1, key_shares[1])
    with pytest.raises(InvalidInput):
        sign(suite, SigningPackage({1: c3, 2: c2}, msg), n1, key_shares[1])
    assert not n1.used
    # Signer ids outside the key package.
    with pytest.raises(InvalidParticipants):
        sign(suite, SigningPackage({1: c1, 9: c2}, msg), n1, key_shares[1])
    # Zero / out-of-range / non-int identifiers.
    for bad_id in (0, -1, g.order, True):
        with pytest.raises(InvalidParticipants):
            SigningPackage({bad_id: c1, 2: c2}, msg)
    with pytest.raises(InvalidParticipants):
        SigningPackage({}, msg)
    with pytest.raises(InvalidInput):
        SigningPackage({1: c1}, "not bytes")  # type: ignore[arg-type]

    package = SigningPackage({1: c1, 2: c2}, msg)
    s1 = sign(suite, package, n1, key_shares[1])
    assert n1.used
    # Nonce reuse, with the same or another package, fails closed.
    with pytest.raises(NonceReuse):
        sign(suite, package, n1, key_shares[1])
    with pytest.raises(NonceReuse):
        sign(suite, SigningPackage({1: c1, 3: c3}, b"other"), n1, key_shares[1])
    with pytest.raises(NonceReuse):
        n1.export_secret()
    s2 = sign(suite, package, n2, key_shares[2])

    # Aggregation: a share from a non-participant, a missing share, a wrong type.
    with pytest.raises(InvalidParticipants):
        aggregate(suite, package, {1: s1, 2: s2, 3: s2}, public)
    with pytest.raises(InvalidParticipants):
        aggregate(suite, package, {1: s1}, public)
    with pytest.raises(InvalidInput):
        aggregate(suite, package, {1: s1, 2: "x"}, public)  # type: ignore[dict-item,unused-ignore]
    with pytest.raises(InvalidParticipants):
        verify_signature_share(suite, 3, s2, package, public)
    sig = aggregate(suite, package, {1: s1, 2: s2}, public)
    check_valid(suite, msg, sig, signing_public_key(suite, public))

    # Suite mismatch.
    other = next(s for s in SUITES if s.group is not g)
    with pytest.raises(InvalidInput):
        aggregate(other, package, {1: s1, 2: s2}, public)
    with pytest.raises(InvalidInput):
        commit(other, key_shares[1])

    # Bad tweaks.
    for bad_tweak in (-1, g.order, 1.5):
        with pytest.raises(InvalidScalar):
            aggregate(suite, package, {1: s1, 2: s2}, public, tweak=bad_tweak)
    with pytest.raises(InvalidInput):
        aggregate(suite, package, {1: s1, 2: s2}, public, merkle_root=b"\x00" * 31)


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_wire_forms_and_validation(suite: Ciphersuite[Any]) -> None:
    g = suite.group
    key_shares, public = trusted_dealer_keygen(g, 2, 2)
    nonces, comms = commit(suite, key_shares[1])
    _, comms2 = commit(suite, key_shares[2])

    assert SigningCommitments.from_bytes(comms.to_bytes()) == comms
    assert SigningCommitments.from_dict(comms.to_dict(), suite) == comms
    raw = comms.to_bytes()
    for bad in (raw[:-1], raw + b"\x00", b"\x02" + raw[1:], b"\x01\x7f" + raw[2:], b""):
        with pytest.raises(InvalidInput):
            SigningCommitments.from_bytes(bad)
    n = g.element_length
    if g is FROST_ED25519_SHA512.group:
        # A point of order 8 (not in the prime-order subgroup) and the identity.
        small = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
        offcurve = [small, b"\x01" + b"\x00" * 31, b"\xff" * 32]
    else:
        offcurve = [
            b"\x02" + (5).to_bytes(32, "big"),
            b"\x04" + b"\x11" * 32,
            b"\x02" + b"\xff" * 32,
        ]
    for bad_point in offcurve:
        with pytest.raises(InvalidElement):
            SigningCommitments.from_bytes(raw[:2] + bad_point + raw[2 + n :])
    other = next(s for s in SUITES if s is not suite)
    with pytest.raises(InvalidInput):
        SigningCommitments.from_bytes(raw, other)
    d = comms.to_dict()
    with pytest.raises(InvalidInput):
        SigningCommitments.from_dict({**d, "extra": 1})
    with pytest.raises(InvalidInput):
        SigningCommitments.from_dict({**d, "version": 2})
    with pytest.raises(InvalidInput):
        SigningCommitments.from_dict({**d, "hiding": "zz"})

    package = SigningPackage({1: comms, 2: comms2}, b"msg")
    again = SigningPackage.from_dict(package.to_dict(), suite)
    assert again.commitments == package.commitments
    assert again.message == package.message
    pd = package.to_dict()
    pd["commitments"].append(dict(pd["commitments"][0]))
    with pytest.raises(InvalidParticipants):  # duplicate participant
        SigningPackage.from_dict(pd)

    share = sign(suite, package, nonces, key_shares[1])
    assert SignatureShare.from_bytes(share.to_bytes(), suite) == share
    assert SignatureShare.from_dict(share.to_dict()) == share
    header = share.to_bytes()[:2]
    order_bytes = (
        g.order.to_bytes(32, "little")
        if g is FROST_ED25519_SHA512.group
        else g.order.to_bytes(32, "big")
    )
    with pytest.raises(InvalidScalar):  # scalar >= order
        SignatureShare.from_bytes(header + order_bytes)
    with pytest.raises(InvalidScalar):
        SignatureShare.from_bytes(header + b"\x01" * 31)
    with pytest.raises(InvalidScalar):
        SignatureShare(suite, g.order)

    # Signatures: wrong length, z >= order, bad R.
    sig_len = suite.signature_length
    pk = signing_public_key(suite, public)
    for bad_sig in (b"", b"\x00" * (sig_len - 1), b"\x00" * sig_len, b"\xff" * sig_len):
        with pytest.raises(InvalidSignature):
            suite.verify(b"msg", bad_sig, pk)
    with pytest.raises(InvalidElement):
        suite.verify(b"msg", b"\x00" * sig_len, b"\x00" * 5)


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_nonces_secret_handling(suite: Ciphersuite[Any]) -> None:
    key_shares, _ = trusted_dealer_keygen(suite.group, 2, 2)
    pool = commit_many(suite, key_shares[1], 3)
    assert len({c for _, c in pool}) == 3
    nonces, comms = pool[0]
    assert "redacted" in repr(nonces)
    exported = nonces.export_secret()
    assert exported["hiding_nonce"] not in repr(nonces)
    assert "redacted" in repr(key_shares[1])
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(nonces)
    restored = SigningNonces.import_secret(exported)
    assert restored.commitments == comms
    fast = SigningNonces.import_secret(exported, check=False)
    assert fast.commitments == comms
    wrong = dict(exported, commitments=pool[1][1].to_dict())
    with pytest.raises(InvalidInput):
        SigningNonces.import_secret(wrong)
    with pytest.raises(InvalidInput):
        SigningNonces.import_secret({**exported, "hiding_nonce": "00" * 32})
    # The restored copy signs once.
    _, comms2 = commit(suite, key_shares[2])
    package = SigningPackage({1: comms, 2: comms2}, b"x")
    sign(suite, package, restored, key_shares[1])
    with pytest.raises(NonceReuse):
        sign(suite, package, restored, key_shares[1])


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_one_of_one_and_all_subsets(suite: Ciphersuite[Any]) -> None:
    """Importing a known key as a 1-of-1 sharing; and every t-subset of a 3-of-5 key signs."""
    import itertools

    secret = suite.group.random_scalar()
    shares1, public1 = trusted_dealer_keygen(suite.group, 1, [7], secret=secret)
    sig = run_frost(suite, shares1, public1, [7], b"solo")
    check_valid(suite, b"solo", sig, signing_public_key(suite, public1))
    shares, public = trusted_dealer_keygen(suite.group, 3, 5, secret=secret)
    pk = signing_public_key(suite, public)
    assert pk == signing_public_key(suite, public1)
    for subset in itertools.combinations(range(1, 6), 3):
        check_valid(suite, b"all", run_frost(suite, shares, public, list(subset), b"all"), pk)


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_over_the_wire(suite: Ciphersuite[Any]) -> None:
    """The node/gateway path: every object crosses as bytes or JSON-able dicts and is re-parsed."""
    import json

    key_shares, public = trusted_dealer_keygen(suite.group, 3, 7)
    signers = [2, 5, 7]
    stored = {}
    wire_commitments = {}
    for i in signers:
        nonces, comms = commit(suite, key_shares[i])
        stored[i] = json.dumps(nonces.export_secret())  # sealed at rest by the node
        wire_commitments[i] = comms.to_bytes()
    package = SigningPackage(
        {i: SigningCommitments.from_bytes(b, suite) for i, b in wire_commitments.items()},
        b"transfer",
    )
    wire_package = json.dumps(package.to_dict())
    wire_shares = {}
    for i in signers:
        node_package = SigningPackage.from_dict(json.loads(wire_package), suite)
        nonces = SigningNonces.import_secret(json.loads(stored[i]))
        wire_shares[i] = sign(suite, node_package, nonces, key_shares[i]).to_bytes()
    shares = {i: SignatureShare.from_bytes(b, suite) for i, b in wire_shares.items()}
    sig = aggregate(suite, package, shares, public)
    check_valid(suite, b"transfer", sig, signing_public_key(suite, public))


@settings(max_examples=25, deadline=None)
@given(msg=st.binary(max_size=200), dst=st.binary(min_size=1, max_size=60), n=st.integers(1, 200))
def test_expand_message_xmd_matches_independent_implementation(
    msg: bytes, dst: bytes, n: int
) -> None:
    from tests.crypto.helpers import _xmd_sha256
    from tholos.crypto.frost.ciphersuite import expand_message_xmd_sha256

    assert expand_message_xmd_sha256(msg, dst, n) == _xmd_sha256(msg, dst, n)


def test_public_exports() -> None:
    import tholos.crypto.frost as frost

    for name in frost.__all__:
        assert hasattr(frost, name), name
    assert frost.suite_by_name("FROST-BIP340-v1") is FROST_BIP340
    with pytest.raises(InvalidInput):
        frost.suite_by_name("FROST-P256-SHA256-v1")


def test_nonce_consumption_is_atomic_across_threads() -> None:
    import threading

    suite = FROST_SECP256K1_SHA256
    key_shares, _ = trusted_dealer_keygen(suite.group, 2, 2)
    for _ in range(20):
        (n1, c1), (_, c2) = commit(suite, key_shares[1]), commit(suite, key_shares[2])
        package = SigningPackage({1: c1, 2: c2}, b"race")
        results: list[str] = []

        def attempt(
            nonces: SigningNonces[Any] = n1,
            pkg: SigningPackage[Any] = package,
            results: list[str] = results,
        ) -> None:
            try:
                sign(suite, pkg, nonces, key_shares[1])
                results.append("share")
            except NonceReuse:
                results.append("reuse")

        threads = [threading.Thread(target=attempt) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sorted(results) == ["reuse", "reuse", "reuse", "share"]


def test_bench_frost_runs() -> None:
    from tholos.bench.frost_micro import bench_frost, format_table

    rows = [bench_frost(s, 2, 3, 2) for s in SUITES]
    assert all(r["signatures_per_s_one_core"] > 0 for r in rows)
    assert "FROST-BIP340-v1" in format_table(rows)
