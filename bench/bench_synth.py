"""Time paper-scale `fadtq synth` at the default size; target: under 2 minutes on 2 cores.

Usage: .venv/bin/python bench/bench_synth.py [--workers 2] [--size 128]
Each worker runs single-threaded (OMP/BLAS threads pinned to 1), as the target assumes.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from fadtq.data.synth import DEFAULT_SIZE, jobs, synthesize  # noqa: E402
from fadtq.files import atomic_write_json  # noqa: E402

TARGET_SECONDS = 120.0
HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    args = parser.parse_args()
    scratch = HERE / "results" / "tmp" / "synth-paper"
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
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    atomic_write_json(HERE / "results" / "synth.json", result)
    print(f"paper scale: {images} images ({files} PNGs with masks) in {seconds:.1f} s = "
          f"{images / seconds:.0f} images/s; {seconds / TARGET_SECONDS:.1%} of the 2-minute target")


if __name__ == "__main__":
    main()
