"""CLI of signed releases: `tholos release keygen|sign` for the release manager and
`tholos verify-release` for anyone who downloaded a release."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.release import (
    RELEASE_PUBLIC_KEY,
    ReleaseError,
    public_key_hex,
    read_private_key,
    sign_release,
    verify_release,
    write_private_key,
)

EXIT_UNVERIFIED = 3


def _fail(exc: ReleaseError, code: str, exit_code: int = 1) -> Exception:
    from tholos.cli import CliError

    return CliError(str(exc), code, exit_code)


def cmd_release(args: argparse.Namespace) -> dict[str, Any]:
    try:
        if args.action == "keygen":
            key = Ed25519PrivateKey.generate()
            write_private_key(args.out, key)
            pub = public_key_hex(key)
            args.out.with_name(args.out.name + ".pub").write_text(pub + "\n")
            return {"private_key_file": str(args.out), "public_key": pub}
        doc = sign_release(read_private_key(args.key), args.artifacts)
        out = args.out or Path(f"{args.artifacts[0]}.sig.json")
        out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return {
            "signature": str(out),
            "public_key": doc["public_key"],
            "artifacts": doc["manifest"]["artifacts"],
        }
    except ReleaseError as exc:
        raise _fail(exc, "release_error") from None


def cmd_verify_release(args: argparse.Namespace) -> dict[str, Any]:
    public = RELEASE_PUBLIC_KEY
    try:
        if args.public_key:
            public = args.public_key.read_text().strip()
        try:
            doc = json.loads(args.signature.read_text())
        except (OSError, ValueError) as exc:
            raise ReleaseError(f"cannot read the signature file {args.signature}: {exc}") from None
        if not isinstance(doc, dict):
            raise ReleaseError(f"{args.signature} is not a release signature")
        entries = verify_release(doc, args.artifacts, public)
    except ReleaseError as exc:
        raise _fail(exc, "release_unverified", EXIT_UNVERIFIED) from None
    except OSError as exc:
        raise _fail(ReleaseError(f"cannot read the public key: {exc.strerror}"), "usage") from None
    return {"verified": True, "public_key": public, "artifacts": entries}


def add_commands(sub: Any, common: Callable[..., None]) -> None:
    rel = sub.add_parser("release", help="release manager: make a key, sign release artifacts")
    rs = rel.add_subparsers(dest="action", required=True)
    p = rs.add_parser("keygen", help="a new release key: FILE (0600, private) and FILE.pub")
    common(p, cluster=False)
    p.add_argument("--out", type=Path, required=True)
    p = rs.add_parser("sign", help="sign the SHA-256 manifest of ARTIFACT...")
    common(p, cluster=False)
    p.add_argument("--key", type=Path, required=True, help="the release private key file")
    p.add_argument("--out", type=Path, help="signature file (default FIRST_ARTIFACT.sig.json)")
    p.add_argument("artifacts", type=Path, nargs="+", metavar="ARTIFACT")
    rel.set_defaults(fn=cmd_release)

    p = sub.add_parser("verify-release", help="check release artifacts against their signature")
    common(p, cluster=False)
    p.add_argument("artifacts", type=Path, nargs="+", metavar="ARTIFACT")
    p.add_argument("--signature", type=Path, required=True, help="the .sig.json file")
    p.add_argument(
        "--public-key", type=Path, help="file with the key in hex (default: the project's key)"
    )
    p.set_defaults(fn=cmd_verify_release)
