"""FROST signing on the node (bip340, ed25519, secp256k1): pre-shared nonces, one round trip.

The node pre-shares nonce commitments (`Commitments` RPC: generated, sealed and stored in batches
by the vault), so a signature needs one round trip: a `SignBatch` whose every item names the
commitment of each signer. Every item is checked (key, epoch, this node's commitment, the scheme's
request checks, the vault's policy hook) before anything is consumed; the accepted items' nonces
are deleted in one committed transaction before any share is computed (node/vault.py), so a nonce
is used at most once even across a crash. Plain and governed batches go through the node's
`NodeGovernance.sign_batch`, as every other scheme's items do (node/governed_signing.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tholos.node.rounds import SchemeProtocol
from tholos.node.vault import ShareResult
from tholos.rpc import node_pb2 as pb
from tholos.schemes import GROUP_NAMES, SignerCommitment, SigningRequest
from tholos.transport.refusal import RequestRefused

log = logging.getLogger("tholos.node")
MAX_COMMITMENTS_PER_CALL = 10_000
MAX_SIGN_ITEMS = 10_000


class FrostSigner(SchemeProtocol):
    """`frost-sign`: the `Commitments` and `SignBatch` RPCs."""

    name = "frost-sign"
    rpc = "SignBatch"

    def commitments(self, req: pb.CommitmentsRequest, pool_max: int) -> pb.CommitmentsReply:
        """`count` fresh nonce commitments of one pool; a pool above `pool_max` is trimmed."""
        if req.group not in GROUP_NAMES:
            raise RequestRefused(f"unknown group {req.group!r}")
        if not 0 < req.count <= MAX_COMMITMENTS_PER_CALL:
            raise RequestRefused(f"count must be in 1..{MAX_COMMITMENTS_PER_CALL}")
        vault, store = self.node.vault, self.node.store
        out = vault.generate_nonces(req.group, req.count)
        if store.count_nonces().get(req.group, 0) > pool_max:
            # Unused nonces the gateway forgot (e.g. it restarted); deleting them is always safe.
            store.trim_nonces(req.group, pool_max)
        return pb.CommitmentsReply(
            commitments=[pb.Commitment(nonce_id=i, hiding=h, binding=b) for i, h, b in out]
        )

    def sign_batch(self, req: pb.SignBatchRequest) -> pb.SignBatchReply:
        """One share per item (or its refusal), in item order."""
        if len(req.items) > MAX_SIGN_ITEMS:
            raise RequestRefused(f"at most {MAX_SIGN_ITEMS} items per batch")
        if len({it.request_id for it in req.items}) != len(req.items):
            raise RequestRefused("duplicate request ids in batch")
        requests = [
            SigningRequest(
                request_id=it.request_id,
                key_id=it.key_id,
                message=it.message,
                path=it.path,
                taproot=it.taproot,
                merkle_root=it.merkle_root if it.merkle_root else None,
                commitments={
                    c.signer: SignerCommitment(c.nonce_id, c.hiding, c.binding)
                    for c in it.commitments
                },
            )
            for it in req.items
        ]
        epochs = {it.request_id: it.epoch for it in req.items}
        vault = self.node.vault

        def sign(rs: Sequence[SigningRequest]) -> list[ShareResult]:
            return vault.sign_batch(rs, epochs)

        gov = self.node.governance
        results = gov.sign_batch(req.items, requests, sign) if gov is not None else sign(requests)
        for r in results:
            if r.error:
                log.warning("refused to sign %s: %s", r.request_id, r.error)
        return pb.SignBatchReply(
            results=[
                pb.SignResult(request_id=r.request_id, share=r.share, error=r.error)
                for r in results
            ]
        )
