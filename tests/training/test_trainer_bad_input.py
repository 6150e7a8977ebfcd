"""Bad input fails before training: exit code 2, one ``error:`` line naming the key or flag, no
traceback, and nothing trained (no checkpoints, no metrics).

Two cases run as real processes (``python fadtq/train.py``, and the ``deepspeed`` launcher with 2
ranks for a step that does not divide over them), concurrently; the others call the entry
point's ``main`` in process, which is what the script runs, to keep the wall time down.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch.distributed as dist
from trainer_testlib import REPO, deepspeed_cmd, python_cmd

from fadtq.training import cpu_compat

# case id -> (arguments, what the error line must contain)
IN_PROCESS = {
    "unknown-estimator": (["--advantage.name", "ppo"], ["--advantage", "'ppo'"]),
    "missing-model-path": (["--model.path", "{tmp}/no-such-model"], ["model.path", "no-such-model"]),
    "micro-batch-does-not-divide": (["--train.micro_batch_size", "5"], ["train.micro_batch_size", "(5)"]),
    "benchmark-without-train-jsonl": (["--data.benchmark", "{tmp}/empty-benchmark"],
                                      ["data.benchmark", "empty-benchmark", "train.jsonl"]),
    "unknown-config-key": (["--train.lrr", "1"], ["train.lrr", "unknown key"]),
}
# case id -> (launcher ranks or 0 for plain python, arguments, what the error line must contain)
SUBPROCESS = {
    "unknown-reward": (0, ["--rewards", "format,acuracy"], ["--rewards", "'acuracy'"]),
    "prompts-do-not-divide-over-ranks": (2, ["--rollout.prompts_per_step", "3"],
                                         ["rollout.prompts_per_step", "(3)", "2 ranks"]),
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
    assert not (run_dir / "checkpoints").exists()
    assert not (run_dir / "metrics.jsonl").exists()


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


@pytest.mark.parametrize("case", IN_PROCESS)
def test_bad_input_main_returns_2_with_one_line_naming_the_key(in_process, model_args, tmp_path, capsys, case):
    from fadtq.training.trainer import main

    args, expected = IN_PROCESS[case]
    (tmp_path / "empty-benchmark").mkdir()
    defaults = [] if "--model.path" in args else list(model_args)
    argv = [*defaults, *(a.replace("{tmp}", str(tmp_path)) for a in args),
            "--output.dir", str(tmp_path / "runs"), "--output.name", case]
    returncode = main(argv)
    captured = capsys.readouterr()
    check(returncode, captured.out, captured.err, tmp_path / "runs" / case, expected)
