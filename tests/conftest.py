"""Shared fixtures. Public test vectors are read from ../shared/vectors (never copied into the repo)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = Path(os.environ.get("THOLOS_VECTORS", ROOT.parent / "shared" / "vectors"))


def in_ci() -> bool:
    """True under a CI runner (`CI=true`, as GitHub Actions, GitLab and most others set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def vector_path(*parts: str) -> Path:
    """Path of a public vector file. When it is absent the calling test is skipped with a message
    naming the folder, except under CI (`CI=true`), where it fails: a CI run without the vectors
    must not be green with every published-vector test skipped."""
    path = VECTORS_DIR.joinpath(*parts)
    if not path.exists():
        why = f"test vectors not found: {path} (expected ../shared/vectors beside the checkout)"
        if in_ci():
            pytest.fail(f"{why}; CI=true, so a missing vector is a failure", pytrace=False)
        pytest.skip(why)
    return path


def load_json_vector(*parts: str) -> Any:
    return json.loads(vector_path(*parts).read_text())


@pytest.fixture(scope="session")
def postgres_server() -> Any:
    """A real PostgreSQL server for the session (tests/postgres.py); skipped without the
    binaries, a failure under CI."""
    from tests.postgres import PostgresServer, require_bindir

    server = PostgresServer(require_bindir())
    server.start()
    yield server
    server.remove()
