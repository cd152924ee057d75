"""The one error every backup step raises: its message names what is wrong (never a secret)."""

from __future__ import annotations


class BackupError(Exception):
    """A backup, officer share or restore target that is refused; nothing has been written."""
