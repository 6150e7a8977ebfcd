"""Top-p sampling with its own threshold for the answer word (``rollout.answer_top_p``).

Top-p keeps the reasoning free of its rare slips, but applied to the decision it is absorbing: once
the policy gives an answer less often than ``1 - top_p`` of the time, the answer is never sampled
again, can never earn a reward, and the policy collapses onto the others. Drawing the first token
after ``<answer>`` with ``answer_top_p`` (1.0: the policy's full distribution) keeps every answer
the policy still gives in play; with 1.0 the update's log-probabilities, taken without top-p, are
those of the distribution the decision was drawn from.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase

ANSWER_TAG = "<answer>"


def begins_answer(text: str) -> bool:
    """True when the next token after ``text`` begins the answer: ``text`` ends with ``<answer>``,
    maybe followed by whitespace."""
    return text.rstrip().endswith(ANSWER_TAG)


def top_p_removed(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """True for the tokens that top-p sampling never draws: the least likely ones whose probabilities
    sum to at most ``1 - top_p`` (the most likely token always stays), as transformers' ``TopPLogitsWarper``."""
    ordered, order = torch.sort(scores, descending=False)
    dropped = ordered.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
    dropped[..., -1:] = False
    return dropped.scatter(-1, order, dropped)


class AnswerTopP(LogitsProcessor):
    """Top-p with ``top_p`` for every token but the first one after ``<answer>``, drawn with ``answer_top_p``.

    It stands in for transformers' own top-p (``GenerationConfig.top_p`` must then be 1.0) and runs
    before the temperature warper, so it tempers the scores itself to find the nucleus.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, top_p: float, answer_top_p: float, temperature: float):
        self.tokenizer = tokenizer
        self.top_p, self.answer_top_p, self.temperature = top_p, answer_top_p, temperature
        # the tag may be split over tokens, and tokens may carry text before it: decode this many
        self.tail = len(tokenizer(ANSWER_TAG, add_special_tokens=False)["input_ids"]) + 1

    def answer_rows(self, input_ids: torch.Tensor) -> torch.Tensor:
        """True for the rows whose text so far ends with ``<answer>`` (and maybe whitespace)."""
        tails = self.tokenizer.batch_decode(input_ids[:, -self.tail:], skip_special_tokens=False)
        return torch.tensor([begins_answer(tail) for tail in tails], device=input_ids.device)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        tempered = scores / self.temperature
        removed = top_p_removed(tempered, self.top_p)
        answering = self.answer_rows(input_ids)
        if answering.any():
            answer_removed = top_p_removed(tempered, self.answer_top_p)
            removed = torch.where(answering.unsqueeze(-1), answer_removed, removed)
        return scores.masked_fill(removed, float("-inf"))
