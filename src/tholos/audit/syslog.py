"""The audit chain as RFC 5424 syslog lines, for a log management system: one line per exported
JSON line (header, entry, checkpoint), facility "log audit" (13), severity informational, the
chain name as PROCID, the record type or entry kind as MSGID, and the JSON line, unchanged, as
MSG (so `tholos audit verify` logic can still check what the log system stored)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

FACILITY_LOG_AUDIT = 13
SEVERITY_INFO = 6
PRI = FACILITY_LOG_AUDIT * 8 + SEVERITY_INFO
APP_NAME = "tholos"
_PRINTABLE = re.compile(r"^[!-~]{1,32}$")  # RFC 5424 PROCID/MSGID: 1-32 printable US-ASCII


def _token(value: str, what: str, limit: int = 32) -> str:
    token = value[:limit]
    if not _PRINTABLE.match(token):
        raise ValueError(f"{what} {value!r} is not 1-32 printable ASCII characters (RFC 5424)")
    return token


def syslog_line(chain: str, json_line: str, hostname: str = "-") -> str:
    """One exported audit JSON line of `chain` (e.g. "node-2", "gateway") as a syslog line.
    ValueError names a line that is not a JSON object."""
    try:
        record = json.loads(json_line)
    except ValueError as exc:
        raise ValueError(f"{chain}: audit line is not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{chain}: audit line is not a JSON object")
    kind = str(record.get("kind") or record.get("type") or "record")
    millis = record.get("time")
    stamp = (
        datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")
        if isinstance(millis, int) and not isinstance(millis, bool)
        else "-"
    ).replace("+00:00", "Z")
    return (
        f"<{PRI}>1 {stamp} {_token(hostname, 'hostname', 255)} {APP_NAME} "
        f"{_token(chain, 'chain name')} {_token(kind, 'record kind')} - {json_line}"
    )


def message_of(line: str) -> str:
    """The JSON line carried by a syslog line written by `syslog_line` (its MSG)."""
    parts = line.split(" ", 7)
    if len(parts) != 8 or not parts[0].startswith(f"<{PRI}>1"):
        raise ValueError("not a tholos audit syslog line")
    return parts[7]
