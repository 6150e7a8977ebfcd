import io
import json
from pathlib import Path

import pytest
from PIL import Image

from fadtq.cli import main
from fadtq.data.loco import CATEGORIES, LABEL_FOLDERS
from fadtq.data.pair3c import build_pair3c, format_table1, read_manifest, write_benchmark
from fadtq.data.synth import SPECS
from fadtq.errors import FadtqError

# The paper's Table 1, test split: total, good, structural, logical.
TABLE1_TEST = {
    "breakfast_box": (155, 62, 50, 43),
    "juice_bottle": (210, 54, 54, 102),
    "pushpins": (190, 98, 41, 51),
    "screw_bag": (221, 82, 42, 97),
    "splicing_connectors": (192, 79, 45, 68),
}


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (90, 90, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def _published_tree(root: Path) -> Path:
    """A tree of 1-pixel PNGs with the published per-folder counts (no masks, no defect types)."""
    png = _png_bytes()
    for category in CATEGORIES:
        (root / category).mkdir(parents=True)
        (root / category / "defects_config.json").write_text("[]")
        counts = SPECS[category].paper_counts
        folders = ["train/good", "validation/good", "test/good",
                   f"test/{LABEL_FOLDERS['structural']}", f"test/{LABEL_FOLDERS['logical']}"]
        for folder, count in zip(folders, counts, strict=False):
            target = root / category / folder
            target.mkdir(parents=True)
            for index in range(count):
                (target / f"{index:03d}.png").write_bytes(png)
    return root


def test_published_counts_give_table1(tmp_path, capsys):
    root = _published_tree(tmp_path / "loco")
    assert main(["build-benchmark", "--loco-root", str(root), "--out", str(tmp_path / "bench")]) == 0
    stats = json.loads((tmp_path / "bench" / "stats.json").read_text())
    for category, (total, good, structural, logical) in TABLE1_TEST.items():
        counts = stats["categories"][category]
        assert (counts["test"]["total"], counts["test"]["good"], counts["test"]["structural"],
                counts["test"]["logical"]) == (total, good, structural, logical)
        assert counts["train"] == {"total": 120, "good": 40, "structural": 40, "logical": 40}
    assert stats["total"]["test"] == {"total": 968, "good": 375, "structural": 232, "logical": 361}
    printed = capsys.readouterr().out
    assert "Total                  600    968    200   375    200   232    200   361" in printed
    assert len(read_manifest(tmp_path / "bench" / "test.jsonl")) == 968


def test_guarantees(tiny_tree):
    bench = build_pair3c(tiny_tree, seed=3, train_per_class=6)
    assert len(bench.train) == 5 * 3 * 6 and len(bench.test) == 5 * 3 * 4
    assert not {r["test_image"] for r in bench.train} & {r["test_image"] for r in bench.test}
    for row in bench.train:
        assert "/train/good/" in row["ref_image"] and row["split"] == "train"
    for row in bench.test:
        assert "/validation/good/" in row["ref_image"] and row["split"] == "test"
    for row in bench.train + bench.test:
        assert row["ref_image"].startswith(row["category"] + "/")
        assert (tiny_tree / row["test_image"]).is_file() and (tiny_tree / row["ref_image"]).is_file()
        assert f"/test/{LABEL_FOLDERS[row['label']]}/" in row["test_image"]
        assert ("defect_types" in row) == (row["label"] != "good")


def test_same_seed_same_bytes_other_seed_other_sample(tiny_tree, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        write_benchmark(build_pair3c(tiny_tree, seed=seed, train_per_class=6), tmp_path / name)
    for manifest in ("train.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / manifest).read_bytes() == (tmp_path / "b" / manifest).read_bytes()
    assert (tmp_path / "a" / "train.jsonl").read_bytes() != (tmp_path / "c" / "train.jsonl").read_bytes()


def test_too_few_images_writes_nothing(tiny_tree, tmp_path):
    out = tmp_path / "bench"
    code = main(["build-benchmark", "--loco-root", str(tiny_tree), "--out", str(out), "--train-per-class", "11"])
    assert code == 2 and not out.exists()
    with pytest.raises(FadtqError, match=r"test/good: 10 images, fewer than --train-per-class 11"):
        build_pair3c(tiny_tree, train_per_class=11)


def test_unreadable_image_fails_the_build(tiny_tree, tmp_path):
    (tiny_tree / "pushpins" / "test" / "logical_anomalies" / "004.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(FadtqError, match="logical_anomalies/004.png: not a readable image"):
        build_pair3c(tiny_tree, train_per_class=6)


def test_rewrite_into_existing_folder(tiny_tree, tmp_path):
    out = tmp_path / "bench"
    write_benchmark(build_pair3c(tiny_tree, seed=0, train_per_class=6), out)
    write_benchmark(build_pair3c(tiny_tree, seed=0, train_per_class=2), out)
    assert len(read_manifest(out / "train.jsonl")) == 5 * 3 * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", "loco"]


def test_categories_subset_and_table(tiny_tree):
    bench = build_pair3c(tiny_tree, train_per_class=6, categories=["pushpins", "screw_bag"])
    assert {row["category"] for row in bench.test} == {"pushpins", "screw_bag"}
    lines = format_table1(bench.stats).splitlines()
    assert lines[3].split() == ["Pushpins"] + ["18", "12", "6", "4", "6", "4", "6", "4"]
    assert lines[-1].split() == ["Total", "36", "24", "12", "8", "12", "8", "12", "8"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"label": "broken"}, r"test.jsonl:2: field 'label': expected one of good, structural, logical"),
        ({"split": "dev"}, r"test.jsonl:2: field 'split'"),
        ({"ref_image": 3}, r"test.jsonl:2: field 'ref_image': expected a non-empty string"),
        ({"defect_types": "x"}, r"test.jsonl:2: field 'defect_types'"),
        ({"id": "ID0"}, r"test.jsonl:2: field 'id': 'ID0' already used on line 1"),
        ({"test_image": "/etc/passwd"}, r"test.jsonl:2: field 'test_image': '/etc/passwd': expected a path inside the "
                                        r"image folder \(relative, without '\.\.'\)"),
        ({"ref_image": "../../secret.png"}, r"test.jsonl:2: field 'ref_image': '\.\./\.\./secret.png': expected a "
                                            r"path inside the image folder"),
    ],
)
def test_read_manifest_names_file_line_and_field(tmp_path, change, message):
    row = {"id": "ID0", "category": "pushpins", "label": "good", "test_image": "a.png", "ref_image": "b.png",
           "split": "test"}
    second = {**row, "id": "ID1", **change}
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(second) + "\n")
    with pytest.raises(FadtqError, match=message):
        read_manifest(path)


def test_read_manifest_missing_field_and_missing_image(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"id": "x"}\n')
    with pytest.raises(FadtqError, match=r"train.jsonl:1: field 'category' missing"):
        read_manifest(path)
    path.write_text(json.dumps({"id": "x", "category": "c", "label": "good", "test_image": "t.png",
                                "ref_image": "r.png", "split": "train"}) + "\n")
    with pytest.raises(FadtqError, match=r"train.jsonl:1: field 'test_image': .*t.png: not found"):
        read_manifest(path, loco_root=tmp_path)


def test_a_manifest_image_linked_outside_the_image_folder_is_refused(tmp_path):
    root, outside = tmp_path / "images", tmp_path / "elsewhere.png"
    root.mkdir()
    outside.write_bytes(b"not read")
    (root / "t.png").symlink_to(outside)
    (root / "r.png").write_bytes(b"")
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"id": "x", "category": "c", "label": "good", "test_image": "t.png",
                                "ref_image": "r.png", "split": "train"}) + "\n")
    with pytest.raises(FadtqError, match=r"train.jsonl:1: field 'test_image': .*t.png leads outside .*images \(a link\)"):
        read_manifest(path, loco_root=root)
