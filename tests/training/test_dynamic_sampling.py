"""Dynamic sampling: uninformative groups are dropped, more prompts drawn (capped), the draws
counted; stacked scoring inputs of several draws score exactly as the draws alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trainer_testlib import GOOD_PAIRS_SIGNAL_REWARD, SIGNAL_REWARD, python_cmd, rows, side_by_side

from fadtq.scoring import JudgeStats, ScoredBatch
from fadtq.policy.forward_batch import ForwardBatch
from fadtq.training.dynamic_sampling import choose_groups, count, informative_groups, select_scored, still_wanted


def test_informative_groups_are_those_whose_rewards_differ():
    totals = [1.0, 1.0, 1.0, 0.0, 2.0, 2.5, 0.3, 0.3 + 1e-12]
    assert informative_groups(totals, 2) == [False, True, True, False]
    assert informative_groups(totals, 4) == [True, True]


def test_choose_groups_fills_with_informative_first_then_tops_up_in_draw_order():
    flags = [[False, True, False], [True, False, True]]
    assert choose_groups(flags, 3) == [(0, 1), (1, 0), (1, 2)]
    assert choose_groups(flags, 2) == [(0, 1), (1, 0)]
    assert choose_groups([[False, True], [False, False]], 2) == [(0, 1), (0, 0)]
    counts = count([[False, True, False], [False]], [(0, 1), (0, 0)])
    assert (counts.draws, counts.prompts, counts.dropped_groups, counts.topped_up_groups) == (2, 4, 3, 1)
    assert counts.metrics() == {"sampling/draws": 2.0, "sampling/prompts": 4.0, "sampling/dropped_groups": 3.0,
                                "sampling/topped_up_groups": 1.0}


def test_the_next_draw_is_as_large_as_the_groups_still_missing():
    assert still_wanted([[False, True, False, True]], 4) == 2
    assert still_wanted([[False, True, False, True], [True]], 4) == 1
    assert still_wanted([[True, True], [True, True, True]], 4) == 0  # more than wanted: none
    assert still_wanted([[False] * 4], 4) == 4


def test_select_scored_takes_rows_of_every_batch_and_sums_judge_counts():
    a = ScoredBatch({"accuracy": [0.0, 1.0]}, [0.0, 1.0], {}, JudgeStats(judged=1, skipped=1, calls=1))
    b = ScoredBatch({"accuracy": [1.0, None]}, [2.0, 0.5], {}, JudgeStats(judged=2, failed=1, calls=1))
    merged = select_scored([a, b], [(0, 1), (1, 0), (1, 1)])
    assert merged.total == [1.0, 2.0, 0.5] and merged.components["accuracy"] == [1.0, 1.0, None]
    assert (merged.judge.judged, merged.judge.skipped, merged.judge.failed, merged.judge.calls) == (3, 1, 1, 2)
    assert a.judge.judged == 1  # the inputs are left as they were


def test_stacked_draws_score_as_the_draws_alone(tiny_model_dir, two_prompts):
    """Two draws with different prompt and completion lengths, stacked (left-padded prompts,
    right-padded completions): every row's log-probs equal those of its own draw's forward."""
    from transformers import AutoModelForImageTextToText

    from fadtq.generation.engine import SamplingParams
    from fadtq.generation.hf import HFRolloutEngine
    from fadtq.policy.logprobs import completion_logprobs
    from fadtq.policy.processor import load_processor

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    engine = HFRolloutEngine(model, load_processor(tiny_model_dir))
    first = engine.generate(two_prompts[:1], 2, SamplingParams(max_new_tokens=6)).scoring
    second = engine.generate(two_prompts, 1, SamplingParams(max_new_tokens=12)).scoring
    stacked = ForwardBatch.concat([first, second], engine.pad_token_id)
    assert stacked.action_mask.shape[1] == max(first.action_mask.shape[1], second.action_mask.shape[1])
    suppress = engine.suppressed_token_ids
    with torch.no_grad():
        alone = [completion_logprobs(model, part, 1.0, suppress).logprobs for part in (first, second)]
        together = completion_logprobs(model, stacked, 1.0, suppress).logprobs
    for offset, part in ((0, alone[0]), (2, alone[1])):
        width = part.shape[1]
        assert torch.allclose(together[offset:offset + len(part), :width], part, atol=1e-5)
        assert not together[offset:offset + len(part), width:].any()


COMMON = ("--rollout.max_new_tokens", "8", "--rollout.dynamic_sampling", "true", "--rollout.max_draws", "2")
# name -> the run's own flags; every run starts at once (``runs``), one thread each
RUNS = {
    "no-signal": ("--rewards", "format,accuracy", "--train.max_steps", "2"),
    "signal": ("--rewards", f"format,accuracy,{SIGNAL_REWARD}", "--train.max_steps", "2"),
    "refill-missing": ("--rewards", f"format,accuracy,{GOOD_PAIRS_SIGNAL_REWARD}", "--train.max_steps", "3",
                       "--rollout.refill", "missing"),
    "refill-batch": ("--rewards", f"format,accuracy,{GOOD_PAIRS_SIGNAL_REWARD}", "--train.max_steps", "3",
                     "--rollout.refill", "batch"),
}


@pytest.fixture(scope="module")
def runs(train_env, model_args, tmp_path_factory) -> Path:
    """The trainer runs of this module, side by side: ``<out>/<name>/metrics.jsonl``."""
    out = tmp_path_factory.mktemp("dynamic-sampling")
    side_by_side({name: python_cmd(*model_args, *COMMON, *flags, "--output.dir", out, "--output.name", name)
                  for name, flags in RUNS.items()}, train_env, out)
    return out


@pytest.mark.parametrize("name, draws, topped_up", [
    ("no-signal", 3, 4),  # the untrained tiny model earns 0 everywhere: nothing is informative
    ("signal", 1, 0),  # signal differs within every group: one draw
])
def test_trainer_draws_until_full_and_counts(runs, name, draws, topped_up):
    for row in rows(runs / name / "metrics.jsonl"):
        assert row["sampling/draws"] == draws and row["sampling/topped_up_groups"] == topped_up
        assert row["sampling/dropped_groups"] == (4 * draws if topped_up else 0)
        assert 0.0 <= row["sampling/first_draw_accuracy"] <= 1.0


@pytest.mark.parametrize("refill", ["missing", "batch"])
def test_a_refill_draws_as_many_prompts_as_groups_are_missing_or_a_batch(runs, refill):
    """Only good pairs' groups are informative, so a step's first draw of 4 prompts is partly kept;
    each extra draw is as large as what is still missing (``missing``) or 4 prompts (``batch``)."""
    counts = [(row["sampling/draws"], row["sampling/prompts"], row["sampling/dropped_groups"],
               row["sampling/topped_up_groups"]) for row in rows(runs / f"refill-{refill}" / "metrics.jsonl")]
    assert any(draws > 1 for draws, *_ in counts), counts
    if refill == "batch":
        assert all(prompts == 4 * draws for draws, prompts, *_ in counts), counts
    else:  # smaller refills; the draws' informative groups (prompts - dropped) are exactly the 4 wanted,
        # the top-ups aside
        assert any(prompts < 4 * draws for draws, prompts, *_ in counts), counts
        assert all(prompts - dropped + topped_up == 4 for _, prompts, dropped, topped_up in counts), counts
