"""vLLM against Hugging Face ``generate`` as the rollout engine: generation throughput and trainer step time.

Usage: .venv/bin/python bench/bench_rollout.py [--families qwen2_5_vl,qwen3_vl,qwen3_5] [--prompts 16]
       [--tokens 48] [--calls 3] [--steps 2] [--models small,default] [--groups 4,16] [--out rollout.json]

For each model family (``--families``: the families with a tiny-model builder,
``fadtq.pretraining.tiny_model.TINY_FAMILIES``, all of them by default), each model and each group
size (the default's 4 and four times it), both engines. The models: ``small``, that family's
random-weight preset built offline (about 20M parameters for Qwen2.5-VL; any other preset name of
``tiny_model.SIZES`` works too); ``default``, the CPU default's pretrained policy, which is Qwen2.5-VL
only: it runs once, as a row of family ``qwen2_5_vl``, and only when ``--families`` includes it.

* **generation**: ``--prompts`` look-alike prompts x the group, ``--max-new-tokens`` ``--tokens``,
  sampled at the CPU default's temperature and top-p, ``--calls`` timed calls after one warm-up call;
  throughput = completion tokens / second (median over calls);
* **trainer step**: the trainer on the CPU default config with that model, group and engine (dynamic
  sampling off, so every step draws once), ``--steps`` timed steps after one warm-up step: the
  median step and its phases (generate, score, update, weight sync).

Each (family, engine, model, group, kind) runs in a subprocess of its own, one thread, the two
engines side by side for the same setting, so load from other jobs hits both alike. Writes
``bench/results/rollout.json`` (or ``--out``) atomically (each row names its family, model and group) and prints
the vLLM/hf ratios per (family, model, group) (docs/benchmarks.md compares the Qwen2.5-VL ``small``
model's CPU throughput ratio with 2x).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

ENGINES = ("hf", "vllm")
DEFAULT_FAMILY = "qwen2_5_vl"  # the family of the ``default`` model (the shipped pretrained policy)


def policy_dir(model: str, family: str) -> Path:
    from fadtq.run_config import load_run_config
    from fadtq.pretraining.default_policy import pretrained_model_dir

    if model == "default":
        return pretrained_model_dir(load_run_config("cpu_default"))
    return benchlib.cached_model(model, family=family)


def build_engine(name: str, model_dir: Path):
    import torch
    from transformers import AutoModelForImageTextToText

    from fadtq.plugin_manager import default_plugins
    from fadtq.policy.processor import load_processor

    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32)
    return default_plugins().engines.get(name).build(model.eval(), load_processor(model_dir))


def look_alike_prompts(count: int, image_size: int):
    from fadtq.data.dataset import PairDataset
    from fadtq.generation.engine import RolloutPrompt
    from fadtq.run_config import load_run_config
    from fadtq.training.preflight import training_benchmark

    dataset = PairDataset(training_benchmark(load_run_config("cpu_default")) / "train.jsonl", max_side=image_size)
    return [RolloutPrompt(p.ref_image, p.test_image, p.messages) for p in (dataset[i] for i in range(count))]


def generation_worker(args: argparse.Namespace) -> dict:
    import torch

    from fadtq.generation.engine import SamplingParams
    from fadtq.run_config import load_run_config

    benchlib.one_thread()
    cfg = load_run_config("cpu_default")
    engine = build_engine(args.engine, policy_dir(args.model, args.family))
    torch.set_num_threads(1)
    prompts = look_alike_prompts(args.prompts, cfg.data.image_size)
    params = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, max_new_tokens=args.tokens)
    calls = []
    for call in range(args.calls + 1):
        torch.manual_seed(call)
        started = time.perf_counter()
        result = engine.generate(prompts, args.group, params)
        seconds = time.perf_counter() - started
        tokens = sum(len(c.completion_ids) for group in result.groups for c in group)
        if call:  # the first call warms up (vLLM: first multimodal batch; hf: allocator)
            calls.append({"seconds": seconds, "tokens": tokens})
    return {"calls": calls, "tokens_per_second": benchlib.median([c["tokens"] / c["seconds"] for c in calls]),
            "peak_rss_mb": benchlib.peak_rss_mb()}


def step_worker(args: argparse.Namespace) -> dict:
    from fadtq.run_config import load_run_config

    cfg = load_run_config("cpu_default")
    result = benchlib.time_trainer("gpg", policy_dir(args.model, args.family), prompts=args.prompts, group=args.group,
                                   tokens=args.tokens, image_size=cfg.data.image_size, steps=args.steps, warmup=1,
                                   overrides={"rollout.engine": args.engine, "rollout.dynamic_sampling": "false",
                                              # one top-p for every token: what vLLM samples with
                                              "rollout.reasoning_top_p": "null", "rollout.answer_top_p": "null",
                                              "rollout.answer_draws": "independent"})
    steps = result["steps"]
    return {"step_seconds": benchlib.median([s["step"] for s in steps]),
            "phase_seconds": {k: benchlib.median([s[k] for s in steps]) for k in ("generate", "score", "update",
                                                                                   "weight_sync")},
            "tokens_per_rollout": benchlib.median([s["tokens"] for s in steps]), "peak_rss_mb": result["peak_rss_mb"]}


def worker_cmd(kind: str, engine: str, family: str, model: str, group: int, args: argparse.Namespace) -> list[str]:
    return [sys.executable, __file__, "--worker", kind, "--engine", engine, "--family", family, "--model", model,
            "--group", str(group), "--prompts", str(args.prompts), "--tokens", str(args.tokens),
            "--calls", str(args.calls), "--steps", str(args.steps)]


def parse_args() -> argparse.Namespace:
    from fadtq.arguments import parse_name_list
    from fadtq.errors import FadtqError
    from fadtq.pretraining.tiny_model import SIZES, TINY_FAMILIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--families", default=",".join(TINY_FAMILIES),
                        help=f"comma-separated model families (default: all: {','.join(TINY_FAMILIES)})")
    parser.add_argument("--prompts", type=int, default=16, help="prompts per call / step (the CPU default's 16)")
    parser.add_argument("--tokens", type=int, default=48, help="max new tokens (the CPU default's 48)")
    parser.add_argument("--calls", type=int, default=3, help="timed generate calls per engine")
    parser.add_argument("--steps", type=int, default=2, help="timed trainer steps per engine")
    parser.add_argument("--models", default="small,default",
                        help=f"comma-separated: small, default ({DEFAULT_FAMILY} only) or another preset")
    parser.add_argument("--groups", default="4,16", help="comma-separated group sizes")
    parser.add_argument("--out", default="rollout.json", help="result file name under bench/results/")
    parser.add_argument("--worker", choices=("generate", "step"), help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--family", choices=tuple(TINY_FAMILIES), default=DEFAULT_FAMILY, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--group", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return args
    try:
        args.families = parse_name_list(args.families, "--families")
        args.models = parse_name_list(args.models, "--models")
    except FadtqError as exc:
        parser.error(str(exc))
    for family in args.families:
        if family not in TINY_FAMILIES:
            parser.error(f"--families {family}: not a family with a tiny model; expected some of "
                         f"{', '.join(TINY_FAMILIES)}")
    for model in args.models:
        if model != "default" and model not in SIZES:
            parser.error(f"--models {model}: expected default or a preset ({', '.join(SIZES)})")
    try:
        args.groups = [int(group) for group in args.groups.split(",")]
    except ValueError:
        parser.error(f"--groups {args.groups}: expected comma-separated integers")
    args.plan = [(family, model) for family in args.families for model in args.models
                 if model != "default" or family == DEFAULT_FAMILY]
    if not args.plan:
        parser.error(f"--models default: the default model is {DEFAULT_FAMILY} only, and --families leaves it out")
    return args


def main() -> int:
    args = parse_args()
    if args.worker:
        benchlib.emit((generation_worker if args.worker == "generate" else step_worker)(args))
        return 0
    if "default" in args.models and DEFAULT_FAMILY not in args.families:
        print(f"the default model is {DEFAULT_FAMILY} only, not in --families: it is left out", flush=True)
    settings, lines = [], []
    for family, model in args.plan:  # family by family; the default model only in its family
        for group in args.groups:
            row = {"family": family, "model": model, "group": group}
            for kind in ("generate", "step"):
                row[kind] = {engine: benchlib.run_worker(worker_cmd(kind, engine, family, model, group, args),
                                                         timeout=1800)
                             for engine in ENGINES}
            row["throughput_ratio"] = benchlib.ratio(row["generate"]["vllm"]["tokens_per_second"],
                                                     row["generate"]["hf"]["tokens_per_second"])
            row["step_speedup"] = benchlib.ratio(row["step"]["hf"]["step_seconds"],
                                                 row["step"]["vllm"]["step_seconds"])
            settings.append(row)
            lines.append(f"{family:10s} {model:8s} group {group:3d}: generation "
                         f"{row['generate']['hf']['tokens_per_second']:8.0f} -> "
                         f"{row['generate']['vllm']['tokens_per_second']:8.0f} tokens/s "
                         f"({row['throughput_ratio']:.2f}x); step {row['step']['hf']['step_seconds']:.2f} -> "
                         f"{row['step']['vllm']['step_seconds']:.2f} s ({row['step_speedup']:.2f}x)")
            print(lines[-1], flush=True)
    benchlib.atomic_write_json(benchlib.RESULTS / args.out, {
        "command": benchlib.command_line(), "machine": benchlib.machine(), "families": args.families,
        "prompts": args.prompts, "tokens": args.tokens, "calls": args.calls, "steps": args.steps,
        "settings": settings})
    print("vLLM / hf (hf -> vllm), per family, model and group:\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
