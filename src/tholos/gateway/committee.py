"""Committee changes driven by the gateway: reshare keys to new holders and a new threshold.

One reshare batch (node/reshare.py) per group of keys with the same holders: every usable old
holder deals, every new member must be up to receive. The public key must come back unchanged
(the nodes check the group key themselves before sealing). The commit point and the commits are
refresh's (gateway/repair.py): the new package with the next epoch and the finish envelopes are
stored in one write, then "commit" goes to each new member; a member that missed it is stale and
gets it re-sent. Once every new member committed, "retire" goes to the old holders left out, which
delete their shares; one that is unreachable stays listed in `meta.reshare_retire` and is retried.
ECDSA presignatures die with the old package: the gateway's pools are fingerprinted by package,
and each node deletes its rows at commit. In a governed cluster the admins' committee change
(tholos.governance.committee_changes) rides in every session; the gateway only checks that it
names this reshare and relays it, each node verifies it itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Collection
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway import repair
from tholos.gateway.documents import optional_document, parse_obj
from tholos.gateway.errors import GatewayError
from tholos.gateway.json_number import WHOLE
from tholos.gateway.protocols import ProtocolFailed
from tholos.gateway.store import KeyRow
from tholos.gateway.transport import NodeRefused, NodeUnavailable
from tholos.governance.committee_changes import SignedCommitteeChange
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES
from tholos.transport.e2e import EnvelopeError, context

if TYPE_CHECKING:
    from tholos.gateway.service import Gateway

log = logging.getLogger("tholos.gateway")
PROTOCOL = "reshare"
BATCH = 64  # keys per reshare batch


def plan(gw: Gateway, row: KeyRow, threshold: int, members: list[int]) -> list[int]:
    """Check a reshare of `row` to (`threshold`, `members`) before any node is contacted;
    returns the dealers (usable old holders). Raises GatewayError naming what is wrong."""
    unknown = sorted(set(members) - set(gw.nodes.ids))
    if unknown:
        raise GatewayError(422, "unknown_node", f"nodes {unknown} are not in the cluster roster")
    if not 1 <= threshold <= len(members):
        raise GatewayError(
            422,
            "bad_threshold",
            f"threshold must satisfy 1 <= t <= n (t={threshold}, n={len(members)})",
        )
    need = SCHEMES[row.scheme].signers_needed(threshold)
    if need > len(members):
        raise GatewayError(
            422,
            "bad_threshold",
            f"key {row.key_id} ({row.scheme}) needs {need} signers at threshold {threshold}; "
            f"the new committee has {len(members)}",
        )
    if repair.waiting(row):
        raise GatewayError(
            409,
            "refresh_uncommitted",
            f"key {row.key_id}: nodes {repair.waiting(row)} have not committed the last "
            "refresh or reshare",
        )
    dealers = gw.nodes.usable(repair.holders(row))
    if len(dealers) < int(row.package["threshold"]):
        raise GatewayError(
            503,
            "nodes_unavailable",
            f"key {row.key_id}: reshare needs {row.package['threshold']} old holders online, "
            f"usable: {dealers}",
        )
    down = sorted(set(members) - set(gw.nodes.usable(members)))
    if down:
        raise GatewayError(
            503, "nodes_unavailable", f"reshare needs every new member online; down: {down}"
        )
    return dealers


def check_change(
    document: dict[str, Any] | None, rows: list[KeyRow], threshold: int, members: list[int]
) -> dict[str, Any] | None:
    """The admins' committee change, if given, checked to name this reshare (so a wrong file is
    refused before any node is asked); the nodes verify its signatures themselves."""
    if document is None:
        return None
    signed = parse_obj(SignedCommitteeChange, document, "committee change document")
    ch = signed.change
    if list(ch.members) != members:
        raise GatewayError(
            422,
            "committee_change_mismatch",
            f"the committee change names members {list(ch.members)}, not {members}",
        )
    for r in rows:
        want = int(r.package["threshold"]) if ch.threshold is None else ch.threshold
        if want != threshold:
            raise GatewayError(
                422,
                "committee_change_mismatch",
                f"the committee change sets threshold {want} for key {r.key_id}, not {threshold}",
            )
        if not ch.covers(r.key_id):
            raise GatewayError(
                422,
                "committee_change_mismatch",
                f"the committee change does not cover key {r.key_id}",
            )
    normalised: dict[str, Any] = signed.model_dump(mode="json")
    return normalised


async def reshare(
    gw: Gateway,
    key_ids: list[str],
    threshold: int,
    members: list[int] | None = None,
    change: dict[str, Any] | None = None,
) -> list[KeyRow]:
    """Move every key of `key_ids` to `members` (default: every node) with `threshold`;
    `change`: the admins' committee change (governed clusters)."""
    new_members = sorted(set(gw.nodes.ids if members is None else members))
    rows = [gw.key(k) for k in dict.fromkeys(key_ids)]
    change = check_change(change, rows, threshold, new_members)
    await asyncio.gather(*(gw.nodes.probe(i) for i in gw.nodes.ids))
    groups: dict[tuple[int, ...], list[KeyRow]] = {}
    for r in rows:
        groups.setdefault(tuple(plan(gw, r, threshold, new_members)), []).append(r)
    out: dict[str, KeyRow] = {}
    for dealers, rs in groups.items():
        for start in range(0, len(rs), BATCH):
            for r in await _reshare_batch(
                gw, rs[start : start + BATCH], list(dealers), threshold, new_members, change
            ):
                out[r.key_id] = r
    return [out[r.key_id] for r in rows]


