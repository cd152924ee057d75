"""The two files an operator carries when a node joins from its own machine.

Join request (node -> CA holder): the node's id, address, public identity (Ed25519 signing and
X25519 exchange keys) and an X.509 certificate request for its TLS key, signed with the identity
key (proof that the node holds it; the CSR is signed with the TLS key). Bundle (CA holder ->
node): the certificate issued for that request, the CA certificate and the roster of peers, bound
to the request's digest and signed with the CA key. Neither file holds a secret.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tholos.transport.e2e import EnvelopeError, Identity, PeerIdentity, verify_from
from tholos.transport.pki import CertificateAuthority, _name

REQUEST_FORMAT = "tholos-join-request-v1"
BUNDLE_FORMAT = "tholos-node-bundle-v1"
REQUEST_CONTEXT = b"tholos-join-request-v1\x00"
MAX_NODE_ID = 64


class JoinError(Exception):
    """A join request or bundle that is malformed, forged or meant for another node."""


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def node_name(node_id: int) -> str:
    """The certificate common name of node `node_id` (as `tholos cluster init` issues it)."""
    return f"node-{node_id}"


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of a certificate's DER encoding, hex: what an operator compares out of band."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def check_node_id(node_id: object) -> int:
    if not isinstance(node_id, int) or isinstance(node_id, bool):
        raise JoinError(f"node id must be an integer, not {node_id!r}")
    if not 1 <= node_id <= MAX_NODE_ID:
        raise JoinError(f"node id must be in 1..{MAX_NODE_ID}, not {node_id}")
    return node_id


def _host_of(listen: str) -> str:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise JoinError(f"address {listen!r} is not HOST:PORT")
    return host.strip("[]")


def make_csr(key: ec.EllipticCurvePrivateKey, node_id: int, hosts: tuple[str, ...]) -> bytes:
    """A certificate request (PEM) for node `node_id`'s TLS key, with `hosts` as SANs."""
    sans: list[x509.GeneralName] = [x509.DNSName(node_name(node_id))]
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(node_name(node_id)))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class JoinRequest:
    """A checked join request (see the module docstring)."""

    node_id: int
    listen: str
    identity: PeerIdentity
    csr: x509.CertificateSigningRequest
    hosts: tuple[str, ...]
    digest: str  # SHA-256 of the canonical request, hex: the bundle names it

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        key = self.csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise JoinError("the certificate request's key is not an EC key")
        return key


def make_request(identity: Identity, listen: str, csr_pem: bytes) -> dict[str, Any]:
    """The join request of the node holding `identity`, signed with its identity key."""
    body = {
        "format": REQUEST_FORMAT,
        "node_id": identity.node_id,
        "listen": listen,
        "identity": identity.public.to_dict(),
        "csr": csr_pem.decode(),
    }
    return {**body, "signature": identity.sign(REQUEST_CONTEXT, canonical(body)).hex()}


def _sans(csr: x509.CertificateSigningRequest) -> tuple[str, ...]:
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    ips = [str(a) for a in ext.get_values_for_type(x509.IPAddress)]
    return (*ext.get_values_for_type(x509.DNSName), *ips)


