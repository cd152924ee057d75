"""Secret files a process refuses to use when others could read them: the signer's master key
and database, the gateway's webhook key. One check, shared by every process that holds one."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class OpenSecretFile(Exception):
    """A secret file is open to group or others (or belongs to another user)."""


def check_private(path: Path, refusal: str, *, owner: bool = False) -> None:
    """Raise OpenSecretFile naming `path` when group or others may read or write it (and, with
    `owner`, when it is not this process's user's); `refusal` says what will not happen. A file
    that does not exist passes: whoever creates it creates it 0600."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise OpenSecretFile(
            f"{path} is open to group or others (mode {mode:04o}): chmod 600 it; {refusal}"
        )
    if owner and st.st_uid != os.geteuid():
        raise OpenSecretFile(
            f"{path} belongs to uid {st.st_uid}, not to this process's user ({os.geteuid()}): "
            f"chown it; {refusal}"
        )
