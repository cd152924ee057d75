"""Threshold BLS signing on the node: `bls-sign` (sign), σ_i = s_i·H(m) for each item."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tholos.crypto.bls import threshold as bls
from tholos.node.rounds import Checked, ItemSigner


class BlsSigner(ItemSigner):
    """`bls-sign`: one partial signature per checked item."""

    name = "bls-sign"

    def check(self, it: dict[str, Any]) -> Checked:
        rid = str(it.get("request_id", ""))
        key_id = str(it["key_id"])
        rec = self.node.record(key_id, "bls", it.get("epoch"))
        message = bytes.fromhex(it["message"])
        self.node.policy(rid, key_id, message)
        return Checked(rid, rec, message)

    def shares(self, accepted: Sequence[Checked]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for a in accepted:
            message = self.node.vault.hooks.bls_message(a.message)
            try:
                partial = bls.sign_share(a.rec.share, message)
                results[a.rid] = {"partial": partial.to_dict()}
            except Exception as exc:
                results[a.rid] = {"error": f"{type(exc).__name__}: {exc}"}
        return results
