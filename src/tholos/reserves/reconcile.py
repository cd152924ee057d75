"""Reconciliation of one wallet and asset over a period of blocks: opening balance, deposits,
withdrawals, fees, closing balance; every outgoing line tied to the signed request whose
transaction it is, and the mismatches listed:

- `unrequested_movement`: value left the wallet in a transaction no signed request produced;
- `request_not_on_chain`: a signed request whose transaction is not in the period's blocks;
- `amount_differs`: what a request declared is not what its transaction moved;
- `unexplained_balance`: opening + deposits - withdrawals - fees is not the closing balance
  (value moved by what the history cannot see, e.g. internal contract transfers).

The period is (from_height, to_height]: opening is the balance at from_height, closing at
to_height. The report `balances` only with no mismatch at all.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["deposit", "withdrawal", "fee"]


@dataclass(frozen=True)
class Movement:
    """One on-chain movement of value touching the wallet."""

    txid: str
    block: int
    kind: Kind
    asset: str
    amount: int
    address: str  # the wallet's address
    counterparty: str = ""


@dataclass(frozen=True)
class History:
    """What a chain's history source read for one wallet, asset and period: every movement in
    it, the balances at its two ends and, where the chain dates its blocks, their times (unix
    seconds; requests created between them belong to the period)."""

    movements: list[Movement]
    opening: int
    closing: int
    times: tuple[int, int] | None = None


@dataclass(frozen=True)
class SignedRequest:
    """A signed request of the wallet, as the gateway shows it."""

    request_id: str
    txid: str
    asset: str
    amount: int  # the sum of the declared transfers in `asset`

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], asset: str) -> SignedRequest:
        tx = summary.get("intent", {}).get("transaction") or {}
        amount = sum(
            int(t["amount"])
            for t in tx.get("transfers", [])
            if t.get("asset") == asset and t.get("action", "transfer") == "transfer"
        )
        txid = str((summary.get("transaction") or {}).get("txid") or "")
        return cls(str(summary["request_id"]), txid, asset, amount)


@dataclass(frozen=True)
class Mismatch:
    kind: str
    detail: str
    txid: str = ""
    request_id: str = ""


@dataclass
class Reconciliation:
    wallet_id: str
    asset: str
    from_height: int
    to_height: int
    opening: int
    closing: int
    lines: list[dict[str, Any]] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)

    def total(self, kind: Kind) -> int:
        return sum(int(line["amount"]) for line in self.lines if line["kind"] == kind)

    @property
    def balances(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        return {
            "wallet_id": self.wallet_id,
            "asset": self.asset,
            "from_height": self.from_height,
            "to_height": self.to_height,
            "opening": self.opening,
            "deposits": self.total("deposit"),
            "withdrawals": self.total("withdrawal"),
            "fees": self.total("fee"),
            "closing": self.closing,
            "balances": self.balances,
            "lines": self.lines,
            "mismatches": [m.__dict__.copy() for m in self.mismatches],
        }

    def as_csv(self) -> str:
        """One row per line, with opening, closing and each mismatch as rows of their own."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(
            [
                "row",
                "block",
                "txid",
                "kind",
                "asset",
                "amount",
                "counterparty",
                "request_id",
                "detail",
            ]
        )
        w.writerow(["opening", self.from_height, "", "", self.asset, self.opening, "", "", ""])
        for line in self.lines:
            w.writerow(
                [
                    "line",
                    line["block"],
                    line["txid"],
                    line["kind"],
                    self.asset,
                    line["amount"],
                    line["counterparty"],
                    line["request_id"],
                    "",
                ]
            )
        w.writerow(["closing", self.to_height, "", "", self.asset, self.closing, "", "", ""])
        for m in self.mismatches:
            w.writerow(["mismatch", "", m.txid, m.kind, self.asset, "", "", m.request_id, m.detail])
        return out.getvalue()


def reconcile(
    wallet_id: str,
    asset: str,
    period: tuple[int, int],
    balances: tuple[int, int],
    movements: Sequence[Movement],
    requests: Sequence[SignedRequest],
) -> Reconciliation:
    """The report of one wallet and asset; `period` (from, to] heights, `balances` the wallet's
    (opening, closing) balance at those heights, `movements` every movement in the period."""
    if period[0] > period[1]:
        raise ValueError(f"the period starts at {period[0]}, after its end {period[1]}")
    r = Reconciliation(wallet_id, asset, period[0], period[1], balances[0], balances[1])
    by_tx = {q.txid.lower(): q for q in requests if q.txid}
    moved: dict[str, int] = {}
    unrequested: set[str] = set()
    for m in sorted(movements, key=lambda m: (m.block, m.txid, m.kind)):
        if m.asset != asset or not period[0] < m.block <= period[1]:
            continue
        request = by_tx.get(m.txid.lower()) if m.kind != "deposit" else None
        r.lines.append(
            {
                "block": m.block,
                "txid": m.txid,
                "kind": m.kind,
                "amount": m.amount,
                "counterparty": m.counterparty,
                "request_id": request.request_id if request else "",
            }
        )
        if m.kind == "withdrawal":
            moved[m.txid.lower()] = moved.get(m.txid.lower(), 0) + m.amount
        if m.kind != "deposit" and request is None and m.txid not in unrequested:
            unrequested.add(m.txid)
            r.mismatches.append(
                Mismatch(
                    "unrequested_movement",
                    f"{m.kind} of {m.amount} from {m.address} with no signed request",
                    txid=m.txid,
                )
            )
    on_chain = {line["txid"].lower() for line in r.lines}
    for q in requests:
        if not q.txid or q.txid.lower() not in on_chain:
            r.mismatches.append(
                Mismatch(
                    "request_not_on_chain",
                    f"signed request {q.request_id} has no transaction in blocks "
                    f"{period[0] + 1}..{period[1]}",
                    txid=q.txid,
                    request_id=q.request_id,
                )
            )
        elif moved.get(q.txid.lower(), 0) != q.amount:
            r.mismatches.append(
                Mismatch(
                    "amount_differs",
                    f"request {q.request_id} declared {q.amount}, its transaction moved "
                    f"{moved.get(q.txid.lower(), 0)}",
                    txid=q.txid,
                    request_id=q.request_id,
                )
            )
    expected = r.opening + r.total("deposit") - r.total("withdrawal") - r.total("fee")
    if expected != r.closing:
        r.mismatches.append(
            Mismatch(
                "unexplained_balance",
                f"opening + deposits - withdrawals - fees = {expected}, closing is "
                f"{r.closing} (difference {r.closing - expected})",
            )
        )
    return r
