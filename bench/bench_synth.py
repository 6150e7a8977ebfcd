"""Time paper-scale `fadtq synth` at the default size, against 2 minutes on 2 cores.

Usage: .venv/bin/python bench/bench_synth.py [--workers 2] [--size 128]
Each worker runs single-threaded (OMP/BLAS threads pinned to 1 by ``benchlib``), as the 2 minutes assume.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402  (pins threads before the workers start)
from fadtq.data.synth import DEFAULT_SIZE, jobs, synthesize  # noqa: E402

TARGET_SECONDS = 120.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    args = parser.parse_args()
    scratch = benchlib.SCRATCH / "synth-paper"
    shutil.rmtree(scratch, ignore_errors=True)
    start = time.perf_counter()
    synthesize(scratch, seed=0, scale="paper", size=args.size, workers=args.workers)
    seconds = time.perf_counter() - start
    files = sum(1 for p in scratch.rglob("*.png"))
    shutil.rmtree(scratch, ignore_errors=True)
    images = len(jobs("paper"))
    result = {
        "images": images,
        "png_files_with_masks": files,
        "seconds": round(seconds, 2),
        "images_per_second": round(images / seconds, 1),
        "target_seconds": TARGET_SECONDS,
        "fraction_of_target": round(seconds / TARGET_SECONDS, 3),
        "workers": args.workers,
        "size": args.size,
        **benchlib.host(),
    }
    benchlib.atomic_write_json(benchlib.RESULTS / "synth.json", result)
    print(f"paper scale: {images} images ({files} PNGs with masks) in {seconds:.1f} s = "
          f"{images / seconds:.0f} images/s; {seconds / TARGET_SECONDS:.1%} of {TARGET_SECONDS:.0f} s")


if __name__ == "__main__":
    main()
