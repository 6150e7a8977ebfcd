"""A model folder's weights, checked before anything loads them: a truncated or garbled
``*.safetensors`` file would otherwise fail deep inside transformers with safetensors' own error,
after the data and the engine were set up."""

from __future__ import annotations

from pathlib import Path


def weights_problem(folder: str | Path) -> str | None:
    """What is wrong with the first unreadable ``*.safetensors`` file of ``folder`` (its header, and
    that the file holds every byte the header promises), or None. Only headers are read."""
    from safetensors import SafetensorError, safe_open

    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as weights:
                weights.keys()
        except (SafetensorError, OSError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            return f"{path}: not a readable safetensors file ({reason})"
    return None
