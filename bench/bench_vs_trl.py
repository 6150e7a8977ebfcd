"""This trainer against TRL's ``GRPOTrainer`` on the same tiny Qwen2.5-VL: time per step and peak memory.

Usage: .venv/bin/python bench/bench_vs_trl.py [--rounds 5] [--steps 6] [--prompts 2] [--group 4]
       [--tokens 32] [--image-size 112] [--estimator gpg]

TRL lives in a benchmark venv of its own, ``.venv-bench`` (created here on first use, about a
minute; pins in :data:`BENCH_PINS`: TRL 1.16 asks only ``transformers>=4.56.2``, so both sides
run transformers 5.19 and torch 2.13 CPU). Both sides get the same model folder, the same prompts
and images (exported once from the look-alike's training split, in step order), the same group
size, completion length, sampling (temperature 1, no top-k/top-p, vision tokens suppressed), one
micro-batch per step and no reference model: TRL with ``beta=0``, this trainer with ``gpg``. Each
side runs in its own subprocess (clean peak RSS), rounds alternate which goes first, and the
figures are medians over every timed step of every round.

The step-time ratio this/TRL is compared with 0.8x. Writes ``bench/results/vs_trl.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

TARGET = 0.8  # this/TRL step time is compared with this
BENCH_VENV = benchlib.REPO / ".venv-bench"
BENCH_PINS = ("torch==2.13.0", "trl==1.16.0", "transformers==5.19.0", "accelerate==1.15.0", "datasets==5.2.0",
              "pillow==13.0.0")


def bench_python() -> Path:
    """``.venv-bench``'s interpreter, creating the venv when it lacks the pinned TRL."""
    python = BENCH_VENV / "bin" / "python"
    probe = "import trl, transformers; print(trl.__version__, transformers.__version__)"
    wanted = "1.16.0 5.19.0"
    found = subprocess.run([python, "-c", probe], capture_output=True, text=True) if python.is_file() else None
    if found is not None and found.stdout.strip() == wanted:
        return python
    print(f"creating {BENCH_VENV} with {' '.join(BENCH_PINS)} (first use only)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", BENCH_VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *BENCH_PINS], check=True)
    return python


def export_prompts(out: Path, count: int, image_size: int) -> list[int]:
    """Write the first ``count`` training pairs (messages + PNG images) for the TRL side; return their rows."""
    from fadtq.data.dataset import PairDataset, ensure_default_benchmark

    dataset = PairDataset(ensure_default_benchmark() / "train.jsonl", max_side=image_size)
    indices = list(range(min(count, len(dataset))))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in indices:
        pair = dataset[i]
        names = [f"{i:04d}-ref.png", f"{i:04d}-test.png"]
        pair.ref_image.save(out / names[0])
        pair.test_image.save(out / names[1])
        rows.append({"id": pair.id, "messages": pair.messages, "images": names})
    benchlib.atomic_write_json(out / "prompts.json", rows)
    return indices


def worker(args: argparse.Namespace) -> None:
    count = (args.steps + 1) * args.prompts
    indices = list(range(count))
    result = benchlib.time_trainer(args.estimator, benchlib.cached_model("tiny"), prompts=args.prompts,
                                   group=args.group, tokens=args.tokens, image_size=args.image_size,
                                   steps=args.steps, warmup=1, indices=indices)
    benchlib.emit(result)


def side_cmds(args: argparse.Namespace, data: Path, python: Path) -> dict[str, list[str]]:
    common = ["--prompts", str(args.prompts), "--group", str(args.group), "--tokens", str(args.tokens),
              "--steps", str(args.steps)]
    return {
        "fadtq": [sys.executable, __file__, "--worker", "--estimator", args.estimator,
                  "--image-size", str(args.image_size), *common],
        "trl": [str(python), str(benchlib.HERE / "trl_side.py"), "--data", str(data),
                "--model", str(benchlib.cached_model("tiny")), "--warmup", "1", *common],
    }


def step_seconds(run: dict) -> list[float]:
    """A worker's timed steps (this trainer's side reports phase breakdowns, TRL's plain seconds)."""
    return [s["step"] if isinstance(s, dict) else s for s in run["steps"]]


