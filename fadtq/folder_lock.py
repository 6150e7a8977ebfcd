"""One writer per output folder: a lock file naming its owner.

Two runs started at once into the same folder would interleave their logs and checkpoints (both
exiting 0); two evaluations into one ``--out``, their predictions. The command that writes a folder
holds ``<folder>/.lock`` (created exclusively; the owner's pid, host and command in it) for as long
as it writes, and a second writer gets one line naming the holder. A lock whose process is gone
(same host, pid not running) is stale: it is taken over with one warning line. Commands that
build their folder whole (``synth``, ``make-tiny-model``, ``warmup``, ``pretrain``, a new
``build-benchmark``) write it beside and rename it into place: two of them never interleave.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from fadtq.errors import FadtqError
from fadtq.files import check_output_dir

LOCK_FILE = ".lock"
log = logging.getLogger(__name__)


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:300]}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _holder(lock: Path) -> dict:
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _take(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(_owner(), handle)
    return True


def _stale(holder: dict) -> bool:
    """A lock of this host whose process is gone."""
    return holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
        and not _alive(holder["pid"])


def live_holder(folder: Path) -> dict | None:
    """The owner of ``folder``'s lock while it is held (``None``: no lock, or a stale one)."""
    lock = folder / LOCK_FILE
    if not lock.is_file():
        return None
    holder = _holder(lock)
    return None if _stale(holder) else holder


@contextlib.contextmanager
def folder_lock(folder: Path, flag: str) -> Iterator[None]:
    """Hold ``folder``'s lock while the block writes into it (``flag``: the option that named the
    folder, for the error line). The folder (and missing parents) is created, and removed again on
    the way out where it holds nothing but the lock: a command that failed before writing leaves
    nothing."""
    folder = check_output_dir(folder, flag)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_FILE
    if not _take(lock):
        holder = _holder(lock)
        if not _stale(holder):
            raise FadtqError(f"{flag} {folder}: being written by pid {holder.get('pid', '?')} on "
                             f"{holder.get('host', '?')} ({holder.get('command', '?')}); wait for it to end, or "
                             f"remove {lock} if that process is gone")
        log.warning("%s: taking over the lock of pid %s, which is no longer running", folder, holder["pid"])
        lock.unlink(missing_ok=True)
        if not _take(lock):
            raise FadtqError(f"{flag} {folder}: another writer took the lock first ({_holder(lock)})")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        for path in created:  # deepest first
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
