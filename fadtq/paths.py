"""Where the project keeps generated things (look-alike trees, tiny models, compiled ops)."""

from __future__ import annotations

import os
from pathlib import Path

from fadtq.errors import FadtqError


def cache_dir() -> Path:
    """``$FADTQ_CACHE``, else ``.cache/fadtq`` in the repository checkout."""
    configured = os.environ.get("FADTQ_CACHE")
    if not configured:
        return Path(__file__).resolve().parents[1] / ".cache" / "fadtq"
    path = Path(configured)
    if os.path.lexists(path) and not path.is_dir():
        what = "a loop of symbolic links" if path.is_symlink() and not path.exists() else "not a folder"
        raise FadtqError(f"FADTQ_CACHE={configured}: {what}; expected the folder where fadtq keeps what it builds "
                         "(look-alike trees, tiny models), or unset it")
    return path


def missing_local_folder(name: str) -> bool:
    """``name`` is written as a path (``/``, ``./``, ``../``, ``~``) and no folder is there, so
    it is not worth asking the model hub about (which would answer with a confusing repo-id error)."""
    return name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().is_dir()
