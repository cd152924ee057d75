"""The gateway's view of the nodes: health, quarantine of misbehaving nodes, commitment pools.

A node is *down* after a transport failure (retried after a short backoff, probed in background)
and *quarantined* after it sent an invalid signature share (excluded for `quarantine_seconds`).
Nonce commitments are fetched in batches ahead of need, one pool per (node, suite); each
commitment is handed to exactly one signing attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tholos.gateway.transport import NodeRefused, NodeTransport, NodeUnavailable
from tholos.rpc import node_pb2 as pb

log = logging.getLogger("tholos.gateway")
DOWN_BACKOFF = 1.0
SLOW_BACKOFF = 30.0  # a node that timed out answers health probes but is not chosen meanwhile


@dataclass
class NodeState:
    transport: NodeTransport
    down_until: float = 0.0
    down_reason: str = ""
    quarantined_until: float = 0.0
    quarantine_reason: str = ""
    slow_until: float = 0.0
    last_ok: float = 0.0
    last_down: float = 0.0
    info: pb.InfoReply | None = None
    pools: dict[str, deque[pb.Commitment]] = field(default_factory=dict)
    attestation: dict[str, Any] | None = None  # the last session's view (gateway/attestation.py)
    attestation_refused: str = ""  # why this node is left out of every protocol, if it is
    refilling: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    @property
    def node_id(self) -> int:
        return self.transport.node_id


class NodeSet:
    def __init__(
        self,
        transports: dict[int, NodeTransport],
        *,
        rpc_timeout: float = 5.0,
        quarantine_seconds: float = 60.0,
        pool_batch: int = 2048,
    ) -> None:
        self.nodes = {i: NodeState(t) for i, t in sorted(transports.items())}
        self.rpc_timeout = rpc_timeout
        self.quarantine_seconds = quarantine_seconds
        self.pool_batch = pool_batch
        self._rr = 0

    @property
    def ids(self) -> list[int]:
        return list(self.nodes)

    def transport(self, node_id: int) -> NodeTransport:
        return self.nodes[node_id].transport

    # -- health ------------------------------------------------------------------------------------
    def usable(self, candidates: list[int] | None = None) -> list[int]:
        now = time.monotonic()
        ids = self.ids if candidates is None else candidates
        return [
            i
            for i in ids
            if i in self.nodes
            and self.nodes[i].down_until <= now
            and self.nodes[i].quarantined_until <= now
            and not self.nodes[i].attestation_refused
        ]

    def responsive(self, ids: list[int], need: int) -> list[int]:
        """`ids` without the nodes marked slow (a request to them timed out recently), unless
        fewer than `need` would remain: a slow node is still better than no signature at all.

        Slowness is remembered apart from `down_until` on purpose: a node that stalls on signing
        may still answer health probes at once, and a successful probe clears the down state.
        """
        now = time.monotonic()
        fast = [i for i in ids if self.nodes[i].slow_until <= now]
        return fast if len(fast) >= need else ids

    async def choose_signers(self, holders: list[int], need: int) -> list[int]:
        """`need` signers among `holders`: usable nodes (probing those marked down before giving
        up), without slow ones while enough others remain, rotated to spread the load. Returns
        every usable node instead when fewer than `need` are usable; the caller reports it."""
        usable = self.usable(holders)
        if len(usable) < need:
            await asyncio.gather(*(self.probe(i) for i in holders if i not in usable))
            usable = self.usable(holders)
        if len(usable) < need:
            return usable
        return sorted(self.rotate(self.responsive(usable, need))[:need])

    def rotate(self, ids: list[int]) -> list[int]:
        """`ids` rotated round-robin, so successive requests spread over the nodes."""
        if not ids:
            return ids
        self._rr = (self._rr + 1) % len(ids)
        return ids[self._rr :] + ids[: self._rr]

    def mark_down(self, node_id: int, reason: str, *, probe: bool = False) -> None:
        st = self.nodes[node_id]
        if st.down_until <= time.monotonic():
            log.warning("node %d marked down: %s", node_id, reason)
        st.down_until = time.monotonic() + DOWN_BACKOFF
        st.down_reason = reason
        st.last_down = time.monotonic()
        if "DEADLINE_EXCEEDED" in reason and not probe:  # a busy node may answer probes late
            log.warning("node %d is slow: not chosen for %.0fs", node_id, SLOW_BACKOFF)
            st.slow_until = time.monotonic() + SLOW_BACKOFF
        for pool in st.pools.values():
            pool.clear()  # commitments of a crashed node may be gone; fetch fresh ones later

    def mark_ok(self, node_id: int, *, probe: bool = False) -> None:
        """The node answered. A health probe clears the down state only: answering `Info` says
        nothing about how fast the node signs, so only a real request ends the slow state."""
        st = self.nodes[node_id]
        st.down_until = 0.0
        st.down_reason = ""
        st.last_ok = time.monotonic()
        if not probe:
            st.slow_until = 0.0

    def sort_replies(
        self,
        ids: Sequence[int],
        replies: Sequence[Any],
        problem: Callable[[int, Any], str] | None = None,
    ) -> tuple[dict[int, Any], dict[int, str]]:
        """The answers of one fan-out (`asyncio.gather(..., return_exceptions=True)`) by node,
        and why each other node gave none; nodes are marked down or ok accordingly. `problem`
        names what is wrong with an answer that arrived (then it counts as a failure)."""
        answers: dict[int, Any] = {}
        failed: dict[int, str] = {}
        for i, rep in zip(ids, replies, strict=True):
            if isinstance(rep, NodeUnavailable):
                self.mark_down(i, str(rep))
                failed[i] = "timed out" if "DEADLINE_EXCEEDED" in str(rep) else "unreachable"
            elif isinstance(rep, NodeRefused):
                failed[i] = f"refused: {rep.reason}"
            elif isinstance(rep, BaseException):
                log.error("node %d: unexpected %r", i, rep)
                failed[i] = "error"
            elif problem is not None and (why := problem(i, rep)):
                failed[i] = why
            else:
                self.mark_ok(i)
                answers[i] = rep
        return answers, failed

    def quarantine(self, node_id: int, reason: str) -> None:
        st = self.nodes[node_id]
        log.error("node %d EXCLUDED for %.0fs: %s", node_id, self.quarantine_seconds, reason)
        st.quarantined_until = time.monotonic() + self.quarantine_seconds
        st.quarantine_reason = reason
        for pool in st.pools.values():
            pool.clear()

    async def probe(self, node_id: int, patient: bool = False) -> bool:
        """Ask `node_id` for its Info; `patient` waits the full RPC timeout instead of 2 s (for
        an operation that needs every node: a busy node is slow, not down)."""
        st = self.nodes[node_id]
        try:
            timeout = self.rpc_timeout if patient else min(self.rpc_timeout, 2.0)
            st.info = await st.transport.info(timeout=timeout)
        except (NodeUnavailable, NodeRefused) as exc:
            self.mark_down(node_id, str(exc), probe=True)
            return False
        self.mark_ok(node_id, probe=True)
        return True

    async def probe_all(self) -> dict[int, bool]:
        res = await asyncio.gather(*(self.probe(i) for i in self.ids))
        return dict(zip(self.ids, res, strict=True))

    def broken(self, key_id: str) -> list[int]:
        """Nodes that reported (Info.broken_keys) they cannot open their share of `key_id`."""
        return [
            i
            for i, st in self.nodes.items()
            if st.info is not None and st.info.broken_keys and key_id in st.info.broken_keys
        ]

    def note_broken(self, excluded: dict[int, str], key_id: str) -> None:
        """Leave out, without blame, the nodes that reported their share of `key_id` broken."""
        for i in self.broken(key_id):
            excluded.setdefault(i, f"broken share: node {i} cannot open its share of {key_id}")

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out = []
        for i, st in self.nodes.items():
            state = "up"
            reason = st.down_reason
            if st.attestation_refused:
                state, reason = "excluded", f"attestation: {st.attestation_refused}"
            elif st.quarantined_until > now:
                state, reason = "excluded", st.quarantine_reason
            elif st.slow_until > now:
                state = "slow"
            elif st.down_until > now or st.last_ok <= st.last_down:
                # Down until it answers again: the retry backoff running out (down_until) does
                # not make a restarting node healthy.
                state = "down"
            out.append(
                {
                    "node_id": i,
                    "state": state,
                    "reason": reason,
                    "keys": st.info.keys if st.info else None,
                    "nonces": dict(st.info.nonces_available) if st.info else {},
                    "pooled_commitments": {k: len(v) for k, v in st.pools.items()},
                    "attestation": st.attestation,
                }
            )
        return out

    # -- commitment pools --------------------------------------------------------------------------
    async def _fetch(self, node_id: int, pool: str, count: int) -> None:
        st = self.nodes[node_id]
        try:
            reply = await st.transport.commitments(
                pb.CommitmentsRequest(group=pool, count=count), timeout=self.rpc_timeout
            )
        except NodeUnavailable as exc:
            self.mark_down(node_id, str(exc))
            raise
        self.mark_ok(node_id)
        st.pools.setdefault(pool, deque()).extend(reply.commitments)

    def _refill(self, node_id: int, pool: str) -> asyncio.Task[None]:
        st = self.nodes[node_id]
        task = st.refilling.get(pool)
        if task is None or task.done():
            task = asyncio.create_task(self._fetch(node_id, pool, self.pool_batch))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
            st.refilling[pool] = task
        return task

    async def take_commitments(self, node_id: int, pool: str, count: int) -> list[pb.Commitment]:
        """`count` unused commitments of `node_id` (fetching more if needed); raises
        NodeUnavailable / NodeRefused."""
        st = self.nodes[node_id]
        q = st.pools.setdefault(pool, deque())
        while len(q) < count:
            need = count - len(q)
            task = st.refilling.get(pool)
            if task is not None and not task.done() and need <= self.pool_batch // 2:
                await asyncio.shield(task)  # a refill is on its way
            else:
                # Fetch only what this request needs (a full batch can take long on a busy
                # node, and must not make it look slow); the refill below tops the pool up.
                await self._fetch(node_id, pool, min(need + 16, 10_000))
        out = [q.popleft() for _ in range(count)]
        if len(q) < self.pool_batch // 2:
            self._refill(node_id, pool)
        return out

    async def close(self) -> None:
        for st in self.nodes.values():
            for t in st.refilling.values():
                t.cancel()
            await st.transport.close()
