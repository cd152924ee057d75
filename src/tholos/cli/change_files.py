"""Files of admin-signed changes (key changes, committee changes): written at the cluster's
current governance version, signed in place by one admin after another, then handed to the
command that applies them (`--document`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.governance.admin_changes import with_signature
from tholos.governance.committee_changes import SignedCommitteeChange
from tholos.governance.documents import DocumentSignature, GovernanceDocument
from tholos.governance.key_changes import SignedKeyChange

S = TypeVar("S", SignedKeyChange, SignedCommitteeChange)
Signer = Callable[[Any, str, Ed25519PrivateKey], DocumentSignature]
Summary = Callable[[Path, S], dict[str, Any]]


def current_document(
    args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]
) -> GovernanceDocument:
    """The governance document the cluster runs now (a change is issued at its version)."""
    from tholos.cli.governance_cmds import _current

    c = client(args)
    try:
        return _current(c).document
    finally:
        c.close()


def _signed_by_caller(args: argparse.Namespace, signed: S, sign: Signer) -> S:
    from tholos.cli.governance_cmds import _key

    who, key = _key(args)
    signature = sign(signed.change, who, key)
    return type(signed)(
        change=signed.change, signatures=with_signature(signed.signatures, signature)
    )


def write_new(
    args: argparse.Namespace, signed: S, sign: Signer, summary: Summary[S]
) -> dict[str, Any]:
    """Write a new change to --out, signed first by --as / --key-file when given."""
    if args.as_user or args.key_file:
        signed = _signed_by_caller(args, signed, sign)
    args.out.write_text(signed.model_dump_json(indent=2) + "\n")
    return summary(args.out, signed)


def sign_in_place(
    args: argparse.Namespace, model: type[S], sign: Signer, summary: Summary[S]
) -> dict[str, Any]:
    """Add one admin's signature (--as / --key-file) to the change file `args.file`."""
    signed = _signed_by_caller(args, model.model_validate_json(args.file.read_text()), sign)
    args.file.write_text(signed.model_dump_json(indent=2) + "\n")
    return summary(args.file, signed)
