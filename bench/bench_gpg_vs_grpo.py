"""GPG against GRPO in this trainer: step time, peak memory, where the time goes.

Usage: .venv/bin/python bench/bench_gpg_vs_grpo.py [--setup small|paper] [--dry-run] [--rounds N] [--steps N]
       [--prompts N] [--group N] [--tokens N] [--image-size N]

The paper claims GPG saves memory and time by dropping the reference model (and, with its plain
policy-gradient loss, the old-log-prob forward). Both variants run the same prompts, group size,
completion length and rollout seeds; each variant runs in its own subprocess so its peak memory
is clean, and the rounds alternate which variant goes first, so load from other jobs on the machine
hits both alike. Per-step figures are medians over all timed steps of all rounds; the reference
and old-log-prob forwards are the trainer's own ``time/reference`` and ``time/old_logprobs``.

Two setups (the numeric flags default to the setup's values):

- ``small`` (the default): the CPU comparison on the ``small`` model (22.6M parameters), the CPU
  default's config with one micro-batch per step; memory is peak RSS. Writes
  ``bench/results/gpg_vs_grpo.json``.
- ``paper``: the paper's step as one GPU holds it (``bench/gpu_check.sh`` runs it on a lent GPU):
  ``paper_fadtq`` (bf16, ZeRO-2, micro-batches of 4, 512 new tokens, 448-pixel images) on the ``3b``
  model, Qwen2.5-VL-3B's architecture with random weights, with 8 prompts x 8 rollouts, the paper's
  32 x 8 over the 4 training GPUs of docs/training.md. Two things differ from the paper's run: the
  judge is the heuristic one (no Qwen3-8B server) and attention is sdpa (no flash-attn). Memory is
  peak GPU memory (``torch.cuda.max_memory_allocated``). Writes ``bench/results/gpg_vs_grpo_paper.json``.
  With ``--dry-run``, or where CUDA is absent, the same path (bf16 and ZeRO-2 included) runs on the
  CPU scaled down (the ``tiny`` model, 2 prompts x 2 rollouts in micro-batches of 2, 8 new tokens,
  one timed step) to show that it works end to end; its figures mean nothing and go to
  ``bench/results/tmp/``.

Writes the result atomically and prints GRPO/GPG ratios.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

VARIANTS = ("gpg", "grpo")
PHASES = ("generate", "reference", "old_logprobs", "update", "score")


@dataclass(frozen=True)
class Setup:
    """One comparison: the model preset, the config it starts from and the command line's defaults."""

    model: str
    preset: str | None  # None: the CPU default, with the whole step in one micro-batch
    rounds: int
    steps: int
    prompts: int
    group: int
    tokens: int
    image_size: int
    micro_batch: int = 0  # with a preset: train.micro_batch_size
    result: Path = benchlib.RESULTS / "gpg_vs_grpo.json"


SETUPS = {
    "small": Setup("small", None, rounds=2, steps=4, prompts=2, group=4, tokens=32, image_size=112),
    "paper": Setup("3b", "paper_fadtq", rounds=1, steps=2, prompts=8, group=8, tokens=512, image_size=448,
                   micro_batch=4, result=benchlib.RESULTS / "gpg_vs_grpo_paper.json"),
    "paper-dry-run": Setup("tiny", "paper_fadtq", rounds=1, steps=1, prompts=2, group=2, tokens=8, image_size=448,
                           micro_batch=2, result=benchlib.SCRATCH / "gpg_vs_grpo_paper_dry_run.json"),
}
NUMBERS = ("rounds", "steps", "prompts", "group", "tokens", "image_size")


def setup_overrides(setup: Setup, image_size: int) -> dict[str, str]:
    """The keys a preset setup changes: its micro-batch, sdpa, the heuristic judge, and the look-alike
    drawn at ``image_size`` pixels (the default one's 128 pixels give too few image tokens)."""
    if setup.preset is None:
        return {}
    from fadtq.data.dataset import ensure_default_benchmark

    return {"train.micro_batch_size": str(setup.micro_batch), "model.attn_implementation": "sdpa",
            "judge.name": "heuristic", "judge.options": "{}",
            "data.benchmark": str(ensure_default_benchmark("tiny", size=image_size))}


