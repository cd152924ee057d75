"""`make run`: initialise (once) and start a local, governed 4-node, threshold-2 cluster and the
gateway; then, as its users would: create a Solana wallet, submit a transfer as the initiator,
approve it as the approvers the policy asks for (every node verifies each approval itself), verify
the signed transaction independently (libsodium), and reject a second transfer as an approver
(every node refuses it from then on). Prints how to open the web console.

    python -m tholos.demo [--dir run/local] [--nodes 4] [--threshold 2]

Demo users' Ed25519 key files are in D/users/ (0600; in production each person makes their own
and only public keys reach the cluster). Nothing is broadcast: the wallet is on Solana localnet
and the transaction names a made-up recent blockhash.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from tholos.chains.registry import chain_for
from tholos.chains.solana import system_transfer, unsigned
from tholos.chains.wallet_kinds import ref_of
from tholos.client import ApiError, Client
from tholos.cluster import procs
from tholos.cluster.governance_init import user_key_file
from tholos.cluster.layout import ClusterDir, init_cluster
from tholos.governance import Intent, SigningRequest, new_request, read_user_key
from tholos.governance.transactions import declare
from tholos.transport.pki import write_private

BLOCKHASH = "4uQeVj5tqViQh7yWWGStvkEG1Zmhx6uasJtWCJziofM"  # made up: nothing is broadcast
DESTINATION = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
LARGE = 20_000  # above 10,000: the genesis rule "large" asks 2 from treasury and 1 from risk
SMALL = 5_000  # up to 10,000: "standard", one from treasury
APPROVERS = ("approver-1", "approver-2", "risk-1")


def console_certificate(cd: ClusterDir) -> tuple[Path, Path]:
    """The API client certificate as a PKCS#12 file a browser imports (the console sits behind
    the same client-certificate gate as the API), and the file holding its password."""
    p12, password = cd.root / "client" / "console.p12", cd.root / "client" / "console.p12.password"
    if p12.exists() and password.exists():
        return p12, password
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    tls = cd.client_tls
    key = load_pem_private_key(tls.key.read_bytes(), None)
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise TypeError(f"{tls.key}: not a key a PKCS#12 file holds")
    cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    secret = secrets.token_urlsafe(12)
    blob = pkcs12.serialize_key_and_certificates(
        b"tholos console",
        key,
        cert,
        None,
        BestAvailableEncryption(secret.encode()),
    )
    write_private(password, secret.encode())
    write_private(p12, blob)
    return p12, password


def transfer(c: Client, cluster_id: str, wallet: dict[str, Any], amount: int, root: Path) -> str:
    """Submit a Solana transfer as the initiator (signed with D/users/initiator.key): the
    intent is the chain package's own parse of the unsigned transaction. Returns its id."""
    ref = ref_of(wallet)
    payer = Pubkey.from_bytes(ref.public_key)
    payload = unsigned(
        payer,
        [system_transfer(payer, Pubkey.from_string(DESTINATION), amount)],
        Hash.from_string(BLOCKHASH),
    )
    chain = chain_for(ref.chain)
    assert chain is not None
    now = int(time.time())
    intent = Intent(
        request_id=f"demo-{secrets.token_hex(8)}",
        initiator="initiator",
        key_id=str(wallet["key_id"]),
        chain=ref.chain,
        memo="make run",
        created_at=now,
        expires_at=now + 3600,
        transaction=declare(chain.parse(ref, payload).intent, ref.address_type),
    )
    key = read_user_key(user_key_file(root, "initiator"))
    req: SigningRequest = new_request(cluster_id, intent, payload, key)
    c.post("/v1/signing-requests", {"request": req.model_dump(mode="json"), "approvals": []})
    return intent.request_id


def verify_solana(state: dict[str, Any], wallet: dict[str, Any]) -> bool:
    """libsodium checks the transaction's signature under the wallet's key over its message."""
    signed = Transaction.from_bytes(base64.b64decode(state["transaction"]["raw"]))
    payer = bytes(signed.message.account_keys[0])
    if payer != bytes.fromhex(wallet["public_key"]):
        return False
    try:
        VerifyKey(payer).verify(bytes(signed.message), bytes(signed.signatures[0]))
    except BadSignatureError:
        return False
    return bool(str(signed.signatures[0]) == state["transaction"]["txid"])


