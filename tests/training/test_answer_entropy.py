"""``train.answer_entropy_coef``: an entropy bonus on the class distribution at the answer word."""

from __future__ import annotations

import math

import pytest
import torch

from fadtq.errors import FadtqError
from fadtq.training.answer_entropy import AnswerVocabulary, answer_positions, answer_vocabulary, class_entropy
from fadtq.losses import token_mean


def _completions(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded completion ids and their action mask, as the scoring inputs hold them."""
    rows = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    width = max(map(len, rows))
    ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    return ids, mask


def _words_at(tokenizer, ids: torch.Tensor, positions: torch.Tensor) -> list[list[str]]:
    return [[tokenizer.decode([ids[r, c]]).strip() for c in positions[r].nonzero().flatten().tolist()]
            for r in range(ids.shape[0])]


def test_the_positions_are_the_tokens_right_after_the_answer_tag(tokenizer):
    ids, mask = _completions(tokenizer, ["<think>two screws</think><answer>structural</answer>",
                                         "<think>a cable</think><answer> logical</answer>",
                                         "<think>no answer tag at all</think>"])
    positions = answer_positions(tokenizer, ids, mask)
    assert _words_at(tokenizer, ids, positions) == [["structural"], ["logical"], []]


def test_padding_after_the_completion_is_never_a_position(tokenizer):
    ids, mask = _completions(tokenizer, ["<think>x</think><answer>", "<think>a longer reasoning</think><answer>good"])
    positions = answer_positions(tokenizer, ids, mask)
    # the first completion ends at its tag: the pad token after it was never sampled
    assert not positions[0].any() and positions[1].sum() == 1


class _CharTokenizer:
    """One token per character: the tag is split over eight tokens, as in Qwen's real vocabulary."""

    def batch_decode(self, rows, skip_special_tokens=False):
        return [chr(row[0]) for row in rows]


def test_a_tag_split_over_tokens_is_found():
    text = "<think>t</think><answer>  good"
    ids = torch.tensor([[ord(c) for c in text]])
    positions = answer_positions(_CharTokenizer(), ids, torch.ones_like(ids))
    # the word's first character; the whitespace before it decides nothing
    assert positions[0].nonzero().flatten().tolist() == [text.index("good")]


def test_the_mean_is_over_the_positions_only():
    entropy = torch.tensor([[0.1, 0.9, 0.3], [0.5, 0.2, 0.0]])
    positions = torch.tensor([[False, True, False], [False, True, False]])
    assert token_mean(entropy, positions).item() == pytest.approx((0.9 + 0.2) / 2)
    assert token_mean(entropy, torch.zeros_like(positions)).item() == 0.0


def test_each_class_has_its_names_and_letters_first_tokens(tokenizer):
    vocabulary = answer_vocabulary(tokenizer)
    words = [{tokenizer.decode([vocabulary.token_ids[i]]).strip() for i in columns} for columns in vocabulary.classes]
    assert words == [{"good", "A"}, {"structural", "B"}, {"logical", "C"}]
    assert sorted(i for columns in vocabulary.classes for i in columns) == list(range(len(vocabulary.token_ids)))


class _FirstLetterTokenizer:
    """A word's first token is its first letter, remapped by ``first``: with ``{"l": "s"}``, "logical"
    begins with the token of "structural"."""

    def __init__(self, first: dict[str, int]):
        self.first = first

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.first.get(text.strip()[0], ord(text.strip()[0]))]}

    def decode(self, ids):
        return "".join(map(chr, ids))

    def convert_ids_to_tokens(self, ids):
        return [chr(i) for i in ids]


def test_a_tokenizer_that_begins_two_classes_alike_is_refused_with_the_option_named():
    with pytest.raises(FadtqError, match="train.answer_entropy_coef: the tokenizer begins answers 'structural' and "
                                         "'logical' with the same token"):
        answer_vocabulary(_FirstLetterTokenizer({"l": ord("s")}))


def test_class_entropy_sums_each_class_and_ignores_other_tokens():
    """Hand-computed: token probabilities good 0.3 + 0.1 (two spellings), structural 0.2, logical 0.2,
    0.2 on a token naming no class. The classes get (0.5, 0.25, 0.25) once renormalised."""
    vocabulary = AnswerVocabulary(token_ids=(7, 8, 9, 10), classes=((0, 1), (2,), (3,)))
    logprobs = torch.tensor([0.3, 0.1, 0.2, 0.2]).log().view(1, 1, 4)
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert class_entropy(logprobs, vocabulary).item() == pytest.approx(expected)
    # mass moved to the token naming no class changes nothing
    assert class_entropy((torch.tensor([0.3, 0.1, 0.2, 0.2]) / 2).log().view(1, 1, 4), vocabulary).item() \
        == pytest.approx(expected)


def test_the_bonus_lowers_the_leader_and_raises_the_others():
    """The gradient of ``-H`` at class probabilities q = (0.9, 0.09, 0.01): the push on each class's
    logit is q * (-log q - H), hand-computed below; per unit of probability, -log q - H, it is
    largest for the rarest class."""
    vocabulary = AnswerVocabulary(token_ids=(0, 1, 2), classes=((0,), (1,), (2,)))
    q = [0.9, 0.09, 0.01]
    logits = torch.tensor(q).log().clone().requires_grad_(True)
    entropy = class_entropy(logits.log_softmax(-1).view(1, 1, 3), vocabulary)
    (-token_mean(entropy, torch.ones(1, 1, dtype=torch.bool))).backward()
    h = -sum(p * math.log(p) for p in q)
    expected = [p * (-math.log(p) - h) for p in q]
    assert (-logits.grad).tolist() == pytest.approx(expected, rel=1e-5)
    assert expected[0] < 0 < expected[2] < expected[1]


def test_the_bonus_changes_the_update_and_nothing_before_it(train_env, tmp_path):
    """One step of the CPU default (the shipped policy, which answers) with two coefficients: the same
    rollouts and class entropy (near ln 3: the policy answers at random), different weights after."""
    from trainer_testlib import policy_state, python_cmd, rows, side_by_side

    side_by_side({name: python_cmd("--train.max_steps", "1", "--data.synth_scale", "tiny", "--rollout.prompts_per_step", "2",
                                   "--train.answer_entropy_coef", coef, "--output.dir", tmp_path, "--output.name", name)
                  for name, coef in (("plain", "1e-9"), ("bonus", "0.5"))}, train_env, tmp_path)
    plain, bonus = (rows(tmp_path / name / "metrics.jsonl")[0] for name in ("plain", "bonus"))
    assert plain["policy/answer_entropy"] == bonus["policy/answer_entropy"] > 0.9 * math.log(3)
    assert plain["reward/total"] == bonus["reward/total"]
    before, after = policy_state(tmp_path / "plain" / "final"), policy_state(tmp_path / "bonus" / "final")
    assert any(not torch.equal(before[name], after[name]) for name in before)
