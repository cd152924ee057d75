"""DiSE evaluation in a governed cluster: who may ask, and partials only the asker can read.

Whoever combines t partial evaluations f_{k_i}(x) can derive the message key of x, and the
gateway relays them; so in a governed cluster a node evaluates only for a registered user's
signed `DiseAuthorization` and seals its partial (with its Chaum–Pedersen proof) to the X25519
key named in it (`tholos.crypto.seal`). The gateway relays authorization and sealed partial
untouched and can read neither the partial nor, therefore, any message key.

Each node checks, against its own registry (never the gateway's word): the cluster id; the user's
Ed25519 signature over the tagged digest of the canonical authorization; expiry (not past, at
most `MAX_LIFETIME` ahead plus the policy's clock skew); that the key id, α, purpose and
encryptor equal the evaluation request's; for encryption, that the encryptor written into the
ciphertext is the user (DiSE's authenticity argument needs the encryptor to be authenticated);
the permission below; and the kill switch (engaged: every evaluation refused). Every decision
(accepted or refused with its rule, the authorization digest, the user) is appended to the audit
chain before the reply leaves.

Permission: membership in the group `dise:<key_id>` (that key) or `dise` (every DiSE key).
Groups, not roles: what a role grants is fixed by the code and the same for every key, while data
access is per key; and not `admin`: admins change the registry by quorum-signed documents, so an
admin who wants to read data must add themselves to a group in a document other admins sign and
every node audits (separation of duties). One group grants encryption and decryption alike.

An authorization may be replayed until it expires (the client asks again when a node misbehaves);
that gains nothing, as every partial is sealed to the client's key.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, ValidationError

from tholos.audit import KIND_DECISION
from tholos.crypto.dise import EvalRequest, PartialEval
from tholos.crypto.errors import CryptoError
from tholos.crypto.seal import seal
from tholos.governance import Accept, GovernanceError, GovernanceState, Refuse, decision_record
from tholos.governance._canonical import canonical_json, tagged_digest
from tholos.governance._keys import sign, verify
from tholos.governance._model import FORMAT_VERSION, Hex32, Hex64, Model, Name, UnixTime

AUTHORIZATION_TAG = b"tholos/dise-authorization/v1"
MAX_LIFETIME = 300
"""Seconds an authorization may run ahead of the node's clock (plus the policy's clock skew)."""
ALL_KEYS_GROUP = "dise"
PROTOCOL = "dise-eval"

Encryptor = Annotated[str, Field(min_length=1, max_length=255)]


def key_group(key_id: str) -> str:
    """The group whose members may use DiSE key `key_id`."""
    return f"{ALL_KEYS_GROUP}:{key_id}"


class DiseAuthorization(Model):
    """A user's request for DiSE evaluations of one α with one key, for one client key."""

    format: Literal[1] = FORMAT_VERSION
    kind: Literal["dise_authorization"] = "dise_authorization"
    cluster_id: Name
    user: Name
    key_id: Name
    alpha: Hex32
    purpose: Literal["encrypt", "decrypt"]
    encryptor: Encryptor
    expires_at: UnixTime
    client_key: Hex32
    nonce: Hex32

    def digest(self) -> bytes:
        """What the user signs, the associated data of every sealed reply, and the audit id."""
        return tagged_digest(AUTHORIZATION_TAG, self.canonical())


class SignedDiseAuthorization(Model):
    authorization: DiseAuthorization
    signature: Hex64


def sign_authorization(
    key: Ed25519PrivateKey,
    *,
    cluster_id: str,
    user: str,
    key_id: str,
    request: EvalRequest,
    client_key: bytes,
    lifetime: int = 120,
    now: float | None = None,
) -> SignedDiseAuthorization:
    """Client side: the user's signed authorization for `request` (the DPRF input) with `key_id`,
    for partials sealed to `client_key` (X25519, 32 bytes)."""
    if not 0 < lifetime <= MAX_LIFETIME:
        raise ValueError(f"lifetime must be 1..{MAX_LIFETIME} seconds")
    auth = DiseAuthorization(
        cluster_id=cluster_id,
        user=user,
        key_id=key_id,
        alpha=request.alpha.hex(),
        purpose=request.purpose,
        encryptor=request.encryptor,
        expires_at=int(time.time() if now is None else now) + lifetime,
        client_key=client_key.hex(),
        nonce=secrets.token_bytes(32).hex(),
    )
    return SignedDiseAuthorization(authorization=auth, signature=sign(key, auth.digest()))


