"""``rollout.answer_top_p``: top-p for the reasoning, another threshold for the answer word."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GenerationConfig, LogitsProcessorList, TopPLogitsWarper

from fadtq.generation.answer_top_p import AnswerTopP, top_p_removed


def test_the_least_likely_tokens_summing_to_at_most_one_minus_top_p_are_removed():
    scores = torch.tensor([[math.log(p) for p in (0.5, 0.3, 0.15, 0.05)]])
    assert top_p_removed(scores, 0.9).tolist() == [[False, False, False, True]]  # 0.05 <= 0.1
    assert top_p_removed(scores, 0.7).tolist() == [[False, False, True, True]]   # 0.05 + 0.15 <= 0.3
    assert top_p_removed(scores, 0.01).tolist() == [[False, True, True, True]]   # the top token stays
    assert not top_p_removed(scores, 1.0).any()


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.99])
def test_removal_matches_transformers_top_p(top_p):
    scores = torch.randn(64, 300, generator=torch.Generator().manual_seed(0)) * 3
    warped = TopPLogitsWarper(top_p=top_p)(torch.zeros(64, 1, dtype=torch.long), scores.clone())
    assert torch.equal(top_p_removed(scores, top_p), warped == float("-inf"))


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from fadtq.training.processor import load_processor

    return load_processor(str(tiny_model_dir)).tokenizer


def _ids(tokenizer, texts: list[str]) -> torch.Tensor:
    rows = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    width = max(map(len, rows))
    return torch.tensor([[tokenizer.pad_token_id] * (width - len(row)) + row for row in rows])


def test_only_the_word_after_answer_is_drawn_with_the_answer_threshold(tokenizer):
    texts = ["<think>two parts</think><answer>", "<think>two parts</think><answer> ", "<think>two parts</think>",
             "<think>an <answer> tag was named"]
    processor = AnswerTopP(tokenizer, top_p=0.9, answer_top_p=1.0, temperature=1.0)
    assert processor.answer_rows(_ids(tokenizer, texts)).tolist() == [True, True, False, False]
    rare = torch.full((4, len(tokenizer)), -30.0)
    rare[:, :3] = torch.tensor([math.log(0.6), math.log(0.37), math.log(0.03)])  # the third: 3%, below 1 - 0.9
    out = processor(_ids(tokenizer, texts), rare.clone())
    assert torch.isfinite(out[:2, 2]).all() and torch.equal(out[:2], rare[:2])  # full distribution
    assert (out[2:, 2] == float("-inf")).all() and torch.isfinite(out[2:, :2]).all()


def test_the_nucleus_is_found_on_the_tempered_scores(tokenizer):
    scores = torch.tensor([[math.log(0.6), math.log(0.37), math.log(0.03)]])
    scores = torch.cat([scores, torch.full((1, len(tokenizer) - 3), -60.0)], dim=1)
    ids = _ids(tokenizer, ["<think>x</think>"])
    plain = AnswerTopP(tokenizer, top_p=0.9, answer_top_p=1.0, temperature=1.0)(ids, scores.clone())
    hot = AnswerTopP(tokenizer, top_p=0.9, answer_top_p=1.0, temperature=4.0)(ids, scores.clone())
    assert plain[0, 2] == float("-inf") and torch.isfinite(plain[0, :2]).all()  # 3% <= 10%
    assert torch.isfinite(hot[0, :3]).all()  # at T=4 the 3% token has 20% of the mass


def test_generation_with_the_same_threshold_samples_what_transformers_top_p_samples(tiny_model_dir, two_prompts):
    """The processor in place of transformers' top-p, same threshold and seed: the same tokens."""
    from transformers import AutoModelForImageTextToText

    from fadtq.generation import batch
    from fadtq.training.processor import load_processor

    processor = load_processor(str(tiny_model_dir))
    model = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    inputs = batch.repeat_rows(batch.prompt_inputs(processor, two_prompts, torch.device("cpu")), 4)
    common = {"do_sample": True, "temperature": 1.3, "top_k": 0, "max_new_tokens": 24,
              "pad_token_id": processor.tokenizer.pad_token_id}
    sequences = []
    for top_p, processors in ((0.8, []), (1.0, [AnswerTopP(processor.tokenizer, 0.8, 0.8, 1.3)])):
        torch.manual_seed(3)
        sequences.append(model.generate(**inputs, generation_config=GenerationConfig(top_p=top_p, **common),
                                        logits_processor=LogitsProcessorList(processors)))
    assert torch.equal(sequences[0], sequences[1])
