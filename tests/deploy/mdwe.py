"""Memory-deny-write-execute for a test's child process: the kernel's PR_SET_MDWE (Linux 6.3+),
the same refusal of writable-then-executable memory that systemd's MemoryDenyWriteExecute=yes
sets up (there with a seccomp filter). Inherited across fork and execve, never undone."""

from __future__ import annotations

import ctypes
import subprocess
import sys

PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1

PROBE = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(1)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError:
    sys.exit(0)  # refused: enforced
sys.exit(2)
"""


def available() -> bool:
    """The kernel sets and enforces it (checked in a throw-away child, never in pytest's own)."""
    return subprocess.run([sys.executable, "-c", PROBE], timeout=60).returncode == 0


def deny_write_execute() -> None:
    """A `preexec_fn`: from here on this process and its children cannot map W+X memory."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0):
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE) failed")
