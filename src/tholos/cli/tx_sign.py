"""`tholos tx sign W --psbt F | --eth-tx F | --sol-tx F --as USER`: a governed request to sign a
wallet's chain transaction. The initiator's client (here) parses the unsigned transaction with the
wallet's chain package, declares the intent it derived, signs the request with the user's own key
and submits it; every node parses the payload again and refuses any difference.

Output: `request_id`, `status`, the derived `intent`, and once signed `raw` (the broadcastable
transaction: hex for Bitcoin and Ethereum, base64 for Solana), `txid`, `encoding` and for
Bitcoin the finalised `psbt`. `--wait S` polls the request until it is no longer pending
(approvals given by others meanwhile) or S seconds pass. A request the nodes refuse (policy, or a
payload that is not what was declared) exits non-zero with code "refused" and the refusals."""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.chains.base import ChainError, ParsedTransaction
from tholos.chains.registry import chain_for
from tholos.chains.wallet_kinds import ref_of
from tholos.cli.payloads import payload_arguments, read_payload, refused, usage
from tholos.client import Client

PENDING = frozenset({"created", "reserved", "awaiting-approval"})
REFUSED = frozenset({"refused", "expired", "cancelled", "failed"})
POLL_SECONDS = 0.5
MakeClient = Callable[[argparse.Namespace], Client]


def tx_sign(args: argparse.Namespace, client: MakeClient) -> dict[str, Any]:
    from tholos.cli.governance_cmds import _key

    if args.expires_in < 1:
        raise usage("--expires-in is in seconds, at least 1")
    if args.wait is not None and args.wait < 0:
        raise usage("--wait is in seconds, at least 0")
    c = client(args)
    try:
        shown = c.get(f"/v1/wallets/{args.wallet_id}")
        ref = ref_of(shown)
        chain = chain_for(ref.chain)
        assert chain is not None
        payload = read_payload(args, ref.chain)
        try:
            parsed = chain.parse(ref, payload)
        except ChainError as exc:
            raise refused(exc) from None
        if not parsed.targets:
            raise refused(ChainError("the transaction needs no signature from this wallet"))
        who, key = _key(args)
        state = submit(
            c,
            shown,
            parsed,
            payload,
            who,
            key,
            args.memo,
            args.expires_in,
            args.wait,
            request_id=args.request_id,
        )
    finally:
        c.close()
    out = result(ref.wallet_id, parsed.intent.as_dict(), state)
    if out["status"] in REFUSED:
        from tholos.cli import CliError

        why = out.get("error") or json.dumps(out.get("refusals", {}))
        raise CliError(f"request {out['request_id']} {out['status']}: {why}", "refused", **out)
    return out


def submit(
    c: Client,
    shown: dict[str, Any],
    parsed: ParsedTransaction,
    payload: bytes,
    who: str,
    key: Ed25519PrivateKey,
    memo: str = "",
    expires_in: int = 3600,
    wait: float | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Declare `parsed` (this client's parse of `payload`) in a request signed by `who`, submit
    it and, with `wait`, poll until it is no longer pending; the request's state. `request_id`:
    one given ahead (e.g. the one an Ethereum nonce was allocated to), else a fresh one."""
    from tholos.cli.governance_cmds import _current
    from tholos.governance import Intent, new_request
    from tholos.governance.transactions import declare

    cluster_id = _current(c).document.cluster_id
    now = int(time.time())
    intent = Intent(
        request_id=request_id or secrets.token_hex(12),
        initiator=who,
        key_id=str(shown["key_id"]),
        chain=str(shown["chain"]),
        memo=memo,
        created_at=now,
        expires_at=now + expires_in,
        transaction=declare(parsed.intent, str(shown["address_type"])),
    )
    req = new_request(cluster_id, intent, payload, key)
    state: dict[str, Any] = c.post(
        "/v1/signing-requests", {"request": req.model_dump(mode="json"), "approvals": []}
    )
    if wait:
        deadline = time.monotonic() + wait
        while state["status"] in PENDING and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            state = c.get(f"/v1/signing-requests/{intent.request_id}")
    return state


def result(wallet_id: str, intent: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """What `tx sign --json` prints: the request's state, the intent this client derived and
    declared, and the signed transaction once there is one."""
    out: dict[str, Any] = {
        "request_id": state["request_id"],
        "wallet_id": wallet_id,
        "status": state["status"],
        "intent": intent,
        "approvals": state.get("approvals", []),
    }
    for name in ("error", "refusals"):
        if state.get(name):
            out[name] = state[name]
    tx = state.get("transaction")
    if tx:
        out.update({k: tx[k] for k in ("raw", "encoding", "txid", "psbt") if k in tx})
    return out


def add_parser(
    tsub: Any, common: Callable[[argparse.ArgumentParser], None], client: MakeClient
) -> None:
    """`tholos tx sign` under `tholos tx`."""
    p = tsub.add_parser(
        "sign", help="a governed request to sign the wallet's transaction (as --as USER)"
    )
    common(p)
    payload_arguments(p)
    p.add_argument("--as", dest="as_user", help="initiator user id (key file D/users/USER.key)")
    p.add_argument("--key-file", type=Path, help="the initiator's Ed25519 key file (hex seed)")
    p.add_argument("--memo", default="")
    p.add_argument(
        "--request-id", dest="request_id", help="the id `tx nonce` allocated for (default: new)"
    )
    p.add_argument("--expires-in", dest="expires_in", type=int, default=3600, help="seconds")
    p.add_argument(
        "--wait", type=float, help="seconds to wait for approvals and the signature (default: none)"
    )
    p.set_defaults(fn=lambda a: tx_sign(a, client))
