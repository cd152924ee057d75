"""Whole JSON numbers for strict request models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _whole(v: Any) -> Any:
    """JSON Schema counts 2.0 as an integer: take it as 2 (but never "2" or true)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


JsonInt = Annotated[int, BeforeValidator(_whole)]
"""An integer field of a strict model: whole JSON numbers only."""
