"""DiSE on the node: `dise-eval` (eval), y_i = k_i·H(x) with a DLEQ proof for each item.

Development clusters return the partials in the clear; a governed cluster evaluates only for a
user's signed authorization and seals each partial to the user's client
(`tholos.node.dise_governance`).
"""

from __future__ import annotations

from typing import Any

from tholos.crypto.dise import EvalRequest, PartialEval, evaluate
from tholos.node.dise_governance import evaluate_governed
from tholos.node.rounds import ItemProtocol


class DiseEvaluator(ItemProtocol):
    """`dise-eval`: one DPRF partial evaluation per item."""

    name = "dise-eval"

    def run(self, items: list[Any], gov: Any) -> dict[str, Any]:
        """Plain partials in a development cluster; in a governed one only for a user's signed
        authorization, sealed to the user's client (`tholos.node.dise_governance`)."""
        if gov is not None and gov.governed:
            return evaluate_governed(gov, self.node.node_id, items, self.partial)
        results: dict[str, Any] = {}
        for it in items:
            rid = str(it.get("request_id", ""))
            try:
                results[rid] = {"partial": self.partial(it).to_dict()}
            except Exception as exc:
                results[rid] = {"error": f"{type(exc).__name__}: {exc}"}
        return results

    def partial(self, it: dict[str, Any]) -> PartialEval:
        rid = str(it.get("request_id", ""))
        key_id = str(it["key_id"])
        self.node.record(key_id, "dise", it.get("epoch"))
        request = EvalRequest.from_dict(it["request"])
        self.node.policy(rid, key_id, request.alpha, "")
        vault = self.node.vault
        request = vault.hooks.dise_request(request)
        if vault.signer is not None:
            return vault.signer.dise_eval(key_id, request)
        return evaluate(vault.record(key_id).share, request)
