"""Cross-check the gateway's released signatures against the nodes' audit chains.

Every signature the gateway released needed t node shares, and every node logs each share it
releases (`KIND_SIGNATURE_SHARE`). A released signature that fewer than t node chains record means
a node signed without logging, logs were altered, or the gateway lied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tholos.audit.records import KIND_SIGNATURE_RELEASED, KIND_SIGNATURE_SHARE, AuditEntry


@dataclass(frozen=True)
class ReleasedSignature:
    """A signature the gateway says it released: which request, which digest."""

    request_id: str
    digest: str


@dataclass(frozen=True)
class Shortfall:
    """A released signature logged by only `nodes` (fewer than `needed`)."""

    request_id: str
    digest: str
    nodes: tuple[str, ...]
    needed: int


def released_signatures(gateway_entries: Iterable[AuditEntry]) -> list[ReleasedSignature]:
    """The released signatures recorded in the gateway's own chain."""
    return [
        ReleasedSignature(str(e.payload["request_id"]), str(e.payload["digest"]))
        for e in gateway_entries
        if e.kind == KIND_SIGNATURE_RELEASED
    ]


def cross_check(
    released: Iterable[ReleasedSignature],
    node_entries: Mapping[str, Iterable[AuditEntry]],
    t: int,
) -> list[Shortfall]:
    """Each released signature that appears in fewer than `t` node chains (pass verified chains)."""
    logged: dict[tuple[str, str], set[str]] = {}
    for node_id, entries in node_entries.items():
        for e in entries:
            if e.kind == KIND_SIGNATURE_SHARE:
                pair = (str(e.payload.get("request_id")), str(e.payload.get("digest")))
                logged.setdefault(pair, set()).add(node_id)
    shortfalls = []
    for sig in released:
        nodes = logged.get((sig.request_id, sig.digest), set())
        if len(nodes) < t:
            shortfalls.append(Shortfall(sig.request_id, sig.digest, tuple(sorted(nodes)), t))
    return shortfalls
