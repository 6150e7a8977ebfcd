"""The plugin contract. Every reward, advantage estimator, judge, loss and rollout engine,
built-in or third-party, reaches FAD-TQ through these hooks; the docstrings below are the
documentation of the contract.

A plugin is a module (or object) with functions of these names decorated with
``fadtq.api.hookimpl``. Built-ins live in ``plugins/`` (import name ``fadtq_plugins``); third-party
packages declare an entry point in the ``fadtq`` group::

    [project.entry-points.fadtq]
    length_penalty = "fadtq_length_penalty"

Names are global: two plugins registering the same name is an error naming both providers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from fadtq.api import AdvantageEstimator, JudgeFactory, Loss, RewardFunction, RolloutEngineFactory

hookspec = pluggy.HookspecMarker("fadtq")


@hookspec
def register_rewards() -> list[RewardFunction]:
    """Return a list of ``fadtq.api.RewardFunction``.

    A reward function (``fadtq.api.RewardFn``) is called with a *batch* of
    ``fadtq.rollout.Rollout`` and a ``fadtq.api.RewardContext`` and returns
    ``fadtq.api.RewardOutput``: one value per rollout (a float, or ``None`` when it could not be
    computed for that rollout; never a made-up number) and a dict of scalar logs (name -> finite
    number; anything else is an error naming the plugin and the log). Values should
    lie in [0, 1] for the paper's total to stay in [0, 3], but nothing enforces it.
    ``needs_judge=True`` declares that it asks the judge (``ctx.verdicts``); the composer then
    counts judged, skipped and failed rollouts.
    """


@hookspec
def register_advantage_estimators() -> list[AdvantageEstimator]:
    """Return a list of ``fadtq.api.AdvantageEstimator``.

    An estimator is a small pure function ``fn(rewards, groups, **options) -> advantages``
    (numpy arrays of one float per rollout; ``groups`` gives each rollout's group id), typed as
    ``fadtq.api.AdvantageFn``. It also declares the ``loss`` the trainer must optimise with its
    advantages: the name of any registered loss (see ``register_losses``), built-in
    (``"policy_gradient"``, ``"clipped_ratio"``) or from another plugin. Its options' names and
    types are checked against ``fn``'s keyword parameters when the config loads; their values by
    its ``check_options`` (``fadtq.api.OptionsCheck``), given the run's group size: each problem is
    one line naming ``advantage.options.<key>``.
    """


@hookspec
def register_judges() -> list[JudgeFactory]:
    """Return a list of ``fadtq.api.JudgeFactory``.

    A factory's ``build`` (``fadtq.api.JudgeBuilder``) makes a judge from its config options and
    the run's ``PromptLibrary``. A judge takes a batch of ``fadtq.api.JudgeItem`` (question, reasoning, answer) and returns one
    ``fadtq.api.Verdict`` per item, in order: integer scores 0-3 for conciseness and relevance,
    or a recorded ``error`` when no verdict could be had (server down, unreadable reply). A
    judge never invents a score for an item it failed on.
    """


@hookspec
def register_losses() -> list[Loss]:
    """Return a list of ``fadtq.api.Loss``.

    A loss function (``fadtq.api.LossFn``) takes the ``fadtq.losses.LossInputs`` of one
    micro-batch (the policy's log-probabilities with gradients, the advantages, the completion
    mask) and the keywords ``clip_eps`` and ``kl_coef``, and returns the scalar to minimise and
    a dict of scalar metrics. The loss declares what it reads besides: the rollout policy's
    log-probabilities (``needs_old_logprobs``) and a frozen reference model's
    (``needs_reference``); the trainer computes them, and builds a reference model, only then.
    Where the rollouts were sampled by a copy of the weights (vLLM), ``LossInputs.weights`` holds
    the rollout correction's per-token importance weights: apply them to the policy term
    (``LossInputs.corrected``), not to a penalty. An advantage estimator names the loss it is
    optimised with.
    """


@hookspec
def register_rollout_engines() -> list[RolloutEngineFactory]:
    """Return a list of ``fadtq.api.RolloutEngineFactory``.

    The config's ``rollout.engine`` names one. Its ``build`` (``fadtq.api.RolloutEngineBuilder``)
    is called once per run with the policy being trained, its processor and the config's
    ``rollout.options`` as keyword arguments (checked against its signature when the config
    loads), and returns a ``fadtq.generation.engine.RolloutEngine``: it samples groups of
    completions and returns the exact inputs of the scoring forward. The trainer calls the
    engine's ``weights_updated`` after every optimizer step and after a resume; an engine that
    samples from a copy of the weights reloads them there. Its optional ``check``
    (``fadtq.api.RolloutEngineCheck``) is given the policy's config before anything loads and
    raises a one-line error for a policy it cannot run. A factory with ``honours_span_top_p=True``
    samples the answer word and the reasoning with ``SamplingParams.answer_top_p`` and
    ``reasoning_top_p``; a run that sets ``rollout.answer_top_p`` or ``reasoning_top_p`` with any
    other engine is refused before it starts. Import heavy
    dependencies inside ``build`` and ``check``, not at the top of the plugin: every command loads
    every plugin.
    """
