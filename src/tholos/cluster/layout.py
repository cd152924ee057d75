"""`tholos cluster init`: write a cluster directory for n nodes and a gateway on 127.0.0.1.

D/cluster.json            public description: n, t, gateway URL, node addresses, identity roster
D/ca/ca.pem, ca.key       the cluster CA (ca.key 0600; keep it offline in production)
D/client/client.pem|key   the CLI's API client certificate: API client "admin", role admin
D/clients/NAME/client.pem|key  least-privilege API clients: reader (read-only), signer, operator
D/node-i/node.json        node config; tls.pem|key; identity.key (0600; tls.key and identity.key are
                          sealed in place under the passphrase at the node's first start)
D/secrets/node-i.passphrase  DEVELOPMENT ONLY (so `make run` needs no prompt): each node's
                          unsealing passphrase, 0600 in a 0700 directory outside every node
                          directory. In production delete it and give THOLOS_PASSPHRASE instead.
Every directory is 0700 and every private file 0600; nodes and the gateway run with umask 077.
D/gateway/gateway.json    gateway config; api.pem|key (REST server); node-client.pem|key (gRPC client)
D/genesis.json            governed: the admin-signed genesis (a copy in every node-i/)
D/genesis.proposal.json   with --admins: the genesis awaiting its admins' signatures
D/recovery/node-i/officer-j.json  with --recovery-officers: node i's recovery-key shares, one per
                          officer (0600, hand each to its officer); node-i/recovery.json: recipient
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tholos.cluster.directory import ClusterDir as ClusterDir
from tholos.cluster.directory import ClusterError as ClusterError
from tholos.gateway.identities import UNLIMITED, fingerprint_pem
from tholos.transport.e2e import Identity, generate_identity_secret
from tholos.transport.pki import CertificateAuthority, write_private

# API clients that `cluster init` issues besides "admin" (name -> role); see gateway/identities.py
API_CLIENTS = {"reader": "read-only", "signer": "signer", "operator": "operator"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def init_cluster(root: Path, n: int, t: int, **options: Any) -> dict[str, Any]:
    """Writes the cluster directory (see `_write_cluster`) with umask 077: owner-only files."""
    old = os.umask(0o077)
    try:
        return _write_cluster(root, n, t, **options)
    finally:
        os.umask(old)


def _write_cluster(
    root: Path,
    n: int,
    t: int,
    *,
    host: str = "127.0.0.1",
    force: bool = False,
    gateway_port: int = 0,
    governance: bool = False,
    admins: Mapping[str, str] | None = None,
    admin_quorum: int | None = None,
    recovery_officers: int = 0,
    recovery_threshold: int = 0,
) -> dict[str, Any]:
    """`governance`: write a genesis and demo user keys (see cluster/governance_init.py); without
    it every node runs in the loudly logged no-governance development mode. `admins` (name ->
    Ed25519 public key hex): instead, a genesis proposal for those admins to sign."""
    from tholos.cluster import governance_init

    proposal = None
    if admins is not None or admin_quorum is not None:
        if not governance or not admins:
            raise ClusterError("--admins and --admin-quorum go with --governance and an admin")
        proposal = governance_init.propose_genesis(admins, admin_quorum)
    if not 1 <= t <= n:
        raise ClusterError(f"threshold must satisfy 1 <= t <= n (t={t}, n={n})")
    if n > 64:
        raise ClusterError("at most 64 nodes")
    cd = ClusterDir(root)
    if cd.manifest.exists() and not force:
        raise ClusterError(
            f"{root} already holds a cluster: `tholos cluster up --dir {root}` starts it (after "
            "`make run`, run/local is initialised and running already); --force overwrites it, "
            "keys and all"
        )
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    ca = CertificateAuthority.create()
    (root / "ca").mkdir(mode=0o700, exist_ok=True)
    (root / "ca" / "ca.pem").write_bytes(ca.cert_pem)
    write_private(root / "ca" / "ca.key", ca.key_pem)

    client = ca.issue("admin", server=False, client=True)
    (root / "client").mkdir(mode=0o700, exist_ok=True)
    (root / "client" / "client.pem").write_bytes(client.cert_pem)
    write_private(root / "client" / "client.key", client.key_pem)
    # the CLI's client (make run, benchmarks) is an unlimited admin; the others get the defaults
    api_clients: dict[str, Any] = {
        "admin": {
            "fingerprint": fingerprint_pem(client.cert_pem.decode()),
            "role": "admin",
            "limits": UNLIMITED.to_dict(),
        }
    }
    for name, role in API_CLIENTS.items():
        issued = ca.issue(name, server=False, client=True)
        d = root / "clients" / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "client.pem").write_bytes(issued.cert_pem)
        write_private(d / "client.key", issued.key_pem)
        api_clients[name] = {"fingerprint": fingerprint_pem(issued.cert_pem.decode()), "role": role}

    ids = list(range(1, n + 1))
    secrets_ = {i: generate_identity_secret() for i in ids}
    roster = [Identity(i, s).public.to_dict() for i, s in secrets_.items()]
    addrs = {i: f"{host}:{free_port(host)}" for i in ids}
    (root / "secrets").mkdir(mode=0o700, exist_ok=True)
    (root / "secrets").chmod(0o700)
    for i in ids:
        d = cd.node_dir(i)
        d.mkdir(mode=0o700, exist_ok=True)
        d.chmod(0o700)
        cert = ca.issue(f"node-{i}", server=True, client=False, hosts=(host,))
        (d / "tls.pem").write_bytes(cert.cert_pem)
        write_private(d / "tls.key", cert.key_pem)
        write_private(d / "identity.key", secrets_[i].hex().encode())
        write_private(cd.passphrase_file(i), secrets.token_urlsafe(24).encode())
        cfg = {
            "node_id": i,
            "listen": addrs[i],
            "db": "node.db",
            "tls": {"ca": "../ca/ca.pem", "cert": "tls.pem", "key": "tls.key"},
            "identity_file": "identity.key",
            "passphrase_file": f"../secrets/node-{i}.passphrase",  # development only
            "min_threshold": t,
            "signer": True,  # shares are opened only in the node's hardened signer process
            "roster": roster,
        }
        (d / "node.json").write_text(json.dumps(cfg, indent=2))

    g = root / "gateway"
    g.mkdir(mode=0o700, exist_ok=True)
    g.chmod(0o700)
    api = ca.issue("gateway", server=True, client=False, hosts=(host, "localhost"))
    (g / "api.pem").write_bytes(api.cert_pem)
    write_private(g / "api.key", api.key_pem)
    gc = ca.issue("gateway-client", server=False, client=True)
    (g / "node-client.pem").write_bytes(gc.cert_pem)
    write_private(g / "node-client.key", gc.key_pem)
    port = gateway_port or free_port(host)
    gcfg = {
        "host": host,
        "port": port,
        "threshold": t,
        "nodes": {str(i): a for i, a in addrs.items()},
        "roster": roster,
        "node_tls": {"ca": "../ca/ca.pem", "cert": "node-client.pem", "key": "node-client.key"},
        "api_tls": {"ca": "../ca/ca.pem", "cert": "api.pem", "key": "api.key"},
        "db": "gateway.db",
        # the gateway's node-client certificate is NOT an API client: it is not listed here
        "api_clients": api_clients,
    }
    (g / "gateway.json").write_text(json.dumps(gcfg, indent=2))
    manifest = {
        "version": 1,
        "nodes": n,
        "threshold": t,
        "gateway": f"https://{host}:{port}",
        "node_addresses": {str(i): a for i, a in addrs.items()},
        "roster": roster,
    }
    manifest.update(governance_init.setup(root, n, t, governance, proposal))
    if recovery_officers:
        from tholos.backup.manifest import cluster_id
        from tholos.backup.recovery import write_recovery

        k = recovery_threshold or recovery_officers
        write_recovery(root, cluster_id(manifest), ids, recovery_officers, k)
        manifest["recovery"] = {"officers": recovery_officers, "threshold": k}
    cd.manifest.write_text(json.dumps(manifest, indent=2))
    if governance and proposal is None and recovery_officers:  # the genesis ceremony, done here
        from tholos.cluster.genesis_backup import first_backup

        return {**manifest, "genesis_backup": first_backup(root)}
    return manifest
