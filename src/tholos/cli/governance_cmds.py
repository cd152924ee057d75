"""CLI of governance: `tholos users|policy|requests|killswitch|audit ...`, all over the REST API,
and `tholos genesis show|sign|finalize` on the files of a cluster being initialised.

Every signature is made HERE with the user's own key file (`--as NAME` reads D/users/NAME.key,
written by `cluster init` for the demo; `--key-file F` any other, e.g. from `tholos users
keygen`); the gateway and the nodes only ever see public keys and signatures. `--json` everywhere.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.audit import Checkpoint, cross_check, released_signatures, verify_chain
from tholos.governance import (
    GovernanceDocument,
    KillSwitchEngage,
    Policy,
    SignedDocument,
    SigningRequest,
    User,
    approve,
    read_user_key,
    sign_cancellation,
    sign_document,
    sign_kill_switch,
)
from tholos.governance.rejections import reject
from tholos.governance.request_builder import build_request

Common = Callable[..., None]
EXIT_AUDIT = 4


def _cli() -> Any:
    import tholos.cli as cli

    return cli


def _key(args: argparse.Namespace) -> tuple[str, Ed25519PrivateKey]:
    from tholos.cluster.governance_init import user_key_file

    cli = _cli()
    who = getattr(args, "as_user", None)
    if getattr(args, "key_file", None):
        if not who:
            raise cli.CliError("--key-file needs --as USER_ID", "usage", 2)
        return who, read_user_key(args.key_file)
    if not who:
        raise cli.CliError("name the signing user: --as USER_ID", "usage", 2)
    path = user_key_file(cli._cluster_dir(args), who)
    if not path.exists():
        raise cli.CliError(f"no key file {path} (use --key-file)", "usage", 2)
    return who, read_user_key(path)


def _state(c: Any) -> dict[str, Any]:
    st: dict[str, Any] = c.get("/v1/governance")
    if st.get("document") is None:
        raise _cli().CliError("this cluster runs without governance", "no_governance")
    return st


def _current(c: Any) -> SignedDocument:
    return SignedDocument.model_validate_json(json.dumps(_state(c)["document"]))


def _next(current: SignedDocument, **changes: Any) -> GovernanceDocument:
    doc = current.document
    fields: dict[str, Any] = {
        "kind": "governance",
        "cluster_id": doc.cluster_id,
        "version": doc.version + 1,
        "prev_hash": doc.digest().hex(),
        "issued_at": int(time.time()),
        "users": doc.users,
        "admin_quorum": doc.admin_quorum,
        "policy": doc.policy,
    }
    fields.update(changes)
    return GovernanceDocument(**fields)


def _propose(c: Any, args: argparse.Namespace, doc: GovernanceDocument) -> dict[str, Any]:
    who, key = _key(args)
    sig = sign_document(doc, who, key)
    body = {
        "document": doc.model_dump(mode="json"),
        "signatures": [sig.model_dump(mode="json")],
    }
    r: dict[str, Any] = c.post("/v1/governance/proposals", body)
    return _proposal_out(r)


def _proposal_out(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "proposal_id": r["proposal_id"],
        "version": r["document"]["version"],
        "status": r["status"],
        "signers": [s["signer"] for s in r["signatures"]],
        "adopted_by": r.get("detail", {}).get("adopted_by", 0),
    }


# -- users ---------------------------------------------------------------------------------------
def cmd_users(args: argparse.Namespace) -> dict[str, Any]:
    if args.action == "keygen":
        from tholos.cluster.governance_init import create_user_key

        public, pub_file = create_user_key(args.out)
        return {"key_file": str(args.out), "public_key": public, "public_key_file": str(pub_file)}
    c = _cli()._client(args)
    try:
        current = _current(c)
        users = list(current.document.users)
        if args.action == "list":
            return {
                "version": current.document.version,
                "admin_quorum": current.document.admin_quorum,
                "users": [u.model_dump(mode="json") for u in users],
            }
        if args.action == "add":
            new = User(
                user_id=args.user_id,
                public_key=args.public_key,
                roles=tuple(sorted(set(args.roles.split(",")))),
                groups=tuple(sorted(set(args.groups.split(",")))) if args.groups else (),
            )
            users = [u for u in users if u.user_id != new.user_id] + [new]
        elif args.action == "remove":
            users = [u for u in users if u.user_id != args.user_id]
        return _propose(c, args, _next(current, users=tuple(users)))
    finally:
        c.close()


# -- genesis -------------------------------------------------------------------------------------
def cmd_genesis(args: argparse.Namespace) -> dict[str, Any]:
    """The genesis ceremony of admins who bring their own keys (see cluster/governance_init.py)."""
    from tholos.cluster import governance_init as gi

    cli = _cli()
    if args.action == "finalize":
        return gi.finalize_genesis(cli._cluster_dir(args))
    path = args.file or cli._cluster_dir(args) / gi.PROPOSAL_FILE
    if args.action == "show":
        return {"file": str(path), **gi.describe(gi.read_proposal(path))}
    out = gi.sign_genesis(path, read_user_key(args.key_file), args.as_user, args.digest)
    return {"file": str(path), **out}


# -- policy --------------------------------------------------------------------------------------
def cmd_policy(args: argparse.Namespace) -> dict[str, Any]:
    c = _cli()._client(args)
    try:
        if args.action == "show":
            st = _state(c)
            doc = st["document"]["document"]
            return {
                "version": doc["version"],
                "policy": doc["policy"],
                "kill_switch": {k: v.get("kill_switch") for k, v in st["nodes"].items()},
                "node_versions": st["versions"],
            }
        if args.action == "propose":
            current = _current(c)
            policy = Policy.model_validate_json(args.file.read_text())
            return _propose(c, args, _next(current, policy=policy))
        if args.action == "approve":
            prop = c.get(f"/v1/governance/proposals/{args.proposal_id}")
            doc = GovernanceDocument.model_validate_json(json.dumps(prop["document"]))
            who, key = _key(args)
            sig = sign_document(doc, who, key)
            r = c.post(
                f"/v1/governance/proposals/{args.proposal_id}/signatures",
                sig.model_dump(mode="json"),
            )
            return _proposal_out(r)
        if args.action == "proposals":
            return {
                "proposals": [
                    _proposal_out(p) for p in c.get("/v1/governance/proposals")["proposals"]
                ]
            }
    finally:
        c.close()
    raise _cli().CliError(f"unknown action {args.action}", "usage", 2)


# -- kill switch ---------------------------------------------------------------------------------
def cmd_killswitch(args: argparse.Namespace) -> dict[str, Any]:
    c = _cli()._client(args)
    try:
        current = _current(c)
        if args.action == "engage":
            who, key = _key(args)
            engage = KillSwitchEngage(
                cluster_id=current.document.cluster_id,
                governance_version=current.document.version,
                signer=who,
                issued_at=int(time.time()),
                reason=args.reason,
            )
            r = c.post("/v1/killswitch", sign_kill_switch(engage, key).model_dump(mode="json"))
            return {"engaged_on": r["engaged_on"], "nodes": r["nodes"]}
        return _propose(c, args, _next(current, release_kill_switch=True, note="release"))
    finally:
        c.close()


# -- requests ------------------------------------------------------------------------------------
def cmd_requests(args: argparse.Namespace) -> dict[str, Any]:
    c = _cli()._client(args)
    try:
        if args.action == "create":
            cluster_id = _current(c).document.cluster_id
            who, key = _key(args)
            req = build_request(
                cluster_id,
                who,
                key,
                key_id=args.key_id,
                chain=args.chain,
                asset=args.asset,
                destination=args.destination,
                amount=args.amount,
                data=bytes.fromhex(args.data),
                memo=args.memo,
                path=args.path,
                lifetime=args.expires_in,
                taproot=args.taproot_tweak,
                merkle_root=args.merkle_root.lower() if args.merkle_root else None,
            )
            r: dict[str, Any] = c.post(
                "/v1/signing-requests", {"request": req.model_dump(mode="json"), "approvals": []}
            )
            return r
        if args.action == "approve":
            shown = c.get(f"/v1/signing-requests/{args.request_id}")
            req = _fetch_request(c, shown)
            who, key = _key(args)
            if req.digest().hex() != shown["digest"]:
                raise _cli().CliError("request digest mismatch", "bad_request")
            appr = approve(req, who, key)
            out: dict[str, Any] = c.post(
                f"/v1/signing-requests/{args.request_id}/approvals",
                {"approval": appr.model_dump(mode="json")},
            )
            return out
        if args.action == "reject":
            shown = c.get(f"/v1/signing-requests/{args.request_id}")
            req = _fetch_request(c, shown)
            who, key = _key(args)
            if req.digest().hex() != shown["digest"]:
                raise _cli().CliError("request digest mismatch", "bad_request")
            rejected: dict[str, Any] = c.post(
                f"/v1/signing-requests/{args.request_id}/reject",
                {"rejection": reject(req, who, key).model_dump(mode="json")},
            )
            return rejected
        if args.action == "cancel":
            shown = c.get(f"/v1/signing-requests/{args.request_id}")
            body: dict[str, str] = {}
            if args.as_user or args.key_file:
                req = _fetch_request(c, shown)
                who, key = _key(args)
                body = {"user": who, "signature": sign_cancellation(req, key)}
            done: dict[str, Any] = c.post(f"/v1/signing-requests/{args.request_id}/cancel", body)
            return done
        if args.action == "list":
            params = {"status": args.status} if args.status else None
            lst: dict[str, Any] = c.get("/v1/signing-requests", params)
            return lst
        shown_: dict[str, Any] = c.get(f"/v1/signing-requests/{args.request_id}")
        return shown_
    finally:
        c.close()


def _fetch_request(c: Any, shown: dict[str, Any]) -> SigningRequest:
    """Rebuild the request an approver approves from what the gateway shows, then check it
    against the digest: the approver signs the digest of what they saw."""
    r = c.get(f"/v1/signing-requests/{shown['request_id']}/raw")
    return SigningRequest.model_validate_json(json.dumps(r["request"]))


# -- audit ---------------------------------------------------------------------------------------
def collect(args: argparse.Namespace) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Every node's chain (signed request as auditor when governed) and the gateway's."""
    from tholos.cluster.layout import ClusterDir
    from tholos.governance.audit_export import audit_export_message

    cli = _cli()
    cd = ClusterDir(cli._cluster_dir(args))
    manifest = cd.load()
    c = cli._client(args)
    try:
        body: dict[str, Any] = {"user": "", "issued_at": int(time.time()), "signature": "00" * 64}
        gov = manifest.get("governance", {})
        if gov.get("mode") == "governed":
            if not getattr(args, "as_user", None) and not getattr(args, "key_file", None):
                args.as_user = "auditor"
            who, key = _key(args)
            body["user"] = who
            msg = audit_export_message(str(gov["cluster_id"]), body["issued_at"])
            body["signature"] = key.sign(msg).hex()
        chains: dict[str, list[str]] = {}
        errors: dict[str, str] = {}
        nodes = c.post("/v1/audit/nodes", body)["nodes"]
        for i, rep in nodes.items():
            if "error" in rep:
                errors[f"node-{i}"] = str(rep["error"])
            else:
                chains[f"node-{i}"] = list(rep["lines"])
        chains["gateway"] = list(c.get("/v1/audit/gateway")["lines"])
    finally:
        c.close()
    return chains, {"manifest": manifest, "errors": errors, "dir": cd.root}


