"""Committee change on the node (`reshare` protocol): move a key to new holders and a new threshold.

The four VSS phases are those of refresh (node/protocols.py) on `tholos.crypto.reshare`: the old
holders named as dealers share their shares, the new members receive (a new node holds nothing
before and only receives). The gateway relays; the sub-shares travel encrypted node to node.

What a node does not take from the gateway: a dealer uses the package and meta it holds itself;
every participant puts the digest of the old package (and the dealers their public meta) into its
signed round-1 envelope and refuses to go on if the participants disagree, so a new member learns
the old package and the chain code from the dealers, not from the gateway. `_combine` checks the
dealt shares interpolate to the unchanged group key before anything is sealed.

Commit is refresh's two-phase commit: at "finish" each new member seals its new share beside its
current one (if any); "commit" promotes it. An old holder that is not a new member keeps its share
until "retire", which the gateway sends once every new member committed; it then deletes the share
and the key's ECDSA presignatures (secure delete). In a governed cluster every session carries
the admins' committee change, which node/committee_governance.py checks before this runs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tholos.crypto.keys import PublicKeyPackage
from tholos.crypto.reshare import ReshareParticipant
from tholos.node.vault import KeyVault
from tholos.schemes import SCHEMES

PROTOCOL = "reshare"
#: per-key meta every holder has in common; a new member takes it from the dealers
SHARED_META = ("xpub", "epoch")


class ReshareRefused(Exception):
    """A reshare session this node refuses (bad plan, different package, threshold too low)."""


def package_digest(package: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(package, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def shared_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: meta[k] for k in SHARED_META if k in meta}


def start_session(
    vault: KeyVault,
    s: dict[str, Any],
    batch: str,
    min_threshold: int,
    evidence_verifier: Any,
) -> tuple[Any, dict[str, Any], ReshareParticipant[Any], dict[str, Any]]:
    """(scheme, meta, machine, announce) for one key of a reshare batch. `announce` goes into the
    signed round-1 envelope: the old package's digest, and a dealer's shared meta and package."""
    key_id = str(s["session"])
    me = vault.node_id
    dealers = sorted(int(d) for d in s["dealers"])
    members = sorted(int(m) for m in s["members"])
    threshold = int(s["threshold"])
    if threshold < min_threshold:
        raise ReshareRefused(
            f"threshold {threshold} of {key_id} is below this node's minimum {min_threshold}"
        )
    if me not in dealers and me not in members:
        raise ReshareRefused(f"node {me} is neither a dealer nor a new member of {key_id}")
    ctx = f"tholos-reshare|{key_id}|{batch}".encode()
    if me in dealers:
        rec = vault.record(key_id)
        vault.check_enabled(key_id)
        old = rec.share.public
        if package_digest(old.to_dict()) != package_digest(dict(s["public"])):
            raise ReshareRefused(f"the announced package of {key_id} is not the one held here")
        machine: ReshareParticipant[Any] = ReshareParticipant(
            me,
            old,
            dealers,
            threshold,
            members,
            ctx,
            key_share=rec.share,
            evidence_verifier=evidence_verifier,
        )
        meta = dict(rec.meta)
        announce = {"old": package_digest(old.to_dict()), "meta": shared_meta(meta)}
        return rec.scheme, meta, machine, announce
    scheme = SCHEMES[str(s["scheme"])]
    old = PublicKeyPackage.from_dict(dict(s["public"]))
    if old.group is not scheme.group:
        raise ReshareRefused(f"the announced package of {key_id} is not of scheme {scheme.name}")
    if vault.has_key(key_id):  # a holder that does not deal: its own package decides
        rec = vault.record(key_id)
        if package_digest(rec.share.public.to_dict()) != package_digest(old.to_dict()):
            raise ReshareRefused(f"the announced package of {key_id} is not the one held here")
    machine = ReshareParticipant(
        me, old, dealers, threshold, members, ctx, evidence_verifier=evidence_verifier
    )
    return scheme, {}, machine, {"old": package_digest(old.to_dict())}


def agreed_meta(key_id: str, dealers: list[int], got: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The shared meta every dealer announced for `key_id` (a new member stores it); refuses when
    participants hold different old packages or dealers announce different meta."""
    announced = {i: b.get("reshare", {}).get(key_id, {}) for i, b in got.items()}
    olds = {a.get("old") for a in announced.values()}
    if len(olds) != 1 or None in olds:
        raise ReshareRefused(f"participants hold different packages of {key_id}")
    metas = {json.dumps(announced[d].get("meta"), sort_keys=True) for d in dealers if d in got}
    if len(metas) != 1:
        raise ReshareRefused(f"dealers announced different key data for {key_id}")
    out: dict[str, Any] = json.loads(metas.pop())
    return out
