"""What a plugin author imports: the types that cross the plugin boundary."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fadtq.errors import FadtqError
from fadtq.hookspecs import hookimpl
from fadtq.rollout import Rollout

__all__ = [
    "AdvantageEstimator", "Judge", "JudgeFactory", "JudgeItem", "RewardContext", "RewardFunction",
    "RewardOutput", "Rollout", "Verdict", "hookimpl",
]


@dataclass(frozen=True)
class JudgeItem:
    """What a judge sees of one rollout: untrusted ``reasoning`` enters prompts only as data."""

    question: str
    reasoning: str
    answer: str
    category: str = ""


@dataclass(frozen=True)
class Verdict:
    """Scores 0-3, or ``error`` (and no scores) when the judge could not give a verdict."""

    conciseness: int | None = None
    relevance: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Judge(Protocol):
    """A judge may also have ``check()``: reach its server once, raising ``FadtqError`` when it
    cannot (runs call it before their first step)."""

    name: str

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """One verdict per item, in order."""


@dataclass(frozen=True)
class JudgeFactory:
    name: str
    build: Callable[..., Judge]  # build(options: dict, prompts: PromptLibrary) -> Judge
    description: str = ""
    templates: tuple[str, ...] = ()  # the prompt templates the judge renders (checked and hashed per run)


@dataclass
class RewardOutput:
    values: list[float | None]
    logs: dict[str, float] = field(default_factory=dict)


class RewardContext(Protocol):
    """What a reward function may ask of the scoring run."""

    options: dict[str, Any]

    def verdicts(self, rollouts: Sequence[Rollout]) -> list[Verdict]:
        """Judge verdicts for these rollouts; each rollout is judged at most once per scoring call."""


@dataclass(frozen=True)
class RewardFunction:
    name: str
    fn: Callable[[Sequence[Rollout], RewardContext], RewardOutput]
    needs_judge: bool = False
    description: str = ""

    def __call__(self, rollouts: Sequence[Rollout], ctx: RewardContext) -> RewardOutput:
        """The plugin's values, each checked: one per rollout, a finite number or ``None``."""
        out = self.fn(rollouts, ctx)
        values = getattr(out, "values", None)
        if not isinstance(values, (list, tuple)):
            raise FadtqError(f"reward plugin {self.name!r}: returned {type(out).__name__}, expected a RewardOutput "
                             "with a list of values")
        if len(values) != len(rollouts):
            raise FadtqError(f"reward plugin {self.name!r}: returned {len(values)} values for {len(rollouts)} rollouts")
        for rollout, value in zip(rollouts, values):
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                      or not math.isfinite(value)):
                raise FadtqError(f"reward plugin {self.name!r}: returned {value!r} for rollout {rollout.id!r}; "
                                 "expected a finite number or None")
        return RewardOutput([None if v is None else float(v) for v in values], out.logs)


@dataclass(frozen=True)
class AdvantageEstimator:
    """A name mapped to a pure function; the trainer never branches on the name."""

    name: str
    fn: Callable[..., np.ndarray]  # fn(rewards, groups, **options) -> advantages
    loss: str
    needs_reference: bool = False
    description: str = ""

    def __call__(self, rewards: np.ndarray, groups: Sequence[Hashable], **options: Any) -> np.ndarray:
        """The plugin's advantages, checked: one finite number per reward."""
        advantages = np.asarray(self.fn(np.asarray(rewards, dtype=np.float64), groups, **options), dtype=np.float64)
        if advantages.shape != (len(rewards),) or not np.isfinite(advantages).all():
            raise FadtqError(f"advantage estimator {self.name!r}: returned {advantages.tolist()[:8]} for "
                             f"{len(rewards)} rewards; expected one finite number per reward")
        return advantages
