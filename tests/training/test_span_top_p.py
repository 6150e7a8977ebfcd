"""``rollout.answer_top_p`` and ``reasoning_top_p``: top-p for the reasoning, the answer word and the rest."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GenerationConfig, LogitsProcessorList, TopPLogitsWarper

from conftest import left_padded_ids
from fadtq.generation.span_top_p import SpanTopP, top_p_removed


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


def test_only_the_word_after_answer_is_drawn_with_the_answer_threshold(tokenizer):
    texts = ["<think>two parts</think><answer>", "<think>two parts</think><answer> ", "<think>two parts</think>",
             "<think>an <answer> tag was named"]
    processor = SpanTopP(tokenizer, top_p=0.9, answer_top_p=1.0, temperature=1.0)
    assert processor.thresholds(left_padded_ids(tokenizer, texts)).squeeze(-1).tolist() == pytest.approx([1.0, 1.0, 0.9, 0.9])
    rare = torch.full((4, len(tokenizer)), -30.0)
    rare[:, :3] = torch.tensor([math.log(0.6), math.log(0.37), math.log(0.03)])  # the third: 3%, below 1 - 0.9
    out = processor(left_padded_ids(tokenizer, texts), rare.clone())
    assert torch.isfinite(out[:2, 2]).all() and torch.equal(out[:2], rare[:2])  # full distribution
    assert (out[2:, 2] == float("-inf")).all() and torch.isfinite(out[2:, :2]).all()


def test_the_nucleus_is_found_on_the_tempered_scores(tokenizer):
    scores = torch.tensor([[math.log(0.6), math.log(0.37), math.log(0.03)]])
    scores = torch.cat([scores, torch.full((1, len(tokenizer) - 3), -60.0)], dim=1)
    ids = left_padded_ids(tokenizer, ["<think>x</think>"])
    plain = SpanTopP(tokenizer, top_p=0.9, answer_top_p=1.0, temperature=1.0)(ids, scores.clone())
    hot = SpanTopP(tokenizer, top_p=0.9, answer_top_p=1.0, temperature=4.0)(ids, scores.clone())
    assert plain[0, 2] == float("-inf") and torch.isfinite(plain[0, :2]).all()  # 3% <= 10%
    assert torch.isfinite(hot[0, :3]).all()  # at T=4 the 3% token has 20% of the mass


def test_generation_with_the_same_threshold_samples_what_transformers_top_p_samples(tiny_model_dir, two_prompts):
    """The processor in place of transformers' top-p, same threshold and seed: the same tokens."""
    from transformers import AutoModelForImageTextToText

    from fadtq.generation import batch
    from fadtq.policy.family import family_of_folder
    from fadtq.policy.processor import load_processor

    processor = load_processor(str(tiny_model_dir))
    model = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    family = family_of_folder(tiny_model_dir)
    inputs = batch.repeat_rows(batch.prompt_inputs(processor, family, two_prompts, torch.device("cpu")), 4)
    inputs = inputs.model_inputs(family)
    common = {"do_sample": True, "temperature": 1.3, "top_k": 0, "max_new_tokens": 24,
              "pad_token_id": processor.tokenizer.pad_token_id}
    sequences = []
    for top_p, processors in ((0.8, []), (1.0, [SpanTopP(processor.tokenizer, 0.8, 0.8, 1.3)])):
        torch.manual_seed(3)
        sequences.append(model.generate(**inputs, generation_config=GenerationConfig(top_p=top_p, **common),
                                        logits_processor=LogitsProcessorList(processors)))
    assert torch.equal(sequences[0], sequences[1])


def test_the_reasoning_has_its_threshold_until_think_is_closed(tokenizer):
    """Rows are in their reasoning until they write ``</think>``; the processor remembers it for the
    rest of the generation, when the tag is no longer at the end of the text."""
    processor = SpanTopP(tokenizer, top_p=1.0, answer_top_p=None, temperature=1.0, reasoning_top_p=0.5)
    steps = [["<think>two", "<think>two"], ["<think>two parts", "<think>two</think>"],
             ["<think>two parts.", "<think>two</think><answer>"],
             ["<think>two parts.</think>", "<think>two</think><answer>good"]]
    rare = torch.full((2, len(tokenizer)), -30.0)
    rare[:, :3] = torch.tensor([math.log(0.6), math.log(0.37), math.log(0.03)])
    expected_reasoning = [[True, True], [True, False], [True, False], [False, False]]
    for texts, reasoning in zip(steps, expected_reasoning):
        out = processor(left_padded_ids(tokenizer, texts), rare.clone())
        for row, in_reasoning in enumerate(reasoning):
            kept = torch.isfinite(out[row, :3]).tolist()
            assert kept == ([True, False, False] if in_reasoning else [True, True, True]), (texts[row], kept)


def test_a_nearly_greedy_reasoning_is_shared_by_a_group_and_the_answer_still_varies(two_prompts):
    """The shipped pretrained policy, reasoning_top_p near 0 and the whole distribution elsewhere:
    every sample of a prompt writes the same reasoning, through ``</think>``, and the answers differ."""
    from transformers import AutoModelForImageTextToText

    from fadtq.answer import extract_answer
    from fadtq.generation.engine import SamplingParams
    from fadtq.generation.hf import HFRolloutEngine
    from fadtq.run_config import load_run_config
    from fadtq.policy.processor import load_processor
    from fadtq.pretraining.default_policy import pretrained_model_dir

    policy = pretrained_model_dir(load_run_config("cpu_default"))
    processor = load_processor(str(policy))
    model = AutoModelForImageTextToText.from_pretrained(str(policy), dtype=torch.float32).eval()
    torch.manual_seed(0)
    result = HFRolloutEngine(model, processor).generate(
        two_prompts, 8, SamplingParams(temperature=1.0, top_p=1.0, reasoning_top_p=1e-6, max_new_tokens=48))
    for group in result.groups:
        assert all("</think>" in c.text for c in group), [c.text for c in group]
        assert len({c.text.split("</think>")[0] for c in group}) == 1
    answers = [{extract_answer(c.text) for c in group} for group in result.groups]
    assert all(len(given) >= 2 for given in answers), answers
