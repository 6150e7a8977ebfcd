"""The judge protocol: from rollouts to judge inputs, judge prompts, and strict reply parsing.

Shared by every judge plugin (heuristic, OpenAI-compatible server, local transformers model) so
that all of them render the same templates and apply the same failure policy: a reply that is not
exactly the expected JSON object, or a score outside 0-3, is a recorded failure, never a score.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from fadtq.answer import answer_text, think_text
from fadtq.api import JudgeItem, RewardContext, RewardOutput, Verdict
from fadtq.formulas import normalise_score
from fadtq.prompts import PromptLibrary, pretty_category
from fadtq.rollout import Rollout

SCORE_FIELDS = ("conciseness", "relevance")
SCORE_RANGE = range(0, 4)
JUDGE_SYSTEM_TEMPLATE = "judge_system.j2"
JUDGE_USER_TEMPLATE = "judge_user.j2"
JUDGE_TEMPLATES = (JUDGE_SYSTEM_TEMPLATE, JUDGE_USER_TEMPLATE)
VERDICT_JSON_SCHEMA = {
    "type": "object",
    "properties": {name: {"type": "integer", "minimum": 0, "maximum": 3} for name in SCORE_FIELDS},
    "required": list(SCORE_FIELDS),
    "additionalProperties": False,
}
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def judge_item(rollout: Rollout) -> JudgeItem:
    return JudgeItem(
        question=rollout.prompt,
        reasoning=think_text(rollout.completion) or "",
        answer=(answer_text(rollout.completion) or "").strip(),
        category=rollout.category,
    )


def judge_messages(library: PromptLibrary, item: JudgeItem) -> list[dict[str, str]]:
    """System and user messages for one item. The item reaches the template as data and is
    written as HTML-safe JSON (``<``, ``>``, ``&`` and ``'`` escaped), so untrusted reasoning can
    neither close the data delimiters nor inject template syntax."""
    data = {"category": pretty_category(item.category), "question": item.question,
            "reasoning": item.reasoning, "answer": item.answer}
    return [
        {"role": "system", "content": library.render(JUDGE_SYSTEM_TEMPLATE)},
        {"role": "user", "content": library.render(JUDGE_USER_TEMPLATE, item=data)},
    ]


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise ValueError(f"duplicate key(s) {', '.join(duplicated)}")
    return dict(pairs)


def parse_verdict(reply: str) -> Verdict:
    """Read a judge's reply: ``<think>`` blocks and a Markdown fence are removed, then the rest
    must be one JSON object with exactly the integer keys ``conciseness`` and ``relevance`` in
    0-3 (no other or repeated key, as the server's JSON schema demands)."""
    text = _THINK.sub("", reply).strip()
    if fenced := _FENCE.match(text):
        text = fenced.group(1)
    try:
        obj = json.loads(text, object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, ValueError) as exc:
        return Verdict(error=f"reply is not JSON ({exc}): {reply[:80]!r}")
    if not isinstance(obj, dict):
        return Verdict(error=f"reply is not a JSON object: {reply[:80]!r}")
    extra = sorted(set(obj) - set(SCORE_FIELDS))
    if extra:
        return Verdict(error=f"unexpected key(s) {', '.join(extra)} in reply {reply[:80]!r}")
    scores = {}
    for name in SCORE_FIELDS:
        value = obj.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            return Verdict(error=f"{name} missing or not an integer in reply {reply[:80]!r}")
        if value not in SCORE_RANGE:
            return Verdict(error=f"{name}={value} outside 0-3")
        scores[name] = value
    return Verdict(**scores)


def judged_reward(rollouts: Sequence[Rollout], ctx: RewardContext, field: str) -> RewardOutput:
    """One judge score field, normalised to [0, 1]; ``None`` where the judge failed."""
    verdicts = ctx.verdicts(rollouts)
    values = [None if not v.ok else normalise_score(getattr(v, field)) for v in verdicts]
    scored = [v for v in values if v is not None]
    logs = {f"{field}_mean": sum(scored) / len(scored)} if scored else {}
    return RewardOutput(values, logs)
