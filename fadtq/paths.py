"""Where the project keeps generated things (look-alike trees, tiny models, compiled ops)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$FADTQ_CACHE``, else ``.cache/fadtq`` in the repository checkout."""
    configured = os.environ.get("FADTQ_CACHE")
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / ".cache" / "fadtq"


def missing_local_folder(name: str) -> bool:
    """``name`` is written as a path (``/``, ``./``, ``../``, ``~``) and no folder is there, so
    it is not worth asking the model hub about (which would answer with a confusing repo-id error)."""
    return name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().is_dir()