def round_ratios(runs: dict[str, list[dict]]) -> list[float]:
    """this/TRL per round, from the two sides' medians in that round: load from other jobs on the
    machine tends to hit one round, so the spread of these says how firm the pooled ratio is."""
    return [benchlib.ratio(benchlib.median(step_seconds(a)), benchlib.median(step_seconds(b)))
            for a, b in zip(runs["fadtq"], runs["trl"])]


def summarize(runs: list[dict]) -> dict:
    steps = [s for run in runs for s in step_seconds(run)]
    return {"step_seconds": round(benchlib.median(steps), 4), "step_seconds_all": [round(s, 4) for s in steps],
            "peak_rss_mb": round(benchlib.median([r["peak_rss_mb"] for r in runs]), 1),
            "peak_rss_mb_all": [round(r["peak_rss_mb"], 1) for r in runs],
            "build_seconds": round(benchlib.median([r["build_seconds"] for r in runs]), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per subprocess (after 1 warm-up step)")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--estimator", default="gpg", help="this trainer's estimator; one without a reference model")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    python = bench_python()
    model = benchlib.cached_model("tiny")
    data = benchlib.SCRATCH / "trl-prompts"
    export_prompts(data, (args.steps + 1) * args.prompts, args.image_size)
    cmds = side_cmds(args, data, python)
    runs: dict[str, list[dict]] = {"fadtq": [], "trl": []}
    for round_ in range(args.rounds):
        for side in (("fadtq", "trl") if round_ % 2 == 0 else ("trl", "fadtq")):
            runs[side].append(benchlib.run_worker(cmds[side]))
            print(f"round {round_ + 1}/{args.rounds} {side}: {[round(s, 3) for s in step_seconds(runs[side][-1])]} "
                  "s/step", flush=True)
    ours, trl = summarize(runs["fadtq"]), summarize(runs["trl"])
    if runs["fadtq"][0]["has_reference"]:
        raise SystemExit(f"--estimator {args.estimator} builds a reference model; TRL runs with beta=0")
    step_ratio = benchlib.ratio(ours["step_seconds"], trl["step_seconds"])
    result = {
        "setup": {"model": str(model), "params": runs["fadtq"][0]["params"], "prompts": args.prompts,
                  "group_size": args.group, "max_new_tokens": args.tokens, "image_size": args.image_size,
                  "estimator": args.estimator, "trl_beta": 0.0, "rounds": args.rounds,
                  "timed_steps_per_round": args.steps, "trl_versions": runs["trl"][0]["versions"],
                  **benchlib.machine()},
        "fadtq": ours, "trl": trl,
        "ratio_fadtq_over_trl": {"step_time": step_ratio, "step_time_per_round": round_ratios(runs),
                                 "peak_rss": benchlib.ratio(ours["peak_rss_mb"], trl["peak_rss_mb"])},
        "target_step_time_ratio": TARGET, "target_met": step_ratio <= TARGET,
        "command": ".venv/bin/python bench/bench_vs_trl.py",
    }
    benchlib.atomic_write_json(benchlib.RESULTS / "vs_trl.json", result)
    report(result)


def report(result: dict) -> None:
    s, r = result["setup"], result["ratio_fadtq_over_trl"]
    print(f"tiny Qwen2.5-VL ({s['params'] / 1e3:.0f}k params), {s['prompts']} prompts x {s['group_size']} rollouts, "
          f"{s['max_new_tokens']} new tokens, images {s['image_size']} px, 1 thread; TRL {s['trl_versions']['trl']}")
    for name in ("fadtq", "trl"):
        print(f"  {name:5s} step {result[name]['step_seconds']:.3f} s  peak RSS {result[name]['peak_rss_mb']:.0f} MiB")
    print(f"this/TRL step time: {r['step_time']:.2f}x ({'<=' if result['target_met'] else '>'} {TARGET}x)   "
          f"this/TRL peak RSS: {r['peak_rss']:.2f}x")
    per_round = r["step_time_per_round"]
    print(f"this/TRL step time per round: {', '.join(f'{x:.2f}' for x in per_round)} "
          f"(median {benchlib.median(per_round):.2f}x, {sum(x <= TARGET for x in per_round)}/{len(per_round)} rounds "
          f"<= {TARGET}x)")
    print(f"wrote {benchlib.RESULTS / 'vs_trl.json'}")


if __name__ == "__main__":
    main()
