"""Per-step metrics: ``metrics.jsonl`` (one JSON object per step) and TensorBoard, rank 0 only."""

from __future__ import annotations

import json
from pathlib import Path


class MetricsLog:
    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self._file = None
        self._tb = None
        if enabled:
            self._file = (run_dir / "metrics.jsonl").open("a", encoding="utf-8")
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional on GPU installs
                SummaryWriter = None
            self._tb = SummaryWriter(str(run_dir / "tensorboard")) if SummaryWriter else None

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps({"step": step, **metrics}, sort_keys=True) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
