"""Share repair on a node (`tholos.crypto.repair` under the gateway's direction).

`t` helpers rebuild the share of a node that lost it (disk lost, node replaced) or whose share is
stale (it missed a refresh commit). Three phases, every participant (helpers and the recovering
node `lost`) answering each with one signed envelope:

- round1: each helper broadcasts its delta commitments and the public package, scheme and public
  metadata of each key, and sends its private deltas to the other helpers, encrypted and signed
  (transport.e2e); the recovering node only acknowledges.
- round2: each helper checks the deltas it received against their commitments (naming a helper
  whose delta does not match) and sends its sum σ_j to the recovering node, encrypted; every
  participant signs the digest of the round-1 broadcasts it saw (echo).
- finish: the recovering node checks the echoes, requires the helpers to agree on the public
  package (with t helpers at least one is honest), checks each σ_j against the commitments
  (naming a helper whose σ_j is wrong) and the sum against its own verifying share, and only then
  seals the share. The gateway relays ciphertexts only and never sees a delta, σ_j or share.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tholos.crypto.errors import CryptoError, CulpritError
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.repair import (
    RepairCommitment,
    RepairDelta,
    RepairSigma,
    repair_step1,
    repair_step2,
    repair_step3,
)
from tholos.node.protocols import (
    BatchState,
    ProtocolError,
    ProtocolRunner,
    envelope_digest,
)
from tholos.node.vault import VaultError
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES
from tholos.transport.e2e import EnvelopeError, context

MAX_KEYS = 4096
PHASES = {"round2": "round1", "finish": "round2"}  # phase -> phase it must follow


@dataclass
class RepairState(BatchState):
    helpers: list[int] = field(default_factory=list)
    lost: int = 0
    keys: dict[str, int] = field(default_factory=dict)  # key id -> expected refresh epoch
    own: dict[str, RepairDelta[Any]] = field(default_factory=dict)
    round1: dict[int, dict[str, Any]] = field(default_factory=dict)


def _ctx(key_id: str, batch: str) -> bytes:
    return f"tholos-repair|{key_id}|{batch}".encode()


def step(
    runner: ProtocolRunner,
    phase: str,
    batch: str,
    body: dict[str, Any],
    envelopes: Sequence[pb.Envelope],
) -> pb.Envelope:
    """One phase of a repair batch on this node."""
    if phase == "round1":
        return _round1(runner, batch, body)
    state = runner.batches.get(batch)
    if not isinstance(state, RepairState):
        raise ProtocolError(f"no repair batch {batch} in progress on this node")
    if phase == "abort":  # the gateway gave up (a participant failed): forget the batch now
        runner.batches.pop(batch, None)
        return runner._seal(state, "abort", {"aborted": True})
    if PHASES.get(phase) != state.phase:
        raise ProtocolError(f"phase {phase} not allowed after {state.phase}")
    try:
        env = (
            _round2(runner, state, envelopes)
            if phase == "round2"
            else _finish(runner, state, envelopes)
        )
    except Exception:
        runner.batches.pop(batch, None)
        raise
    state.phase = phase
    if phase == "finish":
        runner.batches.pop(batch, None)
    return env


def _round1(runner: ProtocolRunner, batch: str, body: dict[str, Any]) -> pb.Envelope:
    if batch in runner.batches:
        raise ProtocolError(f"batch {batch} already started")
    try:
        helpers = sorted({int(h) for h in body["helpers"]})
        lost = int(body["lost"])
        keys = {str(k): int(e) for k, e in dict(body["keys"]).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed repair request: {exc!r}") from None
    if not keys or len(keys) > MAX_KEYS:
        raise ProtocolError(f"a repair batch has 1..{MAX_KEYS} keys")
    if lost in helpers:
        raise ProtocolError(f"node {lost} cannot help repair its own share")
    me = runner.node_id
    if me != lost and me not in helpers:
        raise ProtocolError("this node is neither a helper nor the node being repaired")
    state = RepairState(
        "repair", batch, sorted([*helpers, lost]), [], helpers=helpers, lost=lost, keys=keys
    )
    if me == lost:
        runner.batches[batch] = state
        return runner._seal(state, "round1", {"ready": sorted(keys)})
    out: dict[str, Any] = {}
    private: dict[int, dict[str, Any]] = {j: {} for j in helpers if j != me}
    for key_id, epoch in sorted(keys.items()):
        try:
            rec = runner.vault.record(key_id)
            runner.vault.check_epoch(key_id, epoch)
            commitment, deltas = repair_step1(rec.share, helpers, lost, _ctx(key_id, batch))
        except (VaultError, CryptoError) as exc:
            raise ProtocolError(f"cannot help repair {key_id}: {exc}") from None
        state.own[key_id] = deltas.pop(me)
        for j, d in deltas.items():
            private[j][key_id] = d.to_dict()
        out[key_id] = {
            "commitment": commitment.to_dict(),
            "public": rec.share.public.to_dict(),
            "scheme": rec.scheme.name,
            "meta": rec.meta,
        }
    enc = {
        str(j): runner.identity.encrypt_to(
            j, context("repair-private", "round1", batch, j), json.dumps(msgs).encode()
        ).hex()
        for j, msgs in private.items()
    }
    private.clear()
    runner.batches[batch] = state
    return runner._seal(state, "round1", {"round1": out, "private": enc})


def _agreed(state: RepairState, key_id: str) -> dict[str, Any]:
    """The helpers' common view of a key (public package, scheme, metadata); they must agree."""
    views = {
        json.dumps(
            {k: v for k, v in state.round1[h]["round1"][key_id].items() if k != "commitment"},
            sort_keys=True,
        )
        for h in state.helpers
    }
    if len(views) != 1:
        raise ProtocolError(f"helpers disagree on the public package of {key_id}")
    view: dict[str, Any] = json.loads(views.pop())
    return view


