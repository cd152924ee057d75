"""Merkle-sum trees over customer liabilities, one tree per asset.

Each leaf commits to a customer by a salted hash (the published tree names nobody) and to the
balance owed; each inner node commits to its children's hashes *and* sums, so the root's sum is
the total owed and no subtree can hide a negative balance (sums are unsigned by construction and
every node's sum must equal its children's). A customer checks their own leaf with their salt and
the sibling path up to the published root (`verify_inclusion`).

Hashes: SHA-256 with domain tags; amounts as 16-byte big-endian (base units, < 2**128).
leaf  = H("tholos/por/leaf/v1"  || H(salt || customer_id) || amount)
inner = H("tholos/por/inner/v1" || left.hash || left.sum || right.hash || right.sum)
An odd node at the end of a level is paired with an empty node (hash of no leaf, sum 0).
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

MAX_AMOUNT = 2**128 - 1
LEAF_TAG = b"tholos/por/leaf/v1"
INNER_TAG = b"tholos/por/inner/v1"
EMPTY = (hashlib.sha256(b"tholos/por/empty/v1").digest(), 0)


class LiabilityError(ValueError):
    """Malformed liabilities or a proof that does not hold (the message says where)."""


def _amount(value: int) -> bytes:
    if not 0 <= value <= MAX_AMOUNT:
        raise LiabilityError(f"amount {value} outside 0..2**128-1")
    return value.to_bytes(16, "big")


def customer_commitment(customer_id: str, salt: bytes) -> bytes:
    return hashlib.sha256(salt + customer_id.encode("utf-8")).digest()


def leaf_hash(commitment: bytes, amount: int) -> bytes:
    return hashlib.sha256(LEAF_TAG + commitment + _amount(amount)).digest()


def inner(left: tuple[bytes, int], right: tuple[bytes, int]) -> tuple[bytes, int]:
    total = left[1] + right[1]
    data = INNER_TAG + left[0] + _amount(left[1]) + right[0] + _amount(right[1])
    return hashlib.sha256(data).digest(), total


@dataclass(frozen=True)
class Liability:
    customer_id: str
    asset: str
    amount: int


@dataclass(frozen=True)
class Step:
    """A sibling on the path from a leaf to the root."""

    side: Literal["left", "right"]  # where the sibling sits
    hash: bytes
    sum: int


def _side(value: object) -> Literal["left", "right"]:
    if value == "left":
        return "left"
    if value == "right":
        return "right"
    raise ValueError(f"side {value!r}")


@dataclass(frozen=True)
class InclusionProof:
    asset: str
    customer_id: str
    salt: bytes
    amount: int
    path: tuple[Step, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "asset": self.asset,
            "customer_id": self.customer_id,
            "salt": self.salt.hex(),
            "amount": self.amount,
            "path": [{"side": s.side, "hash": s.hash.hex(), "sum": s.sum} for s in self.path],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> InclusionProof:
        try:
            steps: list[Any] = list(d["path"])  # type: ignore[call-overload]
            path = tuple(
                Step(_side(s["side"]), bytes.fromhex(str(s["hash"])), int(s["sum"])) for s in steps
            )
            return cls(
                str(d["asset"]),
                str(d["customer_id"]),
                bytes.fromhex(str(d["salt"])),
                int(str(d["amount"])),
                path,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LiabilityError(f"malformed inclusion proof: {exc}") from None


@dataclass(frozen=True)
class LiabilityTree:
    """One asset's tree: `levels[0]` are the leaves (in customer order), the last level the root."""

    asset: str
    levels: tuple[tuple[tuple[bytes, int], ...], ...]
    leaves: tuple[tuple[str, bytes, int], ...]  # (customer_id, salt, amount)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0][0]

    @property
    def total(self) -> int:
        return self.levels[-1][0][1]

    def proof(self, customer_id: str) -> InclusionProof:
        index = next((i for i, leaf in enumerate(self.leaves) if leaf[0] == customer_id), None)
        if index is None:
            raise LiabilityError(f"no liability to {customer_id!r} in {self.asset}")
        _, salt, amount = self.leaves[index]
        path: list[Step] = []
        for level in self.levels[:-1]:
            sibling_index = index ^ 1
            sibling = level[sibling_index] if sibling_index < len(level) else EMPTY
            path.append(Step("left" if sibling_index < index else "right", *sibling))
            index //= 2
        return InclusionProof(self.asset, customer_id, salt, amount, tuple(path))


def build_tree(
    asset: str, balances: Sequence[tuple[str, int]], salts: Mapping[str, bytes] | None = None
) -> LiabilityTree:
    """The tree of one asset; salts are drawn at random unless given (tests, re-publication)."""
    if not balances:
        raise LiabilityError(f"no liabilities in {asset}")
    ids = [cid for cid, _ in balances]
    if len(set(ids)) != len(ids):
        raise LiabilityError(f"a customer appears twice in {asset}")
    leaves = tuple(
        (cid, (salts or {}).get(cid) or secrets.token_bytes(16), amount) for cid, amount in balances
    )
    level = tuple(
        (leaf_hash(customer_commitment(cid, salt), amount), amount) for cid, salt, amount in leaves
    )
    levels = [level]
    while len(level) > 1:
        pairs = [
            (level[i], level[i + 1] if i + 1 < len(level) else EMPTY)
            for i in range(0, len(level), 2)
        ]
        level = tuple(inner(a, b) for a, b in pairs)
        levels.append(level)
    return LiabilityTree(asset, tuple(levels), leaves)


def verify_inclusion(proof: InclusionProof, root: bytes, total: int) -> None:
    """Raise LiabilityError unless the proof leads from the customer's leaf to (root, total)."""
    node = (
        leaf_hash(customer_commitment(proof.customer_id, proof.salt), proof.amount),
        proof.amount,
    )
    for step in proof.path:
        if step.side not in ("left", "right") or step.sum < 0:
            raise LiabilityError("malformed path step")
        sibling = (step.hash, step.sum)
        node = inner(sibling, node) if step.side == "left" else inner(node, sibling)
    if node != (root, total):
        raise LiabilityError("the proof does not lead to the published root and total")


def read_csv(text: str) -> dict[str, list[tuple[str, int]]]:
    """`customer_id,asset,amount` rows (a header line first) -> balances per asset."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or [h.strip() for h in header] != ["customer_id", "asset", "amount"]:
        raise LiabilityError("the CSV must start with the header customer_id,asset,amount")
    out: dict[str, list[tuple[str, int]]] = {}
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != 3:
            raise LiabilityError(f"line {line}: three fields expected")
        cid, asset, amount = (v.strip() for v in row)
        if not cid or not asset or not amount.isdigit():
            raise LiabilityError(f"line {line}: customer, asset and a whole amount are required")
        out.setdefault(asset, []).append((cid, int(amount)))
    if not out:
        raise LiabilityError("the CSV holds no liabilities")
    return out


def build_trees(balances: Mapping[str, Iterable[tuple[str, int]]]) -> dict[str, LiabilityTree]:
    return {asset: build_tree(asset, list(rows)) for asset, rows in sorted(balances.items())}
