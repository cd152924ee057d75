"""Share repair and the two-phase refresh commit, driven by the gateway.

Refresh (see `Gateway.refresh`): every node prepares its new share durably at "finish" and keeps
using the old one. Once all finish envelopes agree, the gateway records the new package with the
next epoch *and* those envelopes (the proof every node prepared the same refresh) in one durable
write: that is the commit point. Then it sends "commit" to every node; a node that crashed or was
unreachable stays listed in `meta.refresh_commit.waiting` and refuses (as stale) the sign
requests, which carry the epoch. The gateway re-sends the stored commit by itself at its start
and when such a node is seen up again (`resume_commits`; its prepared share survives a crash),
as does `repair_node`; if the node has nothing prepared (disk lost), only `repair_node` helps:
`t` helpers rebuild its share with `tholos.node.repair`. Before the commit point nothing changed
anywhere.

Repair: the gateway relays three phases between the helpers and the recovering node; deltas and
σ values travel encrypted and signed node to node. A helper named by another node's checks is
quarantined and the repair retried with other helpers; a stale helper is skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Collection
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from tholos.gateway.json_number import WHOLE
from tholos.gateway.store import KeyRow
from tholos.gateway.transport import NodeRefused, NodeUnavailable
from tholos.rpc import node_pb2 as pb
from tholos.transport.e2e import EnvelopeError, context

if TYPE_CHECKING:
    from tholos.gateway.service import Gateway

log = logging.getLogger("tholos.gateway")
BATCH = 256  # keys per repair batch
PHASES = ("round1", "round2", "finish")


def _error(status: int, code: str, message: str, **extra: Any) -> Exception:
    from tholos.gateway.errors import GatewayError

    return GatewayError(status, code, message, **extra)


def epoch(row: KeyRow) -> int:
    """Refresh epoch of the key's current package (0: as generated or imported)."""
    return int(row.meta.get("epoch", 0))


def holders(row: KeyRow) -> list[int]:
    return sorted(int(i) for i in row.package["verifying_shares"])


def waiting(row: KeyRow) -> list[int]:
    """Nodes that have not confirmed the commit of the key's last refresh."""
    return [int(i) for i in row.meta.get("refresh_commit", {}).get("waiting", [])]


# -- two-phase refresh commit ----------------------------------------------------------------------
def prepared_row(
    row: KeyRow,
    package: dict[str, Any],
    batch: str,
    finish: list[pb.Envelope],
    protocol: str = "refresh",
) -> KeyRow:
    """The key's row at the commit point: next epoch, and what is needed to (re)send commits
    (to the holders of the new package: a reshare's new members)."""
    envs = [
        {"sender": e.sender, "payload": e.payload.hex(), "signature": e.signature.hex()}
        for e in finish
    ]
    meta = {
        **row.meta,
        "epoch": epoch(row) + 1,
        "refresh_commit": {
            "batch": batch,
            "envelopes": envs,
            "waiting": sorted(int(i) for i in package["verifying_shares"]),
            "protocol": protocol,
        },
    }
    return replace(row, package=package, meta=meta)


async def _commit_one(gw: Gateway, row: KeyRow, node: int) -> str:
    """Send node the stored commit of the key's last refresh; '' on success, else why not."""
    rc = row.meta["refresh_commit"]
    batch = str(rc["batch"])
    protocol = str(rc.get("protocol", "refresh"))
    req = pb.ProtocolRequest(
        protocol=protocol,
        phase="commit",
        payload=json.dumps({"batch": batch, "keys": [row.key_id]}).encode(),
        envelopes=[
            pb.Envelope(
                sender=int(e["sender"]),
                payload=bytes.fromhex(e["payload"]),
                signature=bytes.fromhex(e["signature"]),
            )
            for e in rc["envelopes"]
        ],
    )
    try:
        rep = await gw.nodes.transport(node).protocol(req, gw.driver.timeout)
        gw.driver._verifier.verify(
            node, context(protocol, "commit", batch), rep.envelope.payload, rep.envelope.signature
        )
    except (NodeUnavailable, NodeRefused, EnvelopeError) as exc:
        return str(getattr(exc, "reason", exc))
    return ""


