"""Signed releases: a manifest of the SHA-256 digests of a release's artifacts, signed with the
project's Ed25519 release key. `verify_release` raises ReleaseError on any mismatch: a changed
byte, an artifact missing or not in the manifest, a signature by another key.

Key files are those of `tholos users keygen`: the private key as 64 hex digits in a 0600 file, the
public key as 64 hex digits. The project's public key is RELEASE_PUBLIC_KEY below; its private
half is kept off the repository by the release manager.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# The project's release key (Ed25519, public). Releases are signed with its private half.
RELEASE_PUBLIC_KEY = "1bcab151a94caeb8112fb28174bd5e4eec9f45c692066e80253b8619a39c883c"
SIGNATURE_KIND = "tholos-release-signature"
DOMAIN = b"tholos-release-manifest-v1\n"


class ReleaseError(Exception):
    """A release does not verify, or its files cannot be read; the message says which."""


def _digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise ReleaseError(f"cannot read {path}: {exc.strerror}") from None
    return h.hexdigest(), size


def _canonical(manifest: dict[str, Any]) -> bytes:
    return DOMAIN + json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def public_key_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def manifest_of(artifacts: Sequence[Path]) -> dict[str, Any]:
    names = [a.name for a in artifacts]
    if not artifacts:
        raise ReleaseError("no artifacts given")
    if len(set(names)) != len(names):
        raise ReleaseError(f"two artifacts share a file name: {sorted(names)}")
    entries = []
    for a in sorted(artifacts, key=lambda p: p.name):
        digest, size = _digest(a)
        entries.append({"name": a.name, "sha256": digest, "size": size})
    return {"version": 1, "artifacts": entries}


def sign_release(key: Ed25519PrivateKey, artifacts: Sequence[Path]) -> dict[str, Any]:
    """The signature document for `artifacts` (their file names and digests), signed by `key`."""
    manifest = manifest_of(artifacts)
    return {
        "kind": SIGNATURE_KIND,
        "manifest": manifest,
        "public_key": public_key_hex(key),
        "signature": base64.b64encode(key.sign(_canonical(manifest))).decode(),
    }


def verify_release(
    signature: dict[str, Any], artifacts: Sequence[Path], public_key: str = RELEASE_PUBLIC_KEY
) -> list[dict[str, Any]]:
    """Check `signature` is `public_key`'s over a manifest naming exactly `artifacts`, with
    their current digests. Returns the manifest entries; raises ReleaseError otherwise."""
    try:
        if signature["kind"] != SIGNATURE_KIND:
            raise ReleaseError(f"not a release signature: kind {signature['kind']!r}")
        manifest = signature["manifest"]
        sig = base64.b64decode(str(signature["signature"]), validate=True)
        entries = {str(e["name"]): e for e in manifest["artifacts"]}
        pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ReleaseError):
            raise
        raise ReleaseError(f"malformed signature file or public key: {exc}") from None
    try:
        pub.verify(sig, _canonical(manifest))
    except InvalidSignature:
        raise ReleaseError(
            f"signature is not by the release key {public_key[:16]}… over this manifest"
        ) from None
    given = {a.name: a for a in artifacts}
    if len(given) != len(artifacts):
        raise ReleaseError("two artifacts share a file name")
    unknown = sorted(set(given) - set(entries))
    if unknown:
        raise ReleaseError(f"artifacts not in the signed manifest: {unknown}")
    missing = sorted(set(entries) - set(given))
    if missing:
        raise ReleaseError(f"artifacts in the signed manifest not given: {missing}")
    for name, path in sorted(given.items()):
        if not path.exists():
            raise ReleaseError(f"artifact {path} does not exist")
        digest, size = _digest(path)
        if digest != entries[name]["sha256"] or size != entries[name]["size"]:
            raise ReleaseError(f"{name}: SHA-256 {digest} differs from the signed manifest")
    return list(manifest["artifacts"])


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """A new 0600 key file; refuses to overwrite one."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ReleaseError(f"{path} exists: not overwriting a key") from None
    try:
        os.write(fd, raw.hex().encode() + b"\n")
    finally:
        os.close(fd)


def read_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip()))
    except OSError as exc:
        raise ReleaseError(f"cannot read the key file {path}: {exc.strerror}") from None
    except ValueError:
        raise ReleaseError(f"{path} is not an Ed25519 key file (64 hex digits)") from None
