"""Reading evidence from the Linux configfs-tsm report interface (Linux 6.7+,
Documentation/ABI/testing/configfs-tsm): make a report folder, write 64 bytes to `inblob`, read
`outblob` (SEV-SNP: the ATTESTATION_REPORT; TDX: a TD quote from the host's quoting service) and
`auxblob` (SEV-SNP: the host's certificate table, may be empty), check `generation` did not move
under us (another writer), remove the folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

TSM_REPORT_ROOT = Path("/sys/kernel/config/tsm/report")


class TsmError(Exception):
    """The report interface is absent or answered something unexpected."""


@dataclass(frozen=True)
class TsmReport:
    provider: str  # "sev_guest" or "tdx_guest"
    outblob: bytes
    auxblob: bytes


def tsm_available(root: Path = TSM_REPORT_ROOT) -> bool:
    return root.is_dir()


def read_tsm_report(inblob: bytes, root: Path = TSM_REPORT_ROOT) -> TsmReport:
    """One report for `inblob` (exactly 64 bytes, the report data)."""
    if len(inblob) != 64:
        raise TsmError(f"inblob: {len(inblob)} bytes, want 64")
    if not root.is_dir():
        raise TsmError(f"{root} is absent: no configfs-tsm (not a confidential VM, or Linux < 6.7)")
    entry = root / f"tholos-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        entry.mkdir()
    except OSError as exc:
        raise TsmError(f"cannot create {entry}: {exc.strerror}") from None
    try:
        (entry / "inblob").write_bytes(inblob)
        generation = (entry / "generation").read_text().strip()
        outblob = (entry / "outblob").read_bytes()
        aux = entry / "auxblob"
        auxblob = aux.read_bytes() if aux.exists() else b""
        provider = (entry / "provider").read_text().strip()
        if (entry / "generation").read_text().strip() != generation:
            raise TsmError("configfs-tsm report changed while being read (a concurrent writer)")
    except OSError as exc:
        raise TsmError(f"configfs-tsm report: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            entry.rmdir()
    if not outblob:
        raise TsmError("configfs-tsm returned an empty report")
    return TsmReport(provider=provider, outblob=outblob, auxblob=auxblob)