def _commitments(state: RepairState, key_id: str) -> dict[int, RepairCommitment[Any]]:
    try:
        return {
            h: RepairCommitment.from_dict(state.round1[h]["round1"][key_id]["commitment"])
            for h in state.helpers
        }
    except (CryptoError, KeyError, TypeError) as exc:
        raise ProtocolError(f"malformed repair commitment for {key_id}: {exc!r}") from None


def _round2(
    runner: ProtocolRunner, state: RepairState, envelopes: Sequence[pb.Envelope]
) -> pb.Envelope:
    got = runner._collect(state, "round1", envelopes)
    for h in state.helpers:
        if sorted(dict(got[h].get("round1", {}))) != sorted(state.keys):
            raise ProtocolError(f"helper {h} did not answer for every key", [h])
    state.round1 = got
    state.echo = envelope_digest(envelopes)
    for key_id in state.keys:
        _agreed(state, key_id)
    me = runner.node_id
    if me == state.lost:
        return runner._seal(state, "round2", {"echo": state.echo})
    inbox: dict[int, dict[str, Any]] = {}
    for h in state.helpers:
        if h == me:
            continue
        try:
            blob = bytes.fromhex(got[h]["private"][str(me)])
            inbox[h] = json.loads(
                runner.identity.decrypt_from(
                    h, context("repair-private", "round1", state.batch, me), blob
                )
            )
        except (KeyError, ValueError, TypeError, EnvelopeError):
            raise ProtocolError(f"no readable deltas from helper {h}", [h]) from None
    sigmas: dict[str, Any] = {}
    for key_id in sorted(state.keys):
        rec = runner.vault.record(key_id)
        try:
            deltas = {h: RepairDelta.from_dict(inbox[h][key_id]) for h in inbox}
        except (CryptoError, KeyError, TypeError):
            raise ProtocolError(f"malformed deltas for {key_id}") from None
        deltas[me] = state.own[key_id]
        try:
            sigma = repair_step2(
                rec.share,
                state.helpers,
                state.lost,
                _ctx(key_id, state.batch),
                _commitments(state, key_id),
                deltas,
            )
        except CulpritError as exc:
            raise ProtocolError(f"repair of {key_id}: {exc}", exc.culprits) from None
        except CryptoError as exc:
            raise ProtocolError(f"repair of {key_id}: {type(exc).__name__}: {exc}") from None
        sigmas[key_id] = runner.vault.hooks.repair_sigma(sigma).to_dict()
    state.own.clear()
    blob = runner.identity.encrypt_to(
        state.lost,
        context("repair-private", "round2", state.batch, state.lost),
        json.dumps(sigmas).encode(),
    )
    sigmas.clear()
    return runner._seal(state, "round2", {"echo": state.echo, "sigma": blob.hex()})


