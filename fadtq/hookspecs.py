"""The plugin contract. Every reward, advantage estimator and judge, built-in or third-party,
reaches FAD-TQ through these hooks; the docstrings below are the documentation of the contract.

A plugin is a module (or object) with functions of these names decorated with
``fadtq.hookimpl``. Built-ins live in ``plugins/`` (import name ``fadtq_plugins``); third-party
packages declare an entry point in the ``fadtq`` group::

    [project.entry-points.fadtq]
    length_penalty = "fadtq_length_penalty"

Names are global: two plugins registering the same name is an error naming both providers.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("fadtq")
hookimpl = pluggy.HookimplMarker("fadtq")


@hookspec
def register_rewards() -> list:
    """Return a list of ``fadtq.api.RewardFunction``.

    A reward function is called with a *batch* of ``fadtq.rollout.Rollout`` and a
    ``fadtq.api.RewardContext`` and returns ``fadtq.api.RewardOutput``: one value per rollout
    (a float, or ``None`` when it could not be computed for that rollout; never a made-up
    number) and a dict of scalar logs. Values should lie in [0, 1] for the paper's total to stay
    in [0, 3], but nothing enforces it. ``needs_judge=True`` declares that it asks the judge
    (``ctx.verdicts``); the composer then counts judged, skipped and failed rollouts.
    """


@hookspec
def register_advantage_estimators() -> list:
    """Return a list of ``fadtq.api.AdvantageEstimator``.

    An estimator is a small pure function ``fn(rewards, groups, **options) -> advantages``
    (numpy arrays of one float per rollout; ``groups`` gives each rollout's group id). It also
    declares the ``loss`` the trainer must optimise with its advantages (a name in the loss
    registry, e.g. ``"policy_gradient"`` or ``"clipped_ratio"``) and whether that loss needs a
    frozen reference model (``needs_reference``): the trainer builds one only then.
    """


@hookspec
def register_judges() -> list:
    """Return a list of ``fadtq.api.JudgeFactory``.

    A factory builds a judge from its config options and the run's ``PromptLibrary``. A judge
    takes a batch of ``fadtq.api.JudgeItem`` (question, reasoning, answer) and returns one
    ``fadtq.api.Verdict`` per item, in order: integer scores 0-3 for conciseness and relevance,
    or a recorded ``error`` when no verdict could be had (server down, unreadable reply). A
    judge never invents a score for an item it failed on.
    """
