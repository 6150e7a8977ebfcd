"""SIGINT stops a run cleanly, even one launched with SIGINT ignored (a background `cmd &` or nohup):
exit status 130, a message naming the last complete checkpoint and how to resume, no torn files."""

from __future__ import annotations

import signal
import subprocess

from trainer_testlib import REPO, complete_checkpoints, kill_group, python_cmd, wait_for


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
