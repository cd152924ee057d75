"""The files of a committee change in a local cluster directory: a node added (certificate from
the cluster CA, fresh identity key, config) or removed, and the roster every node, the gateway and
cluster.json carry. Only files change here; moving the keys is the gateway's reshare
(gateway/committee.py) and restarting the processes is `tholos cluster add-node` (cli).

A removed node's directory is moved to D/removed/node-N (its database no longer holds shares of
any key that was reshared while it was up; its identity is gone from every roster, so no node
accepts its messages any more). Node ids are never reused: a replacement gets a new id.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from tholos.cluster.directory import ClusterDir, ClusterError
from tholos.cluster.layout import free_port
from tholos.transport.e2e import Identity, generate_identity_secret
from tholos.transport.pki import CertificateAuthority, write_private


def node_ids(cd: ClusterDir) -> list[int]:
    """The cluster's nodes as cluster.json lists them (ids need not be 1..n after a removal)."""
    m = cd.load()
    return sorted(int(i) for i in m.get("node_addresses", {})) or list(
        range(1, int(m["nodes"]) + 1)
    )


def external_nodes(cd: ClusterDir) -> list[int]:
    """Members that run on their own machines (joined by `tholos node join`): no directory here,
    never started or stopped by `tholos cluster up|down`."""
    return sorted(int(i) for i in cd.load().get("external_nodes", []))


def governed(cd: ClusterDir) -> bool:
    return str(cd.load().get("governance", {}).get("mode", "none")) != "none"


def check_governed(cd: ClusterDir, document: bool) -> None:
    """A governed cluster's committee changes need the admins' committee change document
    (the nodes verify it; here only its presence is checked, before any file changes)."""
    if governed(cd) and not document:
        raise ClusterError(
            "the cluster is governed: a committee change needs a committee change document "
            "signed by the admin quorum naming the new membership (`tholos cluster "
            "committee-change`, `tholos cluster sign-committee-change`, then --document FILE)"
        )


def next_node_id(cd: ClusterDir) -> int:
    """The id `add_node` gives the next node (ids are never reused)."""
    removed = cd.root / "removed"
    used = node_ids(cd) + [int(p.name.split("-")[1]) for p in removed.glob("node-*")]
    return max(used) + 1


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def set_roster(
    cd: ClusterDir,
    addresses: dict[int, str],
    roster: list[dict[str, Any]],
    external: list[int] | None = None,
) -> None:
    """Write the membership into cluster.json, gateway.json and every member's node.json here
    (an external node's roster is its operator's: `tholos node join` with a new bundle)."""
    m = cd.load()
    outside = set(external_nodes(cd) if external is None else external) & set(addresses)
    if outside:
        m["external_nodes"] = sorted(outside)
    else:
        m.pop("external_nodes", None)
    m["nodes"] = len(addresses)
    m["node_addresses"] = {str(i): a for i, a in sorted(addresses.items())}
    m["roster"] = roster
    g = json.loads(cd.gateway_config.read_text())
    g["nodes"] = dict(m["node_addresses"])
    g["roster"] = roster
    for i in addresses:
        if i in outside:
            continue
        cfg = json.loads(cd.node_config(i).read_text())
        cfg["roster"] = roster
        if "n" in cfg.get("governance", {}):  # a governed node's journal quorums follow n
            cfg["governance"]["n"] = len(addresses)
        _write_json(cd.node_config(i), cfg)
    _write_json(cd.gateway_config, g)
    _write_json(cd.manifest, m)


def add_node(cd: ClusterDir, host: str = "127.0.0.1", document: bool = False) -> int:
    """Write node files for a new node (next unused id) and add it to every roster; its id.
    `document`: a governed cluster's committee change was given (the nodes check it)."""
    old = os.umask(0o077)
    try:
        return _add_node(cd, host, document)
    finally:
        os.umask(old)


