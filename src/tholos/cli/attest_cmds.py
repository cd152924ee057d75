"""`tholos attest`: an operator checks one node's attestation with a challenge of their own, over
mutual TLS straight to the node (not through the gateway), before pinning its measurement or
adding it to a cluster: the identity key it answers with, the evidence verified, what it runs and
whether the given pins admit it."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tholos.attestation import (
    Attestation,
    AttestationError,
    NotPinned,
    PinListError,
    check_pinned,
)
from tholos.attestation.roots import VendorRoots
from tholos.attestation.session import Challenges, Session
from tholos.gateway.transport import GrpcNodeTransport, NodeRefused, NodeUnavailable
from tholos.rpc import node_pb2 as pb
from tholos.transport.tls import TlsFiles

TIMEOUT = 15.0
EXIT_REFUSED = 3


def _fail(message: str, code: str, exit_code: int = 1) -> Exception:
    from tholos.cli import CliError

    return CliError(message, code, exit_code)


def _tls(args: argparse.Namespace) -> TlsFiles:
    """The node-client certificate: given, or the cluster directory's gateway one."""
    if args.ca and args.cert and args.key:
        return TlsFiles(args.ca, args.cert, args.key)
    if args.ca or args.cert or args.key:
        raise _fail("--ca, --cert and --key go together", "usage", 2)
    from tholos.cli import _cluster_dir

    d = _cluster_dir(args)
    return TlsFiles(
        d / "ca" / "ca.pem", d / "gateway" / "node-client.pem", d / "gateway" / "node-client.key"
    )


def _address(args: argparse.Namespace) -> str:
    if args.address:
        return str(args.address)
    from tholos.cli import _cluster_dir

    manifest = json.loads((_cluster_dir(args) / "cluster.json").read_text())
    try:
        return str(manifest["node_addresses"][str(args.node)])
    except KeyError:
        raise _fail(f"node {args.node} is not in this cluster's manifest", "usage", 2) from None


async def _call(t: GrpcNodeTransport, op: str, body: Any) -> dict[str, Any]:
    req = pb.GovernanceRequest(op=op, payload=json.dumps(body).encode())
    out: dict[str, Any] = json.loads((await t.governance(req, TIMEOUT)).payload)
    return out


async def _attest(args: argparse.Namespace) -> dict[str, Any]:
    t = GrpcNodeTransport(args.node, _address(args), _tls(args))
    try:
        info = await t.info(TIMEOUT)
        mine = Challenges()
        node_challenge = bytes.fromhex((await _call(t, "attest_challenge", {}))["challenge"])
        session = Session({info.node_id: node_challenge}, mine.issue())
        reply = await _call(t, "attest", {"session": session.to_dict()})
        view = await _call(t, "attest_status", {})  # the node's own view of its peers
    except (NodeUnavailable, NodeRefused) as exc:
        raise _fail(f"node {args.node}: {exc}", "node_unavailable") from None
    finally:
        await t.close()
    mine.take(session.gateway)
    key = bytes(info.identity_public_key)
    if args.identity_key and bytes.fromhex(args.identity_key) != key:
        raise _fail(
            f"node answered with identity key {key.hex()}, not the expected {args.identity_key}",
            "wrong_identity",
            EXIT_REFUSED,
        )
    roots = VendorRoots(args.amd_ark, args.amd_ask, args.intel_pck_root)
    try:
        att = Attestation.from_dict(reply["attestation"])
        verified = roots.verifiers().verify(att, nonce=session.nonce(), node_public_key=key)
    except AttestationError as exc:
        raise _fail(
            f"attestation does not verify: {exc}", "attestation_refused", EXIT_REFUSED
        ) from None
    out: dict[str, Any] = {
        "node_id": info.node_id,
        "identity_public_key": key.hex(),
        "attestation": verified.to_dict(),
        "measurement": reply.get("measurement"),
        "pin": {
            "kind": verified.kind,
            "software_measurement": verified.software_measurement.hex(),
            **(
                {"launch_measurement": verified.launch_measurement.hex()}
                if verified.launch_measurement is not None
                else {}
            ),
        },
    }
    out["node_view"] = {"enforced": view.get("enforced"), "peers": view.get("peers", {})}
    if args.pins is not None:
        try:
            pins = json.loads(Path(args.pins).read_text())
            label = check_pinned(list(pins), verified).label
            out["pinned"], out["reason"] = True, label
        except (NotPinned, PinListError) as exc:
            out["pinned"], out["reason"] = False, str(exc)
        except (OSError, ValueError, TypeError) as exc:
            raise _fail(f"--pins {args.pins}: {exc}", "usage", 2) from None
    return out


def cmd_attest(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(_attest(args))


def add_commands(sub: Any, common: Callable[..., None]) -> None:
    p = sub.add_parser(
        "attest",
        help="check one node's attestation with your own challenge (directly, mutual TLS)",
    )
    common(p)
    p.add_argument("--node", type=int, required=True, help="node id")
    p.add_argument("--address", help="host:port of the node (default: the cluster manifest's)")
    p.add_argument("--identity-key", help="hex Ed25519 key the node must answer with")
    p.add_argument("--pins", type=Path, help="JSON list of allowed measurements to check against")
    p.add_argument("--amd-ark", type=Path, help="pinned AMD ARK (PEM), to verify SEV-SNP")
    p.add_argument("--amd-ask", type=Path, help="pinned AMD ASK (PEM), to verify SEV-SNP")
    p.add_argument("--intel-pck-root", type=Path, help="pinned Intel root (PEM), to verify TDX")
    p.set_defaults(fn=cmd_attest)
