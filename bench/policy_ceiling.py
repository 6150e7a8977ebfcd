"""The policy's own supervised ceiling: what RL could reach at best with this model and data.

RL turns one scalar per rollout into a gradient; supervised training with the true label in every
response gives the same model strictly more information per pair. Here the pretrained policy of
``configs/cpu_default.yaml`` keeps its own reasoning (its greedy description of each training
pair, written once before training) and is taught the true answer after it, with the vision
tower frozen when the config freezes it, as in RL. The loss is the answer's cross-entropy plus
``--reasoning-weight`` times the reasoning's, as RL's accuracy reward and its ptx term weigh them: a
token mean over the whole response would give the one answer token a thirtieth of the loss, and the
answer alone (weight 0) lets every other output drift until generation breaks. The greedy, end-to-end
accuracy it reaches, from the same pretrained start, on the same training pairs and image size,
bounds what GPG or GRPO can be expected to reach on them. The checkpoint is chosen on the dev split
(the seed-0 test pairs, evaluated every ``--eval-every`` steps) and that one alone is evaluated on
the test split (generator seed data.seed + 1000, which no choice reads).

    .venv/bin/python bench/policy_ceiling.py --steps 600 --eval-every 100                       # the demo's policy
    .venv/bin/python bench/policy_ceiling.py --config learnability --steps 600 --eval-every 100 # the lab's
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402  (pins threads before torch is imported)
import torch  # noqa: E402

def own_reasoning(model, processor, dataset, tokens: int) -> list[str]:
    """The policy's greedy reasoning for every pair of ``dataset``, in order."""
    from fadtq.answer import think_text
    from fadtq.generation.engine import RolloutPrompt, SamplingParams
    from fadtq.generation.hf import HFRolloutEngine

    engine, params, thoughts = HFRolloutEngine(model, processor), SamplingParams(max_new_tokens=tokens, greedy=True), []
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
    parser.add_argument("--config", default="cpu_default",
                        help="run config of the policy, data and freezing (default cpu_default; learnability: the lab)")
    parser.add_argument("--steps", type=int, default=600, help="training steps")
    parser.add_argument("--eval-every", type=int, default=100, help="steps between dev evaluations")
    parser.add_argument("--eval-pairs", type=int, default=300, help="stratified dev pairs (300: the whole split)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--reasoning-weight", type=float, default=0.1,
                        help="weight of the reasoning's loss beside the answer's (the RL config's ptx_coef)")
    args = parser.parse_args()
    benchlib.one_thread()
    torch.manual_seed(0)
    from transformers import AutoModelForImageTextToText

    from fadtq.data.dataset import PairDataset, ensure_heldout_benchmark
    from fadtq.evaluation import evaluate_model
    from fadtq.run_config import load_run_config
    from fadtq.training.freeze import freeze_vision_tower
    from fadtq.policy.processor import load_processor, save_policy
    from fadtq.pretraining.default_policy import pretrained_model_dir
    from fadtq.training.preflight import training_benchmark
    from fadtq.pretraining.warmup import supervised_batch

    cfg = load_run_config(args.config)
    tokens = cfg.rollout.max_new_tokens + 16
    work = Path(tempfile.mkdtemp(prefix="policy-ceiling-"))
    benchmark = training_benchmark(cfg)
    dataset = PairDataset(benchmark / "train.jsonl", max_side=cfg.data.image_size)
    start = pretrained_model_dir(cfg)
    processor = load_processor(start)
    model = AutoModelForImageTextToText.from_pretrained(str(start), dtype=torch.float32)
    thoughts = own_reasoning(model.eval(), processor, dataset, tokens)
    if cfg.train.freeze_vision_tower:
        freeze_vision_tower(model)
    answer_id = processor.tokenizer.convert_tokens_to_ids("<answer>")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    rng, points, best = random.Random(0), [], (-1.0, None)
    try:
        for step in range(args.steps + 1):
            if step % args.eval_every == 0 or step == args.steps:
                model.eval()
                saved = save_policy(model, processor, work / f"step-{step}", cfg.data.image_size)
                dev = evaluate_model(saved, benchmark, work / f"eval-dev-{step}", batch_size=16, max_new_tokens=tokens,
                                     limit=args.eval_pairs, name=f"sft@{step}")
                points.append((step, dev["accuracy"], {n: round(c["accuracy"], 3) for n, c in dev["categories"].items()}))
                print(f"step {step}: dev accuracy {dev['accuracy']:.3f} {points[-1][2]}", flush=True)
                if dev["accuracy"] > best[0]:
                    best = (dev["accuracy"], step)
                model.train()
            if step == args.steps:
                break
            picked = [rng.randrange(len(dataset)) for _ in range(args.batch_size)]
            pairs = [dataset[i] for i in picked]
            responses = [f"<think>{thoughts[i]}</think><answer>{dataset[i].label}</answer>" for i in picked]
            loss = weighted_loss(model, supervised_batch(processor, pairs, responses), answer_id, args.reasoning_weight)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        test_split = ensure_heldout_benchmark(cfg.data.synth_scale, cfg.data.seed, cfg.data.synth_difficulty)
        test = evaluate_model(work / f"step-{best[1]}", test_split, work / "eval-test", batch_size=16,
                              max_new_tokens=tokens, name=f"sft@{best[1]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{start.name}: best dev accuracy {best[0]:.3f} at step {best[1]}; that checkpoint on the test split "
          f"{test['accuracy']:.3f}")
    name = "policy_ceiling.json" if args.config == "cpu_default" else f"policy_ceiling_{args.config}.json"
    benchlib.atomic_write_json(benchlib.RESULTS / name, {
        "start": start.name, "config": args.config, "benchmark": benchmark.name, "image_size": cfg.data.image_size,
        "lr": args.lr, "batch_size": args.batch_size, "reasoning_weight": args.reasoning_weight, "steps": args.steps,
        "eval_pairs": args.eval_pairs, "command": benchlib.command_line(),
        "points (step, dev accuracy, dev accuracy per category)": points,
        "chosen_step": best[1], "dev_accuracy": best[0], "test_split": test_split.name,
        "test_accuracy": test["accuracy"], "test_recall": {n: r["recall"] for n, r in test["per_class"].items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
