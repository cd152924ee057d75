"""The proof-of-reserves document: control of every address, its balance at a stated height, and
the Merkle-sum roots of what is owed, per asset; built from parts, checked standalone.

    {"format": "tholos-proof-of-reserves/v1", "challenge": C, "created_at": T,
     "addresses": [{wallet_id, chain, network, address, path, format, message, signature,
                    request_id, balance: {asset, amount, height}}],
     "reserves": {asset: sum of balances}, "liabilities": {asset: {root, total, customers}}}

Each customer gets their own inclusion proofs (one file) to check against the published roots.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tholos.reserves.control import ProofError, check_control
from tholos.reserves.liabilities import (
    InclusionProof,
    LiabilityError,
    LiabilityTree,
    verify_inclusion,
)

FORMAT = "tholos-proof-of-reserves/v1"
INCLUSION_FORMAT = "tholos-liability-inclusion/v1"


@dataclass(frozen=True)
class Balance:
    asset: str
    amount: int
    height: int  # the block height (number, slot) the amount was read at


@dataclass(frozen=True)
class AddressProof:
    wallet_id: str
    chain: str
    network: str
    address: str
    path: str
    format: str
    message: str
    signature: str
    request_id: str
    balance: Balance

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["balance"] = dict(self.balance.__dict__)
        return out


def assemble(
    challenge: str,
    addresses: Sequence[AddressProof],
    trees: Mapping[str, LiabilityTree],
    created_at: int,
) -> dict[str, Any]:
    """The published document (no salts, no customer ids: those go to each customer)."""
    if not addresses:
        raise ProofError("no address to prove")
    reserves: dict[str, int] = {}
    for a in addresses:
        reserves[a.balance.asset] = reserves.get(a.balance.asset, 0) + a.balance.amount
    return {
        "format": FORMAT,
        "challenge": challenge,
        "created_at": created_at,
        "addresses": [a.as_dict() for a in addresses],
        "reserves": dict(sorted(reserves.items())),
        "liabilities": {
            asset: {"root": t.root.hex(), "total": t.total, "customers": len(t.leaves)}
            for asset, t in sorted(trees.items())
        },
    }


def _file_name(customer_id: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", customer_id) and customer_id[0] != ".":
        return customer_id + ".json"
    return hashlib.sha256(customer_id.encode()).hexdigest()[:32] + ".json"


def write_inclusion_proofs(trees: Mapping[str, LiabilityTree], directory: Path) -> int:
    """One file per customer (their proofs in every asset they are owed); returns the count."""
    directory.mkdir(parents=True, exist_ok=True)
    per_customer: dict[str, list[dict[str, object]]] = {}
    for asset in sorted(trees):
        tree = trees[asset]
        for customer_id, _, _ in tree.leaves:
            per_customer.setdefault(customer_id, []).append(tree.proof(customer_id).as_dict())
    for customer_id, proofs in per_customer.items():
        body = {"format": INCLUSION_FORMAT, "customer_id": customer_id, "proofs": proofs}
        path = directory / _file_name(customer_id)
        path.write_text(json.dumps(body, indent=1) + "\n")
        path.chmod(0o600)  # salts: for that customer only
    return len(per_customer)


@dataclass
class Report:
    """What `verify` found: per address, per asset, per inclusion proof; `ok` only if all hold."""

    addresses: list[dict[str, Any]] = field(default_factory=list)
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    inclusion: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "addresses": self.addresses,
            "assets": self.assets,
            "inclusion": self.inclusion,
            "errors": self.errors,
        }


def _amount(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError(f"{what} is not a non-negative integer")
    return value


def verify(doc: Mapping[str, Any], inclusion: Sequence[Mapping[str, Any]] = ()) -> Report:
    """Check a proof document (and customers' inclusion files) with no cluster and no secrets."""
    report = Report()
    if doc.get("format") != FORMAT:
        report.errors.append(f"format is not {FORMAT}")
        return report
    challenge = doc.get("challenge")
    entries = doc.get("addresses")
    if not isinstance(challenge, str) or not isinstance(entries, list) or not entries:
        report.errors.append("challenge and a non-empty list of addresses are required")
        return report
    reserves: dict[str, int] = {}
    seen: set[tuple[str, str, str]] = set()
    for i, entry in enumerate(entries):
        where = f"addresses[{i}]"
        try:
            if not isinstance(entry, dict):
                raise ProofError("not an object")
            check_control(entry, challenge)
            key = (str(entry["chain"]), str(entry["network"]), str(entry["address"]))
            if key in seen:
                raise ProofError(f"{key[2]} is listed twice (its balance would count twice)")
            seen.add(key)
            balance = entry.get("balance")
            if not isinstance(balance, dict) or not isinstance(balance.get("asset"), str):
                raise ProofError("balance {asset, amount, height} missing")
            amount = _amount(balance.get("amount"), "balance.amount")
            _amount(balance.get("height"), "balance.height")
            reserves[balance["asset"]] = reserves.get(balance["asset"], 0) + amount
            report.addresses.append({"address": key[2], "chain": key[0], "ok": True})
        except ProofError as exc:
            report.errors.append(f"{where}: {exc}")
            shown = entry.get("address", "") if isinstance(entry, dict) else ""
            report.addresses.append({"address": str(shown), "ok": False})
    claimed = doc.get("reserves")
    if claimed != dict(sorted(reserves.items())):
        report.errors.append(f"reserves {claimed} are not the sum of the balances {reserves}")
    liabilities = doc.get("liabilities")
    if not isinstance(liabilities, dict):
        report.errors.append("liabilities missing")
        return report
    for asset, entry in sorted(liabilities.items()):
        try:
            total = _amount(entry.get("total"), f"liabilities.{asset}.total")
            bytes.fromhex(str(entry.get("root")))
        except (ProofError, ValueError, AttributeError) as exc:
            report.errors.append(f"liabilities.{asset}: {exc}")
            continue
        held = reserves.get(asset, 0)
        report.assets[asset] = {"reserves": held, "liabilities": total, "covered": held >= total}
        if held < total:
            report.errors.append(f"{asset}: reserves {held} below liabilities {total}")
    for asset in sorted(set(reserves) - set(liabilities)):
        report.assets[asset] = {"reserves": reserves[asset], "liabilities": 0, "covered": True}
    for body in inclusion:
        _check_inclusion(body, liabilities, report)
    return report


def _check_inclusion(
    body: Mapping[str, Any], liabilities: Mapping[str, Any], report: Report
) -> None:
    customer = str(body.get("customer_id", ""))
    proofs = body.get("proofs")
    if body.get("format") != INCLUSION_FORMAT or not isinstance(proofs, list):
        report.errors.append(f"inclusion file of {customer!r}: not {INCLUSION_FORMAT}")
        return
    for raw in proofs:
        try:
            proof = InclusionProof.from_dict(raw)
            if proof.customer_id != customer:
                raise LiabilityError(f"a proof for {proof.customer_id!r} in this file")
            published = liabilities.get(proof.asset)
            if not isinstance(published, dict):
                raise LiabilityError(f"no published root for {proof.asset}")
            verify_inclusion(proof, bytes.fromhex(published["root"]), int(published["total"]))
            report.inclusion.append({"customer_id": customer, "asset": proof.asset, "ok": True})
        except (LiabilityError, ValueError, KeyError, TypeError) as exc:
            report.errors.append(f"inclusion of {customer!r}: {exc}")
            report.inclusion.append({"customer_id": customer, "ok": False})
