"""What a plugin author imports: the types that cross the plugin boundary."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

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
    name: str

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """One verdict per item, in order."""


@dataclass(frozen=True)
class JudgeFactory:
    name: str
    build: Callable[..., Judge]  # build(options: dict, prompts: PromptLibrary) -> Judge
    description: str = ""


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
        out = self.fn(rollouts, ctx)
        if len(out.values) != len(rollouts):
            raise ValueError(f"reward {self.name!r} returned {len(out.values)} values for {len(rollouts)} rollouts")
        return out


@dataclass(frozen=True)
class AdvantageEstimator:
    """A name mapped to a pure function; the trainer never branches on the name."""

    name: str
    fn: Callable[..., np.ndarray]  # fn(rewards, groups, **options) -> advantages
    loss: str
    needs_reference: bool = False
    description: str = ""

    def __call__(self, rewards: np.ndarray, groups: Sequence[Hashable], **options: Any) -> np.ndarray:
        return self.fn(np.asarray(rewards, dtype=np.float64), groups, **options)
