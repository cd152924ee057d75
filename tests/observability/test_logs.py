"""Log setup: JSON lines carrying the bound request id; bad settings named; request ids checked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from tholos.observability import logs


@pytest.fixture
def configured() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs.use_stdlib()
    structlog.contextvars.clear_contextvars()


def test_json_lines_carry_request_id(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("gateway", fmt="json", level="INFO")
    with logs.bind_request_id("req-1"):
        logging.getLogger("tholos.gateway").info("plain %s", "stdlib")
        logs.get_logger("tholos.gateway.http").info("request", status=200)
    logging.getLogger("tholos.gateway").info("after")
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [x["event"] for x in lines] == ["plain stdlib", "request", "after"]
    assert [x.get("request_id") for x in lines] == ["req-1", "req-1", None]
    assert lines[1]["status"] == 200 and lines[1]["process"] == "gateway"
    assert {"timestamp", "level", "logger"} <= set(lines[0])


def test_text_format_is_default(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs.log_format({}) == "text"
    logs.configure("node", fmt=logs.log_format({}), level="INFO")
    with logs.bind_request_id("abc"):
        logging.getLogger("tholos.node").warning("refused")
    err = capsys.readouterr().err
    assert "refused" in err and "request_id=abc" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])


def test_unconfigured_events_go_to_stdlib(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO), logs.bind_request_id("r-9"):
        logs.get_logger("tholos.gateway.http").info("request", status=201)
    assert capsys.readouterr().out == ""  # not structlog's print-to-stdout default
    (rec,) = [r for r in caplog.records if r.name == "tholos.gateway.http"]
    assert rec.msg == {"event": "request", "status": 201, "request_id": "r-9"}


def test_bad_format_named() -> None:
    with pytest.raises(ValueError, match="THOLOS_LOG_FORMAT must be one of json, text, not 'xml'"):
        logs.log_format({"THOLOS_LOG_FORMAT": "xml"})


@given(st.text(max_size=80))
def test_request_id_accepts_only_safe_tokens(value: str) -> None:
    got = logs.valid_request_id(value)
    safe = 0 < len(value) <= 64 and all(c.isascii() and (c.isalnum() or c in "._:-") for c in value)
    assert got == (value if safe else None)


def test_new_request_ids_are_valid_and_distinct() -> None:
    ids = {logs.new_request_id() for _ in range(100)}
    assert len(ids) == 100 and all(logs.valid_request_id(i) == i for i in ids)


def test_levels_per_logger(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs.log_levels("warning") == ("WARNING", {})
    assert logs.log_levels("INFO, tholos.node.rpc=debug") == ("INFO", {"tholos.node.rpc": "DEBUG"})
    rpc = logging.getLogger("tholos.node.rpc")
    try:
        logs.configure("node", fmt="json", level="WARNING,tholos.node.rpc=DEBUG")
        logs.get_logger("tholos.node.rpc").debug("rpc", method="sign_batch")
        logs.get_logger("tholos.node").info("not shown")
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
        assert [(x["event"], x["level"]) for x in lines] == [("rpc", "debug")]
    finally:
        rpc.setLevel(logging.NOTSET)


@pytest.mark.parametrize("spec", ["LOUD", "INFO,=DEBUG", "INFO,tholos.node=LOUD", ""])
def test_bad_levels_named(spec: str) -> None:
    with pytest.raises(ValueError, match=r"THOLOS_LOG: .* is not LEVEL or logger=LEVEL"):
        logs.log_levels(spec)


def test_bound_request_id_nests_and_restores() -> None:
    assert logs.current_request_id() is None
    with logs.bind_request_id("outer"):
        with logs.bind_request_id("inner"):
            assert logs.current_request_id() == "inner"
            assert structlog.contextvars.get_contextvars()["request_id"] == "inner"
        with logs.bind_request_id(None):
            assert logs.current_request_id() == "outer"
        assert structlog.contextvars.get_contextvars()["request_id"] == "outer"
    assert logs.current_request_id() is None
    assert "request_id" not in structlog.contextvars.get_contextvars()
