"""End-to-end protection of node-to-node messages relayed by the (untrusted) gateway.

Each node has an identity: an Ed25519 key that signs everything it sends, and an X25519 key that
receives private messages. A private message from i to j is encrypted with AES-256-GCM under
HKDF(X25519(i, j)) (static-static, cached per pair) and the ciphertext is then signed by i, so the
recipient can prove to others what i sent (complaint evidence). Every signature and ciphertext is
bound to a context string (protocol, phase, batch id, sender, recipient): a message cannot be
replayed into another step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SIG_DOMAIN = b"tholos-envelope-v1\x00"
E2E_DOMAIN = b"tholos-e2e-v1\x00"
_RAW = serialization.Encoding.Raw


class EnvelopeError(Exception):
    """A relayed message with a bad signature, a failed decryption or an unknown sender."""

    def __init__(self, message: str, sender: int) -> None:
        self.sender = sender
        super().__init__(f"{message} (sender {sender})")


@dataclass(frozen=True)
class PeerIdentity:
    node_id: int
    signing_key: bytes  # Ed25519 public, 32 bytes
    exchange_key: bytes  # X25519 public, 32 bytes

    def to_dict(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "signing_key": self.signing_key.hex(),
            "exchange_key": self.exchange_key.hex(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> PeerIdentity:
        return cls(
            int(str(d["node_id"])),
            bytes.fromhex(str(d["signing_key"])),
            bytes.fromhex(str(d["exchange_key"])),
        )


def generate_identity_secret() -> bytes:
    """64 bytes: Ed25519 seed || X25519 private key."""
    ed = Ed25519PrivateKey.generate().private_bytes(
        _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    xk = X25519PrivateKey.generate().private_bytes(
        _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return ed + xk


@dataclass
class Identity:
    """A node's own identity keys and the roster of its peers' public identities."""

    node_id: int
    secret: bytes = field(repr=False)
    peers: dict[int, PeerIdentity] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.secret) != 64:
            raise ValueError("identity secret must be 64 bytes")
        self._sk = Ed25519PrivateKey.from_private_bytes(self.secret[:32])
        self._xk = X25519PrivateKey.from_private_bytes(self.secret[32:])
        self._pair_keys: dict[int, AESGCM] = {}
        self._verifiers: dict[int, Ed25519PublicKey] = {}

    @property
    def public(self) -> PeerIdentity:
        return PeerIdentity(
            self.node_id,
            self._sk.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw),
            self._xk.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw),
        )

    # -- signatures ------------------------------------------------------------------------------
    def sign(self, context: bytes, payload: bytes) -> bytes:
        return self._sk.sign(SIG_DOMAIN + _lp(context) + payload)

    def verify(self, sender: int, context: bytes, payload: bytes, signature: bytes) -> None:
        vk = self._verifiers.get(sender)
        if vk is None:
            peer = self.peers.get(sender)
            if peer is None:
                raise EnvelopeError("unknown sender", sender)
            vk = Ed25519PublicKey.from_public_bytes(peer.signing_key)
            self._verifiers[sender] = vk
        try:
            vk.verify(signature, SIG_DOMAIN + _lp(context) + payload)
        except InvalidSignature:
            raise EnvelopeError("bad envelope signature", sender) from None

    # -- private messages ------------------------------------------------------------------------
    def _pair(self, other: int) -> AESGCM:
        aead = self._pair_keys.get(other)
        if aead is None:
            peer = self.peers.get(other)
            if peer is None:
                raise EnvelopeError("unknown peer", other)
            shared = self._xk.exchange(X25519PublicKey.from_public_bytes(peer.exchange_key))
            lo, hi = sorted((self.node_id, other))
            key = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=E2E_DOMAIN + f"{lo}:{hi}".encode(),
            ).derive(shared)
            aead = AESGCM(key)
            self._pair_keys[other] = aead
        return aead

    def encrypt_to(self, recipient: int, context: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        ad = E2E_DOMAIN + _lp(context) + f"{self.node_id}>{recipient}".encode()
        return nonce + self._pair(recipient).encrypt(nonce, plaintext, ad)

    def decrypt_from(self, sender: int, context: bytes, blob: bytes) -> bytes:
        ad = E2E_DOMAIN + _lp(context) + f"{sender}>{self.node_id}".encode()
        try:
            return self._pair(sender).decrypt(blob[:12], blob[12:], ad)
        except (InvalidTag, ValueError):
            raise EnvelopeError("private message does not decrypt", sender) from None


def _lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def verify_from(peer: PeerIdentity, context: bytes, payload: bytes, signature: bytes) -> None:
    """Check `signature` by `peer` as `Identity.verify` does, without an identity of one's own
    (e.g. a CA holder checking a joining node's request)."""
    try:
        Ed25519PublicKey.from_public_bytes(peer.signing_key).verify(
            signature, SIG_DOMAIN + _lp(context) + payload
        )
    except (InvalidSignature, ValueError):
        raise EnvelopeError("bad signature", peer.node_id) from None


SEALED_DOMAIN = b"tholos-sealed-box-v1\x00"


def _box_key(shared: bytes, eph: bytes, recipient: bytes) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=SEALED_DOMAIN + eph + recipient
    ).derive(shared)
    return AESGCM(key)


def seal_to(recipient: PeerIdentity, context: bytes, plaintext: bytes) -> dict[str, str]:
    """Anonymous sealed box (ephemeral X25519 -> HKDF -> AES-256-GCM) to a node's exchange key,
    used by a client that is not a node (key import)."""
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient.exchange_key))
    nonce = os.urandom(12)
    ct = _box_key(shared, eph_pub, recipient.exchange_key).encrypt(
        nonce, plaintext, SEALED_DOMAIN + _lp(context)
    )
    return {"ephemeral": eph_pub.hex(), "ciphertext": (nonce + ct).hex()}


def open_sealed(identity: Identity, context: bytes, box: dict[str, str]) -> bytes:
    try:
        eph_pub = bytes.fromhex(box["ephemeral"])
        blob = bytes.fromhex(box["ciphertext"])
        shared = identity._xk.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        return _box_key(shared, eph_pub, identity.public.exchange_key).decrypt(
            blob[:12], blob[12:], SEALED_DOMAIN + _lp(context)
        )
    except (KeyError, ValueError, InvalidTag):
        raise EnvelopeError("sealed box does not open", 0) from None


def context(protocol: str, phase: str, batch: str, recipient: int = 0) -> bytes:
    """The associated data of one protocol step's envelope or encrypted share."""
    return f"{protocol}|{phase}|{batch}|{recipient}".encode()
