"""``fadtq reward`` end to end on hand-written rollouts whose expected values were computed by hand.

The arithmetic for ``tests/fixtures/hand_rollouts.jsonl`` (eta = 0.5, heuristic judge):
  g1-a  16 words, no repeated trigram -> conc 3/3; both images named, 'missing' + 'tangerines',
        cue 'missing' implies logical = answer -> rel 3/3; tq = 1; R = 1 + 1 + 1 = 3
  g1-b  conc 3/3; both images +1, no object word +0, cue 'matches' implies good != logical -> rel
        capped at 1/3; tq = .5 + .5/3 = 2/3; R = 8/3
  g1-c  wrong answer: judge not asked; R = r_format = 1
  g1-d  no tags: format 0, answer unparseable -> 0; R = 0
  g2-a  text between blocks: format 0; answer 'B' = structural, right; reasoning 'x': 1 word, fewer
        than 5 -> conc capped at 1/3; rel 0 -> tq = .5/3 = 1/6; R = 0 + 1 + 1/6
  g2-b  'reference test missing count pin' x4: 13 of 18 trigrams repeated -> conc 1/3; rel 3 capped
        at 1 (5 distinct / 20 words < .45) -> tq 1/3; R = 7/3
GPG advantages: g1 R = [3, 8/3, 1, 0], mean 5/3, population std sqrt(1.5); g2 R = [7/6, 7/3] -> -1, +1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "hand_rollouts.jsonl"


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_scores_match_hand_computed_values(fadtq_cli, tmp_path):
    out = tmp_path / "scored.jsonl"
    result = fadtq_cli("reward", "--rewards", "format,accuracy,tq", "--input", FIXTURE, "--output", out,
                       "--advantage", "gpg")
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [r["id"] for r in read_rows(FIXTURE)]
    for row in rows:
        expected = row["expected"]["rewards"]
        assert set(row["rewards"]) == set(expected)
        for name, value in expected.items():
            if value is None:
                assert row["rewards"][name] is None, (row["id"], name)
            else:
                assert row["rewards"][name] == pytest.approx(value, abs=1e-12), (row["id"], name)
        assert row["advantage"] == pytest.approx(row["expected"]["gpg_advantage"], abs=1e-8), row["id"]
    assert "4 judged, 2 skipped by the gate, 0 failed" in result.stdout


def test_without_tq_the_judge_is_not_used(fadtq_cli, tmp_path):
    out = tmp_path / "scored.jsonl"
    result = fadtq_cli("reward", "--rewards", "format,accuracy", "--input", FIXTURE, "--output", out)
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert all(r["rewards"]["tq"] is None and r["rewards"]["conciseness"] is None for r in rows)
    assert [r["rewards"]["total"] for r in rows] == [2, 2, 1, 0, 1, 2]
    assert "0 judged" in result.stdout


@pytest.mark.parametrize("content, message", [
    ('{"id": "a"}\n', "in.jsonl:1: missing field(s) group, prompt, completion, label, category"),
    ('\n{"id": "a", "group": "g", "prompt": "p", "completion": "c", "label": "bad", "category": "x"}\n',
     "in.jsonl:2: field 'label' is 'bad', expected one of good, structural, logical"),
    ('{"id": "a", "group": "g", "prompt": "p", "completion": "c", "label": "good", "category": "x"}\n{oops\n',
     "in.jsonl:2: invalid JSON"),
])
def test_bad_rows_stop_with_the_line_number_and_write_nothing(fadtq_cli, tmp_path, content, message):
    source = tmp_path / "in.jsonl"
    source.write_text(content)
    out = tmp_path / "scored.jsonl"
    out.write_text("previous contents\n")
    result = fadtq_cli("reward", "--input", source, "--output", out)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert out.read_text() == "previous contents\n"
    assert list(tmp_path.glob(".scored.jsonl.*")) == []


def test_unknown_reward_lists_known_names(fadtq_cli, tmp_path):
    result = fadtq_cli("reward", "--rewards", "format,acuracy", "--input", FIXTURE, "--output", tmp_path / "o.jsonl")
    assert result.returncode == 2
    assert "--rewards: unknown reward 'acuracy'; known: accuracy, conciseness, format, relevance, tq" in result.stderr


def test_unknown_advantage_lists_known_names(fadtq_cli, tmp_path):
    result = fadtq_cli("reward", "--advantage", "ppo", "--input", FIXTURE, "--output", tmp_path / "o.jsonl")
    assert result.returncode == 2
    assert "--advantage: unknown advantage estimator 'ppo'; known: dr_grpo, gpg, grpo, rloo" in result.stderr


def test_invalid_config_names_the_key(fadtq_cli, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("reward:\n  terms:\n    format: {reward: format}\n    tq: {mix: {format: 1}, gate: acc}\n"
                      "  active: [format]\n")
    result = fadtq_cli("reward", "--config", config, "--input", FIXTURE, "--output", tmp_path / "o.jsonl")
    assert result.returncode == 2
    assert f"{config}: reward.terms.tq.gate: unknown term 'acc'; known: format, tq" in result.stderr
