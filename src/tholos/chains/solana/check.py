"""The comparison a node makes between the intent it was asked to approve and the one it derived
from the transaction itself: the first difference is refused, naming its field.

Nothing here is Solana-specific (it works on `DerivedIntent.as_dict()` of any chain); it lives in
this package only because `chains/base.py` is shared and frozen while the chain packages are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tholos.chains.base import ChainError, DerivedIntent

_EXACT = ("chain", "network", "kind", "transfers", "change", "calls", "fee_asset")


def check_intent(approved: Mapping[str, Any], derived: DerivedIntent) -> None:
    """Refuse (ChainError naming the field) unless `derived` carries exactly the approved
    movements and calls, a fee no higher than approved, and every approved detail."""
    got = derived.as_dict()
    for name in _EXACT:
        _same(
            name,
            approved.get(name, [] if name in ("transfers", "change", "calls") else ""),
            got[name],
        )
    if "fee" in approved and got["fee"] > approved["fee"]:
        raise ChainError(f"fee {got['fee']} above the approved {approved['fee']}", field="fee")
    for k, v in dict(approved.get("details", {})).items():
        _same(f"details.{k}", v, got["details"].get(k))


def _same(field: str, want: Any, got: Any) -> None:
    if isinstance(want, list | tuple) and isinstance(got, list | tuple):
        if len(want) != len(got):
            raise ChainError(f"{len(got)} in the transaction, {len(want)} approved", field=field)
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            _same(f"{field}[{i}]", w, g)
    elif isinstance(want, Mapping) and isinstance(got, Mapping):
        for k in sorted(set(want) | set(got)):
            _same(f"{field}.{k}", want.get(k), got.get(k))
    elif want != got:
        raise ChainError(f"the transaction has {got!r}, approved {want!r}", field=field)
