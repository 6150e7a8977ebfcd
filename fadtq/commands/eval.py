"""``fadtq eval``: the paper's metrics for a model (generated here) or for a predictions file."""

from __future__ import annotations

import argparse
from pathlib import Path

from fadtq.errors import FadtqError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="Hugging Face model folder (e.g. RUN/final) to generate predictions with")
    source.add_argument("--predictions", help='JSONL of {"id", "completion"} or {"id", "prediction"} rows')
    parser.add_argument("--benchmark", help="benchmark folder with <split>.jsonl (default: the cached look-alike)")
    parser.add_argument("--split", default="test", help="manifest to evaluate: test (default) or train")
    parser.add_argument("--out", help="output folder (default: RUN/eval for RUN/final, else runs/eval/<name>)")
    parser.add_argument("--name", help="name in reports (default: the run, model or predictions file name)")
    parser.add_argument("--limit", type=int, help="evaluate a stratified subset of this many pairs")
    parser.add_argument("--batch-size", type=int, help="pairs per generate call (default 8)")
    parser.add_argument("--max-new-tokens", type=int, help="completion length limit (default 128)")
    parser.add_argument("--image-size", type=int,
                        help="longest image side before the processor (default: the size the model was trained "
                        "at, recorded in its fadtq_inputs.json; else 448)")
    parser.add_argument("--engine", help="rollout engine that generates: hf (default) or vllm")
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, help="with --sample (default 1.0)")
    parser.add_argument("--top-p", type=float, help="with --sample (default 1.0)")
    parser.add_argument("--seed", type=int, help="with --sample: seed of the sampling (default 0)")
    parser.add_argument("--tokenizer", help="with --predictions: tokenizer folder for reasoning lengths in tokens")


# Flags of generation (--model only), and of sampling (--sample only), by settings field.
GENERATION_FLAGS = {"batch_size": "--batch-size", "max_new_tokens": "--max-new-tokens", "image_size": "--image-size",
                    "engine": "--engine"}
SAMPLING_FLAGS = {"temperature": "--temperature", "top_p": "--top-p", "seed": "--seed"}


def generation_settings(args: argparse.Namespace):
    """The settings the flags give; a flag that would be ignored is an error."""
    from fadtq.evaluation.predict import GenerationSettings

    given = {key: getattr(args, key) for key in (*GENERATION_FLAGS, *SAMPLING_FLAGS) if getattr(args, key) is not None}
    unused = [flag for key, flag in SAMPLING_FLAGS.items() if key in given and not args.sample]
    if unused:
        raise FadtqError(f"{unused[0]}: only with --sample (decoding is greedy without it)")
    return GenerationSettings(sample=args.sample, **given)


def default_out(args: argparse.Namespace) -> Path:
    from fadtq.evaluation.predict import default_name

    if args.model:
        model = Path(args.model)
        if model.name == "final" and (model.parent / "metrics.jsonl").is_file():
            return model.parent / "eval"
        return Path("runs") / "eval" / (args.name or default_name(model))
    return Path("runs") / "eval" / (args.name or Path(args.predictions).stem)


def run(args: argparse.Namespace) -> int:
    from fadtq.evaluation.predict import evaluate, evaluate_file
    from fadtq.evaluation.report import metrics_markdown

    if args.limit is not None and args.limit < 1:
        raise FadtqError(f"--limit {args.limit}: expected at least 1")
    out = Path(args.out) if args.out else default_out(args)
    if args.predictions:
        flags = {**GENERATION_FLAGS, **SAMPLING_FLAGS, "sample": "--sample"}
        given = [flag for key, flag in flags.items() if getattr(args, key) not in (None, False)]
        if given:
            raise FadtqError(f"{given[0]}: only with --model")
        metrics = evaluate_file(args.predictions, args.benchmark, out, split=args.split, limit=args.limit,
                                tokenizer_path=args.tokenizer, name=args.name)
    else:
        if args.tokenizer:
            raise FadtqError("--tokenizer: only with --predictions (a model uses its own)")
        metrics = evaluate(args.model, args.benchmark, out, split=args.split, settings=generation_settings(args),
                           limit=args.limit, name=args.name)
    print(metrics_markdown([metrics]))
    print(f"{metrics['n']} pairs -> {out / 'predictions.jsonl'}, {out / 'metrics.json'}")
    return 0
