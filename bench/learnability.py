"""Does RL learn, and can a reward shape the reasoning? The paper's Tables 3 and 4 in miniature, on
the CPU default's look-alike: the learnability lab.

Every run starts from the lab's policy (``configs/learnability.yaml``: the demo's policy pretrained
further on reasonings of varied order, facts, wording and length, fadtq/data/varied_reasoning.py;
its answers are at chance) and trains for the same budget, one thread each, two runs side by side
on the 2 cores: a wall clock (``--minutes``) or a step limit (``--train.max_steps``, passed on to
train.py, as the saved results were made). Then each saved checkpoint is evaluated greedily on the
look-alike's dev split (the 300 test pairs of generator seed 0, on which earlier recipes were
tuned: the curves), and the start and the last checkpoint on its test split (the 300 test pairs of
generator seed 1000, which no choice reads: the table and the intervals; docs/data.md). The methods:

- ``fadtq``: GPG with ``format,accuracy,tq`` (FAD-TQ);
- ``grpo``: GRPO with ``format,accuracy`` (the paper's baseline);
- ``gpg``: GPG with ``format,accuracy`` (plain GPG);
- ``no_conciseness`` / ``no_relevance``: FAD-TQ with only the relevance / only the conciseness score;
- ``length_penalty``: plain GPG plus the example plugin's length penalty (the sensitivity check: a
  reward on the reasoning must move it, or the lab cannot see reasoning rewards at all).

Results go to ``bench/results/learnability.json`` (merged run by run, so rounds can be run apart)
and ``docs/learnability.png``. Its ``summary`` holds, for accuracy, reasoning words and the
relevance rate (fadtq/evaluation/relevance_rate.py), per method the mean over the seeds run with a
95% bootstrap interval over seeds and pairs, and the paired differences of ``DIFFERENCES`` over the
seeds both ran (fadtq/evaluation/intervals.py); a run keeps its per-pair scores for that.

    .venv/bin/python bench/learnability.py --runs fadtq-s0,gpg-s0 --minutes 60 --train.max_steps 150
    .venv/bin/python bench/learnability.py --runs gpg-s1,length_penalty-s1 --minutes 60 --train.max_steps 150
    .venv/bin/python bench/learnability.py --replot
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402  (pins threads: the runs and evaluations it starts inherit one thread each)

REPO = benchlib.REPO
RESULT = benchlib.RESULTS / "learnability.json"
FIGURE = REPO / "docs" / "learnability.png"
SUPERVISED = benchlib.RESULTS / "policy_ceiling_learnability.json"


@dataclass(frozen=True)
class Method:
    """A learnability method: its advantage estimator, its reward terms and the train.py overrides
    it adds; ``plugin``: a third-party plugin package (under examples/) it needs, installed by the
    bench into a private folder that only its runs see."""

    estimator: str
    rewards: str
    overrides: tuple[str, ...] = ()
    plugin: str | None = None


METHODS = {
    "fadtq": Method("gpg", "format,accuracy,tq"),
    "grpo": Method("grpo", "format,accuracy"),
    "gpg": Method("gpg", "format,accuracy"),
    "no_conciseness": Method("gpg", "format,accuracy,relevance"),
    "no_relevance": Method("gpg", "format,accuracy,conciseness"),
    # the sensitivity check: a reward on length alone must shorten the reasoning against plain GPG
    "length_penalty": Method("gpg", "format,accuracy,length_penalty", (
        "--reward.terms.length_penalty", "{reward: length_penalty, options: {target_words: 15}}"),
        plugin="fadtq-length-penalty"),
}
PROTOCOL = "varied-reasoning-r5"  # the lab policy (varied reasoning) on revision 5; earlier protocols in docs/history/
EVAL_TOKEN_MARGIN = 16  # evaluation's token budget: the run's max_new_tokens and this many more
TRAIN_WINDOW = 25  # training curves are saved and drawn as means over this many steps


def command(run: str, out: Path, overrides: list[str]) -> list[str]:
    method, seed = run.rsplit("-s", 1)
    spec = METHODS[method]
    return [sys.executable, str(REPO / "fadtq" / "train.py"), "--config", "learnability", "--rewards", spec.rewards,
            "--advantage.name", spec.estimator, "--train.seed", seed, "--output.dir", str(out), "--output.name", run,
            *spec.overrides, *overrides]


def plugin_site(package: str, out: Path) -> Path:
    """``pip install`` the example plugin ``package`` into ``out/.site-PACKAGE`` (once): the real
    entry-point path a third-party reward takes, seen only by the runs that name it."""
    site = out / f".site-{package}"
    if not (site / ".installed").is_file():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(site), str(REPO / "examples" / package)], check=True)
        (site / ".installed").touch()
    return site


def start(run: str, out: Path, overrides: list[str]) -> subprocess.Popen:
    plugin = METHODS[run.rsplit("-s", 1)[0]].plugin
    env = {**os.environ, **({"PYTHONPATH": str(plugin_site(plugin, out))} if plugin else {})}
    log = (out / f"{run}.log").open("w")
    return subprocess.Popen(command(run, out, overrides), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)


def stop_after(processes: dict[str, subprocess.Popen], minutes: float) -> None:
    """Let each run go on for ``minutes``, then interrupt it (Ctrl-C: checkpoints stay complete)."""
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline and any(p.poll() is None for p in processes.values()):
        time.sleep(5)
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
    for process in processes.values():
        process.wait()


def evaluate(run_dir: Path, out: Path) -> subprocess.Popen:
    """Evaluate the start and every checkpoint of a run in a subprocess (one thread)."""
    return subprocess.Popen([sys.executable, __file__, "--points", str(run_dir)], cwd=REPO, start_new_session=True,
                            stdout=(out / f"{run_dir.name}.eval.log").open("w"), stderr=subprocess.STDOUT)


def summary_of(metrics: dict, step: int, relevance: float | None = None) -> dict:
    """The paper's Table 3/4 columns of one evaluation, and on the test split the relevance rate."""
    return {"step": step, "accuracy": metrics["accuracy"], "balance_score": metrics["balance_score"],
            "reasoning_words": metrics.get("reasoning_words_mean"), "reasoning_tokens": metrics.get("reasoning_tokens_mean"),
            "recall": {name: row["recall"] for name, row in metrics["per_class"].items()}, "pairs": metrics["n"],
            **({} if relevance is None else {"relevance_rate": relevance})}


