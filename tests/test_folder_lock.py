"""One writer per output folder: a second writer gets one line naming the holder; a lock whose
process is gone is taken over; a command that wrote nothing leaves no folder behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from fadtq.errors import FadtqError
from fadtq.folder_lock import LOCK_FILE, folder_lock


def test_a_second_writer_is_one_line_naming_the_holder(tmp_path):
    folder = tmp_path / "runs" / "a"
    with folder_lock(folder, "output.name"):
        holder = json.loads((folder / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(FadtqError) as error:
            with folder_lock(folder, "output.name"):
                pass
        message = str(error.value)
        assert message.startswith(f"output.name {folder}: being written by pid {os.getpid()} on {socket.gethostname()}")
        assert "\n" not in message
        (folder / "metrics.jsonl").write_text("{}\n")
    assert not (folder / LOCK_FILE).exists() and (folder / "metrics.jsonl").is_file()


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path, caplog):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_FILE).write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname(), "command": "x"}))
    with folder_lock(folder, "--resume"):
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert any("no longer running" in r.getMessage() for r in caplog.records)


def test_a_lock_on_another_host_is_never_taken_over(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "train"}))
    with pytest.raises(FadtqError, match="being written by pid 1 on elsewhere"):
        with folder_lock(folder, "--out"):
            pass


def test_a_command_that_wrote_nothing_leaves_no_folder(tmp_path):
    with pytest.raises(RuntimeError):
        with folder_lock(tmp_path / "new" / "deeper", "--out"):
            raise RuntimeError("failed before writing")
    assert not (tmp_path / "new").exists()
