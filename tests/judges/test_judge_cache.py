"""The verdict cache: keyed by model, both templates and every item field; failures never stored."""

from __future__ import annotations

from dataclasses import replace

import pytest

from judge_testlib import items

from fadtq.api import Verdict
from fadtq.errors import FadtqError
from fadtq.judges.cache import VerdictCache, judge_through_cache, templates_hash
from fadtq.judges.protocol import JUDGE_TEMPLATES
from fadtq.prompts import PromptLibrary, packaged_prompts_dir


def test_key_depends_on_model_templates_and_every_item_field():
    item = items(1)[0]
    base = VerdictCache("m", "t")
    keys = {base.key(item), VerdictCache("m2", "t").key(item), VerdictCache("m", "t2").key(item)}
    keys |= {base.key(replace(item, **{name: "changed"})) for name in ("question", "reasoning", "answer", "category")}
    assert len(keys) == 7


def test_templates_hash_covers_both_judge_templates(tmp_path):
    original = templates_hash(PromptLibrary())
    for name in JUDGE_TEMPLATES:
        folder = tmp_path / name
        folder.mkdir()
        (folder / name).write_text((packaged_prompts_dir() / name).read_text() + "\nBe fair.\n")
        assert templates_hash(PromptLibrary(folder)) != original


def test_failures_are_not_cached_and_duplicates_are_sent_once(tmp_path):
    cache = VerdictCache("m", "t", tmp_path / "v.sqlite")
    sent: list[list] = []

    def judge_new(todo):
        sent.append(todo)
        return [Verdict(error="down") if "1:" in i.reasoning else Verdict(1, 2) for i in todo]

    batch = items(3) + items(3)
    verdicts = judge_through_cache(cache, batch, judge_new)
    assert len(sent[0]) == 3 and verdicts[:3] == verdicts[3:]
    judge_through_cache(cache, batch, judge_new)
    assert [i.reasoning for i in sent[1]] == [items(3)[1].reasoning]  # only the failure is asked again
    reopened = VerdictCache("m", "t", tmp_path / "v.sqlite")
    assert reopened.get(items(3)[0]) == Verdict(1, 2) and reopened.get(items(3)[1]) is None


def test_memory_keeps_the_most_recently_used_entries_and_sqlite_keeps_all(tmp_path):
    first, second, third = items(3)
    for path in (None, tmp_path / "v.sqlite"):
        cache = VerdictCache("m", "t", path, memory_entries=2)
        cache.put_many([(first, Verdict(0, 0)), (second, Verdict(1, 1))])
        assert cache.get(first) == Verdict(0, 0)  # first becomes the most recently used
        cache.put_many([(third, Verdict(2, 2))])
        assert len(cache) == 2 and cache.get(first) == Verdict(0, 0)
        # second, the least recently used, left memory; only the SQLite file still has it
        assert cache.get(second) == (Verdict(1, 1) if path else None)


def test_memory_bound_is_validated_as_a_judge_option():
    from fadtq.judges.cache import cache_from_options
    from fadtq.judges.options import JudgeOptions

    with pytest.raises(FadtqError, match=r"judge\.options\.cache_memory_entries: expected an integer >= 1"):
        cache_from_options(JudgeOptions({"cache_memory_entries": 0}, "openai"), "m", PromptLibrary())
