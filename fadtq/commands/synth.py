"""``fadtq synth``: write a procedural look-alike of MVTec LOCO AD."""

from __future__ import annotations

import argparse
import time



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


def run(args: argparse.Namespace) -> int:
    from fadtq.data.synth import jobs, synthesize

    start = time.perf_counter()
    out = synthesize(args.out, seed=args.seed, scale=args.scale, size=args.size, difficulty=args.difficulty,
                     workers=args.workers, progress=True)
    seconds = time.perf_counter() - start
    print(f"wrote {len(jobs(args.scale))} images to {out} in {seconds:.1f} s")
    if args.grid:
        from fadtq.data.grid import render_grid

        print(f"wrote {render_grid(out, args.grid)}")
    return 0
