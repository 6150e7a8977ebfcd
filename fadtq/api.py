"""What a plugin author imports: the types that cross the plugin boundary."""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pluggy

from fadtq.errors import FadtqError
from fadtq.rollout import Rollout

if TYPE_CHECKING:
    import torch
    from transformers import ProcessorMixin

    from fadtq.generation.engine import RolloutEngine
    from fadtq.prompts import PromptLibrary
    from fadtq.losses import LossInputs

# The marker of a hook implementation: ``@hookimpl def register_rewards(): ...`` (hooks: fadtq.hookspecs).
hookimpl = pluggy.HookimplMarker("fadtq")

__all__ = [
    "AdvantageEstimator", "AdvantageFn", "CountingJudge", "Judge", "JudgeBuilder", "JudgeFactory", "JudgeItem",
    "Loss", "LossFn", "OptionsCheck", "RewardContext", "RewardFn", "RewardFunction", "RewardOutput", "Rollout", "RolloutEngineBuilder",
    "RolloutEngineCheck", "RolloutEngineFactory", "Verdict", "hookimpl",
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
    """What the scorer asks of a judge: ``judge()``, and ``counts`` when the judge is a
    :class:`CountingJudge`. A judge may also have ``check()``: reach its server once, raising
    ``FadtqError`` when it cannot (runs call it before their first step)."""

    name: str

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """One verdict per item, in order."""


class CountingJudge(Judge, Protocol):
    """A judge that tallies its own work (requests, retries, failures by kind, cache hits): the
    scorer reads ``counts`` before and after each call and logs the growth as ``judge/<key>``."""

    counts: Mapping[str, int]


class JudgeBuilder(Protocol):
    """Builds a judge from its ``judge.options`` and the run's prompt templates."""

    def __call__(self, options: dict[str, Any], prompts: PromptLibrary, /) -> Judge:
        """A ready judge; bad options raise ``ConfigError`` naming the key."""


@dataclass(frozen=True)
class JudgeFactory:
    """A judge's name, its builder and the prompt templates it renders (checked and hashed per run)."""

    name: str
    build: JudgeBuilder
    description: str = ""
    templates: tuple[str, ...] = ()


@dataclass
class RewardOutput:
    """A reward's value per rollout (``None`` where it could not be computed) and scalar logs."""

    values: list[float | None]
    logs: dict[str, float] = field(default_factory=dict)


class RewardContext(Protocol):
    """What a reward function may ask of the scoring run."""

    options: dict[str, Any]

    def verdicts(self, rollouts: Sequence[Rollout]) -> list[Verdict]:
        """Judge verdicts for these rollouts; each rollout is judged at most once per scoring call."""


class RewardFn(Protocol):
    """A reward plugin's function: a batch of rollouts in, one value per rollout out."""

    def __call__(self, rollouts: Sequence[Rollout], ctx: RewardContext, /) -> RewardOutput:
        """Values for ``rollouts``, in order."""


@dataclass(frozen=True)
class RewardFunction:
    """A reward's name, its function and whether it asks the judge."""

    name: str
    fn: RewardFn
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
        return RewardOutput([None if v is None else float(v) for v in values], self._checked_logs(out))

    def _checked_logs(self, out: RewardOutput) -> dict[str, float]:
        """The plugin's logs: a mapping of names to finite numbers (a summary averages them)."""
        logs = getattr(out, "logs", None)
        if not isinstance(logs, dict):
            raise FadtqError(f"reward plugin {self.name!r}: logs are {type(logs).__name__}; expected a mapping of "
                             "names to numbers")
        for key, value in logs.items():
            if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value):
                raise FadtqError(f"reward plugin {self.name!r}: log {key!r} is {value!r}; expected a finite number")
        return {key: float(value) for key, value in logs.items()}


class AdvantageFn(Protocol):
    """An estimator's pure function: rewards and group ids in, one advantage per rollout out.
    Its keyword parameters are the estimator's ``advantage.options``."""

    def __call__(self, rewards: np.ndarray, groups: Sequence[Hashable], /, **options: Any) -> np.ndarray:
        """Advantages, one per reward."""


class OptionsCheck(Protocol):
    """An estimator's check of its ``advantage.options`` for groups of ``group_size`` rollouts,
    when the config loads: what is wrong, by option name (empty: nothing)."""

    def __call__(self, options: Mapping[str, Any], group_size: int, /) -> dict[str, str]:
        """Problems by option name."""


@dataclass(frozen=True)
class AdvantageEstimator:
    """A name mapped to a pure function and the name of the loss its advantages are for; the
    trainer never branches on the name. ``check_options`` (optional) checks the values of the
    options when the config loads (their names and types are checked against ``fn``'s signature)."""

    name: str
    fn: AdvantageFn
    loss: str
    description: str = ""
    check_options: OptionsCheck | None = None

    def __call__(self, rewards: np.ndarray, groups: Sequence[Hashable], **options: Any) -> np.ndarray:
        """The plugin's advantages, checked: one finite number per reward."""
        advantages = np.asarray(self.fn(np.asarray(rewards, dtype=np.float64), groups, **options), dtype=np.float64)
        if advantages.shape != (len(rewards),) or not np.isfinite(advantages).all():
            raise FadtqError(f"advantage estimator {self.name!r}: returned {advantages.tolist()[:8]} for "
                             f"{len(rewards)} rewards; expected one finite number per reward")
        return advantages


class LossFn(Protocol):
    """A policy loss: ``fadtq.losses.LossInputs`` of one micro-batch and the run's
    ``train.clip_eps`` and ``train.kl_coef`` in, the scalar to minimise and its logged parts out."""

    def __call__(self, inputs: LossInputs, /, *, clip_eps: float,
                 kl_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss (with gradients) and scalar metrics, logged as ``loss/<key>``."""


@dataclass(frozen=True)
class Loss:
    """A loss by name, and what the trainer must compute for it: the rollout policy's
    log-probabilities (``needs_old_logprobs``) and a frozen reference model's
    (``needs_reference``; the trainer builds a reference model only then)."""

    name: str
    fn: LossFn
    needs_old_logprobs: bool = False
    needs_reference: bool = False
    description: str = ""


class RolloutEngineBuilder(Protocol):
    """Builds a rollout engine around the policy being trained and its processor.

    Its keyword parameters are the engine's options (the config's ``rollout.options``), checked
    against the signature when the config loads."""

    def __call__(self, model: torch.nn.Module, processor: ProcessorMixin, /, **options: Any) -> RolloutEngine:
        """An engine sampling from ``model`` (it must see the weights as they are updated)."""


class RolloutEngineCheck(Protocol):
    """Raises a one-line ``FadtqError`` when the engine cannot run the policy: what it depends on is
    missing, or the model is one it cannot serve. Called before a run loads anything."""

    def __call__(self, model_config: dict, where: str, /) -> None:
        """``model_config``: the policy's ``config.json`` as a dict; ``where`` names its source."""


@dataclass(frozen=True)
class RolloutEngineFactory:
    """A rollout engine by name (the config's ``rollout.engine``), its builder and its preflight check.

    ``honours_span_top_p``: the engine samples the answer word and the reasoning with
    ``SamplingParams.answer_top_p`` and ``reasoning_top_p`` (``rollout.answer_top_p``, ``reasoning_top_p``)."""

    name: str
    build: RolloutEngineBuilder
    description: str = ""
    check: RolloutEngineCheck | None = None
    honours_span_top_p: bool = False
