"""The interface of a scheme's protocol on the node, and what every such protocol shares.

Each protocol of a scheme is one `SchemeProtocol` registered by name in
`node/scheme_protocols.py`, and says which RPC serves it (`rpc`):

| protocol        | module          | RPC        | phases                 | what it does                     |
|-----------------|-----------------|------------|------------------------|----------------------------------|
| `frost-sign`    | node/frost.py   | SignBatch  | (pre-shared nonces)    | z_i for each item, one round trip |
| `ecdsa-presign` | node/ecdsa.py   | Protocol   | round1, round2, finish | presignatures for one key        |
| `ecdsa-sign`    | node/ecdsa.py   | Protocol   | sign                   | s_i for a presignature, a digest |
| `bls-sign`      | node/bls.py     | Protocol   | sign                   | σ_i = s_i·H(m)                   |
| `dise-eval`     | node/dise.py    | Protocol   | eval                   | y_i = k_i·H(x), a DLEQ proof     |

`Protocol` carries JSON payloads in signed envelopes; FROST's `SignBatch` (protobuf items with
the nonce commitments every node pre-shared, `Commitments` RPC) needs no extra round.

An `ItemSigner` is a protocol whose request is a batch of items: every item is checked (key,
epoch, fields, the vault's policy hook) before anything is consumed, then shares are computed for
the accepted ones. Plain (development) batches go through `sign_plain`; in a governed cluster
each item must carry a governed request that the node's `NodeGovernance` accepts, with exactly
the checks of FROST requests (`node/governed_signing.py`); items without one are refused,
fail-closed, each refusal recorded in the audit chain. FROST batches go through the same
`NodeGovernance.sign_batch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tholos.node.governed_signing import sign_governed
from tholos.node.protocols import BatchState, ProtocolError, ProtocolRunner
from tholos.node.vault import KeyVault, KeyView
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SigningRequest

MAX_ITEMS = 10_000


@dataclass(frozen=True)
class Checked:
    """A signing item whose fields were checked, before anything is consumed."""

    rid: str
    rec: KeyView
    message: bytes  # ECDSA: the 32-byte digest
    path: str = ""
    presig: bytes = b""  # ECDSA: the presignature id
    tweak: int = 0  # ECDSA: the BIP32 tweak of `path`

    @property
    def key_id(self) -> str:
        return self.rec.key_id


class NodeContext:
    """What a scheme protocol may use on its node: the DKG runner (sealing and collecting
    envelopes, batch state), the key vault, the store and its SQLite file, and the node's
    governance."""

    def __init__(
        self,
        runner: ProtocolRunner,
        vault: KeyVault,
        db: Any,
        governance: Callable[[], Any] = lambda: None,
        store: Any = None,
    ) -> None:
        self.runner = runner
        self.vault = vault
        self.db = db
        self.store = store  # the NodeStore (nonce pools), whose SQLite file is `db`
        self._governance = governance  # the node's NodeGovernance (None in unit tests)

    @property
    def node_id(self) -> int:
        return self.runner.node_id

    @property
    def governance(self) -> Any:
        return self._governance()

    def record(self, key_id: str, kind: str, epoch: Any = None) -> KeyView:
        """The key's public record; with the epoch the gateway expects, a stale share is refused.
        (Protocol steps that need the share itself use `vault.record`.)"""
        rec = self.vault.view(key_id)
        self.vault.check_enabled(key_id)
        if rec.scheme.kind != kind:
            raise ProtocolError(f"key {key_id} is not a {kind} key")
        if epoch is not None:
            self.vault.check_epoch(key_id, int(epoch))
        return rec

    def policy(self, rid: str, key_id: str, message: bytes, path: str = "") -> None:
        """The vault's policy hook, which every signing or evaluation item passes first."""
        self.vault.policy(key_id, SigningRequest(rid, key_id, message, path))


class SchemeProtocol:
    """One protocol of a scheme on the node: `step` answers one phase of the `Protocol` RPC with
    one signed envelope (a protocol served by another RPC, `rpc`, has that RPC's method)."""

    name = ""
    rpc = "Protocol"

    def __init__(self, node: NodeContext) -> None:
        self.node = node

    def step(self, req: pb.ProtocolRequest, batch: str, body: dict[str, Any]) -> pb.Envelope:
        raise NotImplementedError


class ItemProtocol(SchemeProtocol):
    """A one-round protocol over a batch of items; results by request id, in one envelope."""

    def step(self, req: pb.ProtocolRequest, batch: str, body: dict[str, Any]) -> pb.Envelope:
        items = body.get("items", [])
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise ProtocolError(f"items must be a list of at most {MAX_ITEMS}")
        state = BatchState(req.protocol, batch, [self.node.node_id], [])
        results = self.run(items, self.node.governance)
        return self.node.runner._seal(state, req.phase, {"results": results})

    def run(self, items: list[Any], gov: Any) -> dict[str, Any]:
        raise NotImplementedError


class ItemSigner(ItemProtocol):
    """A signing protocol (ECDSA, BLS): a per-item check, then the shares of accepted items."""

    def check(self, it: dict[str, Any]) -> Checked:
        raise NotImplementedError

    def shares(self, accepted: Sequence[Checked]) -> dict[str, Any]:
        raise NotImplementedError

    def run(self, items: list[Any], gov: Any) -> dict[str, Any]:
        if gov is not None and gov.governed:
            return sign_governed(self.name, self.check, self.shares, gov, items)
        return sign_plain(self, items)


def request_id(it: Any) -> str:
    return str(it.get("request_id", "")) if isinstance(it, dict) else ""


def sign_plain(signer: ItemSigner, items: list[Any]) -> dict[str, Any]:
    """Results by request id of a plain batch: every item is checked before anything is
    consumed, then shares are computed for the accepted ones."""
    results: dict[str, Any] = {}
    accepted: list[Checked] = []
    for it in items:
        try:
            accepted.append(signer.check(it))
        except Exception as exc:  # refused: nothing consumed
            results[request_id(it)] = {"error": f"{type(exc).__name__}: {exc}"}
    results.update(signer.shares(accepted))
    return results
