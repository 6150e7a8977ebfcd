"""The vllm rollout engine on each family's tiny model (fp32, vLLM's CPU build, in this process).

What it samples must be what the trainer scores: vLLM's log-probabilities of its sampled tokens
match the scoring forward's within the family's tolerance, before any update and after several real
optimizer steps, once the new weights are pushed. Without the push the mismatch shows, so the
check can fail. Greedy answers match the ``hf`` engine's.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText

from fadtq.errors import FadtqError
from fadtq.generation.engine import SamplingParams
from fadtq.generation.hf import HFRolloutEngine
from fadtq.policy.family import family_of_model
from fadtq.policy.logprobs import completion_logprobs
from fadtq.policy.processor import load_processor

# fp32 on CPU: the two forwards differ only in kernels and summation order (measured: ~1e-6). A
# family whose CPU engine runs in bf16 (Qwen3.5's linear attention) samples from rounded weights:
# measured up to 8e-3 after updates.
TOLERANCE = {None: 1e-4, "bfloat16": 2e-2}
PARAMS = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=16, return_logprobs=True)
GREEDY = SamplingParams(max_new_tokens=24, greedy=True)


@pytest.fixture(scope="module")
def policy(family_model_dir):
    """A trainable copy of a family's tiny model and a vLLM engine holding its weights (one per
    family and module: an engine takes seconds to start)."""
    from fadtq.generation.vllm import VLLMRolloutEngine

    model = AutoModelForImageTextToText.from_pretrained(family_model_dir, attn_implementation="sdpa")
    processor = load_processor(family_model_dir)
    engine = VLLMRolloutEngine(model, processor, gpu_memory_utilization=0.3, sleep_mode=False, max_model_len=1024,
                               cpu_kv_cache_gib=1)
    return model, processor, engine, TOLERANCE[family_of_model(model).vllm_cpu_args.get("dtype")]


def mismatch(model, engine, prompts, seed: int) -> float:
    """Largest |vLLM log-prob - scoring forward log-prob| over the sampled tokens of 2 x 3 rollouts."""
    torch.manual_seed(seed)
    result = engine.generate(prompts, 3, PARAMS)
    with torch.no_grad():
        scored = completion_logprobs(model, result.scoring, PARAMS.temperature, engine.suppressed_token_ids)
    mask = result.scoring.action_mask.bool()
    assert mask.sum() > 0 and (result.logprobs[mask] < 0).all()
    return float((scored.logprobs - result.logprobs)[mask].abs().max())


def optimizer_steps(model, engine, prompts, steps: int) -> None:
    """Real updates: Adam steps raising the log-probability of freshly sampled completions."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        torch.manual_seed(100 + step)
        result = engine.generate(prompts, 2, PARAMS)
        loss = -completion_logprobs(model, result.scoring, PARAMS.temperature, engine.suppressed_token_ids).logprobs.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_rollouts_line_up_with_their_scoring_inputs(policy, two_prompts):
    _, processor, engine, _ = policy
    torch.manual_seed(0)
    result = engine.generate(two_prompts, 3, PARAMS)
    scoring = result.scoring
    assert [len(g) for g in result.groups] == [3, 3]
    completion_len = scoring.action_mask.shape[1]
    for group in result.groups:
        assert len({tuple(c.prompt_ids) for c in group}) == 1
        for c in group:
            assert scoring.sequences[c.row, -completion_len:][: len(c.completion_ids)].tolist() == c.completion_ids
            assert not set(c.completion_ids) & set(engine.suppressed_token_ids)
            assert c.finished or len(c.completion_ids) == PARAMS.max_new_tokens
    assert len(scoring.images) == 12 and scoring.images_per_row.tolist() == [2] * 6
    # the same torch seed, the same samples: rollouts follow the trainer's seeded generator
    torch.manual_seed(0)
    again = engine.generate(two_prompts, 3, PARAMS)
    assert [c.completion_ids for g in again.groups for c in g] == [c.completion_ids for g in result.groups for c in g]


