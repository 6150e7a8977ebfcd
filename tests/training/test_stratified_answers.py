"""``rollout.answer_draws: stratified``: a group's answer words cover the policy's distribution."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from transformers import LogitsProcessorList

from conftest import left_padded_ids
from fadtq.generation.span_top_p import SpanTopP
from fadtq.generation.stratified_answers import StratifiedAnswer, inverse_cdf, stratified_uniforms


def test_each_group_has_one_uniform_per_stratum():
    u = stratified_uniforms(50, 4, torch.Generator().manual_seed(0)).view(50, 4)
    assert ((u >= 0) & (u < 1)).all()
    assert torch.equal((u * 4).floor().sort(dim=1).values, torch.arange(4.0).expand(50, 4))


def test_each_member_is_uniform_on_its_own():
    """Every member's uniform covers [0, 1): each sample's answer is drawn from its own distribution."""
    u = stratified_uniforms(20000, 4, torch.Generator().manual_seed(1)).view(20000, 4)
    for member in range(4):
        quarters = torch.bincount((u[:, member] * 4).long(), minlength=4) / 20000
        assert torch.allclose(quarters, torch.full((4,), 0.25), atol=0.02)


def test_inverse_cdf_by_hand():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2]] * 5)
    u = torch.tensor([0.0, 0.49, 0.5, 0.79, 0.95])
    assert inverse_cdf(probs, u).tolist() == [0, 0, 2, 2, 3]  # token 1 (probability 0) is never picked
    assert inverse_cdf(probs * 2, u).tolist() == [0, 0, 2, 2, 3]  # unnormalised rows alike


def _stratified(tokenizer, uniforms: torch.Tensor, ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``SpanTopP`` keeping every token, then the stratified pick that reads its answering rows."""
    spans = SpanTopP(tokenizer, top_p=1.0, answer_top_p=1.0, temperature=1.0)
    return LogitsProcessorList([spans, StratifiedAnswer(spans, uniforms)])(ids, scores)


def test_only_rows_at_their_answer_word_are_forced(tokenizer):
    texts = ["<think>x</think><answer>", "<think>x</think>", "<think>x</think><answer>", "<think>x"]
    scores = torch.full((4, len(tokenizer)), -30.0)
    scores[:, :3] = torch.tensor([math.log(0.5), math.log(0.25), math.log(0.25)])
    out = _stratified(tokenizer, torch.tensor([0.1, 0.1, 0.9, 0.9]), left_padded_ids(tokenizer, texts), scores.clone())
    assert torch.isfinite(out[0]).sum() == 1 and torch.isfinite(out[0, 0])  # u = 0.1: the first token
    assert torch.isfinite(out[2]).sum() == 1 and torch.isfinite(out[2, 2])  # u = 0.9: the third
    assert torch.equal(out[1], scores[1]) and torch.equal(out[3], scores[3])


def test_groups_of_equal_halves_split_two_and_two(tokenizer):
    """Two classes at 50% each: stratified groups of four always split 2-2; independent draws 4-0 in
    one group of eight."""
    rows = left_padded_ids(tokenizer, ["<think>x</think><answer>"] * 400)
    scores = torch.full((400, len(tokenizer)), -30.0)
    scores[:, :2] = math.log(0.5)
    uniforms = stratified_uniforms(100, 4, torch.Generator().manual_seed(2))
    picked = torch.isfinite(_stratified(tokenizer, uniforms, rows, scores.clone())).float().argmax(dim=1).view(100, 4)
    assert Counter(picked.sum(dim=1).tolist()) == {2: 100}


def test_the_pick_refuses_to_run_without_its_span_top_p(tokenizer):
    spans = SpanTopP(tokenizer, top_p=1.0, answer_top_p=1.0, temperature=1.0)
    ids = left_padded_ids(tokenizer, ["<think>x</think><answer>"])
    with pytest.raises(RuntimeError, match="right after its SpanTopP"):
        StratifiedAnswer(spans, torch.tensor([0.5]))(ids, torch.zeros(1, len(tokenizer)))


def test_generation_draws_the_answers_of_a_group_stratified(two_prompts):
    """The shipped policy with shared reasoning: each group's answers cover its answer distribution."""
    from transformers import AutoModelForImageTextToText

    from fadtq.answer import extract_answer
    from fadtq.generation.engine import SamplingParams
    from fadtq.generation.hf import HFRolloutEngine
    from fadtq.policy.processor import load_processor
    from fadtq.pretraining.default_policy import pretrained_model_dir
    from fadtq.run_config import load_run_config

    policy = pretrained_model_dir(load_run_config("cpu_default"))
    processor = load_processor(str(policy))
    model = AutoModelForImageTextToText.from_pretrained(str(policy), dtype=torch.float32).eval()
    engine = HFRolloutEngine(model, processor)
    counts = {}
    for draws in ("independent", "stratified"):
        torch.manual_seed(0)
        result = engine.generate(two_prompts * 8, 3, SamplingParams(
            temperature=1.0, top_p=1.0, reasoning_top_p=1e-6, answer_draws=draws, max_new_tokens=48))
        counts[draws] = [Counter(extract_answer(c.text) for c in group) for group in result.groups]
    # the start policy gives each class about a third of the time; independent groups of three give all
    # three 2 times in 9 (measured: 3 of 16), stratified ones nearly always (15 of 16)
    all_three = {draws: sum(len(group) == 3 for group in groups) for draws, groups in counts.items()}
    assert all_three["stratified"] >= 14 and all_three["independent"] <= 8, counts
