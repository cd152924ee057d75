"""The one rule by which a derived intent is held against the approved one, for every chain.

They must be equal field by field, values and types alike: a lower fee, a detail more or less
(nonce, gas, blockhash, vsize), one transfer more or fewer are all differences, because the
approvers signed exactly what they were shown. The first difference is named, where money moves
(network, kind, transfers, change, calls, fee) before incidental details. Nodes apply it to the
declared intent of every request (`governance.transactions.parse_and_compare`); a client that
checks a transaction against what was approved uses `check_intent`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from tholos.chains.base import ChainError, DerivedIntent

_FIRST = ("network", "kind", "transfers", "change", "calls", "fee", "fee_asset", "to", "amount")


def _field_order(name: str) -> tuple[int, str]:
    return (_FIRST.index(name) if name in _FIRST else len(_FIRST), name)


class Difference(NamedTuple):
    field: str  # dotted path: "transfers[0].to", "details.nonce", "transfers"
    what: str  # what differs, for the refusal message
    counted: bool = False  # the number of entries differs (transfers, change, calls)


def difference(derived: Any, approved: Any, path: str = "") -> Difference | None:
    """The first field where two JSON-shaped values differ, below `path`, or None."""
    if isinstance(derived, Mapping) and isinstance(approved, Mapping):
        for name in sorted(set(derived) | set(approved), key=_field_order):
            where = f"{path}.{name}" if path else name
            if name not in derived:
                return Difference(where, "approved, not in the transaction")
            if name not in approved:
                return Difference(where, f"in the transaction ({derived[name]!r}), not approved")
            found = difference(derived[name], approved[name], where)
            if found is not None:
                return found
        return None
    if isinstance(derived, list | tuple) and isinstance(approved, list | tuple):
        if len(derived) != len(approved):
            return Difference(
                path, f"the transaction has {len(derived)}, the intent {len(approved)}", True
            )
        for i, (a, b) in enumerate(zip(derived, approved, strict=True)):
            found = difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if type(derived) is not type(approved) or derived != approved:
        return Difference(path, f"the transaction has {derived!r}, approved {approved!r}")
    return None


def first_difference(derived: Any, approved: Any, path: str) -> str | None:
    """The field of the first difference, as a node's refusal names it: "transaction.fee", or
    "transaction.transfers (the transaction has 2, the intent 1)" where a count differs."""
    found = difference(derived, approved, path)
    if found is None:
        return None
    return f"{found.field} ({found.what})" if found.counted else found.field


def check_intent(approved: DerivedIntent, derived: DerivedIntent) -> None:
    """Raise ChainError naming the first field where `derived` is not exactly `approved`."""
    found = difference(derived.as_dict(), approved.as_dict())
    if found is not None:
        raise ChainError(found.what, field=found.field)
