"""Strict JSON before any parse (gateway/request_body.py): limits hold on any document."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tholos.gateway.request_body import MAX_DEPTH, BadJson, check_json


def _nesting(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_nesting(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_nesting(x) for x in v), default=0)
    return 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_depth_limit_follows_nesting_not_brackets_in_strings(value: Any) -> None:
    body = json.dumps(value).encode()
    if _nesting(value) > MAX_DEPTH:
        with pytest.raises(BadJson):
            check_json(body)
    else:
        check_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b"[" * 33 + b"]" * 33,
        b'{"a": 1, "a": 2}',
        b"1" * 101,
        b"[NaN]",
        b"[1e999]",
        b'"\xff"',
        b"{",
    ],
)
def test_refused(body: bytes) -> None:
    with pytest.raises(BadJson):
        check_json(body)


def test_accepted() -> None:
    check_json(b"[" * 32 + b"]" * 32)
    check_json(
        b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "b": 1.5, "c": ' + b"9" * 100 + b"}"
    )
