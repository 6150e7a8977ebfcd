"""``fadtq build-benchmark``: MVTec-LOCO-AD-Pair3C manifests from a LOCO root."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from fadtq.errors import FadtqError
from fadtq.files import check_output_dir, entries, listed
from fadtq.folder_lock import folder_lock


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loco-root", help="extracted MVTec LOCO AD root (default: the cached look-alike tree)")
    parser.add_argument("--out", required=True, help="folder for train.jsonl, test.jsonl and stats.json")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--train-per-class", type=int, default=None,
                        help="test images per category and class moved to training (default 40; 6 on the default tree)")
    parser.add_argument("--categories", nargs="+", metavar="NAME", help="subset of categories (default: all five)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the benchmark in a non-empty --out (other files there stay)")


def preflight(args: argparse.Namespace) -> None:
    from fadtq.data.loco import CATEGORIES
    from fadtq.data.pair3c import MANIFEST_FILES

    out = check_output_dir(args.out, "--out", MANIFEST_FILES)
    held = entries(out)
    if held and not args.overwrite:
        what = "a benchmark" if set(MANIFEST_FILES) & set(held) else "other files"
        raise FadtqError(f"--out {out}: holds {what} ({listed(held)}); choose a new or empty folder, or give --overwrite "
                         "to replace the benchmark there (runs and reports made on the old one then no longer match)")
    if args.train_per_class is not None and args.train_per_class < 1:
        raise FadtqError(f"--train-per-class {args.train_per_class}: expected at least 1 (no training pairs otherwise)")
    for name in args.categories or ():
        if name not in CATEGORIES:
            raise FadtqError(f"--categories {name}: unknown category; expected some of {', '.join(CATEGORIES)}")
        if args.categories.count(name) > 1:
            raise FadtqError(f"--categories {name}: given twice")


def run(args: argparse.Namespace) -> int:
    from fadtq.data.dataset import TINY_TRAIN_PER_CLASS, ensure_default_tree
    from fadtq.data.pair3c import DEFAULT_TRAIN_PER_CLASS, build_pair3c, format_table1, write_benchmark

    preflight(args)
    per_class = args.train_per_class
    root = args.loco_root
    if root is None:
        root = ensure_default_tree()
        print(f"no --loco-root: using the look-alike tree {root}")
        per_class = TINY_TRAIN_PER_CLASS if per_class is None else per_class
    per_class = DEFAULT_TRAIN_PER_CLASS if per_class is None else per_class
    benchmark = build_pair3c(root, seed=args.seed, train_per_class=per_class, categories=args.categories)
    out = Path(args.out)
    # a new folder appears whole (renamed into place); files replaced in an existing one, under its lock
    with folder_lock(out, "--out") if out.is_dir() else contextlib.nullcontext():
        write_benchmark(benchmark, out)
    print(format_table1(benchmark.stats))
    print(f"wrote {len(benchmark.train)} training and {len(benchmark.test)} test pairs to {out}")
    return 0
