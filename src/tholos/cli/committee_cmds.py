"""Committee changes: `tholos keys reshare KEY_ID --threshold T`, `tholos cluster reshare
--threshold T`, `tholos cluster add-node`, `tholos cluster remove-node N`, `tholos cluster
replace-node N`. Keys move by reshare (gateway/committee.py): public keys, xpubs and addresses
never change. Membership changes rewrite the local cluster directory (cluster/membership.py) and
restart its processes so that every node and the gateway load the new roster. Every long run
prints a progress line per key on stderr; `--json` prints one JSON object on stdout at the end.
Each step is safe to re-run: keys already moved are skipped.

In a governed cluster every command takes `--document FILE`: the committee change the admin quorum
signed (`tholos cluster committee-change` writes it, `tholos cluster sign-committee-change` adds
one admin's signature); every node checks it and refuses a reshare it does not name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tholos.cli import change_files
from tholos.governance.committee_changes import (
    MAX_LIFETIME,
    SignedCommitteeChange,
    new_committee_change,
    sign_committee_change,
)

CHUNK = 50  # keys per gateway request


def _progress(args: argparse.Namespace, line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _keys(c: Any) -> list[dict[str, Any]]:
    from tholos.cli import _list_keys

    ns = argparse.Namespace(limit=None, offset=0, **dict.fromkeys(("scheme", "label"), None))
    for f in ("public_key", "created_after", "created_before"):
        setattr(ns, f, None)
    keys: list[dict[str, Any]] = _list_keys(c, ns)["keys"]
    return keys


def _holders(key: dict[str, Any]) -> tuple[list[int], int]:
    return sorted(int(i) for i in key["participants"]), int(key["threshold"])


def _check(keys: list[tuple[dict[str, Any], int]], members: list[int]) -> None:
    """Refuse before anything moves when a key could not sign with the new committee."""
    from tholos.cli import CliError
    from tholos.schemes import SCHEMES

    for key, t in keys:
        need = SCHEMES[key["scheme"]].signers_needed(t)
        if t > len(members) or need > len(members):
            raise CliError(
                f"key {key['key_id']} ({key['scheme']}, threshold {t}) needs {need} signers; "
                f"the new committee {members} has {len(members)}: reshare it first "
                f"(`tholos keys reshare {key['key_id']} --threshold T`)",
                "bad_threshold",
            )


def _document(args: argparse.Namespace) -> dict[str, Any] | None:
    """The committee change of --document, read and checked for shape (None without one)."""
    from tholos.cli import CliError

    path: Path | None = getattr(args, "document", None)
    if path is None:
        return None
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
        SignedCommitteeChange.model_validate_json(json.dumps(doc))
    except (OSError, ValueError) as exc:
        raise CliError(f"--document {path}: not a committee change: {exc}", "usage", 2) from None
    return doc


def _check_members(doc: dict[str, Any] | None, members: list[int]) -> None:
    """Refuse before any file changes when the document names another membership."""
    from tholos.cli import CliError

    if doc is not None and sorted(doc["change"]["members"]) != members:
        raise CliError(
            f"the committee change names members {doc['change']['members']}; this change "
            f"makes {members}",
            "committee_change_mismatch",
        )


def _reshare(
    args: argparse.Namespace, c: Any, todo: list[tuple[str, int]], members: list[int] | None
) -> list[dict[str, Any]]:
    """Reshare (key id, threshold) pairs in chunks, one progress line per key."""
    c.http.timeout = httpx.Timeout(600.0)
    out: list[dict[str, Any]] = []
    by_t: dict[int, list[str]] = {}
    for k, t in todo:
        by_t.setdefault(t, []).append(k)
    total, done = len(todo), 0
    for t, ids in by_t.items():
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            t0 = time.monotonic()
            body: dict[str, Any] = {"key_ids": chunk, "threshold": t, "members": members}
            doc = _document(args)
            if doc is not None:
                body["change"] = doc
            r = c.post("/v1/cluster/reshare", body)
            per = (time.monotonic() - t0) / len(chunk)
            for k in r["keys"]:
                done += 1
                out.append(k)
                _progress(
                    args,
                    f"[{done}/{total}] {k['key_id']} {k['scheme']}: t={k['threshold']} holders "
                    f"{k['holders']} epoch {k['epoch']} ({per * 1000:.0f} ms/key)",
                )
    return out


def cmd_keys_reshare(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> Any:
    c = client(args)
    try:
        c.http.timeout = httpx.Timeout(120.0)
        body: dict[str, Any] = {"threshold": args.threshold}
        if args.members:
            body["members"] = args.members
        doc = _document(args)
        if doc is not None:
            body["change"] = doc
        return c.post(f"/v1/keys/{args.key_id}/reshare", body)
    finally:
        c.close()


def cmd_cluster_reshare(
    args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]
) -> Any:
    """Every key to every node with threshold T; the threshold of new keys becomes T too."""
    c = client(args)
    try:
        health = c.get("/v1/cluster")
        members = sorted(int(n["node_id"]) for n in health["nodes"])
        keys = _keys(c)
        todo, same = [], 0
        for k in keys:
            holders, t = _holders(k)
            if holders == members and t == args.threshold:
                same += 1
            else:
                todo.append((k, args.threshold))
        _check(todo, members)
        t0 = time.monotonic()
        moved = _reshare(args, c, [(k["key_id"], t) for k, t in todo], members)
        seconds = time.monotonic() - t0
    finally:
        c.close()
    if not args.gateway:
        _new_key_threshold(args, args.threshold)
    return {
        "threshold": args.threshold,
        "members": members,
        "reshared": len(moved),
        "unchanged": same,
        "seconds": round(seconds, 3),
        "uncommitted": {k["key_id"]: k["uncommitted"] for k in moved if k["uncommitted"]},
    }


def _new_key_threshold(args: argparse.Namespace, t: int) -> None:
    """Keys created from now on get threshold `t`: gateway.json, then a gateway restart."""
    from tholos.cli import _cluster_dir
    from tholos.cluster import membership, procs
    from tholos.cluster.layout import ClusterDir

    cd = ClusterDir(_cluster_dir(args))
    if int(cd.load()["threshold"]) == t:
        return
    membership.set_threshold(cd, t)
    procs.stop_process(cd, "gateway", cd.gateway_config)
    procs.up(cd)


def _restart(cd: Any) -> None:
    """Stop every process of the cluster and start them again (new roster)."""
    from tholos.cluster import procs

    procs.down(cd)
    procs.up(cd)


def _local(args: argparse.Namespace) -> Any:
    from tholos.cli import CliError, _cluster_dir
    from tholos.cluster.layout import ClusterDir

    if args.gateway:
        raise CliError("membership changes need the local cluster directory (--dir)", "usage", 2)
    cd = ClusterDir(_cluster_dir(args))
    from tholos.cluster import membership

    membership.check_governed(cd, _document(args) is not None)
    return cd


def _move_keys(
    args: argparse.Namespace,
    client: Callable[[argparse.Namespace], Any],
    members: list[int],
    needed: Callable[[list[int]], bool],
) -> list[dict[str, Any]]:
    """Reshare every key whose holders satisfy `needed` to `members`, each keeping its own
    threshold; checks every key first."""
    c = client(args)
    try:
        todo = []
        for k in _keys(c):
            holders, t = _holders(k)
            if needed(holders):
                todo.append((k, t))
        _check(todo, members)
        return _reshare(args, c, [(k["key_id"], t) for k, t in todo], members)
    finally:
        c.close()


def cmd_add_node(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> Any:
    from tholos.cluster import membership

    cd = _local(args)
    doc = _document(args)
    if args.request is not None:  # a node set up on its own machine (`tholos node init|join`)
        from tholos.cluster import joining

        request = joining.read_json(args.request, "join request")
        _check_members(doc, sorted([*membership.node_ids(cd), joining.node_of(request)]))
        new = joining.add_joined_node(cd, request, document=doc is not None)
        _progress(args, f"node {new} (its own machine) added to every roster; restarting")
    else:
        _check_members(doc, [*membership.node_ids(cd), membership.next_node_id(cd)])
        new = membership.add_node(cd, document=doc is not None)
        _progress(args, f"node {new}: certificate, identity and config written; restarting")
    _restart(cd)
    members = membership.node_ids(cd)
    t0 = time.monotonic()
    moved = _move_keys(args, client, members, lambda h: new not in h)
    return {
        "node": new,
        "nodes": members,
        "reshared": len(moved),
        "seconds": round(time.monotonic() - t0, 3),
        "uncommitted": {k["key_id"]: k["uncommitted"] for k in moved if k["uncommitted"]},
    }


def cmd_remove_node(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> Any:
    from tholos.cli import CliError
    from tholos.cluster import membership

    cd = _local(args)
    node = args.node
    ids = membership.node_ids(cd)
    if node not in ids:
        raise CliError(f"node {node} is not in the cluster (nodes: {ids})", "unknown_node")
    members = [i for i in ids if i != node]
    doc = _document(args)
    _check_members(doc, members)
    t0 = time.monotonic()
    moved = _move_keys(args, client, members, lambda h: node in h)
    seconds = time.monotonic() - t0
    kept = {k["key_id"]: k["retiring"] for k in moved if k["retiring"]}
    _progress(args, f"node {node}: left every key; removing it from the roster and restarting")
    from tholos.cluster import procs

    procs.down(cd)
    moved_to = membership.remove_node(cd, node, document=doc is not None)
    procs.up(cd)
    return {
        "removed": node,
        "nodes": members,
        "reshared": len(moved),
        "seconds": round(seconds, 3),
        "directory": str(moved_to),
        # keys whose old share the removed node could not be told to delete (it was down)
        "old_share_not_deleted": kept,
    }


def cmd_replace_node(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> Any:
    from tholos.cli import CliError
    from tholos.cluster import membership, procs

    cd = _local(args)
    node = args.node
    ids = membership.node_ids(cd)
    if node not in ids:
        raise CliError(f"node {node} is not in the cluster (nodes: {ids})", "unknown_node")
    doc = _document(args)
    _check_members(doc, sorted([i for i in ids if i != node] + [membership.next_node_id(cd)]))
    new = membership.add_node(cd, document=doc is not None)
    _progress(args, f"node {new} replaces node {node}: files written; restarting")
    _restart(cd)
    members = sorted([i for i in ids if i != node] + [new])
    t0 = time.monotonic()
    moved = _move_keys(args, client, members, lambda h: node in h or new not in h)
    seconds = time.monotonic() - t0
    procs.down(cd)
    moved_to = membership.remove_node(cd, node, document=doc is not None)
    procs.up(cd)
    return {
        "replaced": node,
        "by": new,
        "nodes": members,
        "reshared": len(moved),
        "seconds": round(seconds, 3),
        "directory": str(moved_to),
        "old_share_not_deleted": {k["key_id"]: k["retiring"] for k in moved if k["retiring"]},
    }


def _members(text: str) -> list[int]:
    return sorted({int(x) for x in text.split(",") if x.strip()})


def cmd_committee_change(
    args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]
) -> Any:
    """Write a committee change at the cluster's current governance version (signed by --as)."""
    from tholos.cli import CliError

    doc = change_files.current_document(args, client)
    try:
        change = new_committee_change(
            doc.cluster_id,
            doc.version,
            args.members,
            args.threshold,
            int(time.time()),
            keys=args.for_key or None,
            min_threshold=args.min_threshold,
            lifetime=args.lifetime,
            reason=args.reason,
        )
    except ValueError as exc:
        raise CliError(f"committee change: {exc}", "usage", 2) from None
    signed = SignedCommitteeChange(change=change, signatures=())
    return change_files.write_new(args, signed, sign_committee_change, _summary)


