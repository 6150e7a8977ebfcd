"""``fadtq make-tiny-model``: build a vision-language model offline (local tokenizer, random weights)."""

from __future__ import annotations

import argparse

from fadtq.files import check_output_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to write the model, tokenizer and processor to")
    parser.add_argument("--family", default="qwen2_5_vl",
                        help="model family: qwen2_5_vl (default), qwen3_vl or qwen3_5 (fadtq/pretraining/tiny_model.py)")
    parser.add_argument(
        "--size",
        choices=("tiny", "base", "base7", "small", "3b"),
        default="tiny",
        help="tiny: about 0.2M parameters (tests); base: about 2M (the CPU default, after fadtq pretrain); "
             "small: about 20M (benchmarks); 3b: Qwen2.5-VL-3B's architecture, 3.75B parameters in bf16 "
             "(7.5 GB; the GPU check)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")


def run(args: argparse.Namespace) -> int:
    # Heavy imports here: `fadtq --help` must not pay for torch and transformers.
    from fadtq.pretraining.tiny_model import make_tiny_model, tiny_family

    tiny_family(args.family)  # an unknown family is one line, before any folder is checked or written
    check_output_dir(args.out, "--out", replaces="config.json")
    out = make_tiny_model(args.out, size=args.size, seed=args.seed, family=args.family)
    print(f"wrote the {args.size} {args.family} model (seed {args.seed}) to {out}")
    return 0
