"""Console logins: a challenge signed with the user's Ed25519 key opens a session; anything else
(another user's challenge, a reused or expired one, a wrong key or cluster) opens nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from tholos.gateway.console import actions
from tholos.gateway.console import sessions as mod
from tholos.gateway.console.sessions import Sessions, login_message
from tholos.gateway.console.web import PREFIX
from tholos.gateway.identities import PERMISSIONS, ApiClient, permission_for
from tholos.gateway.store import GatewayStore
from tholos.governance._keys import public_key_hex, sign

CLUSTER = "tholos-test"


def _keys() -> tuple[Ed25519PrivateKey, bytes]:
    k = Ed25519PrivateKey.generate()
    return k, bytes.fromhex(public_key_hex(k))


def test_a_signed_challenge_opens_one_session_with_a_csrf_token() -> None:
    s = Sessions()
    key, pub = _keys()
    c = s.challenge("alice")
    token, session = s.login(CLUSTER, "alice", pub, c.hex(), sign(key, login_message(CLUSTER, c)))
    assert s.get(token) == session and session.user == "alice"
    assert Sessions.csrf_ok(session, session.csrf)
    assert not Sessions.csrf_ok(session, None) and not Sessions.csrf_ok(session, "x")
    s.logout(token)
    assert s.get(token) is None


def test_a_challenge_is_spent_by_its_first_use() -> None:
    s = Sessions()
    key, pub = _keys()
    c = s.challenge("alice")
    sig = sign(key, login_message(CLUSTER, c))
    s.login(CLUSTER, "alice", pub, c.hex(), sig)
    with pytest.raises(ValueError, match="unknown or expired"):
        s.login(CLUSTER, "alice", pub, c.hex(), sig)


@pytest.mark.parametrize("case", ["other user", "wrong key", "other cluster", "unknown"])
def test_bad_logins_are_refused_and_open_nothing(case: str) -> None:
    s = Sessions()
    key, pub = _keys()
    other, other_pub = _keys()
    c = s.challenge("alice")
    user, signer, cluster, challenge = "alice", key, CLUSTER, c.hex()
    if case == "other user":
        user, signer, pub = "mallory", other, other_pub
    elif case == "wrong key":
        signer = other
    elif case == "other cluster":
        cluster = "tholos-other"
    else:
        challenge = "00" * 32
    sig = sign(signer, login_message(cluster, c))
    with pytest.raises(ValueError, match=r"another user|does not verify|unknown or expired"):
        s.login(CLUSTER, user, pub, challenge, sig)
    assert s.count() == 0


def test_sessions_and_challenges_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(mod.time, "monotonic", lambda: now[0])  # challenges
    monkeypatch.setattr(mod.time, "time", lambda: now[0])  # sessions (stored: wall clock)
    s = Sessions(ttl=60)
    key, pub = _keys()
    c = s.challenge("alice")
    now[0] += mod.CHALLENGE_TTL + 1
    with pytest.raises(ValueError, match="expired"):
        s.login(CLUSTER, "alice", pub, c.hex(), sign(key, login_message(CLUSTER, c)))
    c = s.challenge("alice")
    token, _ = s.login(CLUSTER, "alice", pub, c.hex(), sign(key, login_message(CLUSTER, c)))
    now[0] += 61
    assert s.get(token) is None


def test_sessions_outlive_the_process_and_are_stored_hashed(tmp_path: Path) -> None:
    """A session opened by one gateway process is live in the next one on the same store; the
    store holds neither the cookie token nor the CSRF token, only the token's SHA-256."""
    store = GatewayStore(tmp_path / "gw.db")
    key, pub = _keys()
    first = Sessions(store.db)
    c = first.challenge("alice")
    token, session = first.login(
        CLUSTER, "alice", pub, c.hex(), sign(key, login_message(CLUSTER, c))
    )
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("gw.db*"))  # the file and its WAL
    assert token.encode() not in raw and session.csrf.encode() not in raw
    assert hashlib.sha256(token.encode()).hexdigest().encode() in raw
    store = GatewayStore(tmp_path / "gw.db")
    again = Sessions(store.db)  # the restarted gateway
    assert again.get(token) == session
    assert again.get(token + "x") is None and again.get("") is None
    other = Sessions(GatewayStore(tmp_path / "gw.db").db)
    other.logout(token)  # logging out ends it for every process on this store
    assert again.get(token) is None and again.count() == 0


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_login_messages_differ_for_different_challenges(a: bytes, b: bytes) -> None:
    assert (login_message(CLUSTER, a) == login_message(CLUSTER, b)) == (a == b)
    assert login_message(CLUSTER, a) != login_message(CLUSTER + "x", a)


def test_every_console_action_has_a_permission_of_its_own() -> None:
    """Each console POST is in the API identities' table (not the admin default): a signer
    station approves and submits, only operator stations engage the kill switch."""
    routes = {
        (m, PREFIX + r.path) for r in actions.router.routes for m in getattr(r, "methods", ())
    }
    assert routes and all(key in PERMISSIONS for key in routes), routes - PERMISSIONS.keys()
    signer = ApiClient("desk", "signer", "00" * 32)
    assert signer.may(permission_for("POST", "/console/requests/{request_id}/approve"))
    assert signer.may(permission_for("POST", "/console/login"))
    assert not signer.may(permission_for("POST", "/console/killswitch/engage"))
    assert not ApiClient("ro", "read-only", "00" * 32).may(
        permission_for("POST", "/console/transfers/submit")
    )
