"""A CPU-trained checkpoint served by vLLM's CPU build (``fadtq.serving.policy_server``, what
``make policy-server`` runs) and evaluated through ``fadtq eval --server``: the same greedy answers as
the local evaluation of the same folder, on the Pair3C look-alike and on an MMAD-format file.

The checkpoint: two RL steps of the CPU default (the shipped pretrained policy) on the tiny
look-alike, so its greedy answers are those of a trained policy rather than near-ties of a random one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trainer_testlib import answers, endpoint, ok, python_cmd, run

from fadtq.evaluation.runner import GenerationSettings, evaluate, evaluate_mmad

PAIRS, QUESTIONS, TOKENS = 24, 24, 64


@pytest.fixture(scope="module")
def checkpoint(train_env, tmp_path_factory) -> tuple[Path, Path]:
    """(RUN/final, the benchmark it trained on)."""
    out = tmp_path_factory.mktemp("served")
    ok(run(python_cmd("--train.max_steps", "2", "--data.synth_scale", "tiny", "--rollout.prompts_per_step", "4",
                      "--output.dir", out, "--output.name", "run"), train_env))
    return out / "run" / "final", Path(json.loads((out / "run" / "metadata.json").read_text())["benchmark"])


@pytest.fixture(scope="module")
def server(checkpoint, train_env):
    from fadtq.serving.policy_server import start_policy_server
    from fadtq.serving.vllm_server import free_port

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FADTQ_CACHE", train_env["FADTQ_CACHE"])
        started = start_policy_server(checkpoint[0], free_port(), "cpu")
    yield started
    started.stop()


def test_the_server_serves_the_checkpoint_under_its_run_name(server):
    assert server.model == "run"


def test_server_evaluation_gives_the_local_greedy_answers(checkpoint, server, tmp_path):
    final, benchmark = checkpoint
    settings = GenerationSettings(max_new_tokens=TOKENS, batch_size=8)
    local = evaluate(final, benchmark, tmp_path / "local", settings=settings, limit=PAIRS)
    served = evaluate(endpoint(server), benchmark, tmp_path / "served",
                      settings=GenerationSettings(max_new_tokens=TOKENS), limit=PAIRS)
    assert len(answers(tmp_path / "local")) == PAIRS
    assert answers(tmp_path / "served") == answers(tmp_path / "local")
    assert served["accuracy"] == local["accuracy"] and served["server"]["failed"] == 0
    # the image size the policy trained at, read through the folder the server reports
    config = json.loads((tmp_path / "served" / "eval_config.json").read_text())
    assert config["image_size"] == json.loads((final / "fadtq_inputs.json").read_text())["image_size"]


def test_mmad_evaluation_works_locally_and_served_alike(checkpoint, server, tmp_path):
    from fadtq.data.synth_mmad import write_mmad

    mmad_file = write_mmad(tmp_path / "mmad" / "mmad.json", seed=0, scale="tiny", difficulty="easy")
    settings = GenerationSettings(max_new_tokens=TOKENS, batch_size=8)
    local = evaluate_mmad(checkpoint[0], mmad_file, None, tmp_path / "local", settings=settings, limit=QUESTIONS)
    served = evaluate_mmad(endpoint(server), mmad_file, None, tmp_path / "served",
                           settings=GenerationSettings(max_new_tokens=TOKENS), limit=QUESTIONS)
    assert answers(tmp_path / "served") == answers(tmp_path / "local")
    assert len(answers(tmp_path / "local")) == QUESTIONS
    assert local["score"] == served["score"] and local["types"] == served["types"]
