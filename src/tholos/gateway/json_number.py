"""Whole JSON numbers for strict request models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def _whole(v: Any) -> Any:
    """JSON Schema counts 2.0 as an integer: take it as 2 (but never "2" or true)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


JsonInt = Annotated[int, BeforeValidator(_whole)]
"""An integer field of a strict model: whole JSON numbers only."""


WHOLE = BeforeValidator(_whole)  # place it after Field(ge, le) in an Annotated int (see below)


def bounded_int(ge: int, le: int) -> Any:
    """A JsonInt within [ge, le]. The bounds come before the validator: after it, pydantic writes
    them into the JSON schema as "ge"/"le" instead of minimum/maximum (so no client sees them)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_whole)]
