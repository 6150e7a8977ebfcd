"""SIGINT stops a run cleanly, even one launched with SIGINT ignored (a background `cmd &` or nohup):
exit status 130, a message naming the last complete checkpoint and how to resume, no torn files."""

from __future__ import annotations

import signal
import subprocess

from trainer_testlib import REPO, complete_checkpoints, kill_group, popen, python_cmd, rows, run, wait_for


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a non-interactive shell does for `cmd &`


def test_sigint_stops_a_run_started_with_sigint_ignored(train_env, model_args, tmp_path):
    cmd = python_cmd("--train.max_steps", "200", "--output.save_every", "1", *model_args,
                     "--output.dir", str(tmp_path), "--output.name", "run")
    proc = subprocess.Popen(cmd, cwd=REPO, env=train_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_ignore_sigint)
    try:
        wait_for(lambda: complete_checkpoints(tmp_path / "run"), timeout=240, proc=proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        kill_group(proc)
    assert proc.returncode == 130, stderr[-3000:]
    last = complete_checkpoints(tmp_path / "run")[-1]
    assert f"interrupted; last complete checkpoint: {last}" in stderr
    assert f"--resume {tmp_path / 'run'}" in stderr
    assert not list((tmp_path / "run" / "checkpoints").glob("*.tmp"))


def test_a_second_run_into_a_running_run_s_folder_is_refused_and_the_first_is_unharmed(train_env, model_args, tmp_path):
    args = (*model_args, "--train.max_steps", "3", "--output.dir", tmp_path, "--output.name", "run")
    first = popen(python_cmd(*args), train_env, tmp_path / "first.log")
    try:
        wait_for(lambda: (tmp_path / "run" / ".lock").is_file(), timeout=120, proc=first)
        second = run(python_cmd(*args), train_env, timeout=120)
        assert first.wait(timeout=240) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        kill_group(first)
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1, second.stderr[-3000:]
    assert f"output.name {tmp_path / 'run'}: being written by pid {first.pid}" in lines[0]
    assert [r["step"] for r in rows(tmp_path / "run" / "metrics.jsonl")] == [0, 1, 2]
    assert not (tmp_path / "run" / ".lock").exists()
