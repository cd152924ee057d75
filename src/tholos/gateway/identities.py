"""Named API clients: a TLS client certificate (by SHA-256 fingerprint) -> a name and a role.

Only certificates listed in the gateway config are API clients; any other certificate of the
cluster CA (the gateway's own node-client certificate, a node's) is refused with 403. Roles:

    read-only  GET routes (and reading the nodes' audit chains)
    signer     read-only + sign, encrypt/decrypt/evaluate, presign, governed signing requests
    operator   read-only + create/import/refresh/repair keys, governance and kill-switch relays
    admin      everything
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

Role = Literal["read-only", "signer", "operator", "admin"]
Permission = Literal["read", "sign", "operate", "admin"]
ROLES: dict[str, frozenset[str]] = {
    "read-only": frozenset({"read"}),
    "signer": frozenset({"read", "sign"}),
    "operator": frozenset({"read", "operate"}),
    "admin": frozenset({"read", "sign", "operate", "admin"}),
}

# (method, route path) -> permission. GET routes not listed need "read"; other routes not listed
# need "admin" (a new route is closed until someone decides who may call it).
PERMISSIONS: dict[tuple[str, str], Permission] = {
    ("POST", "/v1/audit/nodes"): "read",
    ("POST", "/v1/keys/{key_id}/sign"): "sign",
    ("POST", "/v1/sign"): "sign",
    ("POST", "/v1/keys/{key_id}/evaluate"): "sign",
    ("POST", "/v1/keys/{key_id}/presign"): "sign",
    ("POST", "/v1/signing-requests"): "sign",
    ("POST", "/v1/signing-requests/batch"): "sign",
    ("POST", "/v1/signing-requests/{request_id}/approvals"): "sign",
    ("POST", "/v1/signing-requests/{request_id}/reject"): "sign",
    ("POST", "/v1/signing-requests/{request_id}/sign"): "sign",
    ("POST", "/v1/signing-requests/{request_id}/cancel"): "sign",
    ("POST", "/v1/keys"): "operate",
    ("POST", "/v1/keys/import"): "operate",
    ("POST", "/v1/keys/{key_id}/refresh"): "operate",
    ("POST", "/v1/keys/{key_id}/repair"): "operate",
    ("POST", "/v1/nodes/{node_id}/repair"): "operate",
    ("POST", "/v1/keys/{key_id}/label"): "operate",
    ("POST", "/v1/keys/{key_id}/tags"): "operate",
    # disable, enable and destroy are not listed: admin only
    ("POST", "/v1/governance/documents"): "operate",
    ("POST", "/v1/governance/proposals"): "operate",
    ("POST", "/v1/governance/proposals/{proposal_id}/signatures"): "operate",
    ("POST", "/v1/killswitch"): "operate",
    ("POST", "/v1/wallets"): "operate",
    ("POST", "/v1/wallets/{wallet_id}/nonces"): "sign",  # for a signing request to come
    # Vault tokens (gateway/vault_tokens.py): admin only, listing too
    ("GET", "/v1/vault/tokens"): "admin",
    # Vault transit (gateway/vault_transit.py); DELETE of a key is admin only
    ("POST", "/v1/transit/keys/{name}"): "operate",
    ("POST", "/v1/transit/keys/{name}/config"): "operate",
    ("POST", "/v1/transit/keys/{name}/rotate"): "operate",
    ("POST", "/v1/transit/sign/{name}"): "sign",
    ("POST", "/v1/transit/sign/{name}/{hash_algorithm}"): "sign",
    ("POST", "/v1/transit/verify/{name}"): "sign",
    ("POST", "/v1/transit/verify/{name}/{hash_algorithm}"): "sign",
    ("POST", "/v1/transit/encrypt/{name}"): "sign",
    ("POST", "/v1/transit/decrypt/{name}"): "sign",
    # The web console (gateway/console/): the certificate's role is the station's gate; the person
    # logged in is then checked by their own governance role and signs with their own key.
    ("POST", "/console/login/challenge"): "read",
    ("POST", "/console/login"): "read",
    ("POST", "/console/logout"): "read",
    ("POST", "/console/audit/prepare"): "read",
    ("POST", "/console/audit"): "read",
    ("POST", "/console/transfers/prepare"): "sign",
    ("POST", "/console/transfers/submit"): "sign",
    ("POST", "/console/requests/{request_id}/approve"): "sign",
    ("POST", "/console/requests/{request_id}/reject"): "sign",
    ("POST", "/console/requests/{request_id}/cancel"): "sign",
    ("POST", "/console/wallets"): "operate",
    ("POST", "/console/killswitch/prepare"): "operate",
    ("POST", "/console/killswitch/engage"): "operate",
    ("POST", "/console/killswitch/release"): "operate",
    ("POST", "/console/proposals/sign"): "operate",
}


def permission_for(method: str, path: str) -> str:
    return PERMISSIONS.get((method, path), "read" if method in ("GET", "HEAD") else "admin")


@dataclass(frozen=True)
class ClientLimits:
    """Per-client limits. `rate`/`burst`: requests per second (token bucket), None = unlimited;
    `keys_per_hour`: keys this client may create (DKG or import) per rolling hour; `max_count`:
    keys per `POST /v1/keys` call."""

    rate: float | None = 20.0
    burst: int = 40
    keys_per_hour: int | None = 1000
    max_count: int = 100

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: ClientLimits | None = None) -> ClientLimits:
        b = base or cls()
        known = {"rate", "burst", "keys_per_hour", "max_count"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown limit(s) {sorted(unknown)}; known: {sorted(known)}")
        rate = d.get("rate", b.rate)
        kph = d.get("keys_per_hour", b.keys_per_hour)
        out = cls(
            rate=None if rate is None else float(rate),
            burst=int(d.get("burst", b.burst)),
            keys_per_hour=None if kph is None else int(kph),
            max_count=int(d.get("max_count", b.max_count)),
        )
        if (out.rate is not None and out.rate <= 0) or out.burst < 1 or out.max_count < 1:
            raise ValueError("rate must be > 0 (or null), burst and max_count >= 1")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "burst": self.burst,
            "keys_per_hour": self.keys_per_hour,
            "max_count": self.max_count,
        }


UNLIMITED = ClientLimits(rate=None, burst=1, keys_per_hour=None, max_count=1000)
FINGERPRINT = "tholos_client_fingerprint"  # our key in the ASGI TLS extension: SHA-256 of the DER


@dataclass(frozen=True)
class ApiClient:
    name: str
    role: Role
    fingerprint: str  # SHA-256 of the certificate (DER), lowercase hex
    limits: ClientLimits = field(default_factory=ClientLimits)

    def may(self, permission: str) -> bool:
        return permission in ROLES[self.role]


@dataclass(frozen=True)
class ApiClients:
    """The gateway's API clients. `open_access`: plain-HTTP test gateways only, where there is no
    certificate: every caller is an unlimited admin."""

    by_fingerprint: dict[str, ApiClient]
    open_access: bool = False

    @classmethod
    def from_config(cls, entries: dict[str, Any], defaults: dict[str, Any]) -> ApiClients:
        """`entries`: name -> {"fingerprint": "sha256 hex", "role": ..., "limits": {...}}."""
        base = ClientLimits.from_dict(defaults)
        out: dict[str, ApiClient] = {}
        for name, e in entries.items():
            role = e.get("role")
            if role not in ROLES:
                raise ValueError(f"api client {name!r}: role must be one of {sorted(ROLES)}")
            fp = str(e.get("fingerprint", "")).lower().removeprefix("sha256:").replace(":", "")
            if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
                raise ValueError(f"api client {name!r}: fingerprint must be SHA-256 hex")
            if fp in out:
                raise ValueError(f"api client {name!r}: fingerprint listed twice")
            limits = ClientLimits.from_dict(e.get("limits", {}), base)
            out[fp] = ApiClient(name, role, fp, limits)
        return cls(out)

    @classmethod
    def open(cls) -> ApiClients:
        return cls({}, open_access=True)

    def identify(self, scope: Mapping[str, Any]) -> ApiClient | None:
        """The client of this ASGI request, from its TLS certificate; None if not an API client.
        The fingerprint is taken once per connection (`TlsClientProtocol`) when it is there."""
        if self.open_access:
            return ANONYMOUS
        tls = (scope.get("extensions") or {}).get("tls") or {}
        fp = tls.get(FINGERPRINT)
        if fp is None:
            chain = tls.get("client_cert_chain") or []
            if not chain:
                return None
            fp = fingerprint_pem(chain[0])
        return self.by_fingerprint.get(fp)


ANONYMOUS = ApiClient("anonymous", "admin", "", UNLIMITED)


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


@functools.lru_cache(maxsize=1024)
def fingerprint_pem(pem: str) -> str:
    """SHA-256 fingerprint of a PEM certificate (cached: one parse per certificate)."""
    return fingerprint(x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER))


class TlsClientProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the ASGI TLS extension (the client certificate) in
    every request's scope: uvicorn itself does not pass the peer certificate to the app."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            cert = x509.load_der_x509_certificate(der)
            cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            self._tls = {
                "client_cert_chain": [x509_pem(cert)],
                "client_cert_name": cert.subject.rfc4514_string(),
                "client_cert_error": None,
                "client_cn": str(cns[0].value) if cns else "",
                FINGERPRINT: fingerprint(der),
            }

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]


def x509_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()
