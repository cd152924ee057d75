"""`tholos node init` and `tholos node join`: a node set up on its own machine by its own team.

init writes, in a new directory D (0700, files 0600):
    tls.key, identity.key   sealed from the start under THOLOS_PASSPHRASE or a key file (the
                            passphrase is never written; a key file must live outside D)
    node.csr                the X.509 certificate request for the TLS key (public)
    join-request.json       node id, address, public identity, CSR, signed by the identity key:
                            the file the operator carries to the CA holder (public)
    node.json               the node's config, without roster until it joins
join checks the CA holder's bundle against join-request.json (see transport/join.py) and installs
ca.pem, tls.pem, the roster and the cluster's node settings. Nothing else crosses between the
node's machine and the CA holder's.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tholos.node.barrier import Unsealer, WrongPassphrase, read_key_file, seal_file
from tholos.transport.e2e import Identity, generate_identity_secret
from tholos.transport.join import JoinError, check_node_id, make_csr, make_request, read_bundle

REQUEST_FILE = "join-request.json"
CSR_FILE = "node.csr"
CONFIG_FILE = "node.json"


class EnrolError(Exception):
    """The node directory cannot be set up or joined as asked; nothing was changed."""


def unsealer_for(key_file: Path | None, node_dir: Path) -> Unsealer:
    """The operator's unsealing secret: THOLOS_PASSPHRASE, or a 32-byte key file outside the
    node's directory (a secret beside the sealed files it opens would seal nothing)."""
    if key_file is not None:
        key_file = key_file.resolve()
        if key_file.is_relative_to(node_dir.resolve()):
            raise EnrolError(f"the key file {key_file} must not be inside the node directory")
        try:
            read_key_file(key_file)
        except (OSError, WrongPassphrase) as exc:
            raise EnrolError(f"key file {key_file}: {exc}") from None
        return Unsealer(key_file=key_file)
    from tholos.node.server import passphrase_from_env

    try:
        passphrase = passphrase_from_env()
    except OSError as exc:
        raise EnrolError(f"THOLOS_PASSPHRASE_FILE: {exc}") from None
    if not passphrase:
        raise EnrolError(
            "give the node's passphrase in THOLOS_PASSPHRASE (or a file named by "
            "THOLOS_PASSPHRASE_FILE), or --key-file F"
        )
    return Unsealer(passphrase=passphrase)


def _write_public(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def init_node(
    node_dir: Path,
    node_id: int,
    host: str,
    port: int,
    key_file: Path | None = None,
    bind: str | None = None,
) -> dict[str, Any]:
    """Create node `node_id`'s keys and join request in the new directory `node_dir`. The
    gateway reaches it at `host:port` (the certificate's name); it listens on `bind` (default
    the same; e.g. `0.0.0.0:PORT` in a container)."""
    try:
        check_node_id(node_id)
    except JoinError as exc:
        raise EnrolError(str(exc)) from None
    if not 0 < port < 65536:
        raise EnrolError(f"port must be in 1..65535, not {port}")
    unsealer = unsealer_for(key_file, node_dir)
    if node_dir.exists() and any(node_dir.iterdir()):
        raise EnrolError(f"{node_dir} is not empty: give a new directory for the node")
    listen = f"{host}:{port}"
    tls_key = ec.generate_private_key(ec.SECP256R1())
    identity = Identity(node_id, generate_identity_secret())
    try:
        csr = make_csr(tls_key, node_id, (host,))
        request = make_request(identity, listen, csr)
    except (JoinError, ValueError) as exc:
        raise EnrolError(str(exc)) from None
    old = os.umask(0o077)
    try:
        node_dir.mkdir(parents=True, exist_ok=True)
        node_dir.chmod(0o700)
        pem = tls_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        seal_file(unsealer, node_dir / "tls.key", pem, "tls-key")
        seal_file(unsealer, node_dir / "identity.key", identity.secret.hex().encode(), "identity")
        (node_dir / CSR_FILE).write_bytes(csr)
        _write_public(node_dir / REQUEST_FILE, json.dumps(request, indent=2))
        cfg: dict[str, Any] = {
            "node_id": node_id,
            "listen": bind or listen,
            "db": "node.db",
            "tls": {"ca": "ca.pem", "cert": "tls.pem", "key": "tls.key"},
            "identity_file": "identity.key",
            "roster": [],
        }
        if key_file is not None:
            cfg["key_file"] = str(key_file.resolve())
        _write_public(node_dir / CONFIG_FILE, json.dumps(cfg, indent=2))
    finally:
        os.umask(old)
    return {
        "dir": str(node_dir),
        "node_id": node_id,
        "address": listen,
        "listen": bind or listen,
        "request": str(node_dir / REQUEST_FILE),
        "identity": identity.public.to_dict(),
    }


def join_node(node_dir: Path, bundle: dict[str, Any], ca_fingerprint: str | None) -> dict[str, Any]:
    """Install the CA holder's `bundle` in `node_dir` after checking it (transport/join.py)."""
    try:
        request = json.loads((node_dir / REQUEST_FILE).read_text())
        cfg = json.loads((node_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise EnrolError(f"{node_dir} is not a node made by `tholos node init`: {exc}") from None
    try:
        checked = read_bundle(bundle, request, ca_fingerprint)
    except JoinError as exc:
        raise EnrolError(f"bundle refused: {exc}") from None
    settings = checked.settings
    governance = settings.get("governance")
    old = os.umask(0o077)
    try:
        (node_dir / "ca.pem").write_bytes(checked.ca)
        (node_dir / "tls.pem").write_bytes(checked.certificate)
        cfg["roster"] = checked.roster
        if "min_threshold" in settings:
            cfg["min_threshold"] = int(settings["min_threshold"])
        if isinstance(governance, dict):
            cfg["governance"] = dict(governance["settings"])
            for name, text in dict(governance.get("files", {})).items():
                if Path(name).name != name:
                    raise EnrolError(f"bundle refused: file name {name!r} is not a plain name")
                _write_public(node_dir / name, str(text))
            _install_events(node_dir, governance.get("events", []))
        _write_public(node_dir / CONFIG_FILE, json.dumps(cfg, indent=2))
    finally:
        os.umask(old)
    return {
        "dir": str(node_dir),
        "node_id": checked.node_id,
        "peers": sorted(int(r["node_id"]) for r in checked.roster),
        "config": str(node_dir / CONFIG_FILE),
    }


def _install_events(node_dir: Path, events: list[Any]) -> None:
    """The governance documents the cluster adopted since its genesis; the node re-checks every
    one of them when it starts (node/governance.py), so a forged one stops it, not admits it."""
    if not events:
        return
    from tholos.node.governance import _EVENTS  # the node's own schema

    db = sqlite3.connect(str(node_dir / "governance.db"))
    try:
        with db:
            db.executescript(_EVENTS)
            db.execute("DELETE FROM governance_events")
            db.executemany(
                "INSERT INTO governance_events VALUES (?, ?, ?)",
                [(int(s), str(k), str(b)) for s, k, b in events],
            )
    finally:
        db.close()