def write_points(run_dir: str) -> None:
    """Greedy metrics of the start and of every checkpoint on the dev split (``RUN/points.json``), and
    of the start and the last checkpoint on the test split (``RUN/test.json``: the look-alike of
    generator seed data.seed + HELDOUT_SEED_OFFSET, which no choice reads), with the relevance rate."""
    from fadtq.data.dataset import ensure_heldout_benchmark
    from fadtq.evaluation import evaluate_model
    from fadtq.run_config import load_run_config

    benchlib.one_thread()
    run = Path(run_dir)
    metadata = json.loads((run / "metadata.json").read_text())
    cfg = load_run_config(run / "config.yaml")
    tokens = cfg.rollout.max_new_tokens + EVAL_TOKEN_MARGIN
    models = [(0, metadata["model_path"])] + [(int(c.name.split("-")[1]), c / "policy")
                                               for c in sorted((run / "checkpoints").glob("step-??????"))]
    points = []
    for step, model in models:
        m = evaluate_model(model, Path(metadata["benchmark"]), run / f"eval-{step:06d}", batch_size=16,
                           max_new_tokens=tokens, name=f"{run.name}@{step}")
        points.append(summary_of(m, step))
    test = ensure_heldout_benchmark(cfg.data.synth_scale, cfg.data.seed, cfg.data.synth_difficulty)
    tested = {}
    for label, (step, model) in (("start", models[0]), ("final", models[-1])):
        m = evaluate_model(model, test, run / f"test-{step:06d}", batch_size=16, max_new_tokens=tokens,
                           name=f"{run.name}@{step}")
        tested[label] = summary_of(m, step, mean(per_pair(run, step, test)["stated"].values()))
    benchlib.atomic_write_json(run / "points.json", points)
    benchlib.atomic_write_json(run / "test.json", tested)


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def per_pair(run_dir: Path, step: int, test: Path) -> dict[str, dict[str, int]]:
    """For the checkpoint of ``step`` on the test split, pair id -> score: ``correct`` (1 or 0),
    ``words`` (of the reasoning) and ``stated`` (1 where the reasoning states the decisive fact:
    fadtq/evaluation/relevance_rate.py)."""
    from fadtq.data.dataset import _root_from_stats
    from fadtq.data.pair3c import read_manifest
    from fadtq.evaluation.predictions import correct_by_id, read_records
    from fadtq.evaluation.relevance_rate import decisive_stated_by_id

    records = read_records(run_dir / f"test-{step:06d}")
    rows = read_manifest(test / "test.jsonl")
    return {"correct": correct_by_id(records), "words": {r["id"]: r["reasoning_words"] for r in records},
            "stated": decisive_stated_by_id(records, rows, _root_from_stats(test / "test.jsonl"))}