def _check_against_own(
    runner: ProtocolRunner, key_id: str, public: PublicKeyPackage[Any], view: dict[str, Any]
) -> None:
    """The helpers' package must be this node's key at an epoch not older than its own; a share
    that cannot be opened (broken) is checked against its stored public package instead."""
    try:
        rec = runner.vault.record(key_id)
        own, epoch = rec.share.public, runner.vault.epoch(rec)
    except VaultError:
        stored = runner.vault.public_view(key_id) or {}
        try:
            own = PublicKeyPackage.from_dict(stored["public"])
            epoch = int(stored.get("meta", {}).get("epoch", 0))
        except (CryptoError, KeyError, TypeError, ValueError):
            return  # nothing readable is left to compare with; repair_step3 still checks
    if own.group is not public.group or not public.group.eq(
        own.group_public_key, public.group_public_key
    ):
        raise ProtocolError(f"helpers present another public key for {key_id}")
    if epoch > int(view.get("meta", {}).get("epoch", 0)):
        raise ProtocolError(f"helpers hold an older refresh epoch of {key_id}")


def _finish(
    runner: ProtocolRunner, state: RepairState, envelopes: Sequence[pb.Envelope]
) -> pb.Envelope:
    got = runner._collect(state, "round2", envelopes)
    runner._check_echo(got, state.echo)
    me = runner.node_id
    if me != state.lost:
        return runner._seal(state, "finish", {"helped": sorted(state.keys)})
    inbox: dict[int, dict[str, Any]] = {}
    for h in state.helpers:
        try:
            blob = bytes.fromhex(got[h]["sigma"])
            inbox[h] = json.loads(
                runner.identity.decrypt_from(
                    h, context("repair-private", "round2", state.batch, me), blob
                )
            )
        except (KeyError, ValueError, TypeError, EnvelopeError):
            raise ProtocolError(f"no readable sigma from helper {h}", [h]) from None
    records = []
    results: dict[str, Any] = {}
    for key_id in sorted(state.keys):
        view = _agreed(state, key_id)
        try:
            scheme = SCHEMES[str(view["scheme"])]
            public = PublicKeyPackage.from_dict(view["public"])
            if public.group is not scheme.group:
                raise ProtocolError(f"the package of {key_id} is not of its scheme's group")
            public.check_consistent()
            sigmas = {h: RepairSigma.from_dict(inbox[h][key_id]) for h in state.helpers}
        except (CryptoError, KeyError, TypeError) as exc:
            raise ProtocolError(f"repair of {key_id}: {type(exc).__name__}: {exc}") from None
        if runner.vault.has_key(key_id):
            _check_against_own(runner, key_id, public, view)
        try:
            share: KeyShare[Any] = repair_step3(
                public,
                state.helpers,
                me,
                _ctx(key_id, state.batch),
                _commitments(state, key_id),
                sigmas,
            )
        except CulpritError as exc:
            raise ProtocolError(f"repair of {key_id}: {exc}", exc.culprits) from None
        except CryptoError as exc:  # e.g. the sum does not match this node's verifying share
            raise ProtocolError(f"repair of {key_id}: {type(exc).__name__}: {exc}") from None
        records.append((key_id, scheme, share, dict(view.get("meta", {}))))
        results[key_id] = view["public"]
    runner.vault.store_repaired(records)
    return runner._seal(state, "finish", {"stored": sorted(results), "results": results})
