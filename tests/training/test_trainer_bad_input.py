"""Bad input fails before training: exit code 2, one ``error:`` line naming the file, key or flag,
no traceback, no model loaded and no run folder.

Two cases run as real processes (``python fadtq/train.py``, and the ``deepspeed`` launcher with 2
ranks for a step that does not divide over them), concurrently; the others call the entry
point's ``main`` in process, which is what the script runs, to keep the wall time down. In
process, building the policy is made to fail the test: every case must stop before it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist
from PIL import Image
from trainer_testlib import REPO, deepspeed_cmd, python_cmd

from fadtq.plugin_manager import default_plugins
from fadtq.training import cpu_compat

# case id -> (arguments, what the error line must contain); {tmp} holds the files `bad_files` writes
IN_PROCESS = {
    "unknown-estimator": (["--advantage.name", "ppo"], ["--advantage.name: unknown advantage estimator 'ppo'"]),
    "unknown-rollout-engine": (["--rollout.engine", "sglang"], ["--rollout.engine: unknown rollout engine 'sglang'"]),
    "unknown-engine-option": (["--rollout.engine", "vllm", "--rollout.options.tensor_parallel", "2"],
                              ["--rollout.options.tensor_parallel: unknown option of the vllm rollout engine; known: "
                               "gpu_memory_utilization"]),
    "engine-option-of-the-wrong-type": (["--rollout.engine", "vllm", "--rollout.options.sleep_mode", "1"],
                                        ["--rollout.options.sleep_mode: expected true or false, got 1"]),
    "model-vllm-cannot-run-on-cpu": (["--rollout.engine", "vllm", "--model.path", "{tmp}/head16"],
                                     ["model.path ", "head16: text head size 16: vLLM's CPU attention takes 32, 64"]),
    "answer-top-p-on-vllm": (["--rollout.engine", "vllm", "--rollout.answer_top_p", "0.5"],
                             ["--rollout.answer_top_p: the vllm engine samples every token with rollout.top_p"]),
    "answer-top-p-above-one": (["--rollout.answer_top_p", "1.5"],
                               ["--rollout.answer_top_p: expected a number in (0, 1], got 1.5"]),
    "reasoning-top-p-on-vllm": (["--rollout.engine", "vllm", "--rollout.reasoning_top_p", "0.1"],
                                ["--rollout.reasoning_top_p: the vllm engine samples every token with rollout.top_p"]),
    "answer-draws-on-vllm": (["--rollout.engine", "vllm", "--rollout.reasoning_top_p", "null",
                              "--rollout.answer_top_p", "null", "--rollout.answer_draws", "stratified"],
                             ["--rollout.answer_draws: the vllm engine samples every token with rollout.top_p, "
                              "independently"]),
    "unknown-answer-draws": (["--rollout.answer_draws", "systematic"],
                             ["--rollout.answer_draws: expected one of independent, stratified, got 'systematic'"]),
    "reasoning-top-p-zero": (["--rollout.reasoning_top_p", "0"],
                             ["--rollout.reasoning_top_p: expected a number in (0, 1], got 0"]),
    "negative-answer-entropy": (["--train.answer_entropy_coef", "-0.1"],
                                ["--train.answer_entropy_coef: expected a number >= 0, got -0.1"]),
    "missing-model-path": (["--model.path", "{tmp}/no-such-model"], ["--model.path: ", "no-such-model: no such folder"]),
    "weights-cut-short": (["--model.path", "{tmp}/cut-model"], ["--model.path: ", "cut-model/model.safetensors: not a "
                                                                "readable safetensors file"]),
    "micro-batch-does-not-divide": (["--train.micro_batch_size", "5"], ["--train.micro_batch_size: 5 does not divide"]),
    "benchmark-without-train-jsonl": (["--data.benchmark", "{tmp}/empty-benchmark"],
                                      ["--data.benchmark: ", "empty-benchmark: no train.jsonl"]),
    "unknown-config-key": (["--train.lrr", "1"], ["--train.lrr: unknown key"]),
    "abbreviated-flag": (["--conf", "x"], ["--conf: unknown key"]),
    "flag-given-twice": (["--train.lr", "1e-4", "--train.lr", "2e-4"], ["--train.lr: given twice"]),
    "empty-value": (["--rewards", ""], ["--rewards: empty name in ''"]),
    "option-the-judge-does-not-take": (["--judge.options.batch_size", "2"],
                                       ["--judge.options.batch_size: judge.options: the heuristic judge takes no options"]),
    # paths
    "output-dir-is-a-file": (["--output.dir", "{tmp}/file"], ["--output.dir: ", "file is a file, not a folder"]),
    "output-dir-under-a-file": (["--output.dir", "{tmp}/file/runs"], ["--output.dir: ", "file is a file, not a folder"]),
    "run-folder-holds-a-run": (["--output.name", "taken"], ["--output.name: ", "taken already holds a run", "--resume"]),
    "run-folder-holds-other-files": (["--output.name", "notes"], ["--output.name: ", "notes holds other files "
                                                                  "(notes.txt), not a run"]),
    "section-written-as-a-list": (["--config", "{tmp}/list.yaml", "--train.max_steps", "3"],
                                  ["list.yaml: train: expected a mapping, got list (so --train.max_steps"]),
    "config-is-a-folder": (["--config", "{tmp}/loco"], ["--config ", "loco: is a folder; expected a file"]),
    # encoding
    "config-not-utf8": (["--config", "{tmp}/latin1.yaml"], ["latin1.yaml:2: not UTF-8 text"]),
    # nothing to do, or out of range
    "no-steps": (["--train.max_steps", "0"], ["--train.max_steps: expected a number >= 1, got 0"]),
    "negative-steps": (["--train.max_steps", "-1"], ["--train.max_steps: expected a number >= 1, got -1"]),
    "no-epochs": (["--train.epochs", "0"], ["--train.epochs: expected a number >= 1, got 0"]),
    "negative-lr": (["--train.lr", "-1e-4"], ["--train.lr: expected a number > 0, got -0.0001"]),
    "nan-lr": (["--train.lr", ".nan"], ["--train.lr: expected a finite number"]),
    "name-is-a-number": (["--judge.name", "5"], ["--judge.name: expected str, got 5"]),
    # late failures, now caught first
    "broken-policy-template": (["--prompts_dir", "{tmp}/broken-policy"], ["broken-policy/policy_question.j2:2: "]),
    "broken-judge-template-hf": (["--judge.name", "hf", "--judge.options.model", "{tmp}/no-judge",
                                  "--prompts_dir", "{tmp}/broken-judge"], ["broken-judge/judge_system.j2:1: "]),
    "missing-judge-model": (["--judge.name", "hf", "--judge.options.model", "{tmp}/no-judge"],
                            ["--judge.options.model: ", "no-judge: no such folder"]),
    "unloadable-image": (["--data.benchmark", "{tmp}/bench", "--data.loco_root", "{tmp}/loco"],
                         ["loco/cut.png: not a readable image", "truncated"]),
    # the blame goes where the value was typed
    "unknown-reward-in-a-config-term": (["--config", "{tmp}/unknown-term.yaml"],
                                        ["unknown-term.yaml: reward.terms.extra.reward: unknown reward 'nosuch'"]),
    # plugins
    "nan-reward-plugin": (["--rewards", "format,nan_reward"], ["reward plugin 'nan_reward': returned nan"]),
    "bad-estimator-option": (["--advantage.options.epss", "1"],
                             ["--advantage.options.epss: unknown option of the gpg estimator; known: eps, ddof"]),
}
# case id -> (launcher ranks or 0 for plain python, arguments, what the error line must contain)
SUBPROCESS = {
    "unknown-reward": (0, ["--rewards", "format,acuracy"], ["--rewards", "'acuracy'"]),
    "prompts-do-not-divide-over-ranks": (2, ["--rollout.prompts_per_step", "3"],
                                         ["--rollout.prompts_per_step: 3 does not divide over the 2 ranks"]),
}


def check(returncode: int, stdout: str, stderr: str, run_dir: Path, expected: list[str], ranks: int = 1) -> None:
    output = stdout + stderr
    assert returncode == 2, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    # one line (with the launcher, each rank that got that far reports the same line)
    assert errors and len(set(errors)) == 1 and len(errors) <= ranks, errors
    for fragment in expected:
        assert fragment in errors[0], errors[0]
    assert not run_dir.exists(), sorted(run_dir.rglob("*"))


NAN_PLUGIN = """from fadtq.api import RewardFunction, RewardOutput, hookimpl


