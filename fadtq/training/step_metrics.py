"""Per-step metrics and samples: what a step measured (rewards, answers, lengths, the update's sums,
the time of each phase), reduced over the ranks, and written to ``metrics.jsonl``, ``samples.jsonl``
and TensorBoard (rank 0)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fadtq import formulas
from fadtq.answer import extract_answer, format_ok, think_text
from fadtq.policy.forward_batch import ForwardBatch
from fadtq.policy.logprobs import TokenStats
from fadtq.prompts import CLASS_NAMES
from fadtq.rollout import Rollout
from fadtq.scoring import ScoredBatch
from fadtq.training.dynamic_sampling import SUMMED_OVER_RANKS
from fadtq.training.trackers import Tracker


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


class StepTimer:
    """Seconds per phase of a step, logged as ``time/<phase>`` (summed when a phase runs more than once).

    ``synchronize`` (on a GPU, ``torch.cuda.synchronize``) waits for queued work at both ends of a
    phase, so that a phase is charged for its own kernels."""

    def __init__(self, synchronize: Callable[[], None] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.synchronize = synchronize or (lambda: None)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.synchronize()
        started = time.perf_counter()
        try:
            yield
        finally:
            self.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def take(self) -> dict[str, float]:
        """The step's phases, and a fresh start for the next step."""
        out = {f"time/{name}": seconds for name, seconds in self.seconds.items()}
        self.seconds = {}
        return out


@dataclass
class UpdateTotals:
    """What an update sums over its micro-batches: the loss's parts, each auxiliary term's
    (value, weight), the completion tokens' entropy and their distance from the sampler's
    log-probabilities, and the gradient norm measured at the accumulation boundary."""

    lr: float
    micro_batches: int
    losses: dict[str, float] = field(default_factory=dict)
    terms: dict[str, list[float]] = field(default_factory=dict)
    entropy: float = 0.0
    tokens: float = 0.0
    logprob_gap: float | None = None
    mismatch: dict[str, float] = field(default_factory=dict)
    grad_norm: float | None = None

    def add(self, parts: dict[str, float], stats: TokenStats, batch: ForwardBatch) -> None:
        for key, value in parts.items():
            self.losses[key] = self.losses.get(key, 0.0) + value / self.micro_batches
        self.entropy += float(stats.entropy.detach().sum())
        self.tokens += float(batch.action_mask.sum())
        if batch.rollout_logprobs is not None:  # the forwards run before the step: the sampled weights
            gap = float((stats.logprobs.detach() - batch.rollout_logprobs).abs().sum())
            self.logprob_gap = (self.logprob_gap or 0.0) + gap

    def add_mismatch(self, metrics: dict[str, float]) -> None:
        """A micro-batch's rollout-correction diagnostics (averaged over the micro-batches)."""
        for key, value in metrics.items():
            self.mismatch[key] = self.mismatch.get(key, 0.0) + value / self.micro_batches

    def add_term(self, metric: str, value: float, weight: float) -> None:
        total = self.terms.setdefault(metric, [0.0, 0.0])
        total[0] += value * weight
        total[1] += weight

    def metrics(self, engine_grad_norm: float | None) -> dict[str, float]:
        """DeepSpeed reports the norm from its ZeRO/bf16 optimizers only; without them (ZeRO 0, fp32,
        the CPU default) it is None, and the norm of the reduced gradients measured here stands."""
        tokens = max(self.tokens, 1.0)
        out = {"optim/lr": self.lr, **{f"loss/{key}": value for key, value in self.losses.items()},
               **{metric: total / max(weight, 1.0) for metric, (total, weight) in self.terms.items()},
               "policy/entropy": self.entropy / tokens,
               "optim/grad_norm": float(engine_grad_norm if engine_grad_norm is not None else self.grad_norm or 0.0),
               **self.mismatch}
        if self.logprob_gap is not None:
            out["rollout/logprob_gap"] = self.logprob_gap / tokens
        return out


class MetricsLog:
    """``metrics.jsonl`` and ``samples.jsonl`` in the run folder, and the run's trackers (rank 0)."""

    def __init__(self, run_dir: Path, enabled: bool, trackers: Sequence[Tracker] = ()) -> None:
        self.enabled = enabled
        self.trackers = list(trackers) if enabled else []
        self._files = {}
        if enabled:
            self._files = {name: (run_dir / f"{name}.jsonl").open("a", encoding="utf-8")
                           for name in ("metrics", "samples")}

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
        for tracker in self.trackers:
            tracker.log(step, metrics)

    def write_samples(self, step: int, samples: list[dict]) -> None:
        if not self.enabled:
            return
        for sample in samples:
            self._append("samples", {"step": step, **sample})
        for tracker in self.trackers:
            tracker.log_samples(step, samples)

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        for tracker in self.trackers:
            tracker.close()