async def _reshare_batch(
    gw: Gateway,
    rows: list[KeyRow],
    dealers: list[int],
    threshold: int,
    members: list[int],
    change: dict[str, Any] | None = None,
) -> list[KeyRow]:
    participants = sorted(set(dealers) | set(members))
    sessions = [
        {
            "session": r.key_id,
            "scheme": r.scheme,
            "public": r.package,
            "dealers": dealers,
            "threshold": threshold,
            "members": members,
            **({} if change is None else {"change": change}),
        }
        for r in rows
    ]
    try:
        res = await gw.driver.run(PROTOCOL, participants, sessions)
    except ProtocolFailed as exc:
        if exc.refused_by_all:  # e.g. a threshold below the nodes' minimum: nothing ran
            raise GatewayError(422, "reshare_refused", str(exc)) from None
        for c in exc.culprits:
            gw.nodes.quarantine(c, f"misbehaved in reshare: {exc}")
        raise GatewayError(503, "reshare_failed", str(exc), culprits=list(exc.culprits)) from None
    prepared: list[KeyRow] = []
    for r in rows:
        pkg = res.results[r.key_id]
        sch = SCHEMES[r.scheme]
        public = PublicKeyPackage.from_dict(pkg)
        if sch.public_key(public).hex() != r.public_key or pkg["group_public_key"] != r.package.get(
            "group_public_key"
        ):
            raise GatewayError(500, "reshare_failed", f"reshare changed the key of {r.key_id}")
        if (
            sorted(int(i) for i in pkg["verifying_shares"]) != members
            or int(pkg["threshold"]) != threshold
        ):
            raise GatewayError(
                500, "reshare_failed", f"reshare of {r.key_id} made another committee"
            )
        new = repair.prepared_row(r, pkg, res.batch, res.finish, PROTOCOL)
        left_out = [i for i in repair.holders(r) if i not in members]
        meta = {**new.meta, "participants": members, "reshared": time.time()}
        if left_out:
            meta["reshare_retire"] = {"batch": res.batch, "nodes": left_out}
        prepared.append(replace(new, meta=meta))
    # Commit point: the new packages, with what is needed to re-send commits and retires.
    gw.store.put_keys(prepared)
    done = await asyncio.gather(*(repair.commit_refresh(gw, r) for r in prepared))
    return [await _retire(gw, r) for r in done]


async def _retire_one(gw: Gateway, key_id: str, batch: str, node: int) -> str:
    """Tell `node` to delete its share of `key_id` (left out by reshare `batch`); '' on success."""
    req = pb.ProtocolRequest(
        protocol=PROTOCOL,
        phase="retire",
        payload=json.dumps({"batch": batch, "keys": [key_id]}).encode(),
    )
    try:
        rep = await gw.nodes.transport(node).protocol(req, gw.driver.timeout)
        gw.driver._verifier.verify(
            node, context(PROTOCOL, "retire", batch), rep.envelope.payload, rep.envelope.signature
        )
    except (NodeUnavailable, NodeRefused, EnvelopeError) as exc:
        return str(getattr(exc, "reason", exc))
    return ""


