"""``fadtq train`` is the trainer: its arguments reach the trainer's own parser."""

from __future__ import annotations

from trainer_testlib import SIGNAL_REWARD, ok, rows, run

from fadtq.cli import main


def test_fadtq_train_passes_every_argument_to_the_trainer(tmp_path, capsys):
    assert main(["train", "--train.lr", "-1", "--output.dir", str(tmp_path)]) == 2
    assert "error: --train.lr: expected a number > 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_fadtq_train_trains(train_env, model_args, tmp_path):
    import sys
    from pathlib import Path

    fadtq = str(Path(sys.executable).with_name("fadtq"))
    ok(run([fadtq, "train", *model_args, "--rewards", f"format,accuracy,{SIGNAL_REWARD}", "--train.max_steps", "1",
            "--output.dir", str(tmp_path), "--output.name", "run"], train_env))
    assert [row["step"] for row in rows(tmp_path / "run" / "metrics.jsonl")] == [0]
    assert (tmp_path / "run" / "final" / "config.json").is_file()
