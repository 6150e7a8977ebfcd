"""Every model family beyond the default one, through the trainer: built offline by
``fadtq make-tiny-model --family``, trained by two ranks in step, resumed bit-identically after
SIGKILL, served by vLLM with the local greedy answers, and pretrained through its vision tower. (The prompt cache's exactness is checked per family in test_prompt_cache.py; the default
family's runs in test_trainer_e2e.py and test_trainer_resume.py.) A family nobody supports is one
line before anything loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import FAMILIES
from trainer_testlib import (LOOP_CONFIG, SIGNAL_REWARD, answers, endpoint, killed_and_resumed, policy_state, rows,
                             two_rank_run_with_fingerprints)

from fadtq.cli import main

NEW_FAMILIES = FAMILIES[1:]
STEPS = 3
COMMON = ("--rewards", f"format,accuracy,{SIGNAL_REWARD}", "--config", str(LOOP_CONFIG), "--rollout.max_new_tokens", "12")
ARGS = (*COMMON, "--train.max_steps", str(STEPS))


@pytest.fixture(scope="module", params=NEW_FAMILIES)
def family_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"family-{request.param}") / "model"
    assert main(["make-tiny-model", "--family", request.param, "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["model_type"] == request.param
    return out


@pytest.fixture(scope="module")
def two_ranks(family_dir, train_env, tmp_path_factory) -> tuple[Path, list[dict]]:
    """A 2-rank run of the family through the launcher, with every rank's weight fingerprints."""
    return two_rank_run_with_fingerprints(tmp_path_factory.mktemp("two-ranks"), (*ARGS, "--model.path", family_dir),
                                          train_env)


def test_two_ranks_train_a_family_with_identical_weights_after_every_step(family_dir, two_ranks):
    run_dir, fingerprints = two_ranks
    assert [len(rank["steps"]) for rank in fingerprints] == [STEPS, STEPS]
    assert fingerprints[0]["steps"] == fingerprints[1]["steps"]
    assert fingerprints[0]["steps"][0] != fingerprints[0]["steps"][-1]  # the weights did move
    start, final = policy_state(family_dir), policy_state(run_dir / "final")
    assert start.keys() == final.keys() and any(not torch.equal(start[k], final[k]) for k in start)


def test_a_family_killed_at_its_first_checkpoint_resumes_bit_identically(family_dir, train_env, tmp_path):
    run_a, run_b, _ = killed_and_resumed(tmp_path, (*ARGS, "--model.path", family_dir, "--output.save_every", "1"),
                                         train_env, STEPS, timeout=240)
    final_a, final_b = policy_state(run_a / "final"), policy_state(run_b / "final")
    assert final_a.keys() == final_b.keys() and all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def test_a_served_checkpoint_of_a_family_answers_as_it_does_locally(two_ranks, train_env, tmp_path):
    """The checkpoint of RL steps on a CPU, served by vLLM as `make policy-server` serves it, evaluated
    through the server and locally on 24 pairs: the same greedy answers (where vLLM's CPU build runs
    the family in bf16 only, most of them: greedy paths part at near ties)."""
    from fadtq.evaluation.runner import GenerationSettings, evaluate
    from fadtq.policy.family import family_of_folder
    from fadtq.serving.policy_server import start_policy_server
    from fadtq.serving.vllm_server import free_port

    final = two_ranks[0] / "final"
    benchmark = Path(json.loads((two_ranks[0] / "metadata.json").read_text())["benchmark"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FADTQ_CACHE", train_env["FADTQ_CACHE"])
        server = start_policy_server(final, free_port(), "cpu")
    try:
        settings = GenerationSettings(max_new_tokens=32, batch_size=8)
        local = evaluate(final, benchmark, tmp_path / "local", settings=settings, limit=24)
        served = evaluate(endpoint(server), benchmark, tmp_path / "served",
                          settings=GenerationSettings(max_new_tokens=32), limit=24)
    finally:
        server.stop()
    # A random model's replies may end inside a multi-byte character: transformers decodes the
    # unfinished bytes as U+FFFD, vLLM's detokenizer holds them back. The tokens are the same.
    local_answers, served_answers = (
        {key: text.rstrip("\ufffd") for key, text in answers(tmp_path / name).items()} for name in ("local", "served"))
    assert len(local_answers) == len(served_answers) == 24 and served["server"]["failed"] == 0
    if family_of_folder(final).vllm_cpu_args.get("dtype") is None:  # both fp32: the very same tokens
        assert served_answers == local_answers and served["accuracy"] == local["accuracy"]
        tokens = [{row["id"]: row["completion_tokens"] for row in rows(tmp_path / name / "predictions.jsonl")}
                  for name in ("local", "served")]
        assert tokens[0] == tokens[1]
    else:  # a bf16 server against the fp32 policy: greedy paths part at near ties (measured: 17 of 24 alike)
        assert sum(served_answers[key] == text for key, text in local_answers.items()) >= 12


def test_pretraining_finds_the_family_s_vision_tower(family_dir, tmp_path, capsys):
    from fadtq.policy.family import family_of_folder

    out = tmp_path / "pretrained"
    assert main(["pretrain", "--model", str(family_dir), "--out", str(out), "--vision-steps", "2", "--steps", "2",
                 "--batch-size", "2"]) == 0
    capsys.readouterr()
    start, final = policy_state(family_dir), policy_state(out)
    tower_name = family_of_folder(family_dir).vision_tower
    tower = [name for name in start if f".{tower_name}." in f".{name}"]
    assert tower and any(not torch.equal(start[k], final[k]) for k in tower)


def test_make_tiny_model_names_the_families_it_builds(tmp_path, capsys):
    assert main(["make-tiny-model", "--family", "nonsense", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--family nonsense" in err[0] and all(f in err[0] for f in FAMILIES)
    assert not (tmp_path / "m").exists()


def test_a_model_of_no_supported_family_is_refused_before_anything_loads(tmp_path, capsys):
    from fadtq.commands.train import main as train

    folder = tmp_path / "llava"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llava",
                                                    "architectures": ["LlavaForConditionalGeneration"]}))
    assert train(["--model.path", str(folder), "--output.dir", str(tmp_path / "runs")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "model_type 'llava'" in lines[0] and all(f in lines[0] for f in FAMILIES)
    assert not (tmp_path / "runs").exists()