def _add_node(cd: ClusterDir, host: str, document: bool) -> int:
    check_governed(cd, document)
    m = cd.load()
    ids = node_ids(cd)
    if len(ids) >= 64:
        raise ClusterError("at most 64 nodes")
    new = next_node_id(cd)
    if new > 64:
        raise ClusterError("node ids 1..64 are used up")
    ca = CertificateAuthority.load(cd.root / "ca" / "ca.key", cd.root / "ca" / "ca.pem")
    secret = generate_identity_secret()
    d = cd.node_dir(new)
    d.mkdir(mode=0o700)
    cert = ca.issue(f"node-{new}", server=True, client=False, hosts=(host,))
    (d / "tls.pem").write_bytes(cert.cert_pem)
    write_private(d / "tls.key", cert.key_pem)
    write_private(d / "identity.key", secret.hex().encode())
    write_private(cd.passphrase_file(new), secrets.token_urlsafe(24).encode())
    here = [i for i in ids if i not in external_nodes(cd)]
    if not here:
        raise ClusterError("no member node's directory here to take the node settings from")
    template = json.loads(cd.node_config(here[0]).read_text())
    addresses = {int(k): str(v) for k, v in m["node_addresses"].items()}
    addresses[new] = f"{host}:{free_port(host)}"
    cfg = {
        **{k: v for k, v in template.items() if k not in ("metrics_port",)},
        "node_id": new,
        "listen": addresses[new],
        "db": "node.db",
        "tls": {"ca": "../ca/ca.pem", "cert": "tls.pem", "key": "tls.key"},
        "identity_file": "identity.key",
        "passphrase_file": f"../secrets/node-{new}.passphrase",  # development only
    }
    (d / "node.json").write_text(json.dumps(cfg, indent=2))
    if "governance" in template:
        _copy_governance(cd.node_dir(here[0]), d, template["governance"])
    roster = [*m["roster"], Identity(new, secret).public.to_dict()]
    set_roster(cd, addresses, roster)
    return new


def _copy_governance(src: Path, dest: Path, settings: dict[str, Any]) -> None:
    """A governed node's starting point: the pinned genesis, and the documents and kill switch
    the cluster adopted since (the new node re-checks every one of them when it starts)."""
    if "genesis" in settings:
        name = str(settings["genesis"])
        (dest / name).write_bytes((src / name).read_bytes())
    if not (src / "governance.db").exists():
        return
    old = sqlite3.connect(f"file:{src / 'governance.db'}?mode=ro", uri=True)
    try:
        (schema,) = old.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'governance_events'"
        ).fetchone()
        rows = old.execute("SELECT seq, kind, body FROM governance_events ORDER BY seq").fetchall()
    finally:
        old.close()
    new = sqlite3.connect(str(dest / "governance.db"))
    try:
        with new:
            new.execute(schema)
            new.executemany("INSERT INTO governance_events VALUES (?, ?, ?)", rows)
    finally:
        new.close()


def remove_node(cd: ClusterDir, node: int, document: bool = False) -> Path:
    """Take node `node` out of every roster and move its directory to D/removed/; the new path."""
    check_governed(cd, document)
    m = cd.load()
    ids = node_ids(cd)
    if node not in ids:
        raise ClusterError(f"node {node} is not in the cluster (nodes: {ids})")
    if len(ids) == 1:
        raise ClusterError("cannot remove the last node")
    addresses = {int(k): str(v) for k, v in m["node_addresses"].items() if int(k) != node}
    roster = [r for r in m["roster"] if int(r["node_id"]) != node]
    outside = node in external_nodes(cd)
    set_roster(cd, addresses, roster)
    removed = cd.root / "removed"
    removed.mkdir(mode=0o700, exist_ok=True)
    dest = removed / f"node-{node}"
    if outside:  # its directory is on its own machine: keep a marker so that its id stays used
        dest.mkdir(mode=0o700, exist_ok=True)
    else:
        os.replace(cd.node_dir(node), dest)
    return dest


def set_threshold(cd: ClusterDir, threshold: int) -> None:
    """The threshold of keys created from now on (gateway.json, cluster.json)."""
    m = cd.load()
    if not 1 <= threshold <= len(node_ids(cd)):
        raise ClusterError(f"threshold must satisfy 1 <= t <= n (t={threshold}, n={m['nodes']})")
    g = json.loads(cd.gateway_config.read_text())
    g["threshold"] = threshold
    _write_json(cd.gateway_config, g)
    m["threshold"] = threshold
    _write_json(cd.manifest, m)
    for i in node_ids(cd):  # a governed node's refusal quorum follows t
        if i in external_nodes(cd):
            continue
        cfg = json.loads(cd.node_config(i).read_text())
        if "t" in cfg.get("governance", {}):
            cfg["governance"]["t"] = threshold
            _write_json(cd.node_config(i), cfg)
