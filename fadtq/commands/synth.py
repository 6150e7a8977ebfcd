"""``fadtq synth``: write a procedural look-alike of MVTec LOCO AD, or an MMAD-format question file over it."""

from __future__ import annotations

import argparse
import time

from fadtq.errors import FadtqError
from fadtq.files import check_output_dir, check_output_file

MAX_SIZE = 4096


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fadtq.data.synth import DIFFICULTIES, SCALES

    output = parser.add_mutually_exclusive_group(required=True)
    output.add_argument("--out", help="new folder for the LOCO-style tree")
    output.add_argument("--mmad", metavar="OUT.json",
                        help="instead, an MMAD-format question file about the look-alike's test images, its images "
                             "beside it under synth/ (for fadtq eval --mmad)")
    parser.add_argument("--seed", type=int, default=0, help="same seed and size give identical bytes (default 0)")
    parser.add_argument("--scale", choices=SCALES, default="tiny",
                        help="tiny: a handful per folder; cpu: 60 per test class (the CPU default); "
                             "paper: the published per-split counts")
    parser.add_argument("--difficulty", choices=tuple(DIFFICULTIES), default="standard",
                        help="standard: the dataset's variety; easy: fewer, larger cues for CPU-sized policies")
    parser.add_argument("--size", type=int, default=128, help="pixels on the long side (default 128)")
    parser.add_argument("--workers", type=int, help="with --out: processes (default 2)")
    parser.add_argument("--grid", metavar="PNG",
                        help="with --out: also write a grid of examples (category x class) here")


def preflight(args: argparse.Namespace) -> None:
    """What ``synthesize`` does not check itself (``--size``, an existing ``--out``), before any
    image is drawn."""
    if args.workers is not None and args.workers < 1:
        raise FadtqError(f"--workers {args.workers}: expected at least 1")
    if args.size > MAX_SIZE:
        raise FadtqError(f"--size {args.size}: expected at most {MAX_SIZE} pixels (the published images are 1700)")
    if args.seed < 0:
        raise FadtqError(f"--seed {args.seed}: expected a number >= 0")
    if args.mmad:
        given = [flag for flag in ("--workers", "--grid") if getattr(args, flag[2:]) is not None]
        if given:
            raise FadtqError(f"{given[0]}: only with --out")
        check_output_file(args.mmad, "--mmad")
        return
    check_output_dir(args.out, "--out")
    if args.grid:
        if check_output_file(args.grid, "--grid").suffix.lower() != ".png":
            raise FadtqError(f"--grid {args.grid}: expected a .png file name")


def run(args: argparse.Namespace) -> int:
    from fadtq.data.synth import jobs, synthesize

    preflight(args)
    start = time.perf_counter()
    if args.mmad:
        return write_mmad_file(args, start)
    out = synthesize(args.out, seed=args.seed, scale=args.scale, size=args.size, difficulty=args.difficulty,
                     workers=args.workers or 2, progress=True)
    seconds = time.perf_counter() - start
    print(f"wrote {len(jobs(args.scale))} images to {out} in {seconds:.1f} s")
    if args.grid:
        from fadtq.data.grid import render_grid

        print(f"wrote {render_grid(out, args.grid)}")
    return 0


def write_mmad_file(args: argparse.Namespace, start: float) -> int:
    from fadtq.data.mmad_file import read_mmad
    from fadtq.data.synth_mmad import DATASET, write_mmad

    out = write_mmad(args.mmad, seed=args.seed, scale=args.scale, size=args.size, difficulty=args.difficulty)
    questions = read_mmad(out, out.parent)
    images = len({row["image"] for row in questions})
    print(f"wrote {len(questions)} questions about {images} images to {out} (images under {out.parent / DATASET}) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
