"""``fadtq reward``: score a JSONL of rollouts offline with the configured composition."""

from __future__ import annotations

import argparse
import logging

from fadtq.arguments import parse_name_list
from fadtq.errors import FadtqError
from fadtq.files import atomic_write_jsonl, check_output_file, read_jsonl
from fadtq.plugin_manager import default_plugins
from fadtq.prompts import PromptLibrary
from fadtq.rollout import Rollout
from fadtq.run_config import check_plugins, load_run_config_traced
from fadtq.scoring import build_scorer
from fadtq.scoring_checks import reach_judge, render_judge_templates
from fadtq.table import format_table

# the flags of this command that set config keys
FLAG_KEYS = {"judge": "judge.name", "prompts_dir": "prompts_dir"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file or preset name (default: the CPU default preset)")
    parser.add_argument("--rewards", help="comma-separated active terms, e.g. format,accuracy,tq")
    parser.add_argument("--input", required=True, help="rollouts JSONL: id, group, prompt, completion, label, category")
    parser.add_argument("--output", required=True, help="scored JSONL (written atomically)")
    parser.add_argument("--advantage", help="also compute advantages with this estimator (e.g. gpg)")
    parser.add_argument("--judge", help="judge plugin (overrides the config's judge.name)")
    parser.add_argument("--prompts-dir", help="folder whose templates override the packaged ones")


def read_rollouts(path: str) -> list[Rollout]:
    rollouts = [Rollout.from_row(row, f"{path}:{line}") for line, row in read_jsonl(path)]
    if not rollouts:
        raise FadtqError(f"{path}: no rollouts (the file is empty or blank); expected one JSON object per line")
    seen: set[str] = set()
    for rollout in rollouts:
        if rollout.id in seen:
            raise FadtqError(f"{path}: duplicate id {rollout.id!r}")
        seen.add(rollout.id)
    return rollouts


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    check_output_file(args.output, "--output")
    plugins = default_plugins()
    for flag, registry in (("judge", plugins.judges), ("advantage", plugins.advantages)):
        if getattr(args, flag) is not None:
            registry.get(getattr(args, flag))  # an unknown name is blamed on the flag
    overrides = {key: getattr(args, flag) for flag, key in FLAG_KEYS.items() if getattr(args, flag) is not None}
    flags = {key: f"--{flag.replace('_', '-')}" for flag, key in FLAG_KEYS.items()}
    cfg, origins = load_run_config_traced(args.config, overrides, flags)
    with origins.blame():
        check_plugins(cfg, plugins)
        reward_cfg = cfg.reward
        if args.rewards is not None:
            reward_cfg = reward_cfg.with_active(parse_name_list(args.rewards, "--rewards"), plugins.rewards.names())
        estimator = plugins.advantages.get(args.advantage) if args.advantage is not None else None
        rollouts = read_rollouts(args.input)
        prompts = PromptLibrary(cfg.prompts_dir)
        scorer = build_scorer(reward_cfg, cfg.judge, plugins, prompts)
        render_judge_templates(scorer, cfg.judge, plugins, prompts)
        reach_judge(scorer)
    scored = scorer.score(rollouts)
    # the config's estimator options (checked with the config) apply when --advantage names it
    options = cfg.advantage.options if estimator and estimator.name == cfg.advantage.name else {}
    advantages = estimator(scored.total, [r.group for r in rollouts], **options) if estimator else None
    atomic_write_jsonl(args.output, scored_rows(rollouts, scored, advantages))
    print_summary(args.output, scored)
    return 0


def scored_rows(rollouts: list[Rollout], scored, advantages) -> list[dict]:
    rows = []
    for i, rollout in enumerate(rollouts):
        row = rollout.to_row()
        row["rewards"] = {name: values[i] for name, values in scored.components.items()} | {"total": scored.total[i]}
        if advantages is not None:
            row["advantage"] = float(advantages[i])
        rows.append(row)
    return rows


def print_summary(output: str, scored) -> None:
    n = len(scored.total)
    rows = []
    for name, values in list(scored.components.items()) + [("total", scored.total)]:
        present = [v for v in values if v is not None]
        mean = f"{sum(present) / len(present):.4f}" if present else "-"
        rows.append([name, mean, len(present)])
    print(format_table(["component", "mean", "computed"], rows))
    logs = [[key, f"{value:.4f}"] for key, value in sorted(scored.logs.items()) if not key.startswith("judge/")]
    if logs:
        print(format_table(["plugin log (term/key)", "value"], logs))
    j = scored.judge
    print(f"{n} rollouts -> {output}; judge: {j.judged} judged, {j.skipped} skipped by the gate, {j.failed} failed")