def cmd_audit(args: argparse.Namespace) -> dict[str, Any]:
    chains, ctx = collect(args)
    if args.action == "export":
        from tholos.audit.syslog import syslog_line

        out_dir: Path = args.out
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {}
        syslog = args.format == "syslog"
        for name, lines in chains.items():
            path = out_dir / f"{name}.{'log' if syslog else 'jsonl'}"
            rows = [syslog_line(name, line) for line in lines] if syslog else lines
            path.write_text("".join(row + "\n" for row in rows))
            files[name] = {"file": str(path), "lines": len(rows), "format": args.format}
        return {"exported": files, "errors": ctx["errors"]}
    return verify_collected(chains, ctx)


def verify_collected(chains: dict[str, list[str]], ctx: dict[str, Any]) -> dict[str, Any]:
    manifest = ctx["manifest"]
    keys = {f"node-{r['node_id']}": str(r["signing_key"]) for r in manifest["roster"]}
    keys["gateway"] = str(manifest["gateway_audit_public_key"])
    heads_file: Path = ctx["dir"] / "audit" / "heads.json"
    known: dict[str, Any] = json.loads(heads_file.read_text()) if heads_file.exists() else {}
    report: dict[str, Any] = {}
    verified = {}
    ok = not ctx["errors"]
    for name, lines in sorted(chains.items()):
        head = known.get(name)
        known_head = (
            Checkpoint(name, head["seq"], head["head_hash"], head["time"], head["signature"])
            if head
            else None
        )
        rep = verify_chain(lines, keys[name], node_id=name, known_head=known_head)
        report[name] = {
            "ok": rep.ok,
            "entries": len(rep.entries),
            "checkpoints": len(rep.checkpoints),
            "issues": [
                {"code": i.code, "seq": i.seq, "line": i.line, "detail": i.detail}
                for i in rep.issues
            ],
        }
        ok = ok and rep.ok
        if name != "gateway":
            verified[name] = rep.entries
        if rep.ok and rep.checkpoints:
            last = max(rep.checkpoints, key=lambda c: c.seq)
            known[name] = {
                "seq": last.seq,
                "head_hash": last.head_hash,
                "time": last.time,
                "signature": last.signature,
            }
    gw_lines = chains.get("gateway", [])
    gw_entries = verify_chain(gw_lines, keys["gateway"], node_id="gateway").entries
    shortfalls = cross_check(released_signatures(gw_entries), verified, int(manifest["threshold"]))
    out = {
        "ok": ok and not shortfalls,
        "chains": report,
        "unreachable": ctx["errors"],
        "cross_check": [
            {
                "request_id": s.request_id,
                "digest": s.digest,
                "logged_by": list(s.nodes),
                "needed": s.needed,
            }
            for s in shortfalls
        ],
    }
    if out["ok"]:
        heads_file.parent.mkdir(exist_ok=True)
        heads_file.write_text(json.dumps(known, indent=2))
        return out
    raise _cli().CliError(_describe(out), "audit_failed", EXIT_AUDIT, report=out)


