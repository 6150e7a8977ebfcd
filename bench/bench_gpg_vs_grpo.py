"""GPG against GRPO in this trainer on the ``small`` model: step time, peak memory, where the time goes.

Usage: .venv/bin/python bench/bench_gpg_vs_grpo.py [--rounds 2] [--steps 4] [--prompts 2] [--group 4]
       [--tokens 32] [--image-size 112]

The paper claims GPG saves memory and time by dropping the reference model (and, with its plain
policy-gradient loss, the old-log-prob forward). Both variants run the same prompts, group size,
completion length and rollout seeds; each variant runs in its own subprocess so its peak RSS is
clean, and the rounds alternate which variant goes first, so load from other jobs on the machine
hits both alike. Per-step figures are medians over all timed steps of all rounds; the reference
forward is timed by wrapping ``completion_logprobs`` (see ``benchlib.ForwardTimer``).

Writes ``bench/results/gpg_vs_grpo.json`` atomically and prints GRPO/GPG ratios.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

VARIANTS = ("gpg", "grpo")
PHASES = ("generate", "reference", "old_logprobs", "update", "score")


def worker(args: argparse.Namespace) -> None:
    result = benchlib.time_trainer(args.worker, benchlib.cached_model("small"), prompts=args.prompts,
                                   group=args.group, tokens=args.tokens, image_size=args.image_size,
                                   steps=args.steps, warmup=1)
    benchlib.emit(result)


def worker_cmd(variant: str, args: argparse.Namespace) -> list[str]:
    return [sys.executable, __file__, "--worker", variant, "--steps", str(args.steps), "--prompts", str(args.prompts),
            "--group", str(args.group), "--tokens", str(args.tokens), "--image-size", str(args.image_size)]


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
        "peak_rss_mb": round(benchlib.median([run["peak_rss_mb"] for run in runs]), 1),
        "peak_rss_mb_all": [round(run["peak_rss_mb"], 1) for run in runs],
        "has_reference": runs[0]["has_reference"],
        "completion_tokens_mean": round(benchlib.median([r["tokens"] for r in steps]), 2),
        "params": runs[0]["params"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per subprocess (after 1 warm-up step)")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    model = benchlib.cached_model("small")  # built once here, not raced by the workers
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for round_ in range(args.rounds):
        for variant in (VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]):
            runs[variant].append(benchlib.run_worker(worker_cmd(variant, args)))
            print(f"round {round_ + 1}/{args.rounds} {variant}: "
                  f"{[round(r['step'], 3) for r in runs[variant][-1]['steps']]} s/step", flush=True)
    figures = {v: summarize(runs[v]) for v in VARIANTS}
    gpg, grpo = figures["gpg"], figures["grpo"]
    result = {
        "setup": {"model": str(model), "model_size": "small", "params": gpg["params"], "prompts": args.prompts,
                  "group_size": args.group, "max_new_tokens": args.tokens, "image_size": args.image_size,
                  "rounds": args.rounds, "timed_steps_per_round": args.steps, **benchlib.machine()},
        "gpg": gpg, "grpo": grpo,
        "ratio_grpo_over_gpg": {"step_time": benchlib.ratio(grpo["step_seconds"], gpg["step_seconds"]),
                                "peak_rss": benchlib.ratio(grpo["peak_rss_mb"], gpg["peak_rss_mb"])},
        "gpg_saves": {"step_time_share": round(1 - gpg["step_seconds"] / grpo["step_seconds"], 3),
                      "peak_rss_mb": round(grpo["peak_rss_mb"] - gpg["peak_rss_mb"], 1)},
        "command": ".venv/bin/python bench/bench_gpg_vs_grpo.py",
    }
    benchlib.atomic_write_json(benchlib.RESULTS / "gpg_vs_grpo.json", result)
    report(result)


def report(result: dict) -> None:
    gpg, grpo, r = result["gpg"], result["grpo"], result["ratio_grpo_over_gpg"]
    print(f"small model ({result['setup']['params'] / 1e6:.1f}M params), {result['setup']['prompts']} prompts x "
          f"{result['setup']['group_size']} rollouts, {result['setup']['max_new_tokens']} new tokens, 1 thread")
    for name, fig in (("gpg", gpg), ("grpo", grpo)):
        shares = ", ".join(f"{k} {fig['phase_share'][k]:.0%}" for k in PHASES)
        print(f"  {name:4s} step {fig['step_seconds']:.3f} s  peak RSS {fig['peak_rss_mb']:.0f} MiB  ({shares})")
    print(f"GRPO/GPG step time: {r['step_time']:.2f}x   GRPO/GPG peak RSS: {r['peak_rss']:.2f}x")
    print(f"GPG saves {result['gpg_saves']['step_time_share']:.0%} of the step time and "
          f"{result['gpg_saves']['peak_rss_mb']:.0f} MiB of peak RSS")
    print(f"wrote {benchlib.RESULTS / 'gpg_vs_grpo.json'}")


if __name__ == "__main__":
    main()
