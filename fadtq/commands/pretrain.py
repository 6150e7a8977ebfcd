"""``fadtq pretrain``: give an offline Qwen2.5-VL eyes for the look-alike (see fadtq/pretraining/pretrain.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fadtq.data.synth import DIFFICULTIES
from fadtq.pretraining.pretrain import REASONINGS, PretrainRecipe

DEFAULTS = PretrainRecipe()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="new folder for the pretrained model")
    parser.add_argument("--model", help="model folder to start from (default: a fresh --size Qwen2.5-VL, "
                                         "built with --seed)")
    parser.add_argument("--size", choices=("tiny", "base", "base7", "small"), default=DEFAULTS.size,
                        help="make-tiny-model preset of the fresh model (default base)")
    parser.add_argument("--vision-steps", type=int,
                        help="first stage: steps of the vision tower alone on single images' facts (default "
                             f"{DEFAULTS.vision_steps}; 0 with --start)")
    parser.add_argument("--vision-batch-size", type=int, default=DEFAULTS.vision_batch_size)
    parser.add_argument("--steps", type=int, default=DEFAULTS.steps,
                        help="second stage: steps of the whole model on descriptions")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--lr", type=float, default=DEFAULTS.lr)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the weights, images and answers")
    parser.add_argument("--difficulty", choices=tuple(DIFFICULTIES), default=DEFAULTS.difficulty)
    parser.add_argument("--image-size", type=int, default=DEFAULTS.image_size)
    parser.add_argument("--single-share", type=float, default=DEFAULTS.single_share,
                        help="share of single-image examples; the rest are pairs in the policy's question")
    parser.add_argument("--reference", choices=("good", "any"), default=DEFAULTS.reference,
                        help="class of a pair example's reference: good, as in the benchmark, or any "
                             "(the language model then cannot copy its counts; default any)")
    parser.add_argument("--reasoning", choices=REASONINGS, default=DEFAULTS.reasoning,
                        help="a pair's target reasoning: the one template (default) or varied wording, order, "
                             "facts, details and length (fadtq/data/varied_reasoning.py)")
    parser.add_argument("--start", default=DEFAULTS.start,
                        help="fresh (default: a new --size model) or the name of a checkpoint in pretrained/ to "
                             "go on from, its vision tower frozen")
    parser.add_argument("--categories", default=",".join(DEFAULTS.categories),
                        help="comma-separated scenes to draw (default: all five)")


def run(args: argparse.Namespace) -> int:
    from fadtq.commands.warmup import check_training_flags
    from fadtq.errors import FadtqError
    from fadtq.files import check_output_dir
    from fadtq.pretraining.pretrain import build_pretrained, shipped_start

    from fadtq.arguments import parse_name_list
    from fadtq.data.loco import CATEGORIES

    check_training_flags(args)
    if args.vision_steps is None:
        args.vision_steps = DEFAULTS.vision_steps if args.start == "fresh" else 0
    categories = tuple(parse_name_list(args.categories, "--categories"))
    if args.vision_steps < 0 or args.vision_batch_size < 1:
        raise FadtqError(f"--vision-steps {args.vision_steps} / --vision-batch-size {args.vision_batch_size}: "
                         "expected at least 0 and at least 1")
    if not 0.0 <= args.single_share <= 1.0:
        raise FadtqError(f"--single-share {args.single_share}: expected a number between 0 and 1")
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise FadtqError(f"--categories: unknown {', '.join(unknown)}; known: {', '.join(CATEGORIES)}")
    out = check_output_dir(args.out, "--out")
    if out.exists():
        raise FadtqError(f"--out {out}: already exists; choose a new folder")
    recipe = PretrainRecipe(size=args.size, vision_steps=args.vision_steps,
                            vision_batch_size=args.vision_batch_size, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            difficulty=args.difficulty, image_size=args.image_size, categories=categories,
                            single_share=args.single_share, reference=args.reference, reasoning=args.reasoning,
                            start=args.start)
    if args.model and recipe.start != "fresh":
        raise FadtqError(f"--model {args.model} and --start {recipe.start}: give one model to start from")
    if recipe.start != "fresh":
        shipped_start(recipe.start)
    check = build_pretrained(out, recipe, base_model=Path(args.model) if args.model else None)
    print(json.dumps(check, indent=2))
    print(f"pretrained model: {out}")
    return 0