def _describe(out: dict[str, Any]) -> str:
    parts = []
    for name, rep in out["chains"].items():
        for i in rep["issues"]:
            parts.append(f"{name}: {i['code']} at seq {i['seq']}: {i['detail']}")
    for name, err in out["unreachable"].items():
        parts.append(f"{name}: not collected: {err}")
    for s in out["cross_check"]:
        parts.append(
            f"signature for {s['request_id']} logged by {s['logged_by']}, needs {s['needed']}"
        )
    return "audit FAILED: " + "; ".join(parts)


# -- parser --------------------------------------------------------------------------------------
def _signer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as", dest="as_user", help="user id (key file D/users/USER.key)")
    p.add_argument("--key-file", type=Path, help="the user's Ed25519 key file (hex seed)")


def add_commands(sub: Any, common: Common) -> None:
    users = sub.add_parser("users", help="list users; propose adding or removing users")
    us = users.add_subparsers(dest="action", required=True)
    common(us.add_parser("list"))
    p = us.add_parser("add")
    common(p)
    _signer(p)
    p.add_argument("user_id")
    p.add_argument("--public-key", required=True, help="hex, Ed25519")
    p.add_argument("--roles", required=True, help="comma-separated: admin,initiator,...")
    p.add_argument("--groups", default="", help="comma-separated groups (treasury, risk...)")
    p = us.add_parser("remove")
    common(p)
    _signer(p)
    p.add_argument("user_id")
    p = us.add_parser("keygen", help="a new user key: FILE (0600, private) and FILE.pub")
    common(p, cluster=False)
    p.add_argument("--out", type=Path, required=True, help="the private key file to create")
    users.set_defaults(fn=cmd_users)

    gen = sub.add_parser("genesis", help="admins sign the genesis proposal of `cluster init`")
    gs = gen.add_subparsers(dest="action", required=True)
    for action, what in (
        ("show", "the proposal: digest, admins, quorum, signers"),
        ("sign", "add your admin signature (made here with your key file)"),
        ("finalize", "check the admin quorum and install the genesis on every node"),
    ):
        p = gs.add_parser(action, help=what)
        common(p, cluster=False)
        p.add_argument("--dir", type=Path, help="cluster directory (default $THOLOS_DIR)")
        if action != "finalize":
            p.add_argument(
                "--file", type=Path, help="the proposal (default D/genesis.proposal.json)"
            )
        if action == "sign":
            p.add_argument("--key-file", type=Path, required=True, help="your Ed25519 key file")
            p.add_argument("--as", dest="as_user", help="your admin name (checked against the key)")
            p.add_argument("--digest", help="sign only if the genesis digest is this (hex)")
    gen.set_defaults(fn=cmd_genesis)

    pol = sub.add_parser("policy", help="show, propose and approve policy documents")
    ps = pol.add_subparsers(dest="action", required=True)
    common(ps.add_parser("show"))
    common(ps.add_parser("proposals"))
    p = ps.add_parser("propose")
    common(p)
    _signer(p)
    p.add_argument("--file", type=Path, required=True, help="policy JSON")
    p = ps.add_parser("approve")
    common(p)
    _signer(p)
    p.add_argument("proposal_id")
    pol.set_defaults(fn=cmd_policy)

    req = sub.add_parser("requests", help="governed signing requests")
    rs = req.add_subparsers(dest="action", required=True)
    p = rs.add_parser("create")
    common(p)
    _signer(p)
    p.add_argument("--key-id", required=True, help="the key to sign with")
    p.add_argument("--chain", default="raw")
    p.add_argument("--asset", default="RAW")
    p.add_argument("--destination", required=True)
    p.add_argument("--amount", type=int, required=True)
    p.add_argument("--memo", default="")
    p.add_argument("--data", required=True, help="hex: the message to sign")
    p.add_argument("--path", default="m")
    p.add_argument(
        "--taproot-tweak", action="store_true", help="sign under the BIP341 output key (bip340)"
    )
    p.add_argument("--merkle-root", help="hex, 32 bytes: BIP341 script tree root (with the tweak)")
    p.add_argument("--expires-in", type=int, default=3600, help="seconds")
    p = rs.add_parser("approve")
    common(p)
    _signer(p)
    p.add_argument("request_id")
    p = rs.add_parser("reject", help="refuse a request for good (as one of its approvers)")
    common(p)
    _signer(p)
    p.add_argument("request_id")
    p = rs.add_parser("cancel", help="withdraw a request (as its initiator, or as an admin client)")
    common(p)
    _signer(p)
    p.add_argument("request_id")
    p = rs.add_parser("list")
    common(p)
    p.add_argument(
        "--status", help="created, reserved, awaiting-approval, signed, refused, rejected, ..."
    )
    p = rs.add_parser("show")
    common(p)
    p.add_argument("request_id")
    req.set_defaults(fn=cmd_requests)

    ks = sub.add_parser("killswitch", help="engage (one user) or propose a release (admin quorum)")
    kss = ks.add_subparsers(dest="action", required=True)
    p = kss.add_parser("engage")
    common(p)
    _signer(p)
    p.add_argument("--reason", default="")
    p = kss.add_parser("release")
    common(p)
    _signer(p)
    ks.set_defaults(fn=cmd_killswitch)

    au = sub.add_parser("audit", help="collect and verify every audit chain (auditor role)")
    aus = au.add_subparsers(dest="action", required=True)
    p = aus.add_parser("verify")
    common(p)
    _signer(p)
    p = aus.add_parser("export")
    common(p)
    _signer(p)
    p.add_argument(
        "--out", type=Path, required=True, help="directory for NAME.jsonl (or NAME.log) files"
    )
    p.add_argument(
        "--format",
        choices=("jsonl", "syslog"),
        default="jsonl",
        help="jsonl: the chains as verified; syslog: RFC 5424 lines carrying them (NAME.log)",
    )
    au.set_defaults(fn=cmd_audit)
