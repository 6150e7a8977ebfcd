"""Stratified draws of a group's answer words (``rollout.answer_draws: stratified``).

The samples of a group draw their answer word, the first token after ``<answer>``, independently:
a group of four from a policy that gives two classes half the time each holds 4-0 of one of them in
one group of eight, and 3-1 in half of them. The group's standardised advantages then push the
policy's prior toward whichever class it happened to draw more often, a push that Adam turns into a
full step whatever its size.

Stratified draws give the ``n`` members of a group the uniforms ``u_k = (s_k + v_k) / n``, where
``s`` is a random permutation of ``0..n-1`` and each ``v_k`` uniform on [0, 1): each ``u_k`` is
uniform on [0, 1), so each member's answer is still drawn from its own distribution (its token by
the inverse of the cumulative distribution, over the token ids in order), but together the group's
draws cover the distribution in ``n`` equal strata: a class of probability ``q`` comes ``floor(nq)``
or ``ceil(nq)`` times when the members share their reasoning. The update's log-probabilities and
every expectation over one sample are those of independent draws.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from fadtq.generation.span_top_p import SpanTopP


def stratified_uniforms(groups: int, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``groups * size`` uniforms on [0, 1), group after group: each group's ``size`` values fall one
    in each of ``size`` equal strata, in a random order."""
    strata = torch.rand(groups, size, generator=generator).argsort(dim=1)
    offsets = torch.rand(groups, size, generator=generator)
    return ((strata + offsets) / size).flatten()


def inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """For each row of ``probs`` (which need not sum to one), the token whose cumulative
    probability, over the token ids in order, first exceeds ``uniform`` times the row's total."""
    cumulative = probs.cumsum(dim=-1)
    targets = (uniforms * cumulative[:, -1]).unsqueeze(-1)
    return torch.searchsorted(cumulative, targets, right=True).squeeze(-1).clamp(max=probs.shape[-1] - 1)


class StratifiedAnswer(LogitsProcessor):
    """Picks the answer word of each row that has just written ``<answer>`` with the row's uniform,
    and leaves it the only token that can be sampled; other tokens are left alone.

    Runs right after ``spans``, the call's ``SpanTopP``, and reads which rows are at their answer
    word from it (decoding every row's tail once a token is enough), and before the temperature
    warper, so it tempers the scores itself. Rows are ``groups x size`` in group order, as the engines
    lay out a call's samples.
    """

    def __init__(self, spans: SpanTopP, uniforms: torch.Tensor):
        self.spans, self.uniforms = spans, uniforms

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.spans.answering is None or len(self.spans.answering) != len(input_ids):
            raise RuntimeError("StratifiedAnswer must run right after its SpanTopP, on the same rows")
        rows = self.spans.answering.nonzero().squeeze(-1).to(scores.device)
        if not len(rows):
            return scores
        probs = torch.softmax(scores[rows].float() / self.spans.temperature, dim=-1)
        picked = inverse_cdf(probs, self.uniforms.to(scores.device)[rows])
        kept = torch.full_like(scores[rows], float("-inf"))
        kept[torch.arange(len(rows), device=scores.device), picked] = scores[rows, picked]
        scores = scores.clone()
        scores[rows] = kept
        return scores