@hookimpl
def register_rewards():
    return [RewardFunction("nan_reward", lambda rollouts, ctx: RewardOutput([float("nan")] * len(rollouts)))]
"""


def bad_files(tmp: Path) -> None:
    """The files the in-process cases point at."""
    (tmp / "empty-benchmark").mkdir()
    (tmp / "file").write_text("not a folder")
    (tmp / "runs" / "taken").mkdir(parents=True)
    (tmp / "runs" / "taken" / "config.yaml").write_text("a previous run\n")
    (tmp / "runs" / "notes").mkdir(parents=True)
    (tmp / "runs" / "notes" / "notes.txt").write_text("what I plan to run here\n")
    (tmp / "list.yaml").write_text("extends: cpu_default\ntrain: [1, 2]\n")
    (tmp / "latin1.yaml").write_bytes(b"extends: cpu_default\n# caf\xe9\n")
    for name, template in (("broken-policy", "policy_question.j2"), ("broken-judge", "judge_system.j2")):
        (tmp / name).mkdir()
        (tmp / name / template).write_text("Line one {{ category }\n" if name == "broken-judge" else
                                           "Line one\n{{ undefined_name }}\n")
    head16 = tmp / "head16"  # a Qwen2.5-VL config with 16-wide attention heads
    head16.mkdir()
    (head16 / "config.json").write_text('{"model_type": "qwen2_5_vl", "architectures": '
                                        '["Qwen2_5_VLForConditionalGeneration"], "text_config": '
                                        '{"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2}}')
    (tmp / "cut-model").mkdir()
    (tmp / "cut-model" / "config.json").write_text((head16 / "config.json").read_text())
    (tmp / "cut-model" / "model.safetensors").write_bytes(b"\x40\0\0\0\0\0\0\0{\"w\": {")  # a header cut short
    (tmp / "unknown-term.yaml").write_text("extends: cpu_default\nreward:\n  terms:\n    extra: {reward: nosuch}\n")
    (tmp / "loco").mkdir()
    for name, shade in (("ref", 10), ("a", 60), ("b", 120), ("c", 180), ("cut", 240)):
        Image.new("RGB", (32, 32), (shade, shade, shade)).save(tmp / "loco" / f"{name}.png")
    (tmp / "loco" / "cut.png").write_bytes((tmp / "loco" / "cut.png").read_bytes()[:60])  # half the pixel data
    (tmp / "bench").mkdir()
    (tmp / "bench" / "train.jsonl").write_text("".join(
        f'{{"id": "c/good/{name}", "category": "breakfast_box", "label": "good", "test_image": "{name}.png", '
        f'"ref_image": "ref.png", "split": "train"}}\n' for name in ("a", "b", "c", "cut")))
    plugin = tmp / "plugin"
    (plugin / "fadtq_test_nan-0.1.dist-info").mkdir(parents=True)
    (plugin / "fadtq_test_nan.py").write_text(NAN_PLUGIN)
    (plugin / "fadtq_test_nan-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: fadtq-test-nan\n"
                                                                      "Version: 0.1\n")
    (plugin / "fadtq_test_nan-0.1.dist-info" / "entry_points.txt").write_text("[fadtq]\nnan = fadtq_test_nan\n")


@pytest.fixture(scope="module")
def processes(train_env, model_args, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    tmp = tmp_path_factory.mktemp("bad-input")
    procs = {}
    for case, (ranks, args, _) in SUBPROCESS.items():
        args = [*model_args, *args, "--output.dir", str(tmp), "--output.name", case]
        cmd = deepspeed_cmd(ranks, *args) if ranks else python_cmd(*args)
        procs[case] = (cmd, subprocess.Popen(cmd, cwd=REPO, env=train_env, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True))
    done = {}
    for case, (cmd, proc) in procs.items():
        out, err = proc.communicate(timeout=300)
        done[case] = (subprocess.CompletedProcess(cmd, proc.returncode, out, err), tmp / case)
    return done


@pytest.mark.parametrize("case", SUBPROCESS)
def test_bad_input_process_exits_2_with_one_line_naming_the_key(processes, case):
    result, run_dir = processes[case]
    ranks, _, expected = SUBPROCESS[case]
    check(result.returncode, result.stdout, result.stderr, run_dir, expected, ranks=max(1, ranks))


@pytest.fixture
def in_process(monkeypatch, trainer_cache):
    """Single-process rendezvous env and the session cache, restored afterwards; the process
    group a case may have set up before failing is torn down."""
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(cpu_compat.free_port()), "FADTQ_CACHE": str(trainer_cache)}.items():
        monkeypatch.setenv(key, value)
    cpu_compat.apply()
    import deepspeed.comm.comm as ds_comm
    import deepspeed.utils.groups as ds_groups

    monkeypatch.setattr(ds_comm, "cdb", ds_comm.cdb)
    monkeypatch.setattr(ds_groups, "_WORLD_GROUP", None)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.fixture
def no_policy_model(monkeypatch):
    """Building the policy fails the test: each case must stop before a model is loaded."""
    import fadtq.training.strategy as strategy

    def refuse(*args, **kwargs):
        raise AssertionError("the policy model was built")

    monkeypatch.setattr(strategy, "build_actor", refuse)


@pytest.fixture
def plugin_on_path(monkeypatch, tmp_path):
    """The test plugin's entry point, found by a fresh plugin registry (the cached one is
    cleared before and after); no bytecode is written next to it."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path / "plugin"))
    default_plugins.cache_clear()
    yield
    default_plugins.cache_clear()


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", IN_PROCESS)
def test_bad_input_main_returns_2_with_one_line_naming_the_key(in_process, model_args, tmp_path, capsys, case,
                                                               no_policy_model, plugin_on_path):
    from fadtq.commands.train import main

    bad_files(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in IN_PROCESS[case][0]]
    defaults = [] if "--model.path" in args else list(model_args)
    defaults += [] if "--output.dir" in args else ["--output.dir", str(tmp_path / "runs")]
    defaults += [] if "--output.name" in args else ["--output.name", case]
    before = files_under(tmp_path)
    returncode = main([*defaults, *args])
    captured = capsys.readouterr()
    check(returncode, captured.out, captured.err, tmp_path / "runs" / case, IN_PROCESS[case][1])
    assert files_under(tmp_path) == before  # nothing written, not even beside an existing run


def test_a_metric_that_diverged_is_logged_as_null_so_the_log_stays_json(tmp_path):
    from fadtq.files import read_jsonl
    from fadtq.training.step_metrics import MetricsLog

    log = MetricsLog(tmp_path, enabled=True)
    log.write(0, {"loss/policy": float("nan"), "optim/grad_norm": float("inf"), "accuracy": 0.5})
    log.close()
    assert [row for _, row in read_jsonl(tmp_path / "metrics.jsonl")] == [
        {"step": 0, "loss/policy": None, "optim/grad_norm": None, "accuracy": 0.5}]
