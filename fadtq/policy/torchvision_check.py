"""Whether torchvision works here: it decides how processors are built and whether vLLM needs the
torchvision-free patch. Imports nothing but the standard library (vLLM workers read it at start-up)."""

from __future__ import annotations

import functools
import importlib.util


@functools.cache
def torchvision_works() -> bool:
    """True when torchvision imports: a CUDA wheel next to a CPU torch is installed but broken."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken wheel raises RuntimeError/ImportError/OSError
        return False
    return True