def check(
    state: GovernanceState | None, now: int, item: dict[str, Any]
) -> tuple[Accept | Refuse, DiseAuthorization | None]:
    """The decision for one evaluation item (see the module docstring), and its authorization
    when it could be parsed."""
    raw = item.get("authorization")
    if raw is None:
        return Refuse("governed", "DiSE evaluation needs a user's signed authorization"), None
    try:
        signed = SignedDiseAuthorization.model_validate_json(canonical_json(raw))
    except (ValidationError, ValueError, TypeError) as exc:
        return Refuse("malformed", f"authorization: {str(exc)[:300]}"), None
    a = signed.authorization
    if state is None:  # fail closed
        return Refuse("governed", "this node has no governance state"), a
    if state.kill_switch is not None:
        return Refuse("kill-switch", "the kill switch is engaged"), a
    if a.cluster_id != state.cluster_id:
        return Refuse("cluster", f"authorization for cluster {a.cluster_id}"), a
    user = state.registry.get(a.user)
    if user is None:
        return Refuse("user", f"{a.user} is not a registered user"), a
    try:
        verify(state.registry.key(a.user), signed.signature, a.digest(), a.user)
    except GovernanceError as exc:
        return Refuse("signature", str(exc)), a
    if now > a.expires_at:
        return Refuse("expired", "the authorization has expired"), a
    if a.expires_at > now + MAX_LIFETIME + state.policy.max_clock_skew:
        return Refuse("lifetime", f"an authorization lives at most {MAX_LIFETIME} s"), a
    try:
        request = EvalRequest.from_dict(item.get("request"))
    except CryptoError as exc:
        return Refuse("malformed", f"evaluation request: {exc}"), a
    if str(item.get("key_id", "")) != a.key_id:
        return Refuse("binding", "the evaluation is for another key than authorized"), a
    if (request.alpha.hex(), request.purpose, request.encryptor) != (
        a.alpha,
        a.purpose,
        a.encryptor,
    ):
        return Refuse("binding", "α, purpose or encryptor differ from the authorization"), a
    if a.purpose == "encrypt" and a.encryptor != a.user:
        return Refuse("encryptor", "an encryption names its user as the encryptor"), a
    group = next((g for g in (key_group(a.key_id), ALL_KEYS_GROUP) if g in user.groups), None)
    if group is None:
        return Refuse(
            "permission", f"{a.user} is in neither group {key_group(a.key_id)} nor {ALL_KEYS_GROUP}"
        ), a
    return Accept((group,), a.digest(), b""), a


def evaluate_governed(
    gov: Any, node_id: int, items: list[Any], partial: Callable[[dict[str, Any]], PartialEval]
) -> dict[str, Any]:
    """Check every item, compute and seal the partials of the accepted ones (`partial`), and
    audit every decision before returning the results (by request id)."""
    state: GovernanceState | None = getattr(gov, "state", None)
    now = int(gov._now()) if state is not None else 0
    results: dict[str, Any] = {}
    audit: list[tuple[str, dict[str, Any]]] = []
    for it in items:
        item = it if isinstance(it, dict) else {}
        rid = str(item.get("request_id", ""))
        decision, auth = check(state, now, item)
        record: dict[str, Any] = {
            **decision_record(rid, auth.digest() if auth else b"", decision),
            "protocol": PROTOCOL,
            "key_id": auth.key_id if auth else str(item.get("key_id", ""))[:64],
            "user": auth.user if auth else "",
            "purpose": auth.purpose if auth else "",
        }
        if isinstance(decision, Refuse):
            results[rid] = {"error": f"PolicyRefused[{decision.rule_id}]: {decision.reason}"}
            audit.append((KIND_DECISION, record))
            continue
        assert auth is not None  # accepted: parsed
        try:
            body = json.dumps(partial(item).to_dict()).encode()
            sealed = seal(bytes.fromhex(auth.client_key), decision.digest, node_id, body)
            results[rid] = {"sealed": sealed.hex()}
            audit.append((KIND_DECISION, {**record, "released": True}))
        except Exception as exc:  # accepted but not evaluated (unknown key, stale share...)
            results[rid] = {"error": f"{type(exc).__name__}: {exc}"}
            audit.append((KIND_DECISION, {**record, "error": str(exc)[:300]}))
    gov.audit.append_many(audit)
    return results


__all__ = [
    "ALL_KEYS_GROUP",
    "AUTHORIZATION_TAG",
    "MAX_LIFETIME",
    "DiseAuthorization",
    "SignedDiseAuthorization",
    "check",
    "evaluate_governed",
    "key_group",
    "sign_authorization",
]
