"""Shared fixtures. Public test vectors are read from ../shared/vectors (never copied into the repo)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = Path(os.environ.get("THOLOS_VECTORS", ROOT.parent / "shared" / "vectors"))


def vector_path(*parts: str) -> Path:
    """Path of a public vector file; skips the calling test, naming the folder, when it is absent."""
    path = VECTORS_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"test vectors not found: {path} (expected ../shared/vectors beside the checkout)"
        )
    return path


def load_json_vector(*parts: str) -> Any:
    return json.loads(vector_path(*parts).read_text())
