"""The genesis ceremony's last step: the first backup, and a restore drill before success.

Run by `tholos cluster init --governance --recovery-officers M` and by `tholos genesis finalize`
when the nodes have recovery keys: the nodes are stopped (they have never run), so the offline
backup (backup/create.py) is consistent. The set is written to D/backups/genesis and restored on
throw-away nodes with the officers' shares still in D/recovery (backup/drill.py); only a drill
that passes lets the ceremony report success. A set that fails is deleted (it is no backup) and
the ceremony fails, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tholos.backup.create import create_backup
from tholos.backup.drill import drill
from tholos.backup.errors import BackupError
from tholos.cluster.directory import ClusterDir, ClusterError

GENESIS_SET = Path("backups") / "genesis"


def first_backup(root: Path) -> dict[str, Any]:
    """Make the first backup of the cluster at `root` and drill its restore; the report."""
    cd = ClusterDir(root)
    m = cd.load()
    if "recovery" not in m:
        return {
            "made": False,
            "reason": "the nodes have no recovery keys (`tholos backup officers`, then "
            "`tholos backup create` and `tholos backup drill`)",
        }
    out = root / GENESIS_SET
    if out.exists():
        raise ClusterError(f"{out} exists already: move the earlier genesis backup away first")
    shares = sorted((root / "recovery").glob("node-*/officer-*.json"))
    started = time.monotonic()
    try:
        made = create_backup(root, out)
        checked = drill(out, shares, source=root)
    except BackupError as exc:
        shutil.rmtree(out, ignore_errors=True)
        raise ClusterError(
            f"the genesis ceremony failed: its first backup did not pass the restore drill "
            f"({exc}); the backup was deleted. Fix the cause, then `tholos backup create --to "
            f"DIR` and `tholos backup drill DIR --officer-share F ...`"
        ) from None
    record = {"dir": str(GENESIS_SET), "set_id": made["set_id"], "drilled_at": int(time.time())}
    m["genesis_backup"] = record
    tmp = cd.manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(m, indent=2))
    os.replace(tmp, cd.manifest)
    return {
        "made": True,
        "dir": str(out),
        "set_id": made["set_id"],
        "drill": checked["nodes"],
        "seconds": round(time.monotonic() - started, 3),
    }
