"""The policy's own supervised ceiling: what RL could reach at best with this model and data.

RL turns one scalar per rollout into a gradient; supervised training with the true label in every
response gives the same model strictly more information per pair. Here the pretrained policy of
``configs/cpu_default.yaml`` keeps its own reasoning (its greedy description of each training
pair, written once before training) and is taught the true answer after it, with the vision
tower frozen when the config freezes it, as in RL. The loss is the answer's cross-entropy plus
``--reasoning-weight`` times the reasoning's, as RL's accuracy reward and its ptx term weigh them: a
token mean over the whole response would give the one answer token a thirtieth of the loss, and the
answer alone (weight 0) lets every other output drift until generation breaks. The greedy, end-to-end
test accuracy it reaches, from the same pretrained start, on the same training pairs and image
size, bounds what GPG or GRPO can be expected to reach on them; it is compared with 90%.

    .venv/bin/python bench/policy_ceiling.py --minutes 10
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402  (pins threads before torch is imported)
import torch  # noqa: E402

BAR = 0.9  # the best test accuracy is compared with this


def own_reasoning(model, processor, dataset) -> list[str]:
    """The policy's greedy reasoning for every pair of ``dataset``, in order."""
    from fadtq.answer import think_text
    from fadtq.generation.engine import RolloutPrompt, SamplingParams
    from fadtq.generation.hf import HFRolloutEngine

    engine, params, thoughts = HFRolloutEngine(model, processor), SamplingParams(max_new_tokens=64, greedy=True), []
    for start in range(0, len(dataset), 16):
        pairs = [dataset[i] for i in range(start, min(start + 16, len(dataset)))]
        result = engine.generate([RolloutPrompt(p.ref_image, p.test_image, p.messages) for p in pairs], 1, params)
        thoughts += [think_text(group[0].text) or "" for group in result.groups]
    return thoughts


def weighted_loss(model, batch: dict, answer_id: int, reasoning_weight: float) -> torch.Tensor:
    """Cross-entropy on the answer (the tokens after ``<answer>``) plus ``reasoning_weight`` times
    that on the reasoning before it, each a token mean: RL's accuracy reward with its ptx term."""
    labels = batch.pop("labels")[:, 1:]
    logits = model(**batch).logits[:, :-1]
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels.clamp_min(0), reduction="none")
    taught = labels != -100
    answer = ((batch["input_ids"] == answer_id).long().cumsum(dim=1)[:, :-1] > 0) & taught
    reasoning = taught & ~answer
    return losses[answer].mean() + reasoning_weight * losses[reasoning].mean()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget (wall clock)")
    parser.add_argument("--eval-every", type=float, default=2.5, help="minutes between test evaluations")
    parser.add_argument("--eval-pairs", type=int, default=300, help="stratified test pairs (300: the whole split)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--reasoning-weight", type=float, default=0.1,
                        help="weight of the reasoning's loss beside the answer's (the RL config's ptx_coef)")
    parser.add_argument("--model", help="policy to start from (default: the pretrained policy of cpu_default)")
    args = parser.parse_args()
    benchlib.one_thread()
    torch.manual_seed(0)
    from transformers import AutoModelForImageTextToText

    from fadtq.data.dataset import PairDataset
    from fadtq.evaluation import evaluate_model
    from fadtq.run_config import load_run_config
    from fadtq.training.freeze import freeze_vision_tower
    from fadtq.policy.processor import load_processor, save_policy
    from fadtq.pretraining.default_policy import pretrained_model_dir
    from fadtq.training.preflight import training_benchmark
    from fadtq.pretraining.warmup import supervised_batch

    cfg = load_run_config("cpu_default")
    work = Path(tempfile.mkdtemp(prefix="policy-ceiling-"))
    benchmark = training_benchmark(cfg)
    dataset = PairDataset(benchmark / "train.jsonl", max_side=cfg.data.image_size)
    start = Path(args.model) if args.model else pretrained_model_dir(cfg)
    processor = load_processor(start)
    model = AutoModelForImageTextToText.from_pretrained(str(start), dtype=torch.float32)
    thoughts = own_reasoning(model.eval(), processor, dataset)
    if cfg.train.freeze_vision_tower:
        freeze_vision_tower(model)
    answer_id = processor.tokenizer.convert_tokens_to_ids("<answer>")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    rng, points, steps = random.Random(0), [], 0
    began = time.monotonic()
    next_eval = 0.0
    try:
        while True:
            elapsed = (time.monotonic() - began) / 60
            if elapsed >= next_eval or elapsed >= args.minutes:
                model.eval()
                saved = save_policy(model, processor, work / f"step-{steps}", cfg.data.image_size)
                test, train = (evaluate_model(saved, benchmark, work / f"eval-{split}-{steps}", split=split,
                                              batch_size=16, max_new_tokens=64, limit=args.eval_pairs,
                                              name=f"sft@{steps}") for split in ("test", "train"))
                by_category = {name: round(c["accuracy"], 3) for name, c in test["categories"].items()}
                points.append((steps, round(elapsed, 2), test["accuracy"], train["accuracy"], by_category))
                print(f"{elapsed:5.1f} min, {steps} steps: test accuracy {test['accuracy']:.3f} {by_category}, "
                      f"train accuracy {train['accuracy']:.3f}", flush=True)
                model.train()
                next_eval += args.eval_every
                if elapsed >= args.minutes:
                    break
            picked = [rng.randrange(len(dataset)) for _ in range(args.batch_size)]
            pairs = [dataset[i] for i in picked]
            responses = [f"<think>{thoughts[i]}</think><answer>{dataset[i].label}</answer>" for i in picked]
            loss = weighted_loss(model, supervised_batch(processor, pairs, responses), answer_id, args.reasoning_weight)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            steps += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best = max(point[2] for point in points)
    print(f"{start.name}, {steps} steps of {args.batch_size}: best test accuracy {best:.3f} "
          f"({'>=' if best >= BAR else '<'} {BAR})")
    benchlib.atomic_write_json(benchlib.RESULTS / "policy_ceiling.json",
                      {"start": start.name, "benchmark": benchmark.name, "image_size": cfg.data.image_size,
                       "minutes": args.minutes, "lr": args.lr, "batch_size": args.batch_size,
                       "reasoning_weight": args.reasoning_weight, "steps": steps,
                       "eval_pairs": args.eval_pairs, "command": benchlib.command_line(),
                       "points (step, minutes, test accuracy, train accuracy, test accuracy per category)": points,
                       "best_test_accuracy": best})
    return 0


if __name__ == "__main__":
    sys.exit(main())
