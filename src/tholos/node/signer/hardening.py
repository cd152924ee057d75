"""What the signer does to itself at start so its memory cannot be read back out of it.

- RLIMIT_CORE = 0 and PR_SET_DUMPABLE = 0: no core file on a crash, and a non-dumpable process
  cannot be ptrace-attached (nor read through /proc/PID/mem) by a same-user, non-root process.
- mlockall(MCL_CURRENT | MCL_FUTURE) when permitted, so no page (shares included) is swapped out;
  tried only with CAP_IPC_LOCK (root) or an unlimited RLIMIT_MEMLOCK, because a locked process
  over its limit would fail its later allocations. When not done, the status says why.
- PR_SET_PDEATHSIG: the signer ends when the node process that started it ends.
- The master key file, passphrase file and database must not be open to group or others.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tholos.transport import private_files

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
MCL_CURRENT, MCL_FUTURE = 1, 2


class HardeningError(Exception):
    """The signer refuses to start (a secret file open to others, a protection that failed)."""


@dataclass(frozen=True)
class Protections:
    """Each protection and whether it holds; `detail` says why one does not."""

    core_dumps_off: bool
    not_dumpable: bool
    memory_locked: bool
    memory_detail: str
    files_private: bool

    def to_dict(self) -> dict[str, str]:
        """The status lines `tholos cluster status` / Info report, one per protection."""
        return {
            "core_dumps": "off (RLIMIT_CORE=0)" if self.core_dumps_off else "ON",
            "ptrace": "blocked (PR_SET_DUMPABLE=0)" if self.not_dumpable else "ALLOWED",
            "memory_lock": "locked (mlockall)" if self.memory_locked else self.memory_detail,
            "secret_files": "owner only" if self.files_private else "OPEN TO OTHERS",
        }


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def check_private(paths: Iterable[Path | None]) -> None:
    """Refuse (HardeningError naming the file) when a secret file is open to group or others."""
    for p in paths:
        if p is None:
            continue
        try:
            private_files.check_private(
                p, "the signer does not start with a readable key file or database"
            )
        except private_files.OpenSecretFile as exc:
            raise HardeningError(str(exc)) from None


def _lock_memory(libc: ctypes.CDLL) -> tuple[bool, str]:
    soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if os.geteuid() != 0 and soft != resource.RLIM_INFINITY:
        return False, f"not locked: no CAP_IPC_LOCK and RLIMIT_MEMLOCK={soft} bytes"
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        return False, f"not locked: mlockall failed ({os.strerror(ctypes.get_errno())})"
    return True, ""


def harden(secret_files: Iterable[Path | None]) -> Protections:
    """Apply every protection to this process; raise HardeningError if one that must hold fails."""
    check_private(secret_files)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = _libc()
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise HardeningError(f"prctl(PR_SET_DUMPABLE, 0): {os.strerror(ctypes.get_errno())}")
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    locked, detail = _lock_memory(libc)
    return current(locked, detail)


def current(memory_locked: bool, memory_detail: str) -> Protections:
    """The protections as the kernel reports them now (not as requested)."""
    core = resource.getrlimit(resource.RLIMIT_CORE)
    dumpable = _libc().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
    return Protections(
        core_dumps_off=core == (0, 0),
        not_dumpable=dumpable == 0,
        memory_locked=memory_locked,
        memory_detail=memory_detail,
        files_private=True,
    )
