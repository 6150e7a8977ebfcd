"""``fadtq eval --mmad``: MMAD questions asked of a local model, the summary, resuming, and bad files."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from fadtq.answer import option_letter
from fadtq.cli import main as cli_main
from fadtq.errors import FadtqError
from fadtq.evaluation import backends
from fadtq.evaluation.mmad_scores import mmad_metrics
from fadtq.evaluation.runner import GenerationSettings, evaluate_mmad

from eval_support import MAX_NEW_TOKENS, SMALL_SIZE

N_QUESTIONS = 12


@pytest.fixture(scope="session")
def mmad_file(tmp_path_factory) -> Path:
    from fadtq.data.synth_mmad import write_mmad

    return write_mmad(tmp_path_factory.mktemp("mmad") / "mmad.json", seed=0, scale="tiny", size=SMALL_SIZE)


@pytest.fixture(scope="session")
def mmad_eval(tiny_model, mmad_file, tmp_path_factory) -> tuple[Path, str]:
    """The tiny model on 12 questions of the look-alike's MMAD file, through the command line."""
    out = tmp_path_factory.mktemp("mmad-eval") / "tiny"
    argv = ["eval", "--model", str(tiny_model), "--mmad", str(mmad_file), "--root", str(mmad_file.parent),
            "--limit", str(N_QUESTIONS), "--max-new-tokens", str(MAX_NEW_TOKENS), "--batch-size", "4",
            "--out", str(out)]
    from contextlib import redirect_stdout
    from io import StringIO

    printed = StringIO()
    with redirect_stdout(printed):
        assert cli_main(argv) == 0
    return out, printed.getvalue()


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("reply, letter", [
    ("<think>The box holds two fruits.</think><answer>B</answer>", "B"),
    ("<answer>(C) four</answer>", "C"),
    ("B. No", "B"),
    ("Answer: D.", "D"),
    ("<think>A crack at the top.</think><answer>B</answer>", "B"),  # the think block is not read
    ("<think>A crack at the top.</think> B", None),  # no answer block: the whole reply names A and B
    ("<answer>A or B</answer>", None),
    ("<answer>b</answer>", None),
    ("I cannot tell.", None),
    ("<answer>F</answer>", None),
])
def test_option_letter_reads_one_letter_and_never_guesses(reply, letter):
    assert option_letter(reply) == letter


def _record(dataset: str, question_type: str, correct: bool, normal: bool = False, parsed: bool = True) -> dict:
    return {"id": "q", "dataset": dataset, "type": question_type, "normal": normal, "correct": correct,
            "prediction": ("A" if parsed else None), "read": "letter" if parsed else None, "completion": "A or B"}


def test_the_summary_follows_mmads_definitions():
    records = [
        # dataset x: Anomaly Detection 2/2 on normal images, 1/4 on anomalous ones (2 unparsed)
        *[_record("x", "Anomaly Detection", True, normal=True)] * 2,
        _record("x", "Anomaly Detection", True), *[_record("x", "Anomaly Detection", False, parsed=False)] * 2,
        _record("x", "Anomaly Detection", False),
        # Object Structure and Object Details are one type, Object Analysis: 1 of 2
        _record("x", "Object Structure", True), _record("x", "Object Details", False),
        # dataset y: only Defect Classification, 3 of 4
        *[_record("y", "Defect Classification", True)] * 3, _record("y", "Defect Classification", False),
    ]
    metrics = mmad_metrics(records)
    x, y = metrics["datasets"]["x"], metrics["datasets"]["y"]
    detection = x["types"]["Anomaly Detection"]
    assert (detection["n"], detection["correct"], detection["unparsed"]) == (6, 3, 2)
    assert detection["accuracy"] == 0.5 and detection["score"] == (1.0 + 0.25) / 2
    assert set(x["types"]) == {"Anomaly Detection", "Object Analysis"}
    assert x["types"]["Object Analysis"]["score"] == 0.5 and x["score"] == (0.625 + 0.5) / 2
    assert y["score"] == 0.75 and "Anomaly Detection" not in y["types"]
    assert metrics["types"]["Defect Classification"]["score"] == 0.75  # the mean over the datasets that ask it
    assert list(metrics["types"]) == ["Anomaly Detection", "Defect Classification", "Object Analysis"]
    assert metrics["score"] == (x["score"] + y["score"]) / 2
    assert (metrics["n"], metrics["correct"], metrics["unparsed"]) == (12, 7, 2) and metrics["accuracy"] == 7 / 12
    # MMAD's convention: the two unparsed answers dropped, every type in every dataset, a missing one 0.
    mmad = metrics["mmad_convention"]
    assert mmad["dropped"] == 2 and mmad["datasets"]["x"]["types"]["Anomaly Detection"]["score"] == (1.0 + 0.5) / 2
    assert mmad["datasets"]["x"]["types"]["Defect Classification"] == {
        "n": 0, "correct": 0, "unparsed": 0, "accuracy": None, "score": 0.0}
    assert mmad["datasets"]["x"]["score"] == (0.75 + 0.0 + 0.5) / 3
    assert mmad["datasets"]["y"]["types"]["Anomaly Detection"]["score"] == 0.0  # both halves missing
    assert mmad["datasets"]["y"]["score"] == 0.75 / 3 and mmad["types"]["Defect Classification"]["score"] == 0.375
    assert mmad["score"] == (mmad["datasets"]["x"]["score"] + mmad["datasets"]["y"]["score"]) / 2


