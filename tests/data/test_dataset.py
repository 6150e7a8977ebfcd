import json

import pytest

from fadtq.cli import main
from fadtq.data.dataset import PairDataset, ensure_default_benchmark
from fadtq.data.pair3c import build_pair3c, write_benchmark
from fadtq.errors import FadtqError


@pytest.fixture
def bench(tiny_tree, tmp_path):
    return write_benchmark(build_pair3c(tiny_tree, seed=0, train_per_class=6), tmp_path / "bench")


def test_pairs_images_prompt_and_cache(bench, tiny_tree):
    data = PairDataset(bench / "train.jsonl", max_side=20)
    assert data.loco_root == tiny_tree.resolve() and len(data) == 90
    pair = data[0]
    assert pair.label in ("good", "structural", "logical")
    for image in (pair.ref_image, pair.test_image):
        assert image.mode == "RGB" and max(image.size) == 20
    assert "breakfast box" in pair.prompt and "<answer>" in pair.prompt
    images = [part for part in pair.messages[0]["content"] if part["type"] == "image"]
    assert len(images) == 2 and pair.messages[0]["content"][-1]["text"] == pair.prompt
    assert data[0].test_image is pair.test_image
    assert sum(1 for p in data if p.defect_types) == 60


def test_missing_image_is_reported_with_line(bench, tiny_tree):
    row = json.loads((bench / "test.jsonl").read_text().splitlines()[2])
    (tiny_tree / row["test_image"]).unlink()
    with pytest.raises(FadtqError, match=r"test.jsonl:3: field 'test_image'"):
        PairDataset(bench / "test.jsonl", tiny_tree)


def test_default_benchmark_is_generated_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FADTQ_CACHE", str(tmp_path / "cache"))
    first = ensure_default_benchmark()
    stamp = (first / "train.jsonl").stat().st_mtime_ns
    assert ensure_default_benchmark() == first and (first / "train.jsonl").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["synth-tiny-seed0", "synth-tiny-seed0-pair3c"]
    data = PairDataset(first / "test.jsonl")
    assert len(data) == 60 and data[0].test_image.mode == "RGB"


def test_default_benchmark_at_another_image_size_has_its_own_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("FADTQ_CACHE", str(tmp_path / "cache"))
    bench = ensure_default_benchmark(size=48)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["synth-tiny-seed0-48px",
                                                                      "synth-tiny-seed0-48px-pair3c"]
    assert max(PairDataset(bench / "train.jsonl", max_side=None)[0].test_image.size) == 48


def test_a_redrawn_difficulty_gets_new_cache_folders(monkeypatch):
    """A cache made before a difficulty's drawings changed must not be served as the new look-alike."""
    from dataclasses import replace

    from fadtq.data import synth
    from fadtq.data.dataset import _tree_name

    before = _tree_name("cpu", 0, "easy", None)
    monkeypatch.setitem(synth.DIFFICULTIES, "easy", replace(synth.DIFFICULTIES["easy"],
                                                            revision=synth.DIFFICULTIES["easy"].revision + 1))
    assert _tree_name("cpu", 0, "easy", None) != before
    assert _tree_name("cpu", 0, "standard", None) == "synth-cpu-seed0"


def test_build_benchmark_without_root_uses_default_tree(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FADTQ_CACHE", str(tmp_path / "cache"))
    assert main(["build-benchmark", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "look-alike tree" in out and "Total" in out
    assert len((tmp_path / "b" / "train.jsonl").read_text().splitlines()) == 90
