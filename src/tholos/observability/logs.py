"""Log setup for node and gateway processes: stdlib logging rendered by structlog, as JSON lines
(`THOLOS_LOG_FORMAT=json`) or text (default), each line carrying the request id bound for the
current request (`bind_request_id`), so one request can be followed from the gateway through
every node."""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog

REQUEST_ID_HEADER = "x-request-id"  # HTTP header (gateway) and gRPC metadata key (nodes)
FORMATS = ("json", "text")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def valid_request_id(value: str | None) -> str | None:
    """`value` if it is a usable request id (1-64 of letters, digits and `._:-`), else None: a
    caller-chosen id is echoed into logs and headers, so nothing else is accepted."""
    return value if value is not None and _REQUEST_ID.match(value) else None


def new_request_id() -> str:
    """128 random bits as 32 hex digits (a UUID object costs three times as much per request)."""
    return os.urandom(16).hex()


# the request id bound now, beside structlog's copy (read on every node RPC the gateway makes:
# structlog's own getter walks every context variable)
_REQUEST_ID_VAR: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tholos_request_id", default=None
)


def current_request_id() -> str | None:
    return _REQUEST_ID_VAR.get()


@contextmanager
def bind_request_id(request_id: str | None) -> Iterator[None]:
    """Every log line written inside the block (in this task, and in tasks it starts) carries
    `request_id`; None binds nothing."""
    if request_id is None:
        yield
        return
    bound = set_request_id(request_id)
    try:
        yield
    finally:
        reset_request_id(bound)


BoundRequestId = tuple[contextvars.Token[str | None], Mapping[str, contextvars.Token[Any]]]


def set_request_id(request_id: str) -> BoundRequestId:
    """`bind_request_id` without the context manager (the gateway's per-request path):
    `reset_request_id` with what this returns ends it."""
    return _REQUEST_ID_VAR.set(request_id), structlog.contextvars.bind_contextvars(
        request_id=request_id
    )


def reset_request_id(bound: BoundRequestId) -> None:
    structlog.contextvars.reset_contextvars(**bound[1])
    _REQUEST_ID_VAR.reset(bound[0])


def bind_node(node_id: int) -> None:
    """Every later log line of this context (and of `asyncio.run` started from it) names the
    node."""
    structlog.contextvars.bind_contextvars(node=node_id)


def log_format(env: dict[str, str] | None = None) -> str:
    """`THOLOS_LOG_FORMAT` (json or text; default text); ValueError names a bad value."""
    value = (os.environ if env is None else env).get("THOLOS_LOG_FORMAT", "text").lower()
    if value not in FORMATS:
        raise ValueError(f"THOLOS_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_levels(spec: str) -> tuple[str, dict[str, str]]:
    """`THOLOS_LOG`: a level, then optional `logger=LEVEL` pairs, comma-separated, e.g.
    `INFO,tholos.node.rpc=DEBUG` (one line per RPC and per REST request are DEBUG: see
    node/server.py and gateway/observe.py). ValueError names a bad part."""
    root, loggers = "INFO", {}
    for part in (p.strip() for p in spec.split(",")):
        name, sep, level = part.rpartition("=")
        level = level.strip().upper()
        if level not in LEVELS or (sep and not name.strip()):
            raise ValueError(
                f"THOLOS_LOG: {part!r} is not LEVEL or logger=LEVEL ({', '.join(LEVELS)})"
            )
        if sep:
            loggers[name.strip()] = level
        else:
            root = level
    return root, loggers


def configure(process: str, fmt: str | None = None, level: str | None = None) -> None:
    """Route every log record of this process (stdlib `logging` and structlog loggers) to
    stderr through structlog: JSON lines or text, with time, level, logger, `process` (e.g.
    "gateway", "node-2") and the bound request id. `level` (default `THOLOS_LOG`): see
    `log_levels`."""
    fmt = log_format() if fmt is None else fmt
    root_level, logger_levels = log_levels(level or os.environ.get("THOLOS_LOG", "INFO"))
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_process(process),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(root_level)
    for name, lvl in logger_levels.items():
        logging.getLogger(name).setLevel(lvl)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _add_process(process: str) -> structlog.typing.Processor:
    def add(
        _logger: object, _name: str, event: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        event.setdefault("process", process)
        return event

    return add


def use_stdlib() -> None:
    """Until `configure` runs (a library user, unit tests, in-process benchmarks), structlog
    loggers hand their events to stdlib `logging` like every other logger, instead of
    structlog's default of printing everything to stdout."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


if not structlog.is_configured():
    use_stdlib()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger: `log.info("event", key=value, ...)` renders the keys as fields."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
