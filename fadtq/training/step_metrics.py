"""Per-step metrics and samples: ``metrics.jsonl``, ``samples.jsonl`` and TensorBoard (rank 0)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from fadtq import formulas
from fadtq.answer import extract_answer, format_ok, think_text
from fadtq.prompts import CLASS_NAMES
from fadtq.rollout import Rollout
from fadtq.scoring import ScoredBatch
from fadtq.training.dynamic_sampling import SUMMED_OVER_RANKS


def summed_over_ranks(key: str) -> bool:
    """Judge counts and dynamic sampling's group counts add up over ranks; the rest is averaged."""
    return key.startswith("judge/") or key in SUMMED_OVER_RANKS


def reduce_over_ranks(local: dict[str, float]) -> dict[str, float]:
    """The step's metrics over all ranks, in one collective over the union of the ranks' keys.

    Ranks may log different keys: a gated reward's mean or the answers' Balance Score exist only
    where some rollout had one, which on a rank with a few prompts is often not the case. A metric
    is averaged over the ranks that logged it (summed, for counts). Reducing key by key instead
    would pair one rank's values with another's keys, or leave a rank waiting in a collective the
    others never enter."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return dict(local)
    key_lists: list = [None] * dist.get_world_size()
    dist.all_gather_object(key_lists, sorted(local))
    keys = sorted(set().union(*key_lists))
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    values = torch.tensor([[float(local.get(k, 0.0)), float(k in local)] for k in keys], dtype=torch.float64,
                          device=device)
    dist.all_reduce(values)
    return {k: total if summed_over_ranks(k) else total / ranks
            for k, (total, ranks) in zip(keys, values.tolist())}


def accuracy(rollouts: list[Rollout]) -> float:
    """The share of rollouts whose answer names their label."""
    return float(np.mean([extract_answer(r.completion) == r.label for r in rollouts]))


def step_metrics(scored: ScoredBatch, rollouts: list[Rollout], lengths: list[int]) -> dict[str, float]:
    """Each reward component's mean over the rollouts where it was computed, plus rates and counts."""
    metrics: dict[str, float] = {"reward/total": float(np.mean(scored.total))}
    for name, values in scored.components.items():
        present = [v for v in values if v is not None]
        if present:
            metrics[f"reward/{name}"] = float(np.mean(present))
    # what reward plugins logged (RewardOutput.logs), as reward/<term>/<key>
    metrics.update({f"reward/{key}": float(value) for key, value in scored.logs.items()
                    if not key.startswith("judge/")})
    metrics["accuracy"] = accuracy(rollouts)
    metrics["format_rate"] = float(np.mean([format_ok(r.completion) for r in rollouts]))
    metrics.update(answer_shares(rollouts))
    metrics["length/tokens"] = float(np.mean(lengths))
    metrics["length/think_words"] = float(np.mean([len((think_text(r.completion) or "").split()) for r in rollouts]))
    judge = scored.judge
    metrics.update({"judge/judged": judge.judged, "judge/skipped": judge.skipped, "judge/failed": judge.failed,
                    "judge/calls": judge.calls, "judge/perfect": judge.perfect})
    metrics.update({f"judge/{key}": value for key, value in judge.counts.items()})
    if judge.perfect_share is not None:  # a share, averaged over ranks: outside the summed judge/ counts
        metrics["reward/judge_perfect_share"] = judge.perfect_share
    return metrics


def answer_shares(rollouts: list[Rollout]) -> dict[str, float]:
    """How often each class was answered (``answers/<class>``) and their Balance Score: a policy
    collapsing onto one answer stops exploring, which these show before accuracy does."""
    answers = [extract_answer(r.completion) for r in rollouts]
    counts = [sum(a == name for a in answers) for name in CLASS_NAMES]
    shares = {f"answers/{name}": count / len(rollouts) for name, count in zip(CLASS_NAMES, counts)}
    return {**shares, "answers/balance_score": formulas.balance_score(counts)} if sum(counts) else shares


class MetricsLog:
    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self._files = {}
        self._tb = None
        if enabled:
            self._files = {name: (run_dir / f"{name}.jsonl").open("a", encoding="utf-8")
                           for name in ("metrics", "samples")}
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional on GPU installs
                SummaryWriter = None
            self._tb = SummaryWriter(str(run_dir / "tensorboard")) if SummaryWriter else None

    def _append(self, name: str, row: dict) -> None:
        """One line of valid JSON: a non-finite number (a loss that diverged) is written as null."""
        row = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
        handle = self._files[name]
        handle.write(json.dumps(row, sort_keys=True) + "\n")
        handle.flush()

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._append("metrics", {"step": step, **metrics})
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(key, value, step)

    def write_samples(self, step: int, samples: list[dict]) -> None:
        if self.enabled:
            for sample in samples:
                self._append("samples", {"step": step, **sample})

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        if self._tb is not None:
            self._tb.close()