def read_request(doc: object, expect_node: int | None = None) -> JoinRequest:
    """Check a join request: shape, node id, both signatures, names; the checked request."""
    if not isinstance(doc, dict) or doc.get("format") != REQUEST_FORMAT:
        raise JoinError(f"not a join request (format {REQUEST_FORMAT} expected)")
    node_id = check_node_id(doc.get("node_id"))
    if expect_node is not None and node_id != expect_node:
        raise JoinError(f"the join request is node {node_id}'s, not node {expect_node}'s")
    listen = str(doc.get("listen", ""))
    host = _host_of(listen)
    try:
        identity = PeerIdentity.from_dict(doc["identity"])
        csr = x509.load_pem_x509_csr(str(doc["csr"]).encode())
        signature = bytes.fromhex(str(doc["signature"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise JoinError(f"join request: a field is missing or malformed ({exc})") from None
    if identity.node_id != node_id:
        raise JoinError(f"the identity is node {identity.node_id}'s, the request node {node_id}'s")
    body = {k: v for k, v in doc.items() if k != "signature"}
    try:
        verify_from(identity, REQUEST_CONTEXT, canonical(body), signature)
    except EnvelopeError:
        raise JoinError("the join request's identity signature does not verify") from None
    if not csr.is_signature_valid:
        raise JoinError("the certificate request's signature does not verify")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [a.value for a in cns] != [node_name(node_id)]:
        raise JoinError(f"the certificate request names {cns!r}, not {node_name(node_id)}")
    hosts = tuple(h for h in _sans(csr) if h != node_name(node_id))
    if host not in hosts:
        raise JoinError(f"the certificate request does not name the node's host {host}")
    req = JoinRequest(
        node_id, listen, identity, csr, hosts, hashlib.sha256(canonical(doc)).hexdigest()
    )
    req.public_key  # noqa: B018 - refuses a non-EC key now
    return req


def make_bundle(
    ca: CertificateAuthority, request: JoinRequest, roster: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """Issue the node's certificate and sign the bundle with the CA key. `roster`: every peer's
    public identity, the new node's included; `extra`: node settings (threshold, governance)."""
    cert = ca.certify(
        request.public_key,
        node_name(request.node_id),
        server=True,
        client=False,
        hosts=request.hosts,
    )
    body = {
        "format": BUNDLE_FORMAT,
        "node_id": request.node_id,
        "request_digest": request.digest,
        "certificate": cert.decode(),
        "ca": ca.cert_pem.decode(),
        "roster": roster,
        "settings": extra,
    }
    sig = ca.key.sign(canonical(body), ec.ECDSA(hashes.SHA256()))
    return {"body": body, "signature": sig.hex()}


@dataclass(frozen=True)
class Bundle:
    """A checked bundle: what `tholos node join` installs."""

    node_id: int
    certificate: bytes
    ca: bytes
    roster: list[dict[str, Any]]
    settings: dict[str, Any]


def read_bundle(
    doc: object,
    request: dict[str, Any],
    ca_fingerprint: str | None = None,
) -> Bundle:
    """Check a bundle against the node's own join request `request` (as the node wrote it): CA
    signature, certificate issued by that CA to this node's TLS key, this node's identity in the
    roster, and the CA's fingerprint if the operator gave the one they were told out of band."""
    own = read_request(request)
    if not isinstance(doc, dict) or not isinstance(doc.get("body"), dict):
        raise JoinError("not a node bundle")
    body = doc["body"]
    if body.get("format") != BUNDLE_FORMAT:
        raise JoinError(f"not a node bundle (format {BUNDLE_FORMAT} expected)")
    if body.get("node_id") != own.node_id:
        raise JoinError(f"the bundle is for node {body.get('node_id')}, this is node {own.node_id}")
    if body.get("request_digest") != own.digest:
        raise JoinError("the bundle answers another join request than this node's")
    try:
        ca_cert = x509.load_pem_x509_certificate(str(body["ca"]).encode())
        cert = x509.load_pem_x509_certificate(str(body["certificate"]).encode())
        signature = bytes.fromhex(str(doc["signature"]))
        roster = [PeerIdentity.from_dict(r) for r in body["roster"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise JoinError(f"node bundle: a field is missing or malformed ({exc})") from None
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    if ca_fingerprint is not None and fingerprint(ca_pem) != ca_fingerprint.lower().replace(
        ":", ""
    ):
        raise JoinError(
            f"the bundle's CA has fingerprint {fingerprint(ca_pem)}, not {ca_fingerprint}"
        )
    ca_key = ca_cert.public_key()
    if not isinstance(ca_key, ec.EllipticCurvePublicKey):
        raise JoinError("the bundle's CA key is not an EC key")
    try:
        ca_key.verify(signature, canonical(body), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise JoinError("the bundle's signature does not verify under its CA (tampered?)") from None
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        raise JoinError("the bundle's certificate was not issued by its CA") from None
    if cert.public_key() != own.public_key:
        raise JoinError("the bundle's certificate is for another key than this node's TLS key")
    mine = [r for r in roster if r.node_id == own.node_id]
    if mine != [own.identity]:
        raise JoinError("the bundle's roster does not hold this node's identity exactly once")
    if len({r.node_id for r in roster}) != len(roster):
        raise JoinError("the bundle's roster names a node twice")
    settings = body.get("settings", {})
    if not isinstance(settings, dict):
        raise JoinError("the bundle's settings are not an object")
    return Bundle(
        own.node_id,
        cert.public_bytes(serialization.Encoding.PEM),
        ca_pem,
        [r.to_dict() for r in roster],
        settings,
    )