def test_vllm_logprobs_match_the_scoring_forward_before_and_after_updates(policy, two_prompts):
    model, _, engine, tolerance = policy
    assert mismatch(model, engine, two_prompts, seed=1) < tolerance
    optimizer_steps(model, engine, two_prompts, steps=3)  # without pushes in between: off-policy samples
    engine.weights_updated()
    assert mismatch(model, engine, two_prompts, seed=2) < tolerance
    for _ in range(2):
        optimizer_steps(model, engine, two_prompts, steps=1)
        engine.weights_updated()
    assert mismatch(model, engine, two_prompts, seed=3) < tolerance


def test_without_the_weight_push_the_mismatch_shows(policy, two_prompts):
    model, _, engine, tolerance = policy
    optimizer_steps(model, engine, two_prompts, steps=2)
    assert mismatch(model, engine, two_prompts, seed=4) > 10 * tolerance
    engine.weights_updated()
    assert mismatch(model, engine, two_prompts, seed=4) < tolerance


def test_greedy_answers_match_the_hf_engine(policy, two_prompts):
    """The same greedy tokens; where a bf16 engine parts from the fp32 policy, only at a near tie:
    there the scoring forward gives both engines' tokens log-probabilities within the tolerance."""
    model, processor, engine, tolerance = policy
    results = [engine.generate(two_prompts, 1, GREEDY), HFRolloutEngine(model, processor).generate(two_prompts, 1, GREEDY)]
    vllm_ids, hf_ids = ([c.completion_ids for g in result.groups for c in g] for result in results)
    assert all(len(ids) > 0 for ids in vllm_ids)
    with torch.no_grad():
        vllm_lp, hf_lp = (completion_logprobs(model, result.scoring, 1.0, engine.suppressed_token_ids).logprobs
                          for result in results)
    for row, (ours, theirs) in enumerate(zip(vllm_ids, hf_ids)):
        parted = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
        if parted is None:
            assert ours == theirs
        else:
            assert -1e-5 < float(hf_lp[row, parted] - vllm_lp[row, parted]) < tolerance, (row, parted)


def test_a_model_the_cpu_backend_cannot_run_is_named_before_loading(tiny_model_dir):
    from transformers import AutoConfig

    from fadtq.generation.vllm import check_servable

    config = AutoConfig.from_pretrained(tiny_model_dir).to_dict()
    check_servable(config, "tiny", cuda=False)
    config["text_config"].update(hidden_size=64, num_attention_heads=4, head_dim=16)
    with pytest.raises(FadtqError, match=r"^m: text head size 16: vLLM's CPU attention takes 32, 64"):
        check_servable(config, "m", cuda=False)
    with pytest.raises(FadtqError, match="architectures .*LlamaForCausalLM.*serves Qwen2_5_VL"):
        check_servable({**config, "architectures": ["LlamaForCausalLM"]}, "m", cuda=False)


def test_a_family_s_own_cpu_limit_is_named_before_loading():
    """Qwen3.5's linear attention runs on vLLM's CPU build with heads of 64 or 128 only."""
    from fadtq.generation.vllm import check_servable

    text = {"hidden_size": 64, "num_attention_heads": 2, "head_dim": 32, "linear_key_head_dim": 64,
            "linear_value_head_dim": 64}
    config = {"model_type": "qwen3_5", "architectures": ["Qwen3_5ForConditionalGeneration"], "text_config": text}
    check_servable(config, "m", cuda=False)
    text["linear_key_head_dim"] = 32
    with pytest.raises(FadtqError, match=r"^m: linear attention head sizes \[32, 64\]: .* 64 or 128; use rollout"):
        check_servable(config, "m", cuda=False)
    check_servable(config, "m", cuda=True)  # a GPU has its own kernels


def test_a_missing_vllm_is_one_line_naming_the_install(tiny_model_dir, monkeypatch):
    import importlib.util

    from transformers import AutoConfig

    from fadtq.generation.vllm import check_servable

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(FadtqError, match=r"^rollout.engine: vllm: vLLM is not installed .*`make vllm`"):
        check_servable(AutoConfig.from_pretrained(tiny_model_dir).to_dict(), "tiny", cuda=False)
