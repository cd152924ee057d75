"""`tholos reserves prove` and `tholos reserves verify`: proof of reserves.

prove: for every wallet (or those named) a proof-of-control request per address, submitted as a
governed request signed by the initiator (`--as USER`; the nodes parse the envelope, show
challenge and address, and sign only if the policy allows the action `proof_of_control`), the
balance of each address read from a connector at a stated height, the Merkle-sum roots of the
liabilities CSV; writes the document (`--out`) and one inclusion file per customer
(`--inclusion-dir`, default OUT.customers/). Connectors: `--eth-rpc URL` (Ethereum JSON-RPC),
`--btc-rpc URL` (Bitcoin Core JSON-RPC; `--btc-cookie PATH` for cookie auth), `--sol-rpc URL`
(Solana JSON-RPC); every chain of the wallets proved needs its connector (name the wallets to
prove with `--wallet`).

verify: checks a document standalone (no cluster): every signature in its chain's format over
the text rebuilt from the challenge, sums, coverage; `--inclusion F` customer files;
`--eth-rpc URL` also re-reads Ethereum balances at their stated heights (`--btc-rpc`, `--sol-rpc`:
Bitcoin and Solana balances, only while the chain is still at the stated height: those reads
have no history).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tholos.chains.base import ChainError, WalletRef
from tholos.chains.registry import chain_for
from tholos.chains.wallet_kinds import ref_of
from tholos.client import Client
from tholos.connectors.base import Connector, ConnectorError

MakeClient = Callable[[argparse.Namespace], Client]
Common = Callable[..., None]


def _cli() -> Any:
    import tholos.cli as cli

    return cli


def _connectors(args: argparse.Namespace) -> dict[str, Connector]:
    out: dict[str, Connector] = {}
    if args.eth_rpc:
        from tholos.connectors.ethereum import EthereumRpc

        out["ethereum"] = EthereumRpc(args.eth_rpc)
    if args.btc_rpc:
        from tholos.connectors.bitcoin_core import BitcoinCore

        out["bitcoin"] = BitcoinCore(args.btc_rpc, cookie=args.btc_cookie)
    if args.sol_rpc:
        from tholos.connectors.solana_rpc import SolanaRpc

        out["solana"] = SolanaRpc(args.sol_rpc)
    return out


def _connector_arguments(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--eth-rpc", dest="eth_rpc", help=f"Ethereum JSON-RPC URL {what}")
    p.add_argument("--btc-rpc", dest="btc_rpc", help=f"Bitcoin Core JSON-RPC URL {what}")
    p.add_argument("--btc-cookie", dest="btc_cookie", type=Path, help="bitcoind's .cookie file")
    p.add_argument("--sol-rpc", dest="sol_rpc", help=f"Solana JSON-RPC URL {what}")


def _all_wallets(c: Client) -> list[dict[str, Any]]:
    wallets: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = c.get("/v1/wallets", {"limit": 1000, "offset": offset})
        wallets += page["wallets"]
        offset = page["next_offset"]
    return wallets


def prove_cmd(args: argparse.Namespace, client: MakeClient) -> dict[str, Any]:
    from tholos.chains import proof_of_control
    from tholos.cli.governance_cmds import _key
    from tholos.cli.tx_sign import PENDING, POLL_SECONDS, REFUSED, submit
    from tholos.reserves.control import ProofError
    from tholos.reserves.liabilities import LiabilityError, build_trees, read_csv
    from tholos.reserves.proof import write_inclusion_proofs
    from tholos.reserves.prover import Signed, Target, prove

    cli = _cli()
    try:
        trees = build_trees(read_csv(args.liabilities.read_text()))
    except (OSError, LiabilityError) as exc:
        raise cli.CliError(f"liabilities: {exc}", "bad_liabilities", 2) from None
    connectors = _connectors(args)
    who, key = _key(args)
    c = client(args)
    try:
        ids = args.wallet or [str(w["wallet_id"]) for w in _all_wallets(c)]
        shown_all = [c.get(f"/v1/wallets/{w}") for w in ids]
        by_id = {str(s["wallet_id"]): s for s in shown_all}
        refs = [ref_of(s) for s in shown_all]
        missing = sorted({r.chain for r in refs} - set(connectors))
        if missing:
            raise cli.CliError(
                f"no connector for {', '.join(missing)} wallets (give --eth-rpc, --btc-rpc, --sol-rpc; "
                "name the wallets to prove with --wallet)",
                "usage",
                2,
            )
        indexes = args.index or [0]
        targets = [Target(r, i) for r in refs for i in (indexes if r.chain != "solana" else [0])]

        # Every request first, so that approvers (where the policy wants them) see them all
        # at once; then each is awaited in turn.
        submitted: dict[tuple[str, bytes], str] = {}
        for t in targets:
            chain = chain_for(t.wallet.chain)
            assert chain is not None
            payload = proof_of_control.envelope(args.challenge, t.index, change=t.change)
            try:
                parsed = chain.parse(t.wallet, payload)
            except ChainError as exc:
                raise cli.CliError(f"{t.wallet.wallet_id}: {exc}", "refused") from None
            state = submit(
                c, by_id[t.wallet.wallet_id], parsed, payload, who, key, "proof of reserves",
                args.expires_in,
            )  # fmt: skip
            submitted[(t.wallet.wallet_id, payload)] = str(state["request_id"])
        deadline = time.monotonic() + args.wait

        async def sign(ref: WalletRef, payload: bytes) -> Signed:
            rid = submitted[(ref.wallet_id, payload)]
            state = c.get(f"/v1/signing-requests/{rid}")
            while state["status"] in PENDING and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                state = c.get(f"/v1/signing-requests/{rid}")
            if state["status"] != "signed":
                why = state.get("error") or json.dumps(state.get("refusals", {}))
                code = "refused" if state["status"] in REFUSED else "not_signed"
                raise cli.CliError(
                    f"proof of control for {ref.wallet_id}: request {rid} {state['status']}: {why}",
                    code,
                )
            return Signed(rid, state["transaction"])

        try:
            doc = asyncio.run(
                prove(args.challenge, targets, sign, connectors, trees, int(time.time()))
            )
        except (ProofError, ChainError, ConnectorError) as exc:
            raise cli.CliError(str(exc), "proof_failed") from None
    finally:
        c.close()
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    inclusion_dir = args.inclusion_dir or args.out.with_name(args.out.name + ".customers")
    customers = write_inclusion_proofs(trees, inclusion_dir)
    return {
        "out": str(args.out),
        "addresses": len(doc["addresses"]),
        "reserves": doc["reserves"],
        "liabilities": {a: v["total"] for a, v in doc["liabilities"].items()},
        "inclusion_dir": str(inclusion_dir),
        "customers": customers,
    }


def verify_cmd(args: argparse.Namespace) -> dict[str, Any]:
    from tholos.reserves.balances import recheck
    from tholos.reserves.proof import verify

    cli = _cli()
    try:
        doc = json.loads(args.file.read_text())
        files = list(args.inclusion or [])
        if args.inclusion_dir:
            files += sorted(args.inclusion_dir.glob("*.json"))
        bodies = [json.loads(p.read_text()) for p in files]
    except (OSError, ValueError) as exc:
        raise cli.CliError(f"cannot read the proof: {exc}", "usage", 2) from None
    if not isinstance(doc, dict):
        raise cli.CliError("the proof is not a JSON object", "proof_invalid")
    report = verify(doc, bodies)
    report.errors += recheck(doc, _connectors(args))
    out = report.as_dict()
    if not report.ok:
        raise cli.CliError("; ".join(report.errors), "proof_invalid", **out)
    return out


def add_parsers(sub: Any, common: Common, client: MakeClient) -> None:
    """`tholos reserves prove|verify`."""
    reserves = sub.add_parser("reserves", help="proof of reserves: prove, verify")
    rsub = reserves.add_subparsers(dest="action", required=True)
    p = rsub.add_parser("prove", help="sign proofs of control, read balances, build the proof")
    common(p)
    p.add_argument("--challenge", required=True, help="the auditor's challenge (printable ASCII)")
    p.add_argument("--liabilities", required=True, type=Path, help="CSV customer_id,asset,amount")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--inclusion-dir", dest="inclusion_dir", type=Path)
    p.add_argument("--wallet", action="append", help="a wallet id (repeat; default: all)")
    p.add_argument("--index", action="append", type=int, help="address index (repeat; default 0)")
    _connector_arguments(p, "for balances")
    p.add_argument("--as", dest="as_user", help="initiator user id (key file D/users/USER.key)")
    p.add_argument("--key-file", type=Path, help="the initiator's Ed25519 key file (hex seed)")
    p.add_argument("--expires-in", dest="expires_in", type=int, default=3600, help="seconds")
    p.add_argument(
        "--wait", type=float, default=300.0, help="seconds to wait for every signature (approvals)"
    )
    p.set_defaults(fn=lambda a: prove_cmd(a, client))
    p = rsub.add_parser("verify", help="check a proof of reserves standalone")
    common(p, cluster=False)
    p.add_argument("file", type=Path)
    p.add_argument("--inclusion", action="append", type=Path, help="a customer's file (repeat)")
    p.add_argument("--inclusion-dir", dest="inclusion_dir", type=Path)
    _connector_arguments(p, "to re-read balances")
    p.set_defaults(fn=verify_cmd)


def reconcile_cmd(args: argparse.Namespace, client: MakeClient) -> dict[str, Any]:
    from tholos.reserves import ethereum_history
    from tholos.reserves.reconcile import SignedRequest, reconcile

    cli = _cli()
    if args.format == "csv" and args.json and not args.out:
        raise cli.CliError("--format csv prints CSV: give --out FILE to use --json", "usage", 2)
    if getattr(args, "from") > args.to:
        raise cli.CliError("--from is after --to", "usage", 2)
    c = client(args)
    try:
        shown = c.get(f"/v1/wallets/{args.wallet}")
        ref = ref_of(shown)
        if ref.chain != "ethereum" or not args.eth_rpc:
            raise cli.CliError(
                "reconciliation reads history from an Ethereum JSON-RPC node (--eth-rpc); "
                f"{ref.chain} history has no connector here yet",
                "usage",
                2,
            )
        signed = c.get("/v1/signing-requests", {"status": "signed", "limit": 1000})["requests"]
    finally:
        c.close()
    from tholos.connectors.ethereum import EthereumRpc

    chain = chain_for("ethereum")
    assert chain is not None
    addresses = [chain.address(ref, i).address for i in (args.index or [0])]
    rpc = EthereumRpc(args.eth_rpc)
    start, end = getattr(args, "from"), args.to
    try:
        moves = ethereum_history.movements(rpc, addresses, start, end)
        opening = ethereum_history.balance(rpc, addresses, start)
        closing = ethereum_history.balance(rpc, addresses, end)
        times = [
            int(str(rpc.call("eth_getBlockByNumber", hex(h), False)["timestamp"]), 16)
            for h in (start, end)
        ]
    except (ConnectorError, KeyError, TypeError) as exc:
        raise cli.CliError(f"history: {exc}", "unreachable") from None
    on_chain = {m.txid.lower() for m in moves}
    requests = []
    for s in signed:
        intent = s.get("intent", {})
        if intent.get("key_id") != shown["key_id"] or intent.get("chain") != "ethereum":
            continue
        q = SignedRequest.from_summary(s, "ETH")
        if q.txid.lower() in on_chain or times[0] <= int(intent.get("created_at", 0)) <= times[1]:
            requests.append(q)
    report = reconcile(ref.wallet_id, "ETH", (start, end), (opening, closing), moves, requests)
    out = report.as_dict()
    text = report.as_csv() if args.format == "csv" else json.dumps(out, indent=1) + "\n"
    if args.out:
        args.out.write_text(text)
        return {
            "out": str(args.out),
            "balances": report.balances,
            "lines": len(report.lines),
            "mismatches": out["mismatches"],
        }
    if args.format == "csv":
        print(text, end="")
        return {}
    return out


def add_report_parsers(sub: Any, common: Common, client: MakeClient) -> None:
    """`tholos report reconcile`."""
    report = sub.add_parser("report", help="reports: reconcile")
    rsub = report.add_subparsers(dest="action", required=True)
    p = rsub.add_parser(
        "reconcile", help="a wallet's opening, deposits, withdrawals, fees, closing over blocks"
    )
    common(p)
    p.add_argument("--wallet", required=True, help="wallet id")
    p.add_argument("--from", dest="from", type=int, required=True, help="first block height")
    p.add_argument("--to", type=int, required=True, help="last block height")
    p.add_argument("--format", choices=("json", "csv"), default="json")
    p.add_argument("--out", type=Path, help="write the report here")
    p.add_argument("--index", action="append", type=int, help="address index (repeat; default 0)")
    p.add_argument("--eth-rpc", dest="eth_rpc", help="Ethereum JSON-RPC URL")
    p.set_defaults(fn=lambda a: reconcile_cmd(a, client))
