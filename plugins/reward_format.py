"""``format``: 1 when the completion is exactly ``<think>...</think><answer>...</answer>``.

The precise rule (whitespace, text outside tags, repeated or nested tags, empty think, case) is
``fadtq.answer.format_ok``'s docstring.
"""

from __future__ import annotations

from fadtq.answer import format_ok
from fadtq.api import RewardFunction, RewardOutput, hookimpl


def format_reward(rollouts, ctx) -> RewardOutput:
    values = [1.0 if format_ok(r.completion) else 0.0 for r in rollouts]
    return RewardOutput(values, {"format_rate": sum(values) / max(1, len(values))})


@hookimpl
def register_rewards():
    return [RewardFunction("format", format_reward, description="1 if <think>..</think><answer>..</answer>, else 0")]
