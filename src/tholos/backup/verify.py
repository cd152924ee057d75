"""`tholos backup verify DIR`: check a set of backups without decrypting anything.

Refused, naming the node and the fault: a manifest whose signature does not verify under the
roster's identity key of the node it names; a backup in another node's directory (swapped); a
file missing, truncated or altered (SHA-256 and size); a node of the roster without a backup;
backups of different runs mixed in one set (a stale node backup put beside newer ones).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tholos.backup import manifest
from tholos.backup.errors import BackupError


@dataclass(frozen=True)
class BackupSet:
    root: Path
    cluster: dict[str, Any]
    manifests: dict[int, dict[str, Any]]

    @property
    def cluster_id(self) -> str:
        return manifest.cluster_id(self.cluster)

    def payload(self, node_id: int) -> Path:
        return self.root / f"node-{node_id}" / manifest.PAYLOAD_FILE

    def summary(self) -> dict[str, Any]:
        any_m = next(iter(self.manifests.values()))
        return {
            "dir": str(self.root),
            "cluster_id": self.cluster_id,
            "roster_digest": any_m["roster_digest"],
            "set_id": any_m["set_id"],
            "created_at": any_m["created_at"],
            "nodes": {
                str(i): {
                    "keys": m["keys"],
                    "sequence": m["sequence"],
                    "audit_head": m["audit_head"],
                    "recovery_threshold": m["recovery_threshold"],
                }
                for i, m in sorted(self.manifests.items())
            },
        }


def _load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{what} is missing ({path})") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{what} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(d, dict):
        raise BackupError(f"{what} is not a JSON object")
    return d


def verify_set(root: Path) -> BackupSet:
    """The checked set; raises BackupError on the first fault found."""
    if not root.is_dir():
        raise BackupError(f"no backup at {root}")
    cluster = _load_json(root / "cluster.json", "the set's cluster.json")
    roster = {int(r["node_id"]): r for r in cluster["roster"]}
    digest = manifest.roster_digest(cluster["roster"])
    cid = manifest.cluster_id(cluster)
    manifests: dict[int, dict[str, Any]] = {}
    for i in sorted(roster):
        where = f"backup of node {i}"
        d = root / f"node-{i}"
        if not d.is_dir():
            raise BackupError(f"{where} is missing ({d})")
        m = _load_json(d / manifest.MANIFEST_FILE, f"{where}: manifest")
        if m.get("format") != manifest.MANIFEST_FORMAT:
            raise BackupError(f"{where}: not a tholos node backup manifest")
        named = m.get("node_id")
        if named != i:
            raise BackupError(
                f"{where}: its manifest is node {named}'s (swapped: node {named}'s backup under "
                f"node {i}'s name)"
            )
        manifest.check_signature(m, str(roster[i]["signing_key"]), where)
        if m.get("roster_digest") != digest or m.get("cluster_id") != cid:
            raise BackupError(f"{where}: made for another cluster than the set's cluster.json")
        manifests[i] = m
    extra = sorted(
        p.name for p in root.iterdir() if p.is_dir() and p.name not in {f"node-{i}" for i in roster}
    )
    if extra:
        raise BackupError(f"the set holds backups of nodes not in its roster: {', '.join(extra)}")
    sets = {m["set_id"] for m in manifests.values()}
    if len(sets) > 1:
        newest = max(manifests.values(), key=lambda m: (m["created_at"], m["sequence"]))
        stale = sorted(i for i, m in manifests.items() if m["set_id"] != newest["set_id"])
        raise BackupError(
            "the set mixes backups of different runs: node(s) "
            f"{', '.join(map(str, stale))} are not from the newest run (stale or swapped in)"
        )
    for i, m in manifests.items():
        files = m.get("files", {})
        for name, base in (
            (manifest.PAYLOAD_FILE, root / f"node-{i}"),
            (manifest.CLUSTER_FILE, root),
        ):
            if name not in files:
                raise BackupError(f"backup of node {i}: the manifest names no {name}")
            manifest.check_file(base / name, files[name], f"backup of node {i}")
    return BackupSet(root, cluster, manifests)