async def _retire(gw: Gateway, row: KeyRow, only: Collection[int] | None = None) -> KeyRow:
    """Once every new member committed, retire the old holders left out (those of `only`)."""
    rr = row.meta.get("reshare_retire")
    if rr is None or repair.waiting(row):
        return row
    nodes = [i for i in rr["nodes"] if (only is None or i in only) and i in gw.nodes.ids]
    errors = await asyncio.gather(*(_retire_one(gw, row.key_id, rr["batch"], i) for i in nodes))
    for i, err in zip(nodes, errors, strict=True):
        if err:
            log.warning("key %s: node %d did not delete its old share: %s", row.key_id, i, err)
    done = {i for i, err in zip(nodes, errors, strict=True) if not err}
    cur = gw.store.get_key(row.key_id) or row
    cur_rr = cur.meta.get("reshare_retire")
    if cur_rr is None or cur_rr.get("batch") != rr["batch"]:
        return cur
    left = [i for i in cur_rr["nodes"] if i not in done]
    meta = {k: v for k, v in cur.meta.items() if k != "reshare_retire"}
    if left:
        meta["reshare_retire"] = {**cur_rr, "nodes": left}
    new = replace(cur, meta=meta)
    gw.store.put_keys([new])
    return new


def retiring(row: KeyRow) -> list[int]:
    """Old holders left out by the key's last reshare that have not deleted their share yet."""
    return [int(i) for i in row.meta.get("reshare_retire", {}).get("nodes", [])]


async def resume_retires(gw: Gateway, only: Collection[int] | None = None) -> int:
    """Re-send retires not yet confirmed (run with `repair.resume_commits`); keys left."""
    ids = [
        str(r[0])
        for r in gw.store.db.execute(
            "SELECT key_id FROM keys WHERE meta LIKE ?", ('%"reshare_retire"%',)
        ).fetchall()
    ]
    left = 0
    for key_id in ids:
        row = gw.store.get_key(key_id)
        if row is not None and retiring(row):
            left += bool(retiring(await _retire(gw, row, only)))
    return left


def summary(row: KeyRow) -> dict[str, Any]:
    return {
        "key_id": row.key_id,
        "scheme": row.scheme,
        "public_key": row.public_key,
        "threshold": int(row.package["threshold"]),
        "holders": repair.holders(row),
        "epoch": repair.epoch(row),
        "uncommitted": repair.waiting(row),
        "retiring": retiring(row),
    }


# -- REST ------------------------------------------------------------------------------------------
router = APIRouter()
NodeId = Annotated[int, Field(ge=1, le=64), WHOLE]  # bounds first (json_number.bounded_int)


class ReshareBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    threshold: NodeId
    members: Annotated[list[NodeId] | None, Field(min_length=1, max_length=64)] = Field(
        default=None, description="the new committee (default: every node of the roster)"
    )
    change: Annotated[dict[str, Any] | None, optional_document(SignedCommitteeChange)] = Field(
        default=None,
        description="governed clusters: the committee change signed by the admin quorum "
        "(tholos.governance.committee_changes.SignedCommitteeChange)",
    )


class ClusterReshareBody(ReshareBody):
    key_ids: Annotated[
        list[Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]], Field(max_length=1000)
    ]


def _gw(request: Request) -> Gateway:
    g: Gateway = request.app.state.gateway
    return g


@router.post("/v1/keys/{key_id}/reshare")
async def reshare_key(key_id: str, body: ReshareBody, request: Request) -> dict[str, Any]:
    (row,) = await reshare(_gw(request), [key_id[:64]], body.threshold, body.members, body.change)
    return summary(row)


@router.post("/v1/cluster/reshare")
async def reshare_keys(body: ClusterReshareBody, request: Request) -> dict[str, Any]:
    rows = await reshare(_gw(request), body.key_ids, body.threshold, body.members, body.change)
    return {"keys": [summary(r) for r in rows]}