def _status(state: dict[str, Any]) -> str:
    """The state, and what an awaiting request still needs ("needs 1 more from risk")."""
    why = str(state.get("error") or "").split(" (rule:")[0].removeprefix("approvals: ")
    return f"{state['status']}: {why}" if why and state["status"] != "signed" else state["status"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tholos.cluster.demo")
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("THOLOS_DIR") or "run/local"))
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--threshold", type=int, default=2)
    args = ap.parse_args(argv)
    cd = ClusterDir(args.dir)
    if not cd.manifest.exists():
        init_cluster(args.dir, args.nodes, args.threshold, governance=True)
        print(
            f"initialised a governed {args.nodes}-node, threshold-{args.threshold} cluster in "
            f"{args.dir} (demo users' key files: {args.dir}/users/*.key)"
        )
    manifest = cd.load()
    gov = manifest.get("governance", {})
    if gov.get("mode") != "governed":
        print(
            f"{args.dir} holds a cluster without governance (from an older `make run`); the demo "
            f"needs a governed one: `make stop`, remove {args.dir}, then `make run` again",
            file=sys.stderr,
        )
        return 2
    up = procs.up(cd, wait=120)
    url = up["gateway"]
    print(f"gateway: {url}  (nodes up: {up['health']['nodes_up']}/{up['health']['nodes']})")
    c = Client(url, cd.client_tls)
    try:
        wallet = c.post("/v1/wallets", {"chain": "solana", "network": "localnet", "label": "demo"})
        print(f"wallet:    {wallet['wallet_id']} (solana localnet) address {wallet['address']}")
        rid = transfer(c, str(gov["cluster_id"]), wallet, LARGE, cd.root)
        state = c.get(f"/v1/signing-requests/{rid}")
        print(f"transfer:  {LARGE} lamports to {DESTINATION}: request {rid}, {_status(state)}")
        for user in APPROVERS:
            key = read_user_key(user_key_file(cd.root, user))
            state = c.approve_request(rid, user, key).model_dump()
            print(f"  approved by {user}: {_status(state)}")
        if state["status"] != "signed":
            return 1
        state = c.get(f"/v1/signing-requests/{rid}")
        ok = verify_solana(state, wallet)
        txid = state["transaction"]["txid"]
        print(f"signed transaction {txid} (signers {state['signers']}; not broadcast)")
        print(f"independent Ed25519 verification (libsodium): {'VALID' if ok else 'INVALID'}")

        other = transfer(c, str(gov["cluster_id"]), wallet, SMALL, cd.root)
        key = read_user_key(user_key_file(cd.root, "approver-2"))
        rejected = c.reject_request(other, "approver-2", key)
        ok = ok and rejected.status == "rejected"
        try:
            approval_key = read_user_key(user_key_file(cd.root, "approver-1"))
            c.approve_request(other, "approver-1", approval_key)
            after, ok = "accepted (it should not be)", False
        except ApiError as exc:
            after = f"refused ({exc.status} {exc.code})"
        print(
            f"rejected:  request {other} ({SMALL} lamports) by approver-2: {rejected.status}; "
            f"approver-1's approval after it: {after}"
        )
        out = {"wallet_id": wallet["wallet_id"], "signed": rid, "txid": txid, "valid": ok}
        print(json.dumps({**out, "rejected": other, "rejected_status": rejected.status}))
        p12, password = console_certificate(cd)
        print(f"web console: {url}/console")
        print(
            f"  1. import the client certificate {p12} into the browser (password in "
            f"{password}); the gateway's certificate is issued by {cd.root / 'ca' / 'ca.pem'}"
        )
        print(
            f"  2. log in as a user with their key file, e.g. initiator: "
            f"{user_key_file(cd.root, 'initiator')} (also approver-1, approver-2, risk-1, "
            "admin-1..3, auditor)"
        )
        print(f"stop the cluster with: make stop  (or: tholos cluster down --dir {args.dir})")
        return 0 if ok else 1
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
