"""The CA holder's side of a node that joins from its own machine (node side: node/enrol.py).

`tholos cluster sign-node --request F --out B`: checks the node's join request (transport/join.py),
issues its TLS certificate from the cluster CA and writes the bundle (certificate, CA certificate,
roster with the new node, node settings); D/issued/node-N.json records which request was signed.
`tholos cluster add-node --request F`: after the node runs with its bundle, adds it to every
roster as an *external* node (cluster.json "external_nodes": no directory here, never started or
stopped by `cluster up|down`); the committee change (cli/committee_cmds.py) then gives it shares.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tholos.cluster.directory import ClusterDir, ClusterError
from tholos.cluster.membership import (
    check_governed,
    external_nodes,
    next_node_id,
    node_ids,
    set_roster,
)
from tholos.transport.join import JoinError, JoinRequest, make_bundle, read_request
from tholos.transport.pki import CertificateAuthority, write_private

ISSUED = "issued"


def _request(cd: ClusterDir, doc: object) -> JoinRequest:
    try:
        req = read_request(doc)
    except JoinError as exc:
        raise ClusterError(f"join request refused: {exc}") from None
    used = set(node_ids(cd)) | {
        int(p.name.split("-")[1]) for p in (cd.root / "removed").glob("node-*")
    }
    if req.node_id in used:
        raise ClusterError(
            f"node id {req.node_id} is taken (ids are never reused); the next free id is "
            f"{next_node_id(cd)}: run `tholos node init --node-id {next_node_id(cd)}` again"
        )
    if any(r["signing_key"] == req.identity.signing_key.hex() for r in cd.load()["roster"]):
        raise ClusterError("the join request's identity key is already a member's")
    return req


def node_of(doc: object) -> int:
    """The node id of a join request (checked)."""
    try:
        return read_request(doc).node_id
    except JoinError as exc:
        raise ClusterError(f"join request refused: {exc}") from None


def _governance(cd: ClusterDir, template: dict[str, Any], n: int) -> dict[str, Any] | None:
    """A governed cluster's starting point for the node: settings, genesis and the documents
    adopted since, from a member's directory here (the node re-checks each one at start)."""
    settings = template.get("governance")
    if not isinstance(settings, dict) or settings.get("mode") == "none":
        return {"settings": settings} if isinstance(settings, dict) else None
    src = cd.node_dir(int(template["node_id"]))
    files = {}
    if "genesis" in settings:
        name = str(settings["genesis"])
        files[name] = (src / name).read_text()
    events: list[list[Any]] = []
    if (src / "governance.db").exists():
        db = sqlite3.connect(f"file:{src / 'governance.db'}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT seq, kind, body FROM governance_events ORDER BY seq")
            events = [list(r) for r in rows]
        finally:
            db.close()
    out_settings = dict(settings)
    if "n" in out_settings:
        out_settings["n"] = n
    return {"settings": out_settings, "files": files, "events": events}


def _template(cd: ClusterDir) -> dict[str, Any]:
    """The node.json of a member whose directory is here (the cluster's node settings)."""
    outside = set(external_nodes(cd))
    for i in node_ids(cd):
        if i not in outside and cd.node_config(i).exists():
            cfg: dict[str, Any] = json.loads(cd.node_config(i).read_text())
            return cfg
    raise ClusterError("no member node's config in this directory to take the settings from")


def _bundle(cd: ClusterDir, req: JoinRequest, roster: list[dict[str, Any]]) -> dict[str, Any]:
    template = _template(cd)
    ca = CertificateAuthority.load(cd.root / "ca" / "ca.key", cd.root / "ca" / "ca.pem")
    settings: dict[str, Any] = {"min_threshold": int(template.get("min_threshold", 1))}
    gov = _governance(cd, template, len(roster))
    if gov is not None:
        settings["governance"] = gov
    return make_bundle(ca, req, roster, **settings)


def sign_node(cd: ClusterDir, doc: object) -> dict[str, Any]:
    """The bundle for the node of join request `doc` (nothing changes if the request fails)."""
    m = cd.load()
    req = _request(cd, doc)
    bundle = _bundle(cd, req, [*m["roster"], req.identity.to_dict()])
    issued = cd.root / ISSUED
    issued.mkdir(mode=0o700, exist_ok=True)
    record = {"node_id": req.node_id, "request_digest": req.digest, "request": doc}
    write_private(issued / f"node-{req.node_id}.json", json.dumps(record, indent=2).encode())
    return bundle


def refresh_bundle(cd: ClusterDir, node_id: int) -> dict[str, Any]:
    """A new bundle for external member `node_id` with the cluster's current roster and settings
    (after a later membership change); `tholos node join` installs it like the first."""
    if node_id not in external_nodes(cd):
        raise ClusterError(f"node {node_id} is not an external member of this cluster")
    try:
        doc = json.loads((cd.root / ISSUED / f"node-{node_id}.json").read_text())["request"]
        req = read_request(doc, expect_node=node_id)
    except (OSError, ValueError, KeyError, JoinError) as exc:
        raise ClusterError(
            f"no usable join request of node {node_id} recorded here: {exc}"
        ) from None
    return _bundle(cd, req, list(cd.load()["roster"]))


def add_joined_node(cd: ClusterDir, doc: object, document: bool = False) -> int:
    """Add the node of join request `doc` (signed here by `sign_node`) to every roster."""
    check_governed(cd, document)
    req = _request(cd, doc)
    issued = cd.root / ISSUED / f"node-{req.node_id}.json"
    try:
        record = json.loads(issued.read_text())
    except (OSError, ValueError):
        raise ClusterError(
            f"no certificate was issued here for node {req.node_id}: run `tholos cluster "
            "sign-node --request F` first"
        ) from None
    if record.get("request_digest") != req.digest:
        raise ClusterError(f"the certificate issued for node {req.node_id} answers another request")
    m = cd.load()
    if len(node_ids(cd)) >= 64:
        raise ClusterError("at most 64 nodes")
    addresses = {int(k): str(v) for k, v in m["node_addresses"].items()}
    addresses[req.node_id] = req.listen
    roster = [*m["roster"], req.identity.to_dict()]
    set_roster(cd, addresses, roster, external=[*external_nodes(cd), req.node_id])
    return req.node_id


def read_json(path: Path, what: str) -> object:
    """A JSON file the operator carried (a join request or a bundle), or a clear error."""
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ClusterError(f"cannot read the {what} {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ClusterError(f"{path} is not a {what} (not JSON: {exc})") from None