def collect(run_dir: Path, minutes: float) -> dict:
    from fadtq.data.dataset import ensure_heldout_benchmark
    from fadtq.run_config import load_run_config

    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    points = json.loads((run_dir / "points.json").read_text())
    tested = json.loads((run_dir / "test.json").read_text())
    data = load_run_config(run_dir / "config.yaml").data
    final = per_pair(run_dir, tested["final"]["step"],
                     ensure_heldout_benchmark(data.synth_scale, data.seed, data.synth_difficulty))
    return {
        "test_split": tested,
        "final_correct": final["correct"],
        "final_words": final["words"],
        "final_stated": final["stated"],
        "command": " ".join(command(run_dir.name, run_dir.parent, [])[1:]),
        "minutes": minutes,
        "steps": len(steps),
        "test": points,
        "final": points[-1],
        "train_reward": windowed_means([(row["step"], row["reward/total"]) for row in steps]),
        "train_accuracy": windowed_means([(row["step"], row.get("sampling/first_draw_accuracy", row["accuracy"]))
                                          for row in steps]),
        "train_words": windowed_means([(row["step"], row["length/think_words"]) for row in steps]),
        "seconds_per_step": windowed_means([(row["step"], sum(row[k] for k in ("time/generate", "time/score",
                                                                                 "time/update"))) for row in steps]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--runs", default="fadtq-s0,grpo-s0", help="comma-separated METHOD-sSEED, at most two")
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per run (wall clock)")
    parser.add_argument("--replot", action="store_true", help="only redraw the figure from the saved results")
    parser.add_argument("--reevaluate", action="store_true",
                        help="evaluate the --runs already trained in runs/learnability again, without training")
    parser.add_argument("--points", help=argparse.SUPPRESS)  # the evaluation subprocess of one run folder
    args, overrides = parser.parse_known_args()  # the rest, e.g. --rollout.temperature 0.5, goes to train.py
    if args.points:
        write_points(args.points)
        return 0
    saved = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    results = saved.get("results", {}) if saved.get("protocol") == PROTOCOL else {}
    if not args.replot:
        runs = args.runs.split(",")
        if len(runs) > 2 or any(r.rsplit("-s", 1)[0] not in METHODS for r in runs):
            parser.error(f"--runs: at most two of {', '.join(METHODS)} with a seed, e.g. fadtq-s0,grpo-s0")
        out = REPO / "runs" / "learnability"
        out.mkdir(parents=True, exist_ok=True)
        if args.reevaluate:
            for run in runs:
                for stale in [*(out / run).glob("eval-??????"), *(out / run).glob("test-??????")]:
                    shutil.rmtree(stale)
        else:
            stop_after({run: start(run, out, overrides) for run in runs}, args.minutes)
        for process in [evaluate(out / run, out) for run in runs]:
            process.wait()
        for run in runs:
            minutes = results[run]["minutes"] if args.reevaluate and run in results else args.minutes
            results[run] = collect(out / run, minutes) | {"overrides": overrides}
            print(f"{run}: {results[run]['steps']} steps; dev accuracy "
                  f"{[round(p['accuracy'], 3) for p in results[run]['test']]}")
    if not results:
        parser.error(f"--replot: no {PROTOCOL} results in {RESULT}; run some first")
    intervals = {**summary(results), "baselines": baselines(REPO / "runs" / "learnability", results)}
    benchlib.atomic_write_json(RESULT, {"protocol": PROTOCOL, "train_window": TRAIN_WINDOW, "results": results,
                                        "summary": intervals})
    plot(results, FIGURE)
    print(table(results))
    print(interval_table(intervals))
    return 0


def windowed_means(points: list, window: int = TRAIN_WINDOW) -> list[tuple[float, float]]:
    """A per-step training curve averaged over consecutive windows of ``window`` steps (at their last step)."""
    return [(points[i + len(chunk) - 1][0], sum(v for _, v in chunk) / len(chunk))
            for i in range(0, len(points), window) if (chunk := points[i:i + window])]


# (first, second): the paired differences reported, seed by seed on the same pairs
DIFFERENCES = (("fadtq", "gpg"), ("gpg", "grpo"), ("length_penalty", "gpg"))
# what is compared: the per-pair score a run records, and its scale in the tables (100: points)
QUANTITIES = {"accuracy": ("final_correct", 100), "reasoning_words": ("final_words", 1),
              "relevance_rate": ("final_stated", 100)}


def by_method(results: dict, key: str) -> dict[str, dict[int, dict[str, float]]]:
    """Method -> seed -> the final per-pair scores under ``key``, for the runs that recorded them."""
    methods: dict[str, dict[int, dict[str, float]]] = {}
    for run, result in results.items():
        if key in result:
            method, seed = run.rsplit("-s", 1)
            methods.setdefault(method, {})[int(seed)] = result[key]
    return methods


def scores(per_seed: dict[int, dict[str, float]], seeds: list[int]) -> list[list[float]]:
    """A seeds x pairs matrix (pairs in id order) of the seeds given."""
    ids = sorted(per_seed[seeds[0]])
    return [[per_seed[seed][pair] for pair in ids] for seed in seeds]


def summary(results: dict) -> dict:
    """For accuracy, reasoning length and the relevance rate: per method, the mean over its seeds'
    final checkpoints with a 95% bootstrap interval over seeds and pairs
    (fadtq/evaluation/intervals.py); and the paired differences of DIFFERENCES over the seeds both
    methods ran."""
    from fadtq.evaluation.intervals import paired_difference, seeds_and_pairs

    out = {}
    for quantity, (key, _) in QUANTITIES.items():
        methods = by_method(results, key)
        rows = {"methods": {}, "differences": {}}
        for method, per_seed in sorted(methods.items()):
            seeds = sorted(per_seed)
            rows["methods"][method] = {"seeds": seeds, **seeds_and_pairs(scores(per_seed, seeds)).as_dict()}
        for first, second in DIFFERENCES:
            shared = sorted(set(methods.get(first, {})) & set(methods.get(second, {})))
            if shared:
                interval = paired_difference(scores(methods[first], shared), scores(methods[second], shared))
                rows["differences"][f"{first} - {second}"] = {"seeds": shared, **interval.as_dict()}
        out[quantity] = rows
    out["means"] = table_means(results)
    return out


def table_means(results: dict) -> dict[str, dict]:
    """Per method, the means over its seeds of the paper's other Table 3/4 columns on the test split:
    the gain over the start, Balance Score, recall per class and reasoning tokens."""
    tested: dict[str, list[dict]] = {}
    for run, result in sorted(results.items()):
        if "test_split" in result:
            tested.setdefault(run.rsplit("-s", 1)[0], []).append(result["test_split"])
    return {method: {
        "gain": mean(t["final"]["accuracy"] - t["start"]["accuracy"] for t in runs),
        "balance_score": mean(t["final"]["balance_score"] for t in runs),
        "reasoning_tokens": mean(t["final"]["reasoning_tokens"] for t in runs),
        "recall": {name: mean(t["final"]["recall"][name] for t in runs) for name in runs[0]["final"]["recall"]},
    } for method, runs in tested.items()}


def baselines(out: Path, results: dict) -> dict:
    """Chance, the start policy, the reasoning ceiling (a rule on the start policy's own reasoning),
    image statistics (fadtq/evaluation/baselines.py) and, once bench/policy_ceiling.py has run for
    this config, the supervised ceiling, all on the test split; empty until a run was evaluated there."""
    from fadtq.data.dataset import ensure_heldout_benchmark
    from fadtq.evaluation.baselines import CHANCE, image_statistics_on, reasoning_ceiling
    from fadtq.run_config import load_run_config

    from fadtq.evaluation.predictions import read_records

    run = next((name for name in sorted(results) if (out / name / "test-000000" / "predictions.jsonl").is_file()), None)
    if run is None:
        return {}
    records = read_records(out / run / "test-000000")
    data = load_run_config(out / run / "config.yaml").data
    trained_on = Path(json.loads((out / run / "metadata.json").read_text())["benchmark"])
    test = ensure_heldout_benchmark(data.synth_scale, data.seed, data.synth_difficulty)
    found = {"chance": CHANCE, "start": sum(r["correct"] for r in records) / len(records),
             "reasoning_ceiling": reasoning_ceiling(records, data.synth_difficulty),
             "image_statistics": image_statistics_on(trained_on / "train.jsonl", test / "test.jsonl", data.image_size)}
    if SUPERVISED.is_file():  # bench/policy_ceiling.py --config learnability: chosen on dev, measured on test
        found["supervised_ceiling"] = json.loads(SUPERVISED.read_text())["test_accuracy"]
    return found


def interval_table(summary_: dict) -> str:
    """The lab's table (Markdown): per method and paired difference, accuracy, reasoning words and
    relevance rate with their intervals, and the means of the other Table 3/4 columns; the
    baselines' accuracies above."""
    names = list(QUANTITIES)
    lines = ["| method, difference or baseline | seeds | test accuracy | gain | Balance Score | recall good / "
             "structural / logical | reasoning words | tokens | relevance rate |", "|---" * 9 + "|"]
    lines += [f"| baseline: {name.replace('_', ' ')} | | {100 * value:.1f} | | | | | | |"
              for name, value in summary_.get("baselines", {}).items()]
    for part in ("methods", "differences"):
        for row_name in summary_["accuracy"][part]:
            cells = {}
            for quantity in names:
                row = summary_[quantity][part].get(row_name)
                scale, sign = QUANTITIES[quantity][1], "+" if part == "differences" else ""
                cells[quantity] = "" if row is None else (f"{scale * row['mean']:{sign}.1f} "
                                                          f"[{scale * row['low']:{sign}.1f}, {scale * row['high']:{sign}.1f}]")
            means = summary_.get("means", {}).get(row_name) if part == "methods" else None
            extra = ["", "", "", ""] if means is None else [
                f"{100 * means['gain']:+.1f}", f"{100 * means['balance_score']:.1f}",
                " / ".join(f"{100 * means['recall'][c]:.0f}" for c in ("good", "structural", "logical")),
                f"{means['reasoning_tokens']:.1f}"]
            seeds = len(summary_["accuracy"][part][row_name]["seeds"])
            lines.append(f"| {row_name} | {seeds} | {cells['accuracy']} | {extra[0]} | {extra[1]} | {extra[2]} | "
                         f"{cells['reasoning_words']} | {extra[3]} | {cells['relevance_rate']} |")
    return "\n".join(lines)


def table(results: dict) -> str:
    """Per run, the last checkpoint's greedy dev accuracy and, where it was evaluated there, its test
    split figures: accuracy, Balance Score, reasoning length, recall per class (Markdown)."""
    lines = ["| run | steps | dev accuracy | test accuracy | Balance Score | reasoning (words / tokens) | "
             "relevance rate | recall good / structural / logical |", "|---|---|---|---|---|---|---|---|"]
    for run, r in sorted(results.items()):
        dev = f"{100 * r['final']['accuracy']:.1f}%"
        test = r.get("test_split", {}).get("final")
        if test is None:
            lines.append(f"| {run} | {r['steps']} | {dev} | not evaluated | | | | |")
            continue
        recall = " / ".join(f"{100 * test['recall'][name]:.0f}%" for name in ("good", "structural", "logical"))
        lines.append(f"| {run} | {r['steps']} | {dev} | {100 * test['accuracy']:.1f}% | "
                     f"{100 * test['balance_score']:.1f} | {test['reasoning_words']:.1f} / "
                     f"{test['reasoning_tokens']:.1f} | {100 * test['relevance_rate']:.1f}% | {recall} |")
    return "\n".join(lines)


def plot(results: dict, png: Path) -> None:
    """Test accuracy and the two training curves side by side, one colour per run."""
    from fadtq.evaluation.charts import COLOURS, add_legend, draw_curves, new_figure, save_png

    figure = new_figure((20, 4))
    panels = (("greedy dev accuracy (300 pairs of seed 0)", lambda r: [(p["step"], p["accuracy"]) for p in r["test"]], (0, 1)),
              (f"train reward R (mean of {TRAIN_WINDOW} steps)", lambda r: r["train_reward"], None),
              (f"sampled train accuracy (mean of {TRAIN_WINDOW} steps)", lambda r: r["train_accuracy"], (0, 1)),
              (f"sampled reasoning words (mean of {TRAIN_WINDOW} steps)", lambda r: r["train_words"], None))
    for axes, (title, points, y_range) in zip(figure.subplots(1, len(panels)), panels):
        series = [(run, COLOURS[i % len(COLOURS)], points(r)) for i, (run, r) in enumerate(sorted(results.items()))]
        draw_curves(axes, title, [s for s in series if s[2]], y_range)
    add_legend(figure, columns=len(results))
    figure.suptitle("RL from the lab's policy, the same budget per run (bench/learnability.py)")
    save_png(figure, png)


if __name__ == "__main__":
    sys.exit(main())