def test_a_model_eval_writes_answers_and_a_summary_that_adds_up(mmad_eval):
    out, printed = mmad_eval
    rows = _rows(out / "predictions.jsonl")
    metrics = json.loads((out / "mmad_metrics.json").read_text())
    assert len(rows) == metrics["n"] == N_QUESTIONS
    # The round robin over (dataset, category, type) reaches three categories and every type of the
    # file within 12 questions.
    assert {r["image"].split("/")[1] for r in rows} == {"breakfast_box", "juice_bottle", "pushpins"}
    assert set(metrics["types"]) == {"Anomaly Detection", "Defect Classification", "Defect Localization",
                                     "Object Classification", "Object Analysis"}
    assert all(isinstance(r["completion"], str) and 0 < r["completion_tokens"] <= MAX_NEW_TOKENS for r in rows)
    assert metrics["correct"] == sum(r["correct"] for r in rows)
    assert metrics["unparsed"] == sum(r["prediction"] is None for r in rows)
    for r in rows:
        assert r["correct"] == (r["prediction"] == r["answer"]) and r["prediction"] == option_letter(r["completion"])
    cells = [cell for d in metrics["datasets"].values() for cell in d["types"].values()]
    assert sum(c["n"] for c in cells) == metrics["n"] and sum(c["correct"] for c in cells) == metrics["correct"]
    for name, by_type in metrics["types"].items():
        assert by_type["n"] == sum(d["types"][name]["n"] for d in metrics["datasets"].values() if name in d["types"])
    synth = metrics["datasets"]["synth"]
    assert synth["score"] == pytest.approx(sum(c["score"] for c in synth["types"].values()) / len(synth["types"]))
    assert metrics["score"] == synth["score"] and metrics["source"]["kind"] == "model"
    assert "| synth " in printed and "| Average " in printed and "Anomaly Detection" in printed
    assert f"{N_QUESTIONS} questions" in printed


def test_the_questions_go_with_the_reference_first(mmad_eval, mmad_file, tiny_model, monkeypatch, tmp_path):
    """The prompts the model is given: the first random template as reference (MMAD's default), then
    the image, then the question (the project's own policies are asked with the project's prompt)."""
    asked = []

    def record_prompts(self, questions, todo, settings, save, already):
        asked.extend((row, questions.prompt(row)) for row in todo)
        save([questions.record(row, "<answer>A</answer>") for row in todo])
        return Counter()

    monkeypatch.setattr(backends.LocalModel, "start", lambda self, settings: None)
    monkeypatch.setattr(backends.LocalModel, "answer", record_prompts)
    evaluate_mmad(tiny_model, mmad_file, None, tmp_path / "out", limit=2)  # the root: the file's folder
    assert len(asked) == 2
    data = json.loads(mmad_file.read_text())
    from fadtq.data.loco import load_rgb

    for row, (ref, test, messages) in asked:
        assert row["ref_image"] == data[row["image"]]["random_templates"][0]
        assert ref.tobytes() == load_rgb(mmad_file.parent / row["ref_image"]).tobytes()
        assert test.tobytes() == load_rgb(mmad_file.parent / row["image"]).tobytes()
        parts = messages[0]["content"]
        assert [p["type"] for p in parts] == ["text", "image", "text", "image", "text"]
        assert parts[0]["text"].startswith("Reference") and row["question"] in parts[-1]["text"]
        assert all(f"{letter}. {text}" in parts[-1]["text"] for letter, text in row["options"].items())


