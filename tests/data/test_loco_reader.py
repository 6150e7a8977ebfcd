import json
import shutil

import numpy as np
import pytest
from PIL import Image

from fadtq.data.loco import CATEGORIES, check_image, load_rgb, read_category, read_loco
from fadtq.data.synth import TINY_COUNTS
from fadtq.errors import FadtqError


def test_reads_every_folder_and_recovers_defect_types(tiny_tree):
    data = read_loco(tiny_tree)
    assert list(data) == list(CATEGORIES)
    for name, category in data.items():
        config = json.loads((tiny_tree / name / "defects_config.json").read_text())
        names = {entry["defect_name"] for entry in config}
        counts = (len(category.train_good), len(category.validation_good),
                  *(len(category.test[label]) for label in ("good", "structural", "logical")))
        assert counts == TINY_COUNTS
        assert all(not image.defect_types for image in category.test["good"])
        for label in ("structural", "logical"):
            for image in category.test[label]:
                assert image.defect_types and set(image.defect_types) <= names
                assert image.path.startswith(f"{name}/test/{label}_anomalies/")


def test_several_masks_give_several_defect_types(tiny_tree):
    config = json.loads((tiny_tree / "pushpins" / "defects_config.json").read_text())
    mask_dir = tiny_tree / "pushpins" / "ground_truth" / "structural_anomalies" / "000"
    first = read_category(tiny_tree, "pushpins").test["structural"][0].defect_types
    other = next(e for e in config if e["defect_name"] not in first)
    shape = np.asarray(Image.open(mask_dir / "000.png")).shape
    extra = np.zeros(shape, np.uint8)
    extra[0, 0] = other["pixel_value"]
    Image.fromarray(extra).save(mask_dir / "001.png")
    types = read_category(tiny_tree, "pushpins").test["structural"][0].defect_types
    assert set(types) == set(first) | {other["defect_name"]}


def test_missing_root(tmp_path):
    with pytest.raises(FadtqError, match="nowhere.*directory not found"):
        read_loco(tmp_path / "nowhere")


def test_missing_category(tiny_tree):
    shutil.rmtree(tiny_tree / "pushpins")
    with pytest.raises(FadtqError, match="pushpins: category folder not found"):
        read_loco(tiny_tree)


def test_missing_split_folder(tiny_tree):
    shutil.rmtree(tiny_tree / "screw_bag" / "validation")
    with pytest.raises(FadtqError, match="screw_bag/validation/good: folder not found"):
        read_loco(tiny_tree)


def test_empty_class_folder(tiny_tree):
    for image in (tiny_tree / "juice_bottle" / "test" / "good").glob("*.png"):
        image.unlink()
    with pytest.raises(FadtqError, match="juice_bottle/test/good: no .png images"):
        read_loco(tiny_tree)


def test_unreadable_image(tiny_tree):
    bad = tiny_tree / "breakfast_box" / "test" / "good" / "000.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(FadtqError, match="000.png: not a readable image"):
        check_image(bad)
    with pytest.raises(FadtqError, match="not a readable image"):
        load_rgb(bad)


def test_mask_folder_without_image(tiny_tree):
    orphan = tiny_tree / "breakfast_box" / "ground_truth" / "logical_anomalies" / "999"
    shutil.copytree(orphan.parent / "000", orphan)
    with pytest.raises(FadtqError, match="999: mask folder without its image"):
        read_loco(tiny_tree)


def test_image_without_mask_folder(tiny_tree):
    shutil.rmtree(tiny_tree / "splicing_connectors" / "ground_truth" / "structural_anomalies" / "003")
    with pytest.raises(FadtqError, match="structural_anomalies/003.png: anomalous image without its mask folder"):
        read_loco(tiny_tree)


def test_mask_value_not_in_config(tiny_tree):
    mask = tiny_tree / "screw_bag" / "ground_truth" / "logical_anomalies" / "001" / "000.png"
    array = np.asarray(Image.open(mask)).copy()
    array[0, 0] = 7
    Image.fromarray(array).save(mask)
    with pytest.raises(FadtqError, match="grey value 7 is not listed"):
        read_loco(tiny_tree)


def test_bad_defects_config(tiny_tree):
    (tiny_tree / "pushpins" / "defects_config.json").write_text('[{"defect_name": "x"}]')
    with pytest.raises(FadtqError, match="defects_config.json: entry 0"):
        read_loco(tiny_tree)


@pytest.mark.parametrize(
    "mode, value, expected",
    [("L", 100, (100, 100, 100)), ("RGBA", (10, 20, 30, 0), (10, 20, 30)), ("I;16", 65535, (255, 255, 255)),
     ("I;16", 257 * 128, (128, 128, 128)), ("P", 3, None)],
)
def test_load_rgb_converts_modes(tmp_path, mode, value, expected):
    path = tmp_path / "image.png"
    Image.new(mode, (4, 3), value).save(path)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (4, 3)
    if expected is not None:
        assert image.getpixel((1, 1)) == expected