def worker(args: argparse.Namespace, setup: Setup) -> None:
    result = benchlib.time_trainer(args.worker, benchlib.cached_model(setup.model), prompts=args.prompts,
                                   group=args.group, tokens=args.tokens, image_size=args.image_size,
                                   steps=args.steps, warmup=1, preset=setup.preset,
                                   overrides=setup_overrides(setup, args.image_size))
    benchlib.emit(result)


def worker_cmd(variant: str, args: argparse.Namespace) -> list[str]:
    return [sys.executable, __file__, "--worker", variant, "--setup", args.setup, *(["--dry-run"] * args.dry_run),
            *[f"--{name.replace('_', '-')}={getattr(args, name)}" for name in NUMBERS]]


def peak_memory(runs: list[dict]) -> dict:
    """Peak RSS, and on a GPU the peak GPU memory, as medians over the runs (each run's too)."""
    out = {"peak_rss_mb": round(benchlib.median([run["peak_rss_mb"] for run in runs]), 1),
           "peak_rss_mb_all": [round(run["peak_rss_mb"], 1) for run in runs]}
    if runs[0]["gpu"] is not None:
        for key in runs[0]["gpu"]:
            out[f"gpu_{key}"] = round(benchlib.median([run["gpu"][key] for run in runs]), 1)
        out["gpu_peak_allocated_mb_all"] = [round(run["gpu"]["peak_allocated_mb"], 1) for run in runs]
    return out


def summarize(runs: list[dict]) -> dict:
    """Medians over every timed step of every round; phase shares of the median step.

    ``update`` in the trainer's metrics includes the reference and old-log-prob forwards (they
    run inside ``Trainer.update``); here they are taken out so the shares add up to about 1.
    """
    steps = [row for run in runs for row in run["steps"]]
    step = benchlib.median([r["step"] for r in steps])
    phases = {"generate": benchlib.median([r["generate"] for r in steps]),
              "reference": benchlib.median([r["reference"] for r in steps]),
              "old_logprobs": benchlib.median([r["old_logprobs"] for r in steps]),
              "update": benchlib.median([r["update"] - r["reference"] - r["old_logprobs"] for r in steps]),
              "score": benchlib.median([r["score"] for r in steps])}
    return {
        "step_seconds": round(step, 4),
        "step_seconds_all": [round(r["step"], 4) for r in steps],
        "phase_seconds": {k: round(v, 4) for k, v in phases.items()},
        "phase_share": {k: round(v / step, 3) for k, v in phases.items()},
        **peak_memory(runs),
        "has_reference": runs[0]["has_reference"],
        "completion_tokens_mean": round(benchlib.median([r["tokens"] for r in steps]), 2),
        "params": runs[0]["params"],
        "build_seconds": round(benchlib.median([run["build_seconds"] for run in runs]), 1),
    }


def memory_measure(figures: dict) -> tuple[str, str, str]:
    """The memory the comparison is about: peak GPU memory on a GPU, else peak RSS (figure key,
    ratio key, words)."""
    if "gpu_peak_allocated_mb" in figures:
        return "gpu_peak_allocated_mb", "peak_gpu_memory", "peak GPU memory"
    return "peak_rss_mb", "peak_rss", "peak RSS"


def compare(gpg: dict, grpo: dict) -> tuple[dict, dict]:
    """GRPO/GPG ratios and what GPG saves: step time, peak RSS, and peak GPU memory on a GPU."""
    ratios = {"step_time": benchlib.ratio(grpo["step_seconds"], gpg["step_seconds"])}
    saves = {"step_time_share": round(1 - gpg["step_seconds"] / grpo["step_seconds"], 3)}
    for figure, name in (("peak_rss_mb", "peak_rss"), ("gpu_peak_allocated_mb", "peak_gpu_memory")):
        if figure in gpg:
            ratios[name] = benchlib.ratio(grpo[figure], gpg[figure])
            saves[f"{name}_mb"] = round(grpo[figure] - gpg[figure], 1)
    return ratios, saves


