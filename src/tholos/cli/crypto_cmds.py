"""CLI commands for DiSE encryption (`tholos encrypt/decrypt`), ECDSA signature formatting
(`tholos sign --ethereum`) and ECDSA presignature pools (`tholos keys presign`).

DiSE: this process commits to the plaintext, asks the gateway for t partial evaluations (each with
a DLEQ proof that this CLI checks), combines them into the per-message key and runs AES-GCM
locally. The plaintext and the derived key never leave this process. In a governed cluster the
request carries the user's signed authorization for a fresh X25519 key and every partial comes
back sealed to that key, so the gateway sees only α and opaque blobs; in a development cluster it
also sees the partials (and so could derive the message key). Proofs are checked against the
key's public package, pinned (`--public-key`, else the group key first seen, in D/pins/) and
checked to be one sharing of that group key.
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


def _public(c: Any, args: argparse.Namespace) -> Any:
    """The key's public package from the gateway, refused unless its verifying shares are one
    sharing of its group key and that key is the pinned one: `--public-key HEX` (as printed by
    `keys create`), else the one recorded at this CLI's first use of the key (D/pins/)."""
    from tholos.cli import CliError
    from tholos.crypto import dise
    from tholos.crypto.errors import CryptoError
    from tholos.crypto.keys import PublicKeyPackage

    info = c.get(f"/v1/keys/{args.key_id}")
    if info.get("scheme") != "dise":
        raise CliError(f"key {args.key_id} is not a dise key", "bad_key")
    try:
        public = PublicKeyPackage.from_dict(info["public_key_package"])
        dise.check_consistent(public)
    except (CryptoError, KeyError, TypeError) as exc:
        raise CliError(f"unusable public key package for {args.key_id}: {exc}", "bad_key") from None
    group_key = public.group.serialize_element(public.group_public_key).hex()
    pin = _pin_file(args)
    expected = getattr(args, "public_key", None) or (
        pin.read_text().strip() if pin is not None and pin.exists() else None
    )
    if expected is not None and expected.lower() != group_key:
        raise CliError(
            f"the gateway returned public key {group_key} for key {args.key_id}, pinned is "
            f"{expected}: refusing to use it",
            "key_mismatch",
        )
    if pin is not None and not pin.exists():
        pin.parent.mkdir(parents=True, exist_ok=True)
        pin.write_text(group_key + "\n")
    return public


def _pin_file(args: argparse.Namespace) -> Path | None:
    """D/pins/dise-KEY_ID: the group key first seen for a key (None without a cluster dir)."""
    import os
    import re

    d = args.dir or os.environ.get("THOLOS_DIR")
    if not d or not re.fullmatch(r"[0-9a-f]{1,64}", args.key_id):
        return None
    return Path(d) / "pins" / f"dise-{args.key_id}"


def _cluster_id(c: Any) -> str | None:
    """The governed cluster's id, or None for a development cluster."""
    signed = c.get("/v1/governance").get("document")
    return str(signed["document"]["cluster_id"]) if signed else None


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
    """Development clusters: ask for partials and finish (encryption checks every proof;
    decryption checks them when the AEAD fails). On a bad or malformed partial, ask again with
    verify=true: the gateway then checks each partial itself, names and excludes the node, and
    returns partials of other nodes. A ciphertext that fails with valid partials is refused."""
    from tholos.crypto.dise import InvalidCiphertext
    from tholos.crypto.errors import InvalidInput, InvalidProof

    try:
        partials, r = _partials(c, key_id, req)
        return finish(partials), r
    except InvalidCiphertext:
        raise
    except (InvalidProof, InvalidInput):
        partials, r = _partials(c, key_id, req, verify=True)
        return finish(partials), r


def open_partials(
    public: Any, req: Any, digest: bytes, xkey: Any, relayed: list[Any]
) -> tuple[list[Any], list[int]]:
    """Open each sealed partial and check its proof: (valid partials, nodes whose reply did not
    open, parse or verify)."""
    import json

    from tholos.crypto.dise import PartialEval, verify_partial
    from tholos.crypto.errors import CryptoError
    from tholos.crypto.seal import open_sealed

    good, bad = [], []
    for p in relayed:
        try:
            i = int(p["identifier"])
        except (KeyError, TypeError, ValueError):
            continue  # unattributable: too few partials is reported below
        try:
            d = json.loads(open_sealed(xkey, digest, i, bytes.fromhex(str(p["sealed"]))))
            partial = PartialEval.from_dict(d)
            if partial.identifier != i:
                raise ValueError("partial of another node")
            verify_partial(public, req, partial)
            good.append(partial)
        except (CryptoError, KeyError, TypeError, ValueError):
            bad.append(i)
    return good, bad


