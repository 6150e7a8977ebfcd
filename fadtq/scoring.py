"""Scoring a batch of rollouts: evaluate the configured terms lazily, respecting gates, and total.

Each term is computed only for the rollouts where it is needed and its gate is open, in one
batched call per term; judge verdicts are fetched once per rollout and shared by every
judge-based term (conciseness and relevance come from one judge call).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fadtq.api import Judge, RewardFunction, Verdict
from fadtq.composition import PluginChoice, RewardConfig
from fadtq.errors import FadtqError
from fadtq.formulas import clamp01, weighted_sum
from fadtq.judges.protocol import SCORE_RANGE, judge_item
from fadtq.plugin_manager import Plugins
from fadtq.prompts import PromptLibrary
from fadtq.rollout import Rollout

log = logging.getLogger("fadtq.scoring")


@dataclass
class JudgeStats:
    """Counts for one scoring call. ``skipped``: rollouts never sent to the judge because every
    judge-based term's gate was shut for them (wrong or unparseable answer). ``perfect``: verdicts
    with both scores at 3; a share that climbs over training is the sign of a policy that learnt
    to talk the judge into top marks. ``counts``: what the judge itself counted during the call
    (requests, retries, failures by kind, cache hits), for a ``fadtq.api.CountingJudge``."""

    judged: int = 0
    skipped: int = 0
    failed: int = 0
    calls: int = 0
    seconds: float = 0.0
    perfect: int = 0
    counts: Counter = field(default_factory=Counter)
    failure_examples: list[str] = field(default_factory=list)

    @property
    def perfect_share(self) -> float | None:
        """Perfect verdicts among the successful ones; ``None`` when there were none."""
        ok = self.judged - self.failed
        return self.perfect / ok if ok else None


@dataclass
class ScoredBatch:
    components: dict[str, list[float | None]]
    total: list[float]
    logs: dict[str, float]
    judge: JudgeStats


class _Context:
    """The ``RewardContext`` handed to reward functions: options plus memoised judge verdicts."""

    def __init__(self, get_judge: Callable[[], Judge], stats: JudgeStats) -> None:
        self._get_judge = get_judge
        self._stats = stats
        self._verdicts: dict[str, Verdict] = {}
        self.options: dict = {}

    def verdicts(self, rollouts: Sequence[Rollout]) -> list[Verdict]:
        todo = [r for r in rollouts if r.id not in self._verdicts]
        if todo:
            judge = self._get_judge()
            counted = Counter(getattr(judge, "counts", None) or {})
            started = time.perf_counter()
            fresh = judge.judge([judge_item(r) for r in todo])
            self._stats.seconds += time.perf_counter() - started
            self._stats.counts.update(Counter(getattr(judge, "counts", None) or {}) - counted)
            self._stats.calls += 1
            if len(fresh) != len(todo):
                raise FadtqError(f"judge returned {len(fresh)} verdicts for {len(todo)} items")
            for rollout, verdict in zip(todo, fresh):
                self._verdicts[rollout.id] = verdict
                self._stats.judged += 1
                self._stats.perfect += verdict.ok and verdict.conciseness == verdict.relevance == SCORE_RANGE[-1]
                if not verdict.ok:
                    self._stats.failed += 1
                    if len(self._stats.failure_examples) < 5:
                        self._stats.failure_examples.append(f"{rollout.id}: {verdict.error}")
        return [self._verdicts[r.id] for r in rollouts]


class Scorer:
    """Turns a ``RewardConfig`` and the reward registry into per-rollout components and R."""

    def __init__(self, config: RewardConfig, rewards: Callable[[str], RewardFunction],
                 judge: Callable[[], Judge]) -> None:
        self.config = config
        self._reward = rewards
        self._judge = judge
        for term in config.terms.values():
            if term.reward is not None:
                rewards(term.reward)  # unknown plugin names fail now, not mid-training

    def needed_terms(self) -> list[str]:
        """Active terms and everything they depend on, in dependency order."""
        order: list[str] = []

        def visit(name: str) -> None:
            for dep in self.config.terms[name].dependencies():
                visit(dep)
            if name not in order:
                order.append(name)

        for name in self.config.active:
            visit(name)
        return order

    def score(self, rollouts: Sequence[Rollout]) -> ScoredBatch:
        ids = [r.id for r in rollouts]
        if len(set(ids)) != len(ids):
            raise FadtqError("rollout ids must be unique within a batch")
        stats = JudgeStats()
        ctx = _Context(self._judge, stats)
        values: dict[str, list[float | None]] = {}
        logs: dict[str, float] = {}
        for name in self.needed_terms():
            values[name] = self._evaluate(name, rollouts, values, ctx, stats, logs)
        total = [self._total(values, i) for i in range(len(rollouts))]
        if any(self._needs_judge(name) for name in values):
            stats.skipped = len(rollouts) - stats.judged
        if stats.failed:
            log.warning("judge gave no verdict for %d of %d rollouts (tq counted as 0): %s",
                        stats.failed, stats.judged, "; ".join(stats.failure_examples))
        if stats.perfect_share is not None:
            logs["judge/perfect_share"] = stats.perfect_share
            log.debug("judge: %d judged, %d skipped, %d failed, perfect share %.3f, %s", stats.judged, stats.skipped,
                     stats.failed, stats.perfect_share, dict(sorted(stats.counts.items())))
        components = {name: values.get(name, [None] * len(rollouts)) for name in self.config.terms}
        return ScoredBatch(components, total, logs, stats)

    def uses_judge(self) -> bool:
        """Whether some term the total needs asks the judge."""
        return any(self._needs_judge(name) for name in self.needed_terms())

    def judge(self) -> Judge:
        """The judge, built now if it was not yet (a local judge loads its model here)."""
        return self._judge()

    def with_judge(self, judge: Judge) -> "Scorer":
        """The same composition, asking ``judge`` instead (a dry run needs no model or server)."""
        return Scorer(self.config, self._reward, lambda: judge)

    def _needs_judge(self, name: str) -> bool:
        reward = self.config.terms[name].reward
        return reward is not None and self._reward(reward).needs_judge

    def _open(self, name: str, n: int, values: dict[str, list[float | None]]) -> list[int]:
        gate = self.config.terms[name].gate
        return [i for i in range(n) if gate is None or clamp01(values[gate][i]) > 0.0]

    def _evaluate(self, name, rollouts, values, ctx, stats, logs) -> list[float | None]:
        term = self.config.terms[name]
        open_rows = self._open(name, len(rollouts), values)
        out: list[float | None] = [None] * len(rollouts)
        if term.reward is not None:
            fn = self._reward(term.reward)
            if open_rows:
                ctx.options = term.options
                result = fn([rollouts[i] for i in open_rows], ctx)
                for i, value in zip(open_rows, result.values):
                    out[i] = value
                logs.update({f"{name}/{k}": v for k, v in result.logs.items()})
            return out
        for i in open_rows:
            parts = [(values[dep][i], self.config.mix_weight(w)) for dep, w in term.mix.items()]
            out[i] = None if any(v is None for v, _ in parts) else weighted_sum(parts)
        return out

    def _total(self, values: dict[str, list[float | None]], i: int) -> float:
        """Rollout ``i``'s weighted sum of the active terms: finite terms can still overflow it
        (two of 1e308), which is the terms' fault, named here, not the estimator's later."""
        total, parts = 0.0, []
        for name in self.config.active:
            term = self.config.terms[name]
            gate = clamp01(values[term.gate][i]) if term.gate else 1.0
            value = values[name][i]
            parts.append(f"{name}={value!r}")
            total += term.weight * gate * (0.0 if value is None else value)
        if not math.isfinite(total):
            raise FadtqError(f"reward total of rollout {i} is {total} (terms: {', '.join(parts)}); "
                             "the terms must sum to a finite number")
        return total


def build_scorer(config: RewardConfig, judge: PluginChoice, plugins: Plugins, prompts: PromptLibrary) -> Scorer:
    """A scorer whose judge is built from the registry on first need (never, if no term asks)."""
    factory = plugins.judges.get(judge.name)
    built: list[Judge] = []

    def get_judge() -> Judge:
        if not built:
            built.append(factory.build(judge.options, prompts))
        return built[0]

    return Scorer(config, plugins.rewards.get, get_judge)
