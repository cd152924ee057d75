"""A derived intent against the approved one: the first field that differs, named in a refusal.

Chain-agnostic (it compares `DerivedIntent`s only); it lives here until base.py offers one.
"""

from __future__ import annotations

from collections.abc import Sequence

from tholos.chains.base import ChainError, DerivedIntent, Transfer


def _same_movements(name: str, approved: Sequence[Transfer], derived: Sequence[Transfer]) -> None:
    for k, (a, d) in enumerate(zip(approved, derived, strict=False)):
        for attr in ("asset", "to", "amount", "action", "source"):
            if getattr(a, attr) != getattr(d, attr):
                raise ChainError(
                    f"approved {getattr(a, attr)!r}, the transaction has {getattr(d, attr)!r}",
                    field=f"{name}[{k}].{attr}",
                )
    if len(derived) > len(approved):
        extra = derived[len(approved)]
        raise ChainError(
            f"not approved: {extra.amount} to {extra.to}", field=f"{name}[{len(approved)}]"
        )
    if len(derived) < len(approved):
        raise ChainError("an approved output is missing", field=f"{name}[{len(derived)}]")


def check_approved(approved: DerivedIntent, derived: DerivedIntent) -> None:
    """Raise ChainError naming the first difference (chain, network, transfers[i].to/amount, an
    added transfers[i], change[i], fee, fee_asset, details.<key>); return when they are equal."""
    for attr in ("chain", "network", "kind"):
        if getattr(approved, attr) != getattr(derived, attr):
            raise ChainError(
                f"approved {getattr(approved, attr)!r}, got {getattr(derived, attr)!r}", field=attr
            )
    _same_movements("transfers", approved.transfers, derived.transfers)
    _same_movements("change", approved.change, derived.change)
    if derived.fee != approved.fee or derived.fee_asset != approved.fee_asset:
        raise ChainError(
            f"approved a fee of {approved.fee}, the transaction pays {derived.fee}", field="fee"
        )
    for key in sorted(set(approved.details) | set(derived.details)):
        if approved.details.get(key) != derived.details.get(key):
            raise ChainError(
                f"approved {approved.details.get(key)!r}, got {derived.details.get(key)!r}",
                field=f"details.{key}",
            )
    if approved.calls != derived.calls:
        raise ChainError("contract calls differ", field="calls")
