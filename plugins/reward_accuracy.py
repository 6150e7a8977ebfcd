"""``accuracy``: 1 when the answer block names exactly the labelled class, else 0.

Spellings accepted and the ambiguity rule are in ``fadtq.answer``; an unparseable answer is 0.
"""

from __future__ import annotations

from fadtq.answer import extract_answer
from fadtq.api import RewardFunction, RewardOutput, hookimpl


def accuracy_reward(rollouts, ctx) -> RewardOutput:
    answers = [extract_answer(r.completion) for r in rollouts]
    values = [1.0 if answer == r.label else 0.0 for answer, r in zip(answers, rollouts)]
    n = max(1, len(values))
    return RewardOutput(values, {"accuracy": sum(values) / n, "unparseable_rate": answers.count(None) / n})


@hookimpl
def register_rewards():
    return [RewardFunction("accuracy", accuracy_reward, description="1 if the answer matches the label, else 0")]
