"""The entropy bonus on the decision (``train.answer_entropy_coef``).

Without a reference model, nothing holds GPG's decision near where it started: when one class is
rewarded less often than the others for a while, the policy stops giving it, its groups never
sample it, and it can only come back by chance. On the look-alike, six GPG runs of eight gave one
class 0-8% of the time for 60-180 steps (``docs/history/pretraining-log.md``).

The bonus adds ``-coef * mean H`` to the loss, ``H`` the entropy of the *class* distribution at the
first token after ``<answer>``: the probabilities of each class's answer tokens (its name or option
letter, with or without a leading space; ``answer_vocabulary``), summed per class and renormalised
over the three. The entropy of the whole vocabulary there would not do: a bonus on it spreads the
answer's probability over hundreds of tokens that name no class (measured: it rose from 1.1 to 6.2
nats of 6.6 within 20 steps, and 40-86% of the answers stopped naming a class). The class
entropy's push on the logit of a class of probability ``q`` is ``coef * q * (-log q - H)``; the
policy gradient's push on a class sampled a fraction ``q`` of the time is proportional to ``q``
too, so relative to the reward's pull the bonus grows as ``-log q`` as the class fades. A class the
reward keeps pushing down still fades, to a floor set by ``coef``; one the policy drops by mistake
is still sampled, and rewarded, now and then.
The bonus never reorders the classes (at equal probabilities its push is zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from fadtq.errors import FadtqError
from fadtq.generation.span_top_p import begins_answer
from fadtq.losses import token_mean
from fadtq.policy.forward_batch import ForwardBatch
from fadtq.policy.logprobs import TokenStats
from fadtq.prompts import CLASS_NAMES, OPTION_LETTERS


@dataclass(frozen=True)
class AnswerVocabulary:
    """The tokens that begin an answer: ``token_ids`` in one order, and for each class (in
    ``CLASS_NAMES`` order) the indices into ``token_ids`` of the tokens that begin its answers."""

    token_ids: tuple[int, ...]
    classes: tuple[tuple[int, ...], ...]


def first_word_token(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """The first token of ``text`` that is not whitespace alone (a space may be a token of its own)."""
    return next(t for t in tokenizer(text, add_special_tokens=False)["input_ids"] if tokenizer.decode([t]).strip())


def answer_vocabulary(tokenizer: PreTrainedTokenizerBase) -> AnswerVocabulary:
    """The first tokens of each class's name and option letter, with and without a leading space."""
    firsts = [sorted({first_word_token(tokenizer, text) for word in (name, letter) for text in (word, f" {word}")})
              for name, letter in zip(CLASS_NAMES, OPTION_LETTERS)]
    for k, ids in enumerate(firsts):
        for other, other_ids in zip(CLASS_NAMES[k + 1:], firsts[k + 1:]):
            if shared := set(ids) & set(other_ids):
                raise FadtqError(f"train.answer_entropy_coef: the tokenizer begins answers {CLASS_NAMES[k]!r} and "
                                 f"{other!r} with the same token ({tokenizer.convert_ids_to_tokens(sorted(shared))}); "
                                 "the class entropy needs a first token per class: set it to 0")
    token_ids = tuple(t for ids in firsts for t in ids)
    starts = [sum(map(len, firsts[:k])) for k in range(len(firsts))]
    return AnswerVocabulary(token_ids, tuple(tuple(range(s, s + len(ids))) for s, ids in zip(starts, firsts)))


def class_entropy(answer_logprobs: torch.Tensor, vocabulary: AnswerVocabulary) -> torch.Tensor:
    """``(N, C)`` entropy of the class distribution, from the log-probabilities ``(N, C, K)`` of
    ``vocabulary.token_ids`` at each position."""
    per_class = torch.stack([answer_logprobs[..., list(columns)].logsumexp(-1) for columns in vocabulary.classes], -1)
    log_q = per_class - per_class.logsumexp(-1, keepdim=True)
    return -(log_q.exp() * log_q).sum(-1)


def answer_positions(tokenizer: PreTrainedTokenizerBase, completions: torch.Tensor,
                     action_mask: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` True at the sampled completion tokens that begin the answer: the first token after
    ``<answer>`` that is not whitespace alone.

    Tokens are decoded one by one, so a tag split over several tokens is found too.
    """
    positions = torch.zeros_like(action_mask, dtype=torch.bool)
    for row, ids in enumerate(completions.tolist()):
        pieces = tokenizer.batch_decode([[token] for token in ids], skip_special_tokens=False)
        text = ""
        for column, piece in enumerate(pieces):
            if not action_mask[row, column]:
                break
            positions[row, column] = bool(piece.strip()) and begins_answer(text)
            text += piece
    return positions


class AnswerEntropyBonus:
    """The auxiliary term (``fadtq.training.auxiliary``): the mean class entropy at a micro-batch's
    answer words, weighted by their number; a bonus, so its coefficient is ``-answer_entropy_coef``."""

    metric = "policy/answer_entropy"

    def __init__(self, coef: float, tokenizer: PreTrainedTokenizerBase) -> None:
        self.coef = -coef
        self.tokenizer = tokenizer
        self.vocabulary = answer_vocabulary(tokenizer)
        self.gather_ids = self.vocabulary.token_ids

    def __call__(self, model, batch: ForwardBatch, stats: TokenStats, micro) -> tuple[torch.Tensor, float]:
        completions = batch.sequences[:, -batch.action_mask.shape[1]:]
        answering = answer_positions(self.tokenizer, completions, batch.action_mask)
        return token_mean(class_entropy(stats.gathered, self.vocabulary), answering), float(answering.sum())
