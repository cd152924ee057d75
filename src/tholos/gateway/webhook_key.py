"""The gateway's webhook signing key: an Ed25519 seed in a key file of its own (hex, 0600, the
gateway user's; `monitor.webhook_key` in gateway.json, `webhook.key` beside the database by
default), created on first start. It is never in `monitor.db`, so a copied database cannot forge
notifications; a database from before holds the seed in a `webhook_key` row, which is moved to
the file (same public key) and erased from the database's pages.

Rotation (`POST /v1/webhooks/key/rotate`, `tholos webhooks rotate-key`) writes a new seed over
the file and lists the old public key (public keys only) in monitor.db for a grace period, so
receivers accept both while they fetch the new one.

A key file rather than a seed sealed in the database under a key file: sealing would still need
a key file exactly as secret, and would only add a second place the key can be lost from.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path

from nacl.signing import SignedMessage, SigningKey, VerifyKey

from tholos.transport.private_files import OpenSecretFile, check_private

KEY_FILE = "webhook.key"
RETIRED = """CREATE TABLE IF NOT EXISTS webhook_retired_keys (
    public_key TEXT PRIMARY KEY, retired_at REAL NOT NULL, until REAL NOT NULL
)"""
MAX_GRACE = 90 * 86_400.0
REFUSAL = "the gateway does not start with a webhook key others can read"


class WebhookKeyError(Exception):
    """The webhook key cannot be used: its file is open to others, unreadable, or disagrees
    with the seed an old monitor.db holds."""


class WebhookKey:
    """The signing key both of a gateway's `Webhooks` (routes and polling thread) use."""

    def __init__(self, path: Path, key: SigningKey) -> None:
        self.path = path
        self._key = key
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WebhookKey({self.path}, public_key={bytes(self.verify_key).hex()})"

    @property
    def verify_key(self) -> VerifyKey:
        return self._key.verify_key

    def sign(self, message: bytes) -> SignedMessage:
        with self._lock:
            return self._key.sign(message)

    def rotate(self, db: sqlite3.Connection, grace: float, now: float) -> None:
        """A new seed in the key file; the old public key listed until `now + grace`. The old
        key is listed before the file changes: a crash in between leaves it listed, not lost."""
        if not 0 <= grace <= MAX_GRACE:
            raise ValueError(f"grace_seconds: from 0 to {int(MAX_GRACE)}")
        with self._lock:
            old = bytes(self._key.verify_key).hex()
            db.execute(RETIRED)
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO webhook_retired_keys VALUES (?,?,?)",
                    (old, now, now + grace),
                )
            new = SigningKey.generate()
            _replace(self.path, bytes(new))
            self._key = new


def retired(db: sqlite3.Connection, now: float) -> list[dict[str, object]]:
    """Public keys rotated out and still in their grace period, newest first."""
    db.execute(RETIRED)
    rows = db.execute(
        "SELECT public_key, retired_at, until FROM webhook_retired_keys WHERE until > ? "
        "ORDER BY retired_at DESC",
        (now,),
    ).fetchall()
    return [{"public_key": r[0], "retired_at": r[1], "until": r[2]} for r in rows]


def open_key(path: Path, db: sqlite3.Connection) -> WebhookKey:
    """The key in `path` (created if absent), after moving an old database's seed row into it."""
    try:
        check_private(path, REFUSAL, owner=True)
    except OpenSecretFile as exc:
        raise WebhookKeyError(str(exc)) from None
    legacy = _legacy_seed(db)
    if path.exists():
        seed = _read(path)
        if legacy is not None and legacy != seed:
            raise WebhookKeyError(
                f"{path} and the webhook_key row of monitor.db hold different keys: keep the one "
                "receivers trust (delete the other) and start again"
            )
    else:
        seed = legacy if legacy is not None else bytes(SigningKey.generate())
        _write_new(path, seed)
    if legacy is not None:
        _erase_legacy(db)
    return WebhookKey(path, SigningKey(seed))


def _read(path: Path) -> bytes:
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise WebhookKeyError(
            f"{path}: not a webhook key file ({exc.__class__.__name__})"
        ) from None
    if len(seed) != 32:
        raise WebhookKeyError(f"{path}: a webhook key file holds 32 bytes in hex")
    return seed


def _write_new(path: Path, seed: bytes) -> None:
    """Create the key file 0600, never over an existing one (two gateways starting at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise WebhookKeyError(
            f"{path} appeared while the gateway created it: start again"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")


def _replace(path: Path, seed: bytes) -> None:
    """Write the key file anew, atomically (a temporary file 0600, then renamed over it)."""
    tmp = path.with_name(path.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _legacy_seed(db: sqlite3.Connection) -> bytes | None:
    with contextlib.suppress(sqlite3.OperationalError):  # no such table: nothing to move
        row = db.execute("SELECT seed FROM webhook_key").fetchone()
        if row is not None and row[0] is not None:
            return bytes(row[0])
    return None


def _erase_legacy(db: sqlite3.Connection) -> None:
    """Drop the seed row so that no page of monitor.db (nor its WAL) keeps the bytes."""
    db.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left as they were
    with db:
        db.execute("DELETE FROM webhook_key")
        db.execute("DROP TABLE webhook_key")
    db.execute("VACUUM")  # rewrites every page
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no old page version left in the WAL
