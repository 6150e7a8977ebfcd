"""``fadtq eval --server``: a model behind an OpenAI-compatible endpoint (the scripted fake of
``tests/fake_openai.py``): what a request carries, the bound on requests in flight, retries, and
requests that keep failing, which never become answers."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fake_openai import FakeOpenAI, ok
from PIL import Image

from fadtq.cli import main as cli_main
from fadtq.data.dataset import PairDataset
from fadtq.data.pair3c import read_manifest
from fadtq.evaluation.runner import GenerationSettings, evaluate, evaluate_mmad
from fadtq.evaluation.predictions import select_rows
from fadtq.openai_client import EndpointConfig
from fadtq.prompts import PromptLibrary, policy_question

from eval_support import SMALL_SIZE

GOOD = ok("<think>The test image matches the reference.</think><answer>good</answer>")


def endpoint(server: FakeOpenAI, **options) -> EndpointConfig:
    return EndpointConfig(base_urls=[server.url], model="fake", **{"backoff_s": 0.01, "backoff_max_s": 0.02,
                                                                   **options})


def _image(url: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url[len(prefix):]))).convert("RGB"))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_request_carries_the_reference_then_the_test_image_and_the_training_question(small_bench, tmp_path):
    with FakeOpenAI([GOOD]) as server:
        metrics = evaluate(endpoint(server), small_bench, tmp_path / "out", limit=3,
                           settings=GenerationSettings(max_new_tokens=40, image_size=24))
    rows = select_rows(read_manifest(small_bench / "test.jsonl"), 3)
    dataset = PairDataset(small_bench / "test.jsonl", max_side=24)
    assert len(server.bodies) == 3
    for body in server.bodies:
        assert body["model"] == "fake" and body["temperature"] == 0.0 and body["max_tokens"] == 40
        [message] = body["messages"]
        parts = message["content"]
        assert message["role"] == "user" and [p["type"] for p in parts] == ["text", "image_url", "text", "image_url",
                                                                            "text"]
        ref, test = _image(parts[1]["image_url"]["url"]), _image(parts[3]["image_url"]["url"])
        [row] = [r for r in rows if np.array_equal(test, np.asarray(dataset.image(r["test_image"])))]
        assert np.array_equal(ref, np.asarray(dataset.image(row["ref_image"])))
        assert max(ref.shape[:2]) == 24  # --image-size
        assert parts[4]["text"] == policy_question(PromptLibrary(), row["category"])
        assert parts[0]["text"] == "Reference image (normal):" and parts[2]["text"] == "Test image:"
    # The answer is read as training reads it.
    assert metrics["n"] == 3 and metrics["accuracy"] == sum(r["label"] == "good" for r in rows) / 3
    assert metrics["format_rate"] == 1.0 and metrics["source"]["kind"] == "server"
    assert metrics["server"] == {"requests": 3, "retries": 0, "failed": 0, "failed_by_kind": {}}


def test_requests_in_flight_are_bounded_and_used(small_bench, tmp_path):
    with FakeOpenAI([GOOD], delay_s=0.2) as server:
        metrics = evaluate(endpoint(server, max_in_flight=3), small_bench, tmp_path / "out", limit=12)
    assert server.max_in_flight == 3 and metrics["n"] == 12


def test_retries_are_counted_and_the_answer_kept(small_bench, tmp_path):
    with FakeOpenAI([(503, "busy"), (500, "oops"), GOOD]) as server:
        metrics = evaluate(endpoint(server, max_in_flight=1), small_bench, tmp_path / "out", limit=4)
    assert metrics["n"] == 4 and metrics["server"] == {"requests": 6, "retries": 2, "failed": 0, "failed_by_kind": {}}


def down_for(category: str):
    """Answers good, except that every request about ``category`` fails with a 503."""

    def reply(body: dict):
        question = body["messages"][0]["content"][-1]["text"]
        return (503, "overloaded") if f"checking a {category}" in question else GOOD

    return reply


def test_a_request_that_keeps_failing_is_no_answer_and_is_asked_again_on_resume(small_bench, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["eval", "--server", None, "--model", "fake", "--benchmark", str(small_bench), "--limit", "15",
            "--max-retries", "1", "--out", str(out)]
    with FakeOpenAI([down_for("pushpins")]) as server:
        argv[2] = server.url
        assert cli_main(argv) == 1
    captured = capsys.readouterr()
    assert "server: 18 requests, 3 retries, 3 failed" in captured.out
    assert "3 requests failed after their retries ({'http_503': 3})" in captured.err
    rows = _rows(out / "predictions.jsonl")
    assert len(rows) == 12 and not any(r["category"] == "pushpins" for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 12 and "pushpins" not in metrics["categories"]
    assert metrics["server"]["failed_by_kind"] == {"http_503": 3}

    with FakeOpenAI([GOOD]) as server:  # the server is back: only the three pushpins pairs are asked
        argv[2] = server.url
        assert cli_main(argv) == 0
        assert len(server.bodies) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 15 and metrics["categories"]["pushpins"]["n"] == 3
    assert metrics["server"] == {"requests": 3, "retries": 0, "failed": 0, "failed_by_kind": {}}


def test_when_every_request_fails_nothing_is_scored_and_nothing_is_left_behind(small_bench, tmp_path, capsys):
    """A server answering 500 to every request (or hanging past every retry): one line, no folder
    left, so the next evaluation into it (another served model) is not refused."""
    out = tmp_path / "out"
    argv = ["eval", "--server", None, "--model", "fake", "--benchmark", str(small_bench), "--limit", "2",
            "--max-retries", "0", "--out", str(out)]
    with FakeOpenAI([(500, "down")]) as server:
        argv[2] = server.url
        assert cli_main(argv) == 2
    assert "every request failed ({'http_500': 2})" in capsys.readouterr().err
    assert not out.exists()
    with FakeOpenAI([GOOD], models=("other",)) as server:
        argv[2], argv[4] = server.url, "other"
        assert cli_main(argv) == 0
    assert len(_rows(out / "predictions.jsonl")) == 2
    capsys.readouterr()
    with FakeOpenAI([GOOD]) as server:  # the first model again: its answers would be mixed with the other's
        argv[2], argv[4] = server.url, "fake"
        assert cli_main(argv) == 2
        assert "holds predictions made with model='other', now 'fake'" in capsys.readouterr().err
        assert cli_main([*argv, "--overwrite"]) == 0 and len(server.bodies) == 2
    assert json.loads((out / "eval_config.json").read_text())["model"] == "fake"
    assert len(_rows(out / "predictions.jsonl")) == 2  # the other model's answers replaced, not added to


def test_the_api_key_is_sent_from_the_named_variable(small_bench, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FADTQ_TEST_KEY", "s3cret")
    with FakeOpenAI([GOOD]) as server:
        assert cli_main(["eval", "--server", server.url, "--model", "fake", "--benchmark", str(small_bench),
                         "--limit", "1", "--api-key-env", "FADTQ_TEST_KEY", "--out", str(tmp_path / "out")]) == 0
    assert server.headers[0]["Authorization"] == "Bearer s3cret"


def _error(argv: list[str], capsys) -> str:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_an_unreachable_server_or_an_unserved_model_fails_first_with_nothing_written(small_bench, tmp_path, capsys):
    with FakeOpenAI([GOOD], models=("other",)) as server:
        url = server.url
        err = _error(["eval", "--server", url, "--model", "fake", "--benchmark", str(small_bench),
                      "--out", str(tmp_path / "a")], capsys)
        assert "--model fake: not served by" in err and "it serves: other" in err
        assert not server.bodies
    err = _error(["eval", "--server", url, "--model", "fake", "--benchmark", str(small_bench),
                  "--out", str(tmp_path / "b")], capsys)
    assert f"--server {url}: no answer at {url}/models (connection" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, fragment", [
    (["--server", "127.0.0.1:8000/v1", "--model", "m"], "--server: expected http(s)://HOST:PORT/v1"),
    (["--server", "http://h/v1", "--model", "m", "--api-key-env", "FADTQ_TEST_NO_SUCH_VARIABLE"],
     "--api-key-env: environment variable FADTQ_TEST_NO_SUCH_VARIABLE is not set"),
    (["--server", "http://h/v1", "--model", "m", "--max-in-flight", "0"], "--max-in-flight 0: expected at least 1"),
    (["--server", "http://h/v1", "--model", "m", "--timeout", "0"], "--timeout 0: expected a number of seconds"),
    (["--server", "http://h/v1", "--model", "m", "--batch-size", "4"], "--batch-size: not with --server"),
    (["--server", "http://h/v1", "--model", "m", "--sample"], "--sample: not with --server"),
    (["--model", "m", "--max-in-flight", "4"], "--max-in-flight: only with --server"),
    (["--predictions", "p.jsonl", "--server", "http://h/v1"], "--server: only with --model"),
])
def test_server_flags_are_checked(argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fragment in _error(["eval", *argv], capsys)
    assert list(tmp_path.iterdir()) == []


def test_mmad_questions_through_a_server_are_read_with_mmads_pattern(tmp_path):
    from fadtq.data.mmad_file import read_mmad, summary_type
    from fadtq.data.synth_mmad import write_mmad

    mmad_file = write_mmad(tmp_path / "bench" / "mmad.json", seed=0, size=SMALL_SIZE)

    def b_but_no_count(body: dict):
        """B, except to a count question: two letters, which is no answer."""
        question = body["messages"][0]["content"][-1]["text"]
        return ok("<answer>A or B</answer>" if "How many" in question else "<think>Looks so.</think><answer>B</answer>")

    with FakeOpenAI([b_but_no_count]) as server:
        metrics = evaluate_mmad(endpoint(server), mmad_file, None, tmp_path / "out", limit=40, protocol="fadtq")
    rows = {r["id"]: r for r in read_mmad(mmad_file, mmad_file.parent)}
    records = _rows(tmp_path / "out" / "predictions.jsonl")
    assert len(server.bodies) == len(records) == metrics["n"] == 40
    counting = [r for r in records if rows[r["id"]]["question"].startswith("How many")]
    assert metrics["unparsed"] == len(counting) > 0
    for name, by_type in metrics["types"].items():
        mine = [r for r in records if summary_type(r["type"]) == name]
        assert by_type["n"] == len(mine)
        assert by_type["correct"] == sum(r not in counting and rows[r["id"]]["answer"] == "B" for r in mine)
    assert metrics["correct"] == sum(r["correct"] for r in records)
    assert metrics["correct"] == sum(by_type["correct"] for by_type in metrics["types"].values())
