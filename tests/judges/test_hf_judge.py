"""The ``hf`` judge with the tiny offline Qwen3: batched, same parsing and failure policy."""

from __future__ import annotations

import pytest
from judge_testlib import items

from fadtq.errors import FadtqError
from fadtq.plugin_manager import default_plugins
from fadtq.prompts import PromptLibrary


def hf_judge(model_dir, **options):
    return default_plugins().judges.get("hf").build({"model": str(model_dir), **options}, PromptLibrary())


def test_structured_judging_always_parses_and_batching_does_not_change_verdicts(tiny_judge_dir):
    batch = items(6)
    batched = hf_judge(tiny_judge_dir, batch_size=4, cache=False).judge(batch)
    one_by_one = hf_judge(tiny_judge_dir, batch_size=1, cache=False).judge(batch)
    assert all(v.ok and v.conciseness in range(4) and v.relevance in range(4) for v in batched)
    assert batched == one_by_one


def test_free_generation_of_a_random_model_is_a_counted_failure_never_a_score(tiny_judge_dir):
    judge = hf_judge(tiny_judge_dir, structured_output=False, max_new_tokens=8)
    verdicts = judge.judge(items(3))
    assert all(not v.ok and v.conciseness is None and v.relevance is None for v in verdicts)
    assert judge.counts["failed_unparseable"] == 3


def test_identical_reasoning_is_judged_once(tiny_judge_dir):
    judge = hf_judge(tiny_judge_dir)
    first = judge.judge(items(3) + items(3))
    assert judge.counts["sent"] == 3
    assert judge.judge(items(3)) == first[:3] and judge.counts["sent"] == 3 and judge.counts["cache_hits"] == 3


@pytest.mark.parametrize("options, key", [({"batch_size": 0}, "batch_size"), ({"dtype": "int8"}, "dtype"),
                                          ({"model": "/no/such/model"}, "model"), ({"beams": 2}, "beams")])
def test_options_are_validated_with_their_key(tiny_judge_dir, options, key):
    with pytest.raises(FadtqError, match=rf"^judge.options.{key}"):
        hf_judge(tiny_judge_dir, **options)
