"""How completions are sampled: declared once, for the config's ``rollout`` section and every engine.

``fadtq.run_config.RolloutConfig`` extends :class:`Sampling` with the rollout's other keys, and the
engines take :class:`fadtq.generation.engine.SamplingParams`, which extends it with per-call
switches; the defaults are those of the CPU default run. Imports no torch: the config loads without it.
"""

from __future__ import annotations

from dataclasses import dataclass

SPAN_THRESHOLDS = ("answer_top_p", "reasoning_top_p")
ANSWER_DRAWS = ("independent", "stratified")


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    # Top-p of the answer word, the first token after <answer> (fadtq/generation/span_top_p.py);
    # null: top_p. 1.0 draws the decision from the policy's full distribution, so that top-p never
    # removes an answer for good. Engines that cannot (vllm) refuse it before the run starts.
    answer_top_p: float | None = None
    # Top-p of the reasoning, every token up to and including </think>; null: top_p. A low one (0.1)
    # lets a group's samples share their reasoning and differ in the decision alone. Same engines.
    reasoning_top_p: float | None = None
    # How a group's samples draw their answer word: independent, or stratified (each still from its
    # own distribution, together covering it; fadtq/generation/stratified_answers.py). Same engines.
    answer_draws: str = "independent"
    max_new_tokens: int = 48


def spans_apart(sampling: Sampling) -> list[str]:
    """The settings of ``sampling`` that make an engine sample the reasoning or the answer word apart
    from the other tokens: per-span thresholds that are set and differ from its ``top_p``, and
    stratified answer draws."""
    apart = [name for name in SPAN_THRESHOLDS if getattr(sampling, name) not in (None, sampling.top_p)]
    return apart + (["answer_draws"] if sampling.answer_draws != "independent" else [])
