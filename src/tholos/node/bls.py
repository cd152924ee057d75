"""Threshold BLS signing on the node: `bls-sign` (sign), σ_i = s_i·H(m) for each item."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tholos.crypto.bls import threshold as bls
from tholos.node.rounds import Checked, ItemSigner
from tholos.node.vault import KeyVault


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
        vault = self.node.vault
        items = [(a.rid, a.key_id, vault.hooks.bls_message(a.message)) for a in accepted]
        if vault.signer is not None:
            return vault.signer.bls_sign(items)
        return partials(vault, items)


def partials(vault: KeyVault, items: Sequence[tuple[str, str, bytes]]) -> dict[str, Any]:
    """{request id: {"partial": σ_i} or {"error": ...}} for (request id, key id, message)."""
    results: dict[str, Any] = {}
    for rid, key_id, message in items:
        try:
            partial = bls.sign_share(vault.record(key_id).share, message)
            results[rid] = {"partial": partial.to_dict()}
        except Exception as exc:
            results[rid] = {"error": f"{type(exc).__name__}: {exc}"}
    return results
