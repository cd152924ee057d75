"""Key lifecycle routes: disable, enable, relabel, tag and destroy a key.

Disable and destroy reach every node holding a share: each node keeps the disabled state itself
(and refuses to sign with the key whatever the gateway sends) and deletes its share durably on
destroy, acknowledging in an envelope signed by its identity key (checked here). Every holder
must be reachable: a change that could not reach one node is reported and not recorded here
(nodes already disabled stay so, which is the safe side; destroy is idempotent, run it again).
In a governed cluster every disable, enable and destroy carries a key change signed by the
admin quorum (`tholos.governance.key_changes`); the gateway only checks its shape and relays it,
each node verifies it and refuses a replay. Label and tags are the gateway's public metadata only
(no policy reads them), so they need no document.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tholos.gateway import openapi
from tholos.gateway.documents import optional_document, parse_obj
from tholos.gateway.errors import GatewayError
from tholos.gateway.schemas import TAG_PATTERN, KeyId, Label, Tag
from tholos.gateway.store import KeyRow
from tholos.gateway.transport import NodeRefused, NodeUnavailable
from tholos.governance.key_changes import SignedKeyChange
from tholos.rpc import node_pb2 as pb
from tholos.transport.e2e import EnvelopeError, context

if TYPE_CHECKING:
    from tholos.gateway.service import Gateway

log = logging.getLogger("tholos.gateway")
PROTOCOL = "key-state"
TAG = re.compile(TAG_PATTERN)
MAX_TAGS = 32
REPLAYED = "already applied on this node"

router = APIRouter()
KeyIdParam = Annotated[str, openapi.key_id_param()]


def check_usable(row: KeyRow) -> None:
    """Refuse to sign or evaluate with a disabled key (the nodes refuse too)."""
    if row.meta.get("disabled"):
        raise GatewayError(
            409, "key_disabled", f"key {row.key_id} is disabled (`tholos keys enable` it first)"
        )


def _key_change(key_id: str, change: str, document: dict[str, Any] | None) -> dict[str, Any]:
    """What a node is sent: the key id, and the admins' key change if there is one (its shape,
    key and action checked here so that a wrong file is refused before any node is asked)."""
    body: dict[str, Any] = {"key_id": key_id}
    if document is None:
        return body
    signed = parse_obj(SignedKeyChange, document, "key change document")
    if (signed.change.key_id, signed.change.action) != (key_id, change):
        raise GatewayError(
            422,
            "key_change_mismatch",
            f"the key change document is a {signed.change.action} of key "
            f"{signed.change.key_id}, not a {change} of {key_id}",
        )
    return {**body, "change": signed.model_dump(mode="json")}


async def _tell_nodes(
    gw: Gateway, row: KeyRow, change: str, document: dict[str, Any] | None = None
) -> dict[int, dict[str, Any]]:
    """Send one change to every holder; all must acknowledge with a valid signed envelope (or,
    for a key change being completed on the nodes it missed, say they applied it already)."""
    holders = sorted(int(i) for i in row.package["verifying_shares"])
    body = json.dumps(_key_change(row.key_id, change, document)).encode()
    req = pb.ProtocolRequest(protocol=PROTOCOL, phase=change, payload=body)
    replies = await asyncio.gather(
        *(gw.nodes.transport(i).protocol(req, gw.driver.timeout) for i in holders),
        return_exceptions=True,
    )
    acks: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    refused: list[str] = []
    already: list[int] = []
    for i, rep in zip(holders, replies, strict=True):
        if isinstance(rep, NodeUnavailable):
            gw.nodes.mark_down(i, str(rep))
            errors.append(f"node {i} unavailable")
        elif isinstance(rep, NodeRefused) and REPLAYED in rep.reason:
            already.append(i)
        elif isinstance(rep, NodeRefused):
            errors.append(f"node {i}: {rep.reason}")
            refused.append(f"node {i}: {rep.reason}")
        elif isinstance(rep, BaseException):
            errors.append(f"node {i}: {type(rep).__name__}")
        else:
            try:
                if rep.envelope.sender != i:
                    raise EnvelopeError("answered as another node", rep.envelope.sender)
                gw.driver._verifier.verify(
                    i,
                    context(PROTOCOL, change, row.key_id),
                    rep.envelope.payload,
                    rep.envelope.signature,
                )
                acks[i] = json.loads(rep.envelope.payload)
            except (EnvelopeError, ValueError) as exc:
                errors.append(f"node {i}: bad acknowledgement ({exc})")
    if not acks and already and not errors:
        raise GatewayError(
            409,
            "key_change_replayed",
            f"every node had already applied this key change: nothing changed (a new {change} "
            "needs a new document)",
        )
    if not acks and not already and errors and len(refused) == len(errors):
        raise GatewayError(
            409,
            f"{change}_refused",
            f"every node refused the {change} of key {row.key_id}, nothing changed: "
            + "; ".join(refused),
            done=[],
        )
    for i in already:
        acks[i] = {"key_id": row.key_id, "change": change, "node": i, "already": True}
    if errors:
        done = sorted(acks)
        raise GatewayError(
            503,
            f"{change}_incomplete",
            f"{change} of key {row.key_id} did not reach every node: {'; '.join(errors)}"
            f" (done on nodes {done}; run it again when they are back)",
            done=done,
        )
    return acks


async def _tell_nodes_or_restore(
    gw: Gateway, row: KeyRow, change: str, document: dict[str, Any] | None
) -> dict[int, dict[str, Any]]:
    """`_tell_nodes`; if no node made the change, the gateway's record is put back as it was."""
    try:
        return await _tell_nodes(gw, row, change, document)
    except GatewayError as exc:
        if not exc.extra.get("done"):
            gw.store.put_keys([row])
        raise


