"""The policy's own supervised ceiling: what RL could reach at best with this model and data.

RL turns one scalar per rollout into a gradient; supervised training with the true label in every
response gives the same model strictly more information per pair. So the test accuracy the
policy reaches here, from the same format-warmed start, on the same training pairs and image
size, within the same wall-clock budget, bounds what GPG or GRPO can be expected to reach.

    .venv/bin/python bench/policy_ceiling.py --size tiny --image-size 112 --minutes 20
    .venv/bin/python bench/policy_ceiling.py --size small --image-size 224 --minutes 10
    .venv/bin/python bench/policy_ceiling.py --task control --minutes 5   # labels any model can see
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def labelled_response(rng: random.Random, label: str) -> str:
    """The warm-up's neutral reasoning, with the true answer."""
    from fadtq.training.warmup import NEUTRAL_SENTENCES

    return f"<think>{rng.choice(NEUTRAL_SENTENCES)}</think><answer>{label}</answer>"


def save(model, processor, out: Path) -> Path:
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny", help="offline model preset (fadtq make-tiny-model --size)")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget (wall clock)")
    parser.add_argument("--eval-every", type=float, default=4.0, help="minutes between test evaluations")
    parser.add_argument("--eval-pairs", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--task", choices=("lookalike", "control"), default="lookalike",
                        help="the paper-scale look-alike's labels, or the control task of bench/control_task.py")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from transformers import AutoModelForImageTextToText

    from fadtq.data.dataset import PairDataset, ensure_default_benchmark
    from fadtq.evaluation import evaluate_model
    from fadtq.io import atomic_write_json
    from fadtq.training.processor import load_processor
    from fadtq.training.setup import default_model_dir
    from fadtq.training.warmup import supervised_batch

    work = Path(tempfile.mkdtemp(prefix="policy-ceiling-"))
    if args.task == "control":
        from control_task import control_benchmark

        benchmark = control_benchmark(work / "control-benchmark")
    else:
        benchmark = ensure_default_benchmark(scale="paper")
    dataset = PairDataset(benchmark / "train.jsonl", max_side=args.image_size)
    start = default_model_dir(args.size, 0, 150, dataset)
    processor = load_processor(start)
    model = AutoModelForImageTextToText.from_pretrained(str(start), dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    rng, points, steps = random.Random(0), [], 0
    began = time.monotonic()
    next_eval = 0.0
    try:
        while True:
            elapsed = (time.monotonic() - began) / 60
            if elapsed >= next_eval or elapsed >= args.minutes:
                model.eval()
                saved = save(model, processor, work / f"step-{steps}")
                test, train = (evaluate_model(saved, benchmark, work / f"eval-{split}-{steps}", split=split,
                                              batch_size=16, max_new_tokens=32, limit=args.eval_pairs,
                                              name=f"sft@{steps}")["accuracy"] for split in ("test", "train"))
                points.append((steps, round(elapsed, 2), test, train))
                print(f"{elapsed:5.1f} min, {steps} steps: test accuracy {test:.3f}, train accuracy {train:.3f}",
                      flush=True)
                model.train()
                next_eval += args.eval_every
                if elapsed >= args.minutes:
                    break
            pairs = [dataset[rng.randrange(len(dataset))] for _ in range(args.batch_size)]
            loss = model(**supervised_batch(processor, pairs, [labelled_response(rng, p.label) for p in pairs])).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            steps += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best = max(test for _, _, test, _ in points)
    print(f"{args.task}: {args.size} @ {args.image_size} px, {steps} steps of {args.batch_size}: "
          f"best test accuracy {best:.3f}")
    name = f"policy_ceiling_{args.task}_{args.size}_{args.image_size}.json"
    atomic_write_json(REPO / "bench" / "results" / name,
                      {"task": args.task, "size": args.size, "image_size": args.image_size, "minutes": args.minutes,
                       "lr": args.lr, "batch_size": args.batch_size, "steps": steps, "eval_pairs": args.eval_pairs,
                       "points (step, minutes, test accuracy, train accuracy)": points, "best_test_accuracy": best})
    return 0


if __name__ == "__main__":
    sys.exit(main())
