"""``fadtq synth``: write a procedural look-alike of MVTec LOCO AD."""

from __future__ import annotations

import argparse
import time

from fadtq.errors import FadtqError
from fadtq.files import check_output_dir, check_output_file

MAX_SIZE = 4096


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fadtq.data.synth import DIFFICULTIES, SCALES

    parser.add_argument("--out", required=True, help="new folder for the LOCO-style tree")
    parser.add_argument("--seed", type=int, default=0, help="same seed and size give identical bytes (default 0)")
    parser.add_argument("--scale", choices=SCALES, default="tiny",
                        help="tiny: a handful per folder; cpu: 60 per test class (the CPU default); "
                             "paper: the published per-split counts")
    parser.add_argument("--difficulty", choices=tuple(DIFFICULTIES), default="standard",
                        help="standard: the dataset's variety; easy: fewer, larger cues for CPU-sized policies")
    parser.add_argument("--size", type=int, default=128, help="pixels on the long side (default 128)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--grid", metavar="PNG", help="also write a grid of examples (category x class) here")


def preflight(args: argparse.Namespace) -> None:
    """What ``synthesize`` does not check itself (``--size``, an existing ``--out``), before any
    image is drawn."""
    if args.workers < 1:
        raise FadtqError(f"--workers {args.workers}: expected at least 1")
    if args.size > MAX_SIZE:
        raise FadtqError(f"--size {args.size}: expected at most {MAX_SIZE} pixels (the published images are 1700)")
    if args.seed < 0:
        raise FadtqError(f"--seed {args.seed}: expected a number >= 0")
    check_output_dir(args.out, "--out")
    if args.grid:
        if check_output_file(args.grid, "--grid").suffix.lower() != ".png":
            raise FadtqError(f"--grid {args.grid}: expected a .png file name")


def run(args: argparse.Namespace) -> int:
    from fadtq.data.synth import jobs, synthesize

    preflight(args)
    start = time.perf_counter()
    out = synthesize(args.out, seed=args.seed, scale=args.scale, size=args.size, difficulty=args.difficulty,
                     workers=args.workers, progress=True)
    seconds = time.perf_counter() - start
    print(f"wrote {len(jobs(args.scale))} images to {out} in {seconds:.1f} s")
    if args.grid:
        from fadtq.data.grid import render_grid

        print(f"wrote {render_grid(out, args.grid)}")
    return 0
