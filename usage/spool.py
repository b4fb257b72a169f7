"""The usage buffer's overflow on local disk: JSONL files under
DATA_DIR/usage-spool/, one per spill, replayed into the database later.

A file appears complete or not at all (written as .part, fsynced, renamed).
Replaying claims a file by renaming it, so two processes sharing DATA_DIR do
not both read it; a claim older than CLAIM_STALE_SECONDS (its process died
mid-replay) may be taken again. Replaying twice is harmless anyway: records
are written idempotently by request id. The rows in a spool file were already
added to the quota counters, so replaying does not add them again.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings

from usage.metering import MeteredRow

logger = logging.getLogger(__name__)

CLAIM_STALE_SECONDS = 600.0
_SUFFIX = ".jsonl"


def spool_dir() -> Path:
    return Path(settings.DATA_DIR) / "usage-spool"


def spool_write(rows: Sequence[MeteredRow]) -> Path:
    """Store rows durably in a new spool file; raises OSError on failure."""
    folder = spool_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{_SUFFIX}"
    part = folder / (name + ".part")
    with open(part, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(row.to_json())
            handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    final = folder / name
    os.rename(part, final)
    _fsync_dir(folder)
    return final


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def spool_pending() -> bool:
    folder = spool_dir()
    if not folder.is_dir():
        return False
    return any(
        entry.name.endswith(_SUFFIX) or ".claimed-" in entry.name
        for entry in os.scandir(folder)
    )


def spool_claim() -> list[Path]:
    """Take the spool files nobody else is replaying, oldest first."""
    folder = spool_dir()
    if not folder.is_dir():
        return []
    claimed: list[Path] = []
    now = time.time()
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.endswith(_SUFFIX):
            base = entry.name
        elif ".claimed-" in entry.name:
            try:
                if now - entry.stat().st_mtime < CLAIM_STALE_SECONDS:
                    continue
            except FileNotFoundError:
                continue
            base = entry.name.split(".claimed-")[0]
        else:
            continue
        target = folder / f"{base}.claimed-{os.getpid()}"
        try:
            os.rename(entry.path, target)
            os.utime(target)
        except FileNotFoundError:
            continue  # another process took it first
        claimed.append(target)
    return claimed


def spool_read(path: Path) -> list[MeteredRow]:
    rows: list[MeteredRow] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(MeteredRow.from_json(line))
            except (ValueError, TypeError, KeyError):
                logger.error("unreadable line %d in usage spool file %s", number, path)
    return rows


def spool_release(path: Path) -> None:
    """Give a claimed file back (its replay failed): replayed later."""
    base = path.name.split(".claimed-")[0]
    try:
        os.rename(path, path.with_name(base))
    except FileNotFoundError:
        pass


def spool_done(path: Path) -> None:
    path.unlink(missing_ok=True)