def _batch(row: KeyRow) -> str | None:
    """Batch id of the refresh the key's row still waits commits for (None: none)."""
    rc = row.meta.get("refresh_commit")
    return None if rc is None else str(rc["batch"])


def _confirmed(gw: Gateway, row: KeyRow, nodes: list[int]) -> KeyRow:
    """Record that `nodes` hold the key's current share (commit acknowledged or share repaired).
    Applied to the stored row, and only while it still waits for the same refresh as `row`: an
    acknowledgement that arrives late must not undo a later repair or refresh."""
    cur = gw.store.get_key(row.key_id) or row
    if _batch(cur) is None or _batch(cur) != _batch(row):
        return cur
    left = [i for i in waiting(cur) if i not in nodes]
    rc = {**cur.meta["refresh_commit"], "waiting": left}
    meta = {k: v for k, v in cur.meta.items() if k != "refresh_commit"}
    if left:
        meta["refresh_commit"] = rc
    new = replace(cur, meta=meta)
    gw.store.put_keys([new])
    return new


async def commit_refresh(gw: Gateway, row: KeyRow, only: Collection[int] | None = None) -> KeyRow:
    """Phase 2 of a refresh recorded by `prepared_row`: commit on every node still waiting (of
    `only`, if given)."""
    nodes = [i for i in waiting(row) if only is None or i in only]
    errors = await asyncio.gather(*(_commit_one(gw, row, i) for i in nodes))
    for i, err in zip(nodes, errors, strict=True):
        if "was not prepared" in err:  # the node lost its prepared share: re-sending cannot help
            log.warning(
                "key %s: node %d has no prepared share of the last refresh (%s): run "
                "`tholos keys repair %s --node %d`",
                row.key_id,
                i,
                err,
                row.key_id,
                i,
            )
        elif err:
            log.warning("key %s: node %d did not commit the refresh: %s", row.key_id, i, err)
    return _confirmed(gw, row, [i for i, err in zip(nodes, errors, strict=True) if not err])


async def resume_commits(gw: Gateway, only: Collection[int] | None = None) -> int:
    """Re-send the stored commits of refreshes not yet confirmed by every node (of `only`, if
    given): run at gateway start (it may have stopped between its commit point and the commits)
    and when a node that may have missed one is up again. Idempotent, no share is rebuilt.
    Returns the number of keys still waiting for some node afterwards."""
    ids = [
        str(r[0])
        for r in gw.store.db.execute(
            "SELECT key_id FROM keys WHERE meta LIKE ?", ('%"refresh_commit"%',)
        ).fetchall()
    ]
    left = 0
    for key_id in ids:
        row = gw.store.get_key(key_id)
        if row is None or not waiting(row):
            continue
        new = await commit_refresh(gw, row, only)
        if done := sorted(set(waiting(row)) - set(waiting(new))):
            log.info("key %s: commit re-sent, nodes %s now hold the refreshed share", key_id, done)
        left += bool(waiting(new))
    return left


# -- repair ----------------------------------------------------------------------------------------
class _Failed(Exception):
    def __init__(self, message: str, culprits: dict[int, str]) -> None:
        self.culprits = culprits
        super().__init__(message)


