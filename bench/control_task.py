"""A control task for the learnability benchmark: the look-alike's pairs relabelled by what any model can see.

Each pair's label becomes the brightness tercile of its test image *within its category*
(darkest third -> ``good``, middle -> ``structural``, brightest -> ``logical``; thresholds from the
training split), so the label depends on the image alone: not on the category named in the
prompt, nor on the reference. Images, prompts, pair counts and every training setting stay those
of the real run. A policy that learns this control shows that images reach the answer through
the whole loop (rollouts, rewards, advantages, updates); one that learns the control but not
the anomaly labels is limited by the task, not by the trainer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fadtq.data.loco import load_rgb
from fadtq.data.pair3c import Benchmark, read_manifest, write_benchmark
from fadtq.prompts import CLASS_NAMES


def brightness(loco_root: Path, rows: list[dict]) -> list[float]:
    return [float(np.asarray(load_rgb(loco_root / row["test_image"]), dtype=np.float32).mean()) for row in rows]


def brightness_benchmark(benchmark: Path, out: Path) -> Path:
    """Write the relabelled copy of ``benchmark`` (train.jsonl, test.jsonl, stats.json) to ``out``."""
    stats = json.loads((benchmark / "stats.json").read_text(encoding="utf-8"))
    loco_root = Path(stats["loco_root"])
    train, test = (read_manifest(benchmark / f"{split}.jsonl", loco_root) for split in ("train", "test"))
    values = {id(row): value for rows in (train, test) for row, value in zip(rows, brightness(loco_root, rows))}
    cuts = {category: np.quantile([values[id(r)] for r in train if r["category"] == category], [1 / 3, 2 / 3])
            for category in {row["category"] for row in train}}

    def relabel(row: dict) -> dict:
        label = CLASS_NAMES[int(np.searchsorted(cuts[row["category"]], values[id(row)]))]
        return {key: value for key, value in row.items() if key != "defect_types"} | {"label": label}

    control_stats = {"loco_root": stats["loco_root"], "control": "brightness tercile of the test image per category",
                     "source": str(benchmark)}
    return write_benchmark(Benchmark([relabel(r) for r in train], [relabel(r) for r in test], control_stats), out)


def control_benchmark(out: Path) -> Path:
    """The control over the paper-scale look-alike benchmark (generated on first use), written to ``out``."""
    from fadtq.data.dataset import ensure_default_benchmark

    return brightness_benchmark(ensure_default_benchmark(scale="paper"), out)
