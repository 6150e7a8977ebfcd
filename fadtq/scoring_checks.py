"""Checks that run before any model is loaded and any output is begun, shared by the commands:
every template the run will render, tried once on a sample; the reward composition and its
plugins, tried on sample rollouts; the judge built and reached.

A command calls these after validating its flags and config and before its first real step, so
bad input fails in seconds with one line, never after the first batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from fadtq.api import AdvantageEstimator, JudgeItem, Verdict
from fadtq.composition import PluginChoice
from fadtq.judges.protocol import JUDGE_TEMPLATES, judge_messages
from fadtq.plugin_manager import Plugins
from fadtq.prompts import CLASS_NAMES, MMAD_TEMPLATE, POLICY_TEMPLATE, PromptLibrary, mmad_question, policy_question
from fadtq.rollout import Rollout
from fadtq.scoring import Scorer

log = logging.getLogger(__name__)
SAMPLE_CATEGORY = "breakfast_box"
SAMPLE_QUESTION = "Which case applies to the test image: good, structural or logical?"
SAMPLE_REASONING = "The reference image and the test image show the same parts in the same places."


def sample_rollouts() -> list[Rollout]:
    """One well-formed, correct completion per class and one malformed completion."""
    completions = [(f"<think>{SAMPLE_REASONING}</think><answer>{label}</answer>", label) for label in CLASS_NAMES]
    completions.append(("no tags at all", CLASS_NAMES[0]))
    return [Rollout(id=f"preflight-{i}", group="preflight", prompt=SAMPLE_QUESTION, completion=text, label=label,
                    category=SAMPLE_CATEGORY) for i, (text, label) in enumerate(completions)]


class _SampleJudge:
    """Stands in for the judge in the dry run of the reward composition."""

    name = "sample"

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        return [Verdict(conciseness=3, relevance=3) for _ in items]


def render_templates(prompts: PromptLibrary, names: Iterable[str]) -> None:
    """Render each named template once with sample values (errors name the file and line)."""
    names = set(names)
    if POLICY_TEMPLATE in names:
        policy_question(prompts, SAMPLE_CATEGORY)
    if MMAD_TEMPLATE in names:
        mmad_question(prompts, SAMPLE_QUESTION, {"A": "good", "B": "structural", "C": "logical"})
    if names - {POLICY_TEMPLATE, MMAD_TEMPLATE}:
        judge_messages(prompts, JudgeItem(SAMPLE_QUESTION, SAMPLE_REASONING, CLASS_NAMES[0], SAMPLE_CATEGORY))


def judge_templates(scorer: Scorer, judge: PluginChoice, plugins: Plugins) -> tuple[str, ...]:
    """The templates the judge renders, if the composition asks the judge at all."""
    return plugins.judges.get(judge.name).templates if scorer.uses_judge() else ()


def render_judge_templates(scorer: Scorer, judge: PluginChoice, plugins: Plugins, prompts: PromptLibrary) -> None:
    """Render the judge's templates once, if the run asks the judge; warn about replaced judge
    templates it will not read."""
    names = judge_templates(scorer, judge, plugins)
    render_templates(prompts, names)
    warning = unread_templates(prompts, names)
    if warning:
        log.warning(warning)


def unread_templates(prompts: PromptLibrary, rendered: Iterable[str]) -> str | None:
    """A warning when ``--prompts-dir`` replaces judge templates that no judge of this run reads."""
    unread = sorted((prompts.overridden & set(JUDGE_TEMPLATES)) - set(rendered))
    if not unread:
        return None
    return (f"prompts_dir {prompts.search_path[0]}: {', '.join(unread)} will not be read: the judge of this run "
            "renders no templates, or no reward term asks it")


def check_scoring(scorer: Scorer, judge: PluginChoice, plugins: Plugins, prompts: PromptLibrary,
                  estimator: AdvantageEstimator, options: dict) -> None:
    """The judge's templates rendered, the reward plugins and the estimator tried on sample
    rollouts (a stand-in judge answers), then the judge built and reached."""
    render_judge_templates(scorer, judge, plugins, prompts)
    rollouts = sample_rollouts()
    scored = scorer.with_judge(_SampleJudge()).score(rollouts)
    estimator(np.asarray(scored.total), [r.group for r in rollouts], **options)
    reach_judge(scorer)


def reach_judge(scorer: Scorer) -> None:
    """Build the judge the composition needs (a local one loads its model) and let it reach its
    server once, when it has one."""
    if scorer.uses_judge():
        check = getattr(scorer.judge(), "check", None)
        if check is not None:
            check()