async def _run_repair(
    gw: Gateway, helpers: list[int], lost: int, keys: dict[str, int]
) -> dict[str, Any]:
    """One repair batch; returns the recovering node's signed finish body or raises _Failed
    naming the nodes to leave out next time (culprits, stale or unreachable helpers)."""
    batch = uuid.uuid4().hex
    participants = sorted([*helpers, lost])
    envelopes: list[pb.Envelope] = []
    for phase in PHASES:
        body: dict[str, Any] = {"batch": batch}
        if phase == "round1":
            body.update(helpers=helpers, lost=lost, keys=keys)
        req = pb.ProtocolRequest(
            protocol="repair", phase=phase, payload=json.dumps(body).encode(), envelopes=envelopes
        )
        replies = await asyncio.gather(
            *(gw.nodes.transport(i).protocol(req, gw.driver.timeout) for i in participants),
            return_exceptions=True,
        )
        leave_out: dict[int, str] = {}
        errors: list[str] = []
        new: list[pb.Envelope] = []
        for i, rep in zip(participants, replies, strict=True):
            if isinstance(rep, NodeUnavailable):
                gw.nodes.mark_down(i, str(rep))
                leave_out[i] = "unavailable"
                errors.append(f"node {i} unavailable")
            elif isinstance(rep, NodeRefused):
                for c in rep.culprits:
                    leave_out[c] = f"named by node {i}: {rep.reason}"
                for why in ("stale share", "broken share"):
                    if why in rep.reason:
                        leave_out[i] = why
                errors.append(f"node {i}: {rep.reason}")
            elif isinstance(rep, BaseException):
                errors.append(f"node {i}: {rep!r}")
            elif rep.envelope.sender != i:
                leave_out[i] = f"answered as node {rep.envelope.sender}"
                errors.append(leave_out[i])
            else:
                new.append(rep.envelope)
        if errors:
            abort = pb.ProtocolRequest(
                protocol="repair", phase="abort", payload=json.dumps({"batch": batch}).encode()
            )
            await asyncio.gather(
                *(gw.nodes.transport(i).protocol(abort, gw.driver.timeout) for i in participants),
                return_exceptions=True,
            )
            raise _Failed(f"repair {phase} failed: " + "; ".join(errors), leave_out)
        envelopes = new
    env = next(e for e in envelopes if e.sender == lost)
    try:
        gw.driver._verifier.verify(
            lost, context("repair", "finish", batch), env.payload, env.signature
        )
    except EnvelopeError as exc:
        raise _Failed(f"node {lost}: {exc}", {}) from None
    out: dict[str, Any] = json.loads(env.payload)
    return out


async def _repair_rows(
    gw: Gateway, node: int, rows: list[KeyRow], t: int, report: dict[str, Any]
) -> None:
    """Repair `node`'s shares of `rows` (same holders and threshold), retrying without helpers
    that fail."""
    excluded: dict[int, str] = report["excluded"]
    lagging = {i for r in rows for i in waiting(r)}
    for r in rows:
        gw.nodes.note_broken(excluded, r.key_id)
    excluded.pop(node, None)
    for _attempt in range(len(holders(rows[0])) + 1):
        cands = [h for h in holders(rows[0]) if h != node and h not in excluded]
        usable = gw.nodes.usable(cands)
        if len(usable) < t:
            await asyncio.gather(*(gw.nodes.probe(i) for i in cands if i not in usable))
            usable = gw.nodes.usable(cands)
        usable.sort(key=lambda h: h in lagging)  # nodes that missed a commit last
        if len(usable) < t:
            raise _error(
                503,
                "too_few_helpers",
                f"repair of node {node} needs {t} helpers holding the key; usable: {usable}",
                excluded={str(k): v for k, v in excluded.items()},
            )
        helpers = sorted(usable[:t])
        keys = {r.key_id: epoch(r) for r in rows}
        try:
            done = await _run_repair(gw, helpers, node, keys)
        except _Failed as exc:
            log.warning("repair of node %d with helpers %s: %s", node, helpers, exc)
            if node in exc.culprits or not exc.culprits:
                raise _error(502, "repair_failed", str(exc)) from None
            for c, why in exc.culprits.items():
                excluded[c] = why
                if why.startswith("named by"):
                    gw.nodes.quarantine(c, f"misbehaved in repair: {why}")
            continue
        for r in rows:
            if done.get("results", {}).get(r.key_id) != r.package:
                raise _error(
                    502, "repair_failed", f"node {node} rebuilt {r.key_id} for another package"
                )
            _confirmed(gw, r, [node])
            report["repaired"].append(r.key_id)
            report["helpers"][r.key_id] = helpers
        return
    raise _error(502, "repair_failed", f"repair of node {node} did not complete")