async def set_disabled(
    gw: Gateway, key_id: str, disabled: bool, document: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Disable or enable on every node (`document`: the admins' key change, governed clusters)."""
    row = gw.key(key_id[:64])
    change = "disable" if disabled else "enable"
    _key_change(row.key_id, change, document)  # a wrong document changes nothing, even here
    if disabled:  # the gateway refuses at once, before any node is asked
        gw.store.put_keys([replace(row, meta={**row.meta, "disabled": True})])
    await _tell_nodes_or_restore(gw, row, change, document)
    new = replace(row, meta={k: v for k, v in row.meta.items() if k != "disabled"})
    if disabled:
        new = replace(new, meta={**new.meta, "disabled": True})
    gw.store.put_keys([new])
    log.warning("key %s %sd on every node", key_id, change)
    return new.summary()


async def destroy(
    gw: Gateway, key_id: str, confirm: str, document: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every node deletes its share (`document`: the admins' key change, governed clusters)."""
    row = gw.key(key_id[:64])
    if confirm != key_id:
        raise GatewayError(
            422, "confirm_mismatch", "destroy needs --confirm with the key id itself (irreversible)"
        )
    _key_change(row.key_id, "destroy", document)
    gw.store.put_keys([replace(row, meta={**row.meta, "disabled": True})])
    acks = await _tell_nodes_or_restore(gw, row, "destroy", document)
    gw.store.delete_key(key_id)
    log.warning("key %s destroyed: every node deleted its share", key_id)
    return {
        "key_id": key_id,
        "destroyed": True,
        "nodes": {str(i): bool(a.get("destroyed")) for i, a in sorted(acks.items())},
    }


def relabel(gw: Gateway, key_id: str, label: str | None) -> dict[str, Any]:
    row = replace(gw.key(key_id[:64]), label=label)
    gw.store.put_keys([row])
    return row.summary()


def retag(gw: Gateway, key_id: str, add: list[str], remove: list[str]) -> dict[str, Any]:
    row = gw.key(key_id[:64])
    bad = [t for t in [*add, *remove] if not TAG.match(t)]
    if bad:
        raise GatewayError(
            400, "bad_tag", f"bad tag(s) {bad}: 1-64 of letters, digits and _ . : / -"
        )
    tags = sorted((set(row.meta.get("tags", [])) | set(add)) - set(remove))
    if len(tags) > MAX_TAGS:
        raise GatewayError(409, "too_many_tags", f"a key has at most {MAX_TAGS} tags")
    new = replace(row, meta={**row.meta, "tags": tags})
    gw.store.put_keys([new])
    return new.summary()


# -- REST ------------------------------------------------------------------------------------------
CHANGE_DOC = (
    "governed clusters: the key change signed by the admin quorum "
    "(tholos.governance.key_changes.SignedKeyChange)"
)


KeyChangeDocument = Annotated[dict[str, Any] | None, optional_document(SignedKeyChange)]


class ChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    change: KeyChangeDocument = Field(default=None, description=CHANGE_DOC)


class DestroyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    confirm: KeyId = Field(description="the key id again: destroy is irreversible")
    change: KeyChangeDocument = Field(default=None, description=CHANGE_DOC)


class LabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    label: Label | None = Field(description="new label, null to clear it")


class TagsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    add: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    remove: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)


def _gw(request: Request) -> Gateway:
    g: Gateway = request.app.state.gateway
    return g


@router.post("/v1/keys/{key_id}/disable")
async def disable_key(
    key_id: KeyIdParam, request: Request, body: ChangeBody | None = None
) -> dict[str, Any]:
    """Disable a key: the gateway and every node refuse to sign or evaluate with it."""
    return await set_disabled(_gw(request), key_id, True, body.change if body else None)


@router.post("/v1/keys/{key_id}/enable")
async def enable_key(
    key_id: KeyIdParam, request: Request, body: ChangeBody | None = None
) -> dict[str, Any]:
    return await set_disabled(_gw(request), key_id, False, body.change if body else None)


@router.post("/v1/keys/{key_id}/destroy")
async def destroy_key(key_id: KeyIdParam, body: DestroyBody, request: Request) -> dict[str, Any]:
    """Every node deletes its share durably (audited on each node); then the key is forgotten."""
    return await destroy(_gw(request), key_id, body.confirm, body.change)


@router.post("/v1/keys/{key_id}/label")
async def label_key(key_id: KeyIdParam, body: LabelBody, request: Request) -> dict[str, Any]:
    return relabel(_gw(request), key_id, body.label)


@router.post("/v1/keys/{key_id}/tags")
async def tag_key(key_id: KeyIdParam, body: TagsBody, request: Request) -> dict[str, Any]:
    return retag(_gw(request), key_id, body.add, body.remove)
