"""The plaintext inside an age payload: a tar of `secrets.json` and the node's (or cluster's)
files, built and read in memory only. Nonces and presignatures are never part of it: they are
single-use, and a restored copy could be used twice."""

from __future__ import annotations

import io
import sqlite3
import tarfile
from pathlib import Path

from tholos.backup.errors import BackupError

SECRETS = "secrets.json"
FILES = "files/"
SQLITE_SUFFIXES = (".db",)
SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".tmp", ".pid", ".log")


def sqlite_snapshot(path: Path) -> bytes:
    """A consistent copy of a live SQLite database (the online backup API), as bytes."""
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    dst = sqlite3.connect(":memory:")
    try:
        src.backup(dst)
        return bytes(dst.serialize())
    finally:
        src.close()
        dst.close()


def collect(root: Path, skip: set[str]) -> dict[str, bytes]:
    """Every regular file under `root` by relative path, but `skip` (relative paths or top-level
    directory names) and transient files; SQLite databases as consistent snapshots."""
    out: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or rel in skip or rel.split("/")[0] in skip:
            continue
        if rel.endswith(SKIP_SUFFIXES):
            continue
        out[rel] = sqlite_snapshot(p) if rel.endswith(SQLITE_SUFFIXES) else p.read_bytes()
    return out


def pack(secrets_json: bytes, files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(SECRETS, secrets_json), *((FILES + k, v) for k, v in files.items())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def unpack(data: bytes, where: str) -> tuple[bytes, dict[str, bytes]]:
    """(secrets.json, {relative path: bytes}); refuses paths that would leave the target."""
    files: dict[str, bytes] = {}
    secrets_json: bytes | None = None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for m in tar.getmembers():
                f = tar.extractfile(m) if m.isfile() else None
                if f is None:
                    raise BackupError(f"{where}: payload entry {m.name!r} is not a file")
                if m.name == SECRETS:
                    secrets_json = f.read()
                    continue
                rel = m.name.removeprefix(FILES)
                parts = Path(rel).parts
                if not m.name.startswith(FILES) or Path(rel).is_absolute() or ".." in parts:
                    raise BackupError(f"{where}: payload entry {m.name!r} is not allowed")
                files[rel] = f.read()
    except tarfile.TarError as exc:
        raise BackupError(f"{where}: payload is not a readable archive ({exc})") from None
    if secrets_json is None:
        raise BackupError(f"{where}: payload has no {SECRETS}")
    return secrets_json, files