def _keys_of(gw: Gateway, node: int) -> list[KeyRow]:
    out: list[KeyRow] = []
    offset = 0
    while True:
        page = gw.store.list_keys(10_000, offset)
        out.extend(r for r in page if node in holders(r))
        if len(page) < 10_000:
            return out
        offset += len(page)


async def repair_node(gw: Gateway, node: int, key_ids: list[str] | None = None) -> dict[str, Any]:
    """Give `node` back its current share of `key_ids` (every key it holds if None): re-send a
    refresh commit it missed, or rebuild the share from `t` helpers. Validates everything before
    any node is contacted."""
    if node not in gw.nodes.ids:
        raise _error(404, "unknown_node", f"node {node} is not in the cluster roster")
    if key_ids is None:
        rows = _keys_of(gw, node)
    else:
        rows = [gw.key(k) for k in dict.fromkeys(key_ids)]
        for r in rows:
            if node not in holders(r):
                raise _error(400, "not_a_holder", f"node {node} holds no share of key {r.key_id}")
    for r in rows:
        if len(holders(r)) - 1 < int(r.package["threshold"]):
            raise _error(
                400,
                "too_few_helpers",
                f"key {r.key_id}: {len(holders(r)) - 1} other holders, threshold "
                f"{r.package['threshold']}: repair is impossible",
            )
    report: dict[str, Any] = {
        "node": node,
        "committed": [],
        "repaired": [],
        "helpers": {},
        "excluded": {},
    }
    if not rows:
        return report
    if not await gw.nodes.probe(node):
        raise _error(503, "node_unavailable", f"node {node} is unreachable")
    todo: list[KeyRow] = []
    for r in rows:
        if node in waiting(r) and not await _commit_one(gw, r, node):
            _confirmed(gw, r, [node])
            report["committed"].append(r.key_id)
        else:
            todo.append(r)
    groups: dict[tuple[tuple[int, ...], int], list[KeyRow]] = {}
    for r in todo:
        groups.setdefault((tuple(holders(r)), int(r.package["threshold"])), []).append(r)
    for (_h, t), rs in groups.items():
        for start in range(0, len(rs), BATCH):
            await _repair_rows(gw, node, rs[start : start + BATCH], t, report)
    await gw.nodes.probe(node)  # its Info (stale and broken keys) as it is now
    report["excluded"] = {str(k): v for k, v in report["excluded"].items()}
    return report


def share_health(gw: Gateway) -> dict[str, Any]:
    """Per node: keys it reported stale and refreshed shares it prepared but did not commit."""
    return {
        str(i): {
            "stale_keys": list(st.info.stale_keys) if st.info else [],
            "broken_keys": list(st.info.broken_keys) if st.info else [],
            "pending_refresh": st.info.pending_refresh if st.info else 0,
            "unchecked_shares": st.info.shares_unchecked if st.info else 0,
        }
        for i, st in gw.nodes.nodes.items()
    }


def protections(gw: Gateway) -> dict[str, dict[str, str]]:
    """Per node: where it opens shares and that process's protections (Info.protections)."""
    return {
        str(i): dict(st.info.protections) if st.info else {} for i, st in gw.nodes.nodes.items()
    }


# -- REST ------------------------------------------------------------------------------------------
router = APIRouter()


NodeId = Annotated[int, Field(ge=1, le=64), WHOLE]  # bounds first (json_number.bounded_int)


class RepairBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    node: NodeId


def _gw(request: Request) -> Gateway:
    g: Gateway = request.app.state.gateway
    return g


@router.post("/v1/keys/{key_id}/repair")
async def repair_key(key_id: str, body: RepairBody, request: Request) -> dict[str, Any]:
    return await repair_node(_gw(request), body.node, [key_id[:64]])


@router.post("/v1/nodes/{node_id}/repair")
async def repair_all(
    node_id: Annotated[int, Path(ge=1, le=64)], request: Request
) -> dict[str, Any]:
    return await repair_node(_gw(request), node_id)
