"""The gateway's tables as versioned SQL migrations, the same on SQLite and PostgreSQL.

Each migration runs once, in order, in one transaction with its row in `schema_migrations`;
gateways starting at once on one PostgreSQL server take an advisory lock first, so exactly one
applies it. Version 1 is the schema the gateway created before migrations (`IF NOT EXISTS`: an
existing SQLite file adopts it unchanged). Append new versions; never edit an applied one."""

from __future__ import annotations

import time

from tholos.gateway.database import Database

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "keys, requests, wallets, idempotency, vault tokens, transit keys, governed requests",
        """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    scheme TEXT NOT NULL,
    label TEXT,
    public_key TEXT NOT NULL,
    package TEXT NOT NULL,
    meta TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    key_id TEXT,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS wallets (
    wallet_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    chain TEXT NOT NULL,
    network TEXT NOT NULL,
    address_type TEXT NOT NULL,
    created_at REAL NOT NULL,
    label TEXT
);
CREATE INDEX IF NOT EXISTS wallets_by_created ON wallets (created_at, wallet_id);
CREATE TABLE IF NOT EXISTS idempotency (
    client TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER,
    body BLOB,
    created REAL NOT NULL,
    PRIMARY KEY (client, key)
);
CREATE TABLE IF NOT EXISTS vault_tokens (
    accessor TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    identity TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS transit_keys (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS transit_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS signing_requests (
    request_id TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    approvals TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS governance_proposals (
    proposal_id TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    signatures TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    created REAL NOT NULL
)
""",
    ),
    (
        2,
        "approvals one row per (request, approver): gateways approving at once lose none",
        """
CREATE TABLE signing_approvals (
    request_id TEXT NOT NULL,
    approver TEXT NOT NULL,
    approval TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (request_id, approver)
)
""",
    ),
    (
        3,
        "signing claims: one gateway at a time signs a governed request (gateway/signing_claims.py)",
        """
CREATE TABLE signing_claims (
    request_id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    until REAL NOT NULL
)
""",
    ),
    (
        4,
        "the chain outbox: signed transactions until confirmed (gateway/outbox.py)",
        """
CREATE TABLE IF NOT EXISTS outbox (
    tx_hash TEXT PRIMARY KEY,
    chain TEXT NOT NULL,
    network TEXT NOT NULL,
    raw TEXT NOT NULL,
    encoding TEXT NOT NULL,
    request_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    nonce INTEGER,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt REAL NOT NULL,
    confirmations INTEGER NOT NULL,
    block INTEGER,
    settled INTEGER NOT NULL,
    lease_until REAL NOT NULL,
    last_error TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (settled, next_attempt);
CREATE INDEX IF NOT EXISTS outbox_by_nonce ON outbox (chain, network, sender, nonce);
CREATE INDEX IF NOT EXISTS outbox_by_request ON outbox (request_id);
""",
    ),
    (
        5,
        "ethereum nonces per (chain id, address), one holder each (gateway/nonces.py)",
        """
CREATE TABLE IF NOT EXISTS eth_nonces (
    request_id TEXT PRIMARY KEY,
    chain_id TEXT NOT NULL,
    address TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    state TEXT NOT NULL,
    replaces TEXT,
    expires_at REAL NOT NULL,
    created REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS eth_nonce_holder
    ON eth_nonces (chain_id, address, nonce) WHERE replaces IS NULL;
""",
    ),
    (
        6,
        "web console sessions, by the SHA-256 of their cookie token (gateway/console/sessions.py)",
        """
CREATE TABLE IF NOT EXISTS console_sessions (
    token_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    expires REAL NOT NULL
)
""",
    ),
)


def migrate(db: Database) -> list[int]:
    """Apply the migrations this database lacks; the versions applied now, in order."""
    applied: list[int] = []
    with db.transaction():
        db.advisory_lock()
        db.script(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
        )
        have = {int(r[0]) for r in db.execute("SELECT version FROM schema_migrations")}
        newest = max((v for v, _, _ in MIGRATIONS), default=0)
        if have and max(have) > newest:
            raise RuntimeError(
                f"the gateway database is at schema version {max(have)}, newer than this "
                f"gateway's {newest}: upgrade the gateway"
            )
        for version, name, ddl in MIGRATIONS:
            if version in have:
                continue
            db.script(ddl)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
            applied.append(version)
    return applied
