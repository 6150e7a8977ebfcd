"""``fadtq warmup``: teach a from-scratch model the answer format (see fadtq/pretraining/warmup.py)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from fadtq.errors import FadtqError
from fadtq.files import check_output_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model folder (e.g. from fadtq make-tiny-model)")
    parser.add_argument("--out", required=True, help="where to save the warmed-up model")
    parser.add_argument("--benchmark", help="benchmark folder (default: the cached look-alike)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--seed", type=int, default=0)


def check_training_flags(args: argparse.Namespace) -> None:
    """``--model`` (when given) is a model folder; ``--steps``, ``--batch-size``, ``--image-size``
    and ``--lr`` are usable (shared by ``fadtq warmup`` and ``fadtq pretrain``)."""
    if args.model and not (Path(args.model) / "config.json").is_file():
        raise FadtqError(f"--model {args.model}: no config.json there (not a Hugging Face model folder)")
    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size), ("--image-size", args.image_size)):
        if value < 1:
            raise FadtqError(f"{flag} {value}: expected at least 1")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise FadtqError(f"--lr {args.lr}: expected a finite number > 0")


def preflight(args: argparse.Namespace) -> None:
    """Flags, the model folder and the output, before any data or model is loaded."""
    check_training_flags(args)
    check_output_dir(args.out, "--out", replaces="config.json")


def run(args: argparse.Namespace) -> int:
    from fadtq.data.dataset import PairDataset, decode_images, ensure_default_benchmark
    from fadtq.scoring_checks import render_templates
    from fadtq.prompts import POLICY_TEMPLATE
    from fadtq.pretraining.warmup import warmup

    preflight(args)
    benchmark = Path(args.benchmark) if args.benchmark else ensure_default_benchmark()
    dataset = PairDataset(benchmark / "train.jsonl", max_side=args.image_size)
    render_templates(dataset.prompts, [POLICY_TEMPLATE])
    decode_images(dataset, dataset.rows)
    out = warmup(args.model, args.out, dataset, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                 seed=args.seed)
    print(f"warmed-up model: {out}")
    return 0
