"""Evaluation from a model and from a predictions file: agreement, resuming, and bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from fadtq.cli import main as cli_main
from fadtq.data.pair3c import read_manifest
from fadtq.errors import FadtqError
from fadtq.evaluation import evaluate_model, runner
from fadtq.evaluation.runner import GenerationSettings, evaluate, evaluate_file
from fadtq.evaluation.predictions import select_rows

from eval_support import BATCH, MAX_NEW_TOKENS, N_PAIRS


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without(metrics: dict, *keys: str) -> dict:
    return {k: v for k, v in metrics.items() if k not in keys}


def test_model_eval_writes_records_and_metrics(model_eval: Path):
    rows = _rows(model_eval / "predictions.jsonl")
    metrics = json.loads((model_eval / "metrics.json").read_text())
    assert len(rows) == metrics["n"] == N_PAIRS
    # The stratified subset: 12 distinct (category, class) groups in the first round.
    assert len({(r["category"], r["label"]) for r in rows}) == N_PAIRS
    assert all(0 < r["completion_tokens"] <= MAX_NEW_TOKENS and isinstance(r["completion"], str) for r in rows)
    assert metrics["name"] == "tiny-base" and metrics["source"]["kind"] == "model"
    assert metrics["accuracy"] == sum(r["correct"] for r in rows) / N_PAIRS


def test_predictions_file_of_the_same_outputs_gives_the_same_metrics(model_eval, small_bench, tiny_model,
                                                                       tmp_path, capsys):
    preds = tmp_path / "elsewhere.jsonl"
    preds.write_text("".join(json.dumps({"id": r["id"], "completion": r["completion"]}) + "\n"
                             for r in _rows(model_eval / "predictions.jsonl")))
    out = tmp_path / "from-file"
    assert cli_main(["eval", "--predictions", str(preds), "--benchmark", str(small_bench), "--limit", str(N_PAIRS),
                     "--tokenizer", str(tiny_model), "--out", str(out)]) == 0
    assert "Table 2" in capsys.readouterr().out
    from_model = json.loads((model_eval / "metrics.json").read_text())
    from_file = json.loads((out / "metrics.json").read_text())
    assert _without(from_file, "name", "source") == _without(from_model, "name", "source")
    generated_only = ("completion_tokens", "finished")
    assert [_without(r, *generated_only) for r in _rows(out / "predictions.jsonl")] == \
           [_without(r, *generated_only) for r in _rows(model_eval / "predictions.jsonl")]


def test_interrupted_eval_resumes_to_the_uninterrupted_result(model_eval, tiny_model, small_bench, tmp_path,
                                                               monkeypatch):
    out = tmp_path / "resumed"
    real_append = runner.append_rows
    calls = []

    def append_then_stop(handle, rows):
        if calls:
            raise KeyboardInterrupt  # killed while the second batch was being generated
        calls.append(len(rows))
        real_append(handle, rows)

    monkeypatch.setattr(runner, "append_rows", append_then_stop)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(tiny_model, small_bench, out, batch_size=BATCH, max_new_tokens=MAX_NEW_TOKENS, limit=N_PAIRS)
    assert len(_rows(out / "predictions.jsonl")) == BATCH and not (out / "metrics.json").exists()
    with (out / "predictions.jsonl").open("a") as handle:
        handle.write('{"id": "breakfast_box/go')  # a write cut off by the kill
    monkeypatch.setattr(runner, "append_rows", real_append)
    metrics = evaluate_model(tiny_model, small_bench, out, batch_size=BATCH, max_new_tokens=MAX_NEW_TOKENS,
                             limit=N_PAIRS, name="tiny-base")
    assert (out / "predictions.jsonl").read_text() == (model_eval / "predictions.jsonl").read_text()
    assert _without(metrics, "source") == _without(json.loads((model_eval / "metrics.json").read_text()), "source")


def test_resuming_with_other_decoding_is_refused(model_eval, tiny_model, small_bench):
    settings = GenerationSettings(batch_size=BATCH, max_new_tokens=MAX_NEW_TOKENS + 1)
    with pytest.raises(FadtqError, match=r"max_new_tokens=16, now 17"):
        evaluate(tiny_model, small_bench, model_eval, settings=settings, limit=N_PAIRS)


def test_limit_is_a_round_robin_over_category_and_class(small_bench):
    rows = read_manifest(small_bench / "test.jsonl")
    first = select_rows(rows, 15)
    assert len({(r["category"], r["label"]) for r in first}) == 15
    assert sorted(r["id"] for r in select_rows(rows, None)) == sorted(r["id"] for r in rows)


def test_bare_predictions_have_accuracy_but_no_format_or_length(small_bench, tmp_path):
    rows = select_rows(read_manifest(small_bench / "test.jsonl"), 6)
    answers = ["A", "structural", None, "(C)", "logical anomaly", "maybe"]
    preds = tmp_path / "bare.jsonl"
    preds.write_text("".join(json.dumps({"id": r["id"], "prediction": a}) + "\n" for r, a in zip(rows, answers)))
    metrics = evaluate_file(preds, small_bench, tmp_path / "out", limit=6)
    parsed = [r["prediction"] for r in _rows(tmp_path / "out" / "predictions.jsonl")]
    assert parsed == ["good", "structural", None, "logical", "logical", None]
    assert metrics["accuracy"] == sum(p == r["label"] for p, r in zip(parsed, rows)) / 6
    assert metrics["unparsed"] == 2 and metrics["format_rate"] is None and metrics["reasoning_words_mean"] is None


def test_reasoning_tokens_come_from_the_given_tokenizer(demo_run, small_bench, tiny_model, tmp_path):
    from transformers import AutoTokenizer

    from fadtq.answer import think_text

    metrics = evaluate_file(demo_run / "outputs.jsonl", small_bench, tmp_path / "out", tokenizer_path=tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rows = _rows(tmp_path / "out" / "predictions.jsonl")
    counts = [len(tokenizer(think_text(r["completion"]) or "", add_special_tokens=False)["input_ids"]) for r in rows]
    assert [r["reasoning_tokens"] for r in rows] == counts and max(counts) > 0
    assert metrics["reasoning_tokens_mean"] == pytest.approx(sum(counts) / len(counts))
    assert metrics["reasoning_words_mean"] == pytest.approx(sum(r["reasoning_words"] for r in rows) / len(rows))


def _error(args: list[str], capsys) -> str:
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("case", ["missing", "unknown", "invalid", "twice", "both"])
def test_bad_predictions_files_give_one_line_errors(case, small_bench, tmp_path, capsys):
    ids = [r["id"] for r in select_rows(read_manifest(small_bench / "test.jsonl"), 8)]
    lines = [json.dumps({"id": i, "prediction": "good"}) for i in ids]
    expected = {
        "missing": (lines[:3], r"5 benchmark ids have no prediction: '.+', '.+', '.+' and 2 more"),
        "unknown": (lines + [json.dumps({"id": "nope/x/1", "prediction": "good"})],
                    r"1 ids not in the benchmark split: 'nope/x/1 \(line 9\)'"),
        "invalid": (lines[:1] + ["{not json"] + lines[1:], r"bad.jsonl:2: invalid JSON"),
        "twice": (lines + lines[:1], r"bad.jsonl:9: id .+ answered twice"),
        "both": ([json.dumps({"id": ids[0], "prediction": "good", "completion": "x"})] + lines[1:],
                 r"bad.jsonl:1: give exactly one of 'completion'"),
    }
    content, pattern = expected[case]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(content) + "\n")
    err = _error(["eval", "--predictions", str(bad), "--benchmark", str(small_bench), "--limit", "8",
                  "--out", str(tmp_path / "out")], capsys)
    assert str(bad) in err
    assert re.search(pattern, err), err


def test_flag_errors_name_the_flag(small_bench, tmp_path, capsys):
    assert "--split dev" in _error(["eval", "--predictions", "x.jsonl", "--split", "dev"], capsys)
    assert "--limit 0" in _error(["eval", "--predictions", "x.jsonl", "--limit", "0"], capsys)
    assert "--sample" in _error(["eval", "--predictions", "x.jsonl", "--sample"], capsys)
    assert "no test.jsonl" in _error(["eval", "--predictions", "x.jsonl", "--benchmark", str(tmp_path)], capsys)
    err = _error(["eval", "--model", str(tmp_path), "--benchmark", str(small_bench), "--out", str(tmp_path / "o")],
                 capsys)
    assert "--model" in err or "tokenizer_config.json" in err


def test_greedy_decoding_ignores_the_seed_and_sampling_does_not(tiny_model, small_bench):
    import torch
    from transformers import AutoModelForImageTextToText

    from fadtq.data.dataset import PairDataset
    from fadtq.generation.engine import RolloutPrompt, SamplingParams
    from fadtq.generation.hf import HFRolloutEngine
    from fadtq.policy.processor import load_processor

    engine = HFRolloutEngine(AutoModelForImageTextToText.from_pretrained(tiny_model), load_processor(tiny_model))
    pair = PairDataset(small_bench / "test.jsonl")[0]
    prompts = [RolloutPrompt(pair.ref_image, pair.test_image, pair.messages)]

    def text(seed: int, **params) -> str:
        torch.manual_seed(seed)
        return engine.generate(prompts, 1, SamplingParams(max_new_tokens=MAX_NEW_TOKENS, **params)).groups[0][0].text

    assert text(0, greedy=True) == text(1, greedy=True, temperature=5.0)
    assert text(0) != text(1)


def test_evaluation_feeds_images_at_the_size_the_model_was_trained_at(tiny_model, small_bench, tmp_path):
    # A small policy knows one patch grid: evaluating it at another size broke its descriptions
    # (41 of 100 normal test images "damaged" at 448 px against 2 at its 112 px).
    from fadtq.data.dataset import DEFAULT_MAX_SIDE, record_image_size, trained_image_size

    trained = tmp_path / "trained"
    shutil.copytree(tiny_model, trained)
    assert trained_image_size(trained) is None
    assert GenerationSettings().for_model(trained).image_size == DEFAULT_MAX_SIDE
    record_image_size(trained, 24)
    assert trained_image_size(trained) == 24
    assert GenerationSettings().for_model(trained).image_size == 24
    assert GenerationSettings(image_size=16).for_model(trained).image_size == 16  # the flag wins
    evaluate(trained, small_bench, tmp_path / "out", settings=GenerationSettings(batch_size=BATCH, max_new_tokens=4),
             limit=3)
    assert json.loads((tmp_path / "out" / "eval_config.json").read_text())["image_size"] == 24


@pytest.mark.parametrize("text", ['{"image_size": "112"}', '{"image_size": 0}', "[112]"])
def test_a_bad_image_size_record_names_its_file(tiny_model, tmp_path, text):
    from fadtq.data.dataset import INPUTS_FILE, trained_image_size

    (tmp_path / INPUTS_FILE).write_text(text)
    with pytest.raises(FadtqError, match=re.escape(str(tmp_path / INPUTS_FILE))):
        trained_image_size(tmp_path)


def test_a_run_s_model_is_evaluated_on_the_benchmark_it_trained_on(tiny_model, small_bench, tmp_path, capsys):
    """Without --benchmark, RUN/final and RUN/checkpoints/step-N/policy are scored on the benchmark in
    RUN/metadata.json, not on the default look-alike (another look-alike gives a meaningless number)."""
    from fadtq.commands.eval import run_benchmark

    run = tmp_path / "run"
    (run / "checkpoints" / "step-000002").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    (run / "metadata.json").write_text(json.dumps({"benchmark": str(small_bench)}))
    shutil.copytree(tiny_model, run / "final")
    assert run_benchmark(run / "checkpoints" / "step-000002" / "policy") == str(small_bench)
    assert run_benchmark(tiny_model) is None
    code = cli_main(["eval", "--model", str(run / "final"), "--limit", "3", "--batch-size", str(BATCH),
                     "--max-new-tokens", str(MAX_NEW_TOKENS)])
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert code == 0 and metrics["n"] == 3
    assert metrics["source"]["benchmark"] == str(small_bench.resolve())
    assert f"benchmark: {small_bench} (the one the model's run trained on" in capsys.readouterr().out