def resolve(args: argparse.Namespace) -> tuple[str, Setup]:
    """The setup to run (``paper`` becomes its CPU dry run where CUDA is absent); fills unset numbers."""
    import torch

    if args.dry_run and args.setup != "paper":
        raise SystemExit("--dry-run: only with --setup paper (the small setup already runs on the CPU)")
    if args.setup == "paper" and not args.dry_run and not torch.cuda.is_available():
        if not args.worker:
            print("no CUDA device: running the paper setup's CPU dry run instead", flush=True)
        args.dry_run = True
    name = "paper-dry-run" if args.dry_run else args.setup
    setup = SETUPS[name]
    for number in NUMBERS:
        if getattr(args, number) is None:
            setattr(args, number, getattr(setup, number))
        elif getattr(args, number) < 1:
            raise SystemExit(f"--{number.replace('_', '-')} {getattr(args, number)}: expected a number >= 1")
    return name, setup


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--setup", choices=("small", "paper"), default="small",
                        help="small: the CPU comparison; paper: the paper's per-GPU step on CUDA (see the docstring)")
    parser.add_argument("--dry-run", action="store_true", help="with --setup paper: its path on the CPU, scaled down")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--steps", type=int, help="timed steps per subprocess (after 1 warm-up step)")
    parser.add_argument("--prompts", type=int)
    parser.add_argument("--group", type=int)
    parser.add_argument("--tokens", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    name, setup = resolve(args)
    if args.worker:
        return worker(args, setup)
    model = benchlib.cached_model(setup.model)  # built once here, not raced by the workers
    setup_overrides(setup, args.image_size)  # likewise the look-alike a preset setup draws
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for round_ in range(args.rounds):
        for variant in (VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]):
            run = benchlib.run_worker(worker_cmd(variant, args))
            runs[variant].append(run)
            memory = f", peak GPU memory {run['gpu']['peak_allocated_mb']:.0f} MiB" if run["gpu"] else ""
            print(f"round {round_ + 1}/{args.rounds} {variant}: built in {run['build_seconds']:.1f} s, "
                  f"{[round(r['step'], 3) for r in run['steps']]} s/step{memory}", flush=True)
    figures = {v: summarize(runs[v]) for v in VARIANTS}
    gpg, grpo = figures["gpg"], figures["grpo"]
    ratios, saves = compare(gpg, grpo)
    first = runs["gpg"][0]
    result = {
        "setup": {"name": name, "model": str(model), "model_size": setup.model, "params": gpg["params"],
                  "config": setup.preset or "cpu_default", "prompts": args.prompts, "group_size": args.group,
                  "max_new_tokens": args.tokens, "image_size": args.image_size,
                  **{k: first[k] for k in ("micro_batch_size", "dtype", "zero_stage", "optimizer", "device",
                                           "versions")},
                  "rounds": args.rounds, "timed_steps_per_round": args.steps, **benchlib.machine()},
        "gpg": gpg, "grpo": grpo, "ratio_grpo_over_gpg": ratios, "gpg_saves": saves,
        "command": shlex.join(["python", "bench/bench_gpg_vs_grpo.py", *sys.argv[1:]]),
    }
    benchlib.atomic_write_json(setup.result, result)
    report(result, setup.result)


def report(result: dict, path: Path) -> None:
    s, gpg, grpo, r = result["setup"], result["gpg"], result["grpo"], result["ratio_grpo_over_gpg"]
    figure, name, label = memory_measure(gpg)
    print(f"{s['model_size']} model ({s['params'] / 1e6:.1f}M params, {s['dtype']}, ZeRO-{s['zero_stage']}, "
          f"{s['optimizer']}) on {s['device']}: {s['prompts']} prompts x {s['group_size']} rollouts, micro-batches "
          f"of {s['micro_batch_size']}, {s['max_new_tokens']} new tokens, {s['image_size']}-px images, 1 thread")
    for variant, fig in (("gpg", gpg), ("grpo", grpo)):
        shares = ", ".join(f"{k} {fig['phase_share'][k]:.0%}" for k in PHASES)
        print(f"  {variant:4s} step {fig['step_seconds']:.3f} s  {label} {fig[figure]:.0f} MiB  ({shares})")
    print(f"GRPO/GPG step time: {r['step_time']:.2f}x   GRPO/GPG {label}: {r[name]:.2f}x")
    print(f"GPG saves {result['gpg_saves']['step_time_share']:.0%} of the step time and "
          f"{result['gpg_saves'][f'{name}_mb']:.0f} MiB of {label}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
