"""``length_penalty``: 0 while the reasoning has at most ``target_words`` words, then falling
linearly to -1 at twice that. Options (from the term's ``options`` in config): ``target_words``."""

from __future__ import annotations

from fadtq.answer import think_text
from fadtq.api import RewardFunction, RewardOutput, hookimpl

DEFAULT_TARGET_WORDS = 40


def length_penalty(rollouts, ctx) -> RewardOutput:
    target = int(ctx.options.get("target_words", DEFAULT_TARGET_WORDS))
    lengths = [len((think_text(r.completion) or "").split()) for r in rollouts]
    values = [-min(1.0, max(0, n - target) / target) for n in lengths]
    return RewardOutput(values, {"mean_words": sum(lengths) / max(1, len(lengths))})


@hookimpl
def register_rewards():
    return [RewardFunction("length_penalty", length_penalty, description="0 up to target_words, -1 at twice that")]
