"""``fadtq synth``: a procedural look-alike of MVTec LOCO AD, written in its exact layout.

Every image has its own generator seeded from ``(seed, category, folder, index)``, so images can
be rendered in any order or process and the tree is byte-identical for a given seed and size.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from fadtq.data import synth_scenes
from fadtq.data.loco import CATEGORIES, LABEL_FOLDERS
from fadtq.data.synth_damage import OPS, VIVID
from fadtq.data.synth_draw import Canvas, apply_lighting
from fadtq.errors import FadtqError

SCALES = ("tiny", "cpu", "paper")
DEFAULT_SIZE = 128
# (split, class folder, label): the five image folders of a category, in seed order.
FOLDERS = (
    ("train", "good", "good"),
    ("validation", "good", "good"),
    ("test", "good", "good"),
    ("test", LABEL_FOLDERS["structural"], "structural"),
    ("test", LABEL_FOLDERS["logical"], "logical"),
)
ANY = "*"


@dataclass(frozen=True)
class CategorySpec:
    name: str
    published_size: tuple[int, int]
    background: tuple[int, int, int]
    scene: Callable
    logical: tuple[str, ...]
    # structural defect -> (damage op, anchor group), or None where the scene draws it itself
    structural: dict[str, tuple[str, str] | None]
    paper_counts: tuple[int, int, int, int, int]  # train, validation, test good / structural / logical

    def defect_names(self) -> list[str]:
        return [*self.logical, *self.structural]

    def pixel_values(self) -> dict[str, int]:
        return {name: 255 - i for i, name in enumerate(self.defect_names())}


SPECS = {
    spec.name: spec
    for spec in (
        CategorySpec(
            "breakfast_box", (1600, 1280), (58, 58, 60), synth_scenes.breakfast_box,
            ("missing_toppings", "missing_cereals", "compartments_swapped", "wrong_fruit_count", "wrong_ratio",
             "overflow", "underflow"),
            {"box_damaged": ("erase", "box_edge"), "fruit_damaged": ("bruise", "fruit"),
             "mixed_cereals": ("cut_paste", "cereal"), "toppings_crushed": ("crush", "toppings"),
             "contamination": ("contamination", ANY)},
            (351, 62, 102, 90, 83),
        ),
        CategorySpec(
            "juice_bottle", (800, 1600), (12, 12, 14), synth_scenes.juice_bottle,
            ("missing_center_label", "missing_bottom_label", "swapped_labels", "misplaced_label", "empty_bottle",
             "wrong_fill_level", "missing_fruit_icon", "icon_mismatch"),
            {"damaged_label": ("scratch", "label"), "incomplete_text": None, "unknown_icon": None,
             "juice_color": ("recolour", "liquid"), "contamination": ("contamination", ANY)},
            (335, 54, 94, 94, 142),
        ),
        CategorySpec(
            "pushpins", (1700, 1000), (28, 28, 32), synth_scenes.pushpins,
            ("additional_pushpin", "missing_pushpin", "missing_separator"),
            {"front_bent": None, "broken": ("erase", "pin"), "color": ("recolour", "pin"),
             "contamination": ("contamination", ANY)},
            (372, 69, 138, 81, 91),
        ),
        CategorySpec(
            "screw_bag", (1600, 1100), (196, 196, 190), synth_scenes.screw_bag,
            ("screw_too_long", "screw_too_short", "additional_part", "missing_part"),
            {"bag_broken": ("scratch", "bag_edge"), "part_broken": ("erase", "part"), "color": ("recolour", "part"),
             "contamination": ("contamination", ANY)},
            (360, 60, 122, 82, 137),
        ),
        CategorySpec(
            "splicing_connectors", (1700, 850), (176, 170, 160), synth_scenes.splicing_connectors,
            ("wrong_connector_type", "cable_too_short", "missing_connector", "missing_cable", "extra_cable",
             "wrong_cable_color", "wrong_location"),
            {"open_lever": None, "broken_cable": ("erase", "cable"), "color": ("recolour", "connector"),
             "contamination": ("contamination", ANY)},
            (360, 60, 119, 85, 108),
        ),
    )
}
TINY_COUNTS = (8, 4, 10, 10, 10)
# The CPU default: 140 test images per class, so 120 per class train (1,800 pairs) and 20 per class
# (300 pairs) test. The generator is unlimited: more training pairs than the real dataset's 40 per
# class keep a small policy from learning the training pairs by heart.
CPU_COUNTS = (40, 10, 140, 140, 140)


@dataclass(frozen=True)
class Difficulty:
    """How hard the look-alike is to see. ``standard`` mirrors the real dataset's variety. ``easy``
    keeps the three classes and their meaning but draws fewer, larger cues, for policies small
    enough to train on a CPU: only the anomalies an object-level look can tell (parts missing or
    extra, a bottle empty, local damage), damage drawn ``damage_scale`` times larger, and less
    clutter (``sparse`` scenes: fewer cereal specks, six large pushpins instead of fifteen, the
    screw bag's washers and nuts 1.5 times larger and darker), and a wrong colour drawn as a vivid
    tint in a hue no juice has, which shows on grey parts too, a tear a few pixels wide and a
    contaminant in the colour that stands out on what it covers (``vivid_damage``). Damage that would
    erase a whole small part (a broken pin or screw-bag part, at that scale) is left out: it would
    look exactly like the logical "missing part"."""

    name: str
    logical: dict[str, tuple[str, ...]] | None  # per category, the logical defects drawn; None: all
    structural: dict[str, tuple[str, ...]] | None  # likewise for structural defects
    damage_scale: float = 1.0
    sparse: bool = False
    vivid_damage: bool = False  # damage drawn to be seen at 112 px (synth_damage.VIVID)
    revision: int = 1  # raised whenever its drawings change, so that no cache serves stale images

    @property
    def revision_tag(self) -> str:
        """``-r3`` for revision 3, nothing for the first: the suffix of every folder made from it."""
        return "" if self.revision == 1 else f"-r{self.revision}"

    def kinds(self, category: str, label: str) -> tuple[str, ...]:
        spec = SPECS[category]
        if label == "logical":
            return self.logical[category] if self.logical else spec.logical
        if label == "structural":
            return self.structural[category] if self.structural else tuple(spec.structural)
        return ()


DIFFICULTIES = {
    "standard": Difficulty("standard", None, None),
    "easy": Difficulty(
        "easy",
        logical={
            "breakfast_box": ("missing_toppings", "missing_cereals", "wrong_fruit_count"),
            "juice_bottle": ("missing_center_label", "missing_bottom_label", "empty_bottle"),
            "pushpins": ("additional_pushpin", "missing_pushpin"),
            "screw_bag": ("additional_part", "missing_part"),
            "splicing_connectors": ("missing_connector", "missing_cable", "extra_cable"),
        },
        structural={
            "breakfast_box": ("fruit_damaged", "contamination"),
            "juice_bottle": ("damaged_label", "juice_color", "contamination"),
            "pushpins": ("color", "contamination"),
            "screw_bag": ("color", "contamination"),
            "splicing_connectors": ("broken_cable", "color", "contamination"),
        },
        damage_scale=2.2,
        sparse=True,
        vivid_damage=True,
        revision=5,  # 2: larger, darker screw-bag parts; 3: vivid wrong colours; 4: no yellow tint;
                     # 5: bold tears, contaminants that stand out
    ),
}


def difficulty_named(name: str) -> Difficulty:
    if name not in DIFFICULTIES:
        raise FadtqError(f"--difficulty {name}: expected one of {', '.join(DIFFICULTIES)}")
    return DIFFICULTIES[name]


def folder_counts(category: str, scale: str) -> tuple[int, ...]:
    if scale not in SCALES:
        raise FadtqError(f"--scale {scale}: expected one of {', '.join(SCALES)}")
    return {"paper": SPECS[category].paper_counts, "cpu": CPU_COUNTS}.get(scale, TINY_COUNTS)


def output_size(category: str, size: int) -> tuple[int, int]:
    """(width, height) with ``size`` on the long side and the published aspect ratio."""
    w, h = SPECS[category].published_size
    return (size, max(1, round(size * h / w))) if w >= h else (max(1, round(size * w / h)), size)


def image_rng(seed: int, category: str, folder: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, CATEGORIES.index(category), folder, index])


class Scene(NamedTuple):
    """One rendered image (H x W x 3 uint8), its ``(defect name, boolean mask)`` list (empty when
    good) and the scene's facts (``Canvas.facts``: counts and presence of parts)."""

    image: np.ndarray
    defects: list[tuple[str, np.ndarray]]
    facts: dict[str, object]


def render(category: str, label: str, rng: np.random.Generator, size: int,
           difficulty: Difficulty = DIFFICULTIES["standard"]) -> Scene:
    spec = SPECS[category]
    width, height = output_size(category, size)
    canvas = Canvas(width, height, spec.background)
    kinds = difficulty.kinds(category, label)
    defect = kinds[int(rng.integers(len(kinds)))] if kinds else None
    op = spec.structural.get(defect) if label == "structural" else None
    anchors = spec.scene(rng, canvas, None if op else defect, difficulty.sparse)
    image, masks = canvas.finish()
    if op:
        places = [a for group, items in anchors.items() if op[1] in (ANY, group) for a in items]
        x, y, r = places[int(rng.integers(len(places)))]
        r *= difficulty.damage_scale
        damage = VIVID.get(op[0], op[0]) if difficulty.vivid_damage else op[0]
        masks = {defect: OPS[damage](rng, image, x * height, y * height, r * height)}
    image = apply_lighting(rng, image)
    if defect is None:
        return Scene(image, [], canvas.facts)
    mask = masks.get(defect, np.zeros(image.shape[:2], dtype=bool))
    if not mask.any():  # a region too small for a tiny --size still gets one pixel
        x, y, _ = next(a for items in anchors.values() for a in items)
        mask[min(height - 1, int(y * height)), min(width - 1, int(x * height))] = True
    return Scene(image, [(defect, mask)], canvas.facts)


def _job(root: Path, seed: int, size: int, difficulty: Difficulty, job: tuple[str, int, int]) -> None:
    category, folder, index = job
    split, class_folder, label = FOLDERS[folder]
    image, masks, _ = render(category, label, image_rng(seed, category, folder, index), size, difficulty)
    name = f"{index:03d}"
    Image.fromarray(image, "RGB").save(root / category / split / class_folder / f"{name}.png")
    values = SPECS[category].pixel_values()
    for number, (defect, mask) in enumerate(masks):
        mask_dir = root / category / "ground_truth" / class_folder / name
        mask_dir.mkdir(parents=True, exist_ok=True)
        grey = (mask.astype(np.uint8) * values[defect])
        Image.fromarray(grey, "L").save(mask_dir / f"{number:03d}.png")


def _write_category_files(root: Path, category: str, scale: str, difficulty: Difficulty) -> None:
    spec = SPECS[category]
    for split, class_folder, _ in FOLDERS:
        (root / category / split / class_folder).mkdir(parents=True, exist_ok=True)
    config = [
        {"defect_name": name, "pixel_value": value, "saturation_threshold": 1.0, "relative_saturation": True,
         "kind": "logical" if name in spec.logical else "structural"}
        for name, value in spec.pixel_values().items()
    ]
    (root / category / "defects_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (root / category / "readme.txt").write_text(
        f"Procedural look-alike of MVTec LOCO AD '{category}' ({scale} scale, {difficulty.name} difficulty), "
        "generated by `fadtq synth`.\n"
        "No image of the real dataset was used.\n",
        encoding="utf-8",
    )


def jobs(scale: str, categories: tuple[str, ...] = CATEGORIES) -> list[tuple[str, int, int]]:
    return [
        (category, folder, index)
        for category in categories
        for folder, count in enumerate(folder_counts(category, scale))
        for index in range(count)
    ]


def _run_jobs(root: Path, seed: int, size: int, difficulty: Difficulty, todo: list, workers: int) -> Iterator[None]:
    work = functools.partial(_job, root, seed, size, difficulty)
    if workers <= 1:
        yield from map(work, todo)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap_unordered(work, todo, chunksize=16)


def synthesize(out: str | Path, seed: int = 0, scale: str = "tiny", size: int = DEFAULT_SIZE, *,
               difficulty: str = "standard", workers: int = 2, progress: bool = False) -> Path:
    """Write the look-alike tree to ``out``; it appears whole (built in a sibling temp dir, then renamed)."""
    out = Path(out)
    level = difficulty_named(difficulty)
    if size < 16:
        raise FadtqError(f"--size {size}: expected at least 16 pixels")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FadtqError(f"--out {out}: already exists and is not empty; choose a new folder")
    todo = jobs(scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for category in CATEGORIES:
            _write_category_files(staging, category, scale, level)
        results = _run_jobs(staging, seed, size, level, todo, workers)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(todo), desc="synth", unit="img")
        for _ in results:
            pass
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
