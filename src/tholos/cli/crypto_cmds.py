"""CLI commands for DiSE encryption (`tholos encrypt/decrypt`), ECDSA signature formatting
(`tholos sign --ethereum`) and ECDSA presignature pools (`tholos keys presign`).

DiSE: this process commits to the plaintext, asks the gateway for t partial evaluations (each with
a DLEQ proof that this CLI checks again), combines them into the per-message key and runs AES-GCM
locally. The plaintext and the derived key never leave this process; the gateway sees only the
32-byte commitment α and the partials.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def ecdsa_output(r: dict[str, Any], ethereum: bool) -> dict[str, Any]:
    """ECDSA sign result: r||s and the recovery id; with --ethereum a 65-byte r||s||v, v = 27+id."""
    out: dict[str, Any] = {"signature": r["signature"], "recovery_id": r["recovery_id"]}
    if ethereum:
        out["signature"] = r["signature"] + bytes([27 + int(r["recovery_id"])]).hex()
    return out


def _public(c: Any, key_id: str) -> Any:
    from tholos.crypto.keys import PublicKeyPackage

    info = c.get(f"/v1/keys/{key_id}")
    if info.get("scheme") != "dise":
        from tholos.cli import CliError

        raise CliError(f"key {key_id} is not a dise key", "bad_key")
    return PublicKeyPackage.from_dict(info["public_key_package"])


def _partials(
    c: Any, key_id: str, req: Any, verify: bool = False
) -> tuple[list[Any], dict[str, Any]]:
    from tholos.crypto.dise import PartialEval

    r = c.post(
        f"/v1/keys/{key_id}/evaluate",
        {
            "alpha": req.alpha.hex(),
            "encryptor": req.encryptor,
            "purpose": req.purpose,
            "verify": verify,
        },
    )
    return [PartialEval.from_dict(p) for p in r["partials"]], r


def combine(
    c: Any, key_id: str, req: Any, finish: Callable[[list[Any]], bytes]
) -> tuple[bytes, dict[str, Any]]:
    """Ask for partials and finish (which checks every proof). On a bad proof, ask again with
    verify=true: the gateway then checks each partial itself, names and excludes the node, and
    returns partials of other nodes."""
    from tholos.crypto.errors import InvalidProof

    partials, r = _partials(c, key_id, req)
    try:
        return finish(partials), r
    except InvalidProof:
        partials, r = _partials(c, key_id, req, verify=True)
        return finish(partials), r


def cmd_encrypt(
    args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]
) -> dict[str, Any]:
    from tholos.crypto import dise

    data = Path(args.infile).read_bytes()
    c = client(args)
    try:
        public = _public(c, args.key_id)
        ctx, req = dise.encrypt_begin(public, args.encryptor, data)
        ct, r = combine(c, args.key_id, req, lambda ps: dise.encrypt_finish(public, ctx, ps))
    finally:
        c.close()
    Path(args.outfile).write_bytes(ct)
    return {
        "key_id": args.key_id,
        "in_bytes": len(data),
        "out_bytes": len(ct),
        "signers": r.get("signers", []),
        **({"excluded": r["excluded"]} if r.get("excluded") else {}),
    }


def cmd_decrypt(
    args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]
) -> dict[str, Any]:
    from tholos.crypto import dise

    ct = Path(args.infile).read_bytes()
    c = client(args)
    try:
        public = _public(c, args.key_id)
        req = dise.decrypt_begin(public, ct)
        data, r = combine(c, args.key_id, req, lambda ps: dise.decrypt_finish(public, ct, ps))
    finally:
        c.close()
    Path(args.outfile).write_bytes(data)
    return {
        "key_id": args.key_id,
        "in_bytes": len(ct),
        "out_bytes": len(data),
        "signers": r.get("signers", []),
        **({"excluded": r["excluded"]} if r.get("excluded") else {}),
    }


def cmd_presign(
    args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]
) -> dict[str, Any]:
    c = client(args)
    try:
        r: dict[str, Any] = c.post(f"/v1/keys/{args.key_id}/presign", {"count": args.count})
        return r
    finally:
        c.close()


def add_parsers(
    sub: Any,
    keys_sub: Any,
    common: Callable[[argparse.ArgumentParser], None],
    client: Callable[[argparse.Namespace], Any],
) -> None:
    for name, fn in (("encrypt", cmd_encrypt), ("decrypt", cmd_decrypt)):
        p = sub.add_parser(name, help=f"DiSE threshold {name}ion of a file with a dise key")
        common(p)
        p.add_argument("key_id")
        p.add_argument("--in", dest="infile", required=True, type=Path)
        p.add_argument("--out", dest="outfile", required=True, type=Path)
        if name == "encrypt":
            p.add_argument("--encryptor", default="tholos-cli", help="encryptor id (in the header)")
        p.set_defaults(fn=lambda a, fn=fn: fn(a, client))
    p = keys_sub.add_parser("presign", help="fill an ecdsa key's presignature pool")
    common(p)
    p.add_argument("key_id")
    p.add_argument("--count", type=int, default=100)
    p.set_defaults(fn=lambda a: cmd_presign(a, client))
