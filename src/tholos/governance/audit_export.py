"""What an auditor (or admin) signs to read a node's audit chain: the cluster and a fresh time."""

from __future__ import annotations

from tholos.governance._canonical import canonical_json, tagged_digest

AUDIT_EXPORT_TAG = b"tholos/audit-export/v1"


def audit_export_message(cluster_id: str, issued_at: int) -> bytes:
    """SHA-256 of "tholos/audit-export/v1" || 0 || canonical({cluster_id, issued_at})."""
    body = canonical_json({"cluster_id": cluster_id, "issued_at": issued_at})
    return tagged_digest(AUDIT_EXPORT_TAG, body)