def test_a_finished_eval_resumes_without_loading_the_model(mmad_eval, mmad_file, tiny_model, monkeypatch, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(mmad_eval[0], out)
    monkeypatch.setattr(backends.LocalModel, "start", lambda self, settings: pytest.fail("nothing was left to generate"))
    settings = GenerationSettings(batch_size=4, max_new_tokens=MAX_NEW_TOKENS)
    metrics = evaluate_mmad(tiny_model, mmad_file, mmad_file.parent, out, settings=settings, limit=N_QUESTIONS)
    assert metrics["n"] == N_QUESTIONS
    with pytest.raises(FadtqError, match=r"max_new_tokens=16, now 17"):
        evaluate_mmad(tiny_model, mmad_file, mmad_file.parent, out, limit=N_QUESTIONS,
                      settings=GenerationSettings(batch_size=4, max_new_tokens=MAX_NEW_TOKENS + 1))


def test_an_interrupted_eval_continues_where_it_stopped(mmad_eval, mmad_file, tiny_model, monkeypatch, tmp_path):
    out = tmp_path / "partial"
    out.mkdir()
    done = _rows(mmad_eval[0] / "predictions.jsonl")
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in done[:5]) + '{"id": "synth/br')
    shutil.copy(mmad_eval[0] / "eval_config.json", out / "eval_config.json")
    asked = []
    real_answer = backends.LocalModel.answer

    def counting(self, questions, todo, settings, save, already):
        asked.extend(row["id"] for row in todo)
        return real_answer(self, questions, todo, settings, save, already)

    monkeypatch.setattr(backends.LocalModel, "answer", counting)
    settings = GenerationSettings(batch_size=4, max_new_tokens=MAX_NEW_TOKENS)
    evaluate_mmad(tiny_model, mmad_file, mmad_file.parent, out, settings=settings, limit=N_QUESTIONS)
    assert sorted(asked) == sorted(r["id"] for r in done[5:])
    assert sorted(_rows(out / "predictions.jsonl"), key=lambda r: r["id"]) == sorted(done, key=lambda r: r["id"])


def _broken(mmad_file: Path, tmp_path: Path, change) -> tuple[Path, str]:
    """A copy of the file with one entry changed by ``change(entry, data)``; returns it and the key."""
    data = json.loads(mmad_file.read_text())
    key = "synth/pushpins/test/structural_anomalies/001.png"
    change(data[key], data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    return bad, key


PUSHPINS = "synth/pushpins/test/structural_anomalies/001.png"


@pytest.mark.parametrize("change, key, fragment", [
    (lambda e, d: e.pop("conversation"), PUSHPINS, "conversation: missing"),
    (lambda e, d: e.pop("random_templates"), PUSHPINS, "random_templates: missing"),
    (lambda e, d: e["conversation"][1].pop("type"), PUSHPINS, "conversation[1].type: expected a non-empty string"),
    (lambda e, d: e["conversation"][2].update(Answer="F"), PUSHPINS,
     "conversation[2].Answer: 'F' is not one of the options A, B, C, D"),
    (lambda e, d: e["conversation"][0].update(Options={"1": "Yes", "2": "No"}), PUSHPINS,
     "conversation[0].Options: expected letters A-E"),
    (lambda e, d: e.update(random_templates=["synth/pushpins/train/good/999.png"]), PUSHPINS,
     "random_templates[0]: "),
    (lambda e, d: e.update(random_templates=[]), PUSHPINS, "random_templates: empty (--template random asks"),
    (lambda e, d: e.update(similar_templates=[3]), PUSHPINS, "similar_templates[0]: expected an image path"),
    (lambda e, d: d.update({"synth/pushpins/test/good/404.png": e}), "synth/pushpins/test/good/404.png",
     "image: "),
    (lambda e, d: d.update({"../outside.png": e}), "../outside.png", "expected a path relative to --root"),
])
def test_a_bad_mmad_file_is_one_line_naming_key_and_field(change, key, fragment, mmad_file, tiny_model, tmp_path,
                                                           capsys):
    data = json.loads(mmad_file.read_text())
    change(data[PUSHPINS], data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    out = tmp_path / "out"
    assert cli_main(["eval", "--model", str(tiny_model), "--mmad", str(bad), "--root", str(mmad_file.parent),
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: {key!r}: ") and err.count("\n") == 1 and fragment in err, err
    assert not out.exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--mmad", "m.json", "--benchmark", "b"], "--benchmark: not with --mmad"),
    (["--mmad", "m.json", "--split", "train"], "--split: not with --mmad"),
    (["--root", "r"], "--root: only with --mmad"),
    (["--mmad", "nope.json"], "nope.json: unreadable JSON"),
])
def test_mmad_flags_are_checked(argv, fragment, tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["eval", "--model", str(tiny_model), *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