def combine_governed(
    c: Any,
    args: argparse.Namespace,
    cluster_id: str,
    public: Any,
    req: Any,
    finish: Callable[[list[Any]], bytes],
) -> tuple[bytes, dict[str, Any]]:
    """Governed clusters: sign an authorization with the user's key for a fresh X25519 key, open
    the sealed partials here and check every proof; a node whose partial fails is named and the
    request made again without it (the gateway leaves it out, it cannot check sealed partials)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from tholos.cli import CliError
    from tholos.cli.governance_cmds import _key
    from tholos.crypto.seal import public_bytes
    from tholos.node.dise_governance import sign_authorization

    who, key = _key(args)
    xkey = X25519PrivateKey.generate()
    auth = sign_authorization(
        key,
        cluster_id=cluster_id,
        user=who,
        key_id=args.key_id,
        request=req,
        client_key=public_bytes(xkey),
    )
    digest = auth.authorization.digest()
    body = {
        "alpha": req.alpha.hex(),
        "encryptor": req.encryptor,
        "purpose": req.purpose,
        "authorization": auth.model_dump(mode="json"),
    }
    bad: set[int] = set()
    for _ in range(len(public.verifying_shares) - public.threshold + 1):
        r = c.post(f"/v1/keys/{args.key_id}/evaluate", {**body, "exclude": sorted(bad)})
        good, failed = open_partials(public, req, digest, xkey, r.get("partials", []))
        if not failed and len(good) >= public.threshold:
            return finish(good), {**r, "bad_nodes": sorted(bad)}
        if not failed:
            raise CliError("the gateway returned too few partials", "too_few_partials")
        bad |= set(failed)
    raise CliError(
        f"invalid sealed partials from nodes {sorted(bad)}",
        "invalid_partials",
        bad_nodes=sorted(bad),
    )


def _run(
    args: argparse.Namespace,
    client: Callable[[argparse.Namespace], Any],
    begin: Callable[[Any, str | None], tuple[Any, Callable[[list[Any]], bytes]]],
) -> tuple[bytes, dict[str, Any]]:
    """Fetch and pin the key, then evaluate in the cluster's mode: `begin(public, user)` gives
    the DPRF request and how to finish with its partials."""
    from tholos.cli import CliError

    c = client(args)
    try:
        public = _public(c, args)
        cluster_id = _cluster_id(c)
        if cluster_id is None:
            if getattr(args, "as_user", None) or getattr(args, "key_file", None):
                raise CliError("this cluster runs without governance: no --as", "usage", 2)
            req, finish = begin(public, None)
            return combine(c, args.key_id, req, finish)
        if not getattr(args, "as_user", None):
            raise CliError("this cluster is governed: name the user with --as USER", "usage", 2)
        req, finish = begin(public, args.as_user)
        return combine_governed(c, args, cluster_id, public, req, finish)
    finally:
        c.close()


def _report(args: argparse.Namespace, n_in: int, n_out: int, r: dict[str, Any]) -> dict[str, Any]:
    return {
        "key_id": args.key_id,
        "in_bytes": n_in,
        "out_bytes": n_out,
        "signers": r.get("signers", []),
        **({"excluded": r["excluded"]} if r.get("excluded") else {}),
        **({"bad_nodes": r["bad_nodes"]} if r.get("bad_nodes") else {}),
    }


def cmd_encrypt(
    args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]
) -> dict[str, Any]:
    from tholos.cli import CliError
    from tholos.crypto import dise

    data = Path(args.infile).read_bytes()

    def begin(public: Any, user: str | None) -> tuple[Any, Callable[[list[Any]], bytes]]:
        encryptor = args.encryptor or user or "tholos-cli"
        if user is not None and encryptor != user:
            raise CliError("in a governed cluster the encryptor is the user (--as)", "usage", 2)
        ctx, req = dise.encrypt_begin(public, encryptor, data)
        return req, lambda ps: dise.encrypt_finish(public, ctx, ps)

    ct, r = _run(args, client, begin)
    Path(args.outfile).write_bytes(ct)
    return _report(args, len(data), len(ct), r)


def cmd_decrypt(
    args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]
) -> dict[str, Any]:
    from tholos.cli import CliError
    from tholos.crypto import dise

    ct = Path(args.infile).read_bytes()

    def begin(public: Any, user: str | None) -> tuple[Any, Callable[[list[Any]], bytes]]:
        try:
            started = dise.decrypt_begin(public, ct)
        except ValueError as exc:
            raise CliError(f"not a DiSE ciphertext of this key: {exc}", "bad_ciphertext") from None

        def finish(ps: list[Any]) -> bytes:
            try:
                return bytes(dise.decrypt_finish(public, ct, ps))
            except ValueError as exc:
                raise CliError(
                    f"the ciphertext does not authenticate: {exc}", "bad_ciphertext"
                ) from None

        return started, finish

    data, r = _run(args, client, begin)
    Path(args.outfile).write_bytes(data)
    return _report(args, len(ct), len(data), r)


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
        p.add_argument("--as", dest="as_user", help="governed: user id (key file D/users/USER.key)")
        p.add_argument("--key-file", type=Path, help="governed: the user's Ed25519 key file")
        p.add_argument("--public-key", help="the key's group public key (hex) to pin")
        if name == "encrypt":
            p.add_argument(
                "--encryptor",
                help="encryptor id in the header (default tholos-cli; governed: USER)",
            )
        p.set_defaults(fn=lambda a, fn=fn: fn(a, client))
    p = keys_sub.add_parser("presign", help="fill an ecdsa key's presignature pool")
    common(p)
    p.add_argument("key_id")
    p.add_argument("--count", type=int, default=100)
    p.set_defaults(fn=lambda a: cmd_presign(a, client))