def cmd_sign_committee_change(args: argparse.Namespace) -> Any:
    """Add one admin's signature (--as / --key-file) to a committee change file, in place."""
    return change_files.sign_in_place(args, SignedCommitteeChange, sign_committee_change, _summary)


def _summary(path: Path, signed: SignedCommitteeChange) -> dict[str, Any]:
    ch = signed.change
    return {
        "file": str(path),
        "members": list(ch.members),
        "threshold": ch.threshold,
        "keys": "all" if ch.keys is None else list(ch.keys),
        "min_threshold": ch.min_threshold,
        "governance_version": ch.governance_version,
        "expires_at": ch.expires_at,
        "signers": sorted(s.signer for s in signed.signatures),
    }


def _document_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--document",
        type=Path,
        metavar="FILE",
        help="governed cluster: the committee change signed by the admin quorum "
        "(`tholos cluster committee-change`, `tholos cluster sign-committee-change`)",
    )


def add_parsers(
    cluster_sub: Any,
    keys_sub: Any,
    common: Callable[[argparse.ArgumentParser], None],
    client: Callable[[argparse.Namespace], Any],
) -> None:
    p = keys_sub.add_parser(
        "reshare", help="move a key to another threshold (and holders); public key unchanged"
    )
    common(p)
    p.add_argument("key_id")
    p.add_argument("--threshold", type=int, required=True)
    p.add_argument("--members", type=_members, help="new holders, e.g. 1,2,4 (default: all)")
    _document_arg(p)
    p.set_defaults(fn=lambda a: cmd_keys_reshare(a, client))
    p = cluster_sub.add_parser("reshare", help="every key to every node with threshold T")
    common(p)
    p.add_argument("--threshold", type=int, required=True)
    _document_arg(p)
    p.set_defaults(fn=lambda a: cmd_cluster_reshare(a, client))
    p = cluster_sub.add_parser("add-node", help="a new node, given a share of every key")
    common(p)
    _document_arg(p)
    p.add_argument(
        "--request",
        type=Path,
        metavar="F",
        help="the join request of a node set up on its own machine (`tholos node init`), "
        "signed here by `tholos cluster sign-node` and running with its bundle",
    )
    p.set_defaults(fn=lambda a: cmd_add_node(a, client))
    for name, what in (
        ("remove-node", "move every key off node N, then take N out of the cluster"),
        ("replace-node", "a fresh node (new identity) takes node N's place in every key"),
    ):
        p = cluster_sub.add_parser(name, help=what)
        common(p)
        p.add_argument("node", type=int)
        _document_arg(p)
        p.set_defaults(
            fn=(lambda a: cmd_remove_node(a, client))
            if name == "remove-node"
            else (lambda a: cmd_replace_node(a, client))
        )
    from tholos.cli.governance_cmds import _signer

    p = cluster_sub.add_parser(
        "committee-change",
        help="write a committee change (new members and threshold) for the admin quorum to "
        "sign (governed clusters)",
    )
    common(p)
    p.add_argument("--members", type=_members, required=True, help="new holders, e.g. 1,2,3,5")
    p.add_argument(
        "--threshold", type=int, help="the new threshold (default: each key keeps its own)"
    )
    p.add_argument(
        "--for-key",
        dest="for_key",
        action="append",
        metavar="KEY_ID",
        help="a key it covers (repeat; default: every key)",
    )
    p.add_argument(
        "--min-threshold", type=int, help="the nodes' new minimum threshold (default: unchanged)"
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    p.add_argument(
        "--lifetime",
        type=int,
        default=86_400,
        help=f"seconds the document stays valid (at most {MAX_LIFETIME})",
    )
    p.add_argument("--reason", default="")
    _signer(p)
    p.set_defaults(fn=lambda a: cmd_committee_change(a, client))
    p = cluster_sub.add_parser(
        "sign-committee-change", help="add an admin's signature to a committee change file"
    )
    common(p)
    p.add_argument("file", type=Path)
    _signer(p)
    p.set_defaults(fn=cmd_sign_committee_change)
