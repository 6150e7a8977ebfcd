"""MVTec-LOCO-AD-Pair3C: the paper's reference/test pair benchmark built on MVTec LOCO AD.

Protocol (the paper, section 2.2): for each category and class (good / structural / logical) sample
``train_per_class`` test images for training; the rest form the test set. Training pairs take a
reference from ``train/good``, test pairs from ``validation/good``.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fadtq.data.loco import LABELS, LocoCategory, LocoImage, check_image, read_loco
from fadtq.errors import FadtqError
from fadtq.files import atomic_write_json, atomic_write_jsonl, file_problem, read_jsonl

DEFAULT_TRAIN_PER_CLASS = 40
SPLITS = ("train", "test")
MANIFEST_FILES = ("train.jsonl", "test.jsonl", "stats.json")
REQUIRED_FIELDS = {"id": str, "category": str, "label": str, "test_image": str, "ref_image": str, "split": str}


@dataclass
class Benchmark:
    train: list[dict]
    test: list[dict]
    stats: dict


def _rng(seed: int, *parts: str) -> random.Random:
    """A generator per (seed, parts): string seeds hash with SHA-512, stable across runs and Python hash seeds."""
    return random.Random(":".join([str(seed), *parts]))


def _row(image: LocoImage, category: str, split: str, ref: str) -> dict:
    row = {
        "id": f"{category}/{image.label}/{Path(image.path).stem}",
        "category": category,
        "label": image.label,
        "test_image": image.path,
        "ref_image": ref,
        "split": split,
    }
    if image.defect_types:
        row["defect_types"] = list(image.defect_types)
    return row


def split_category(
    data: LocoCategory, seed: int, train_per_class: int, loco_root: Path
) -> tuple[list[dict], list[dict]]:
    """Stratified split of one category's test images into training and test pairs."""
    train: list[dict] = []
    test: list[dict] = []
    ref_rng = _rng(seed, data.name, "references")
    for label in LABELS:
        images = data.test[label]
        if len(images) < train_per_class:
            folder = loco_root / Path(images[0].path).parent
            raise FadtqError(
                f"{folder}: {len(images)} images, fewer than --train-per-class {train_per_class} needs"
            )
        chosen = set(_rng(seed, data.name, label).sample(range(len(images)), train_per_class))
        for index, image in enumerate(images):
            if index in chosen:
                train.append(_row(image, data.name, "train", ref_rng.choice(data.train_good)))
            else:
                test.append(_row(image, data.name, "test", ref_rng.choice(data.validation_good)))
    return train, test


def check_guarantees(train: list[dict], test: list[dict], data: dict[str, LocoCategory]) -> None:
    """The protocol's promises; a violation is a bug in this module, reported loudly."""
    train_images = {row["test_image"] for row in train}
    overlap = train_images & {row["test_image"] for row in test}
    if overlap:
        raise FadtqError(f"internal: train and test share images, e.g. {sorted(overlap)[0]}")
    ids = [row["id"] for row in train + test]
    if len(ids) != len(set(ids)):
        raise FadtqError("internal: duplicate pair ids")
    for rows, pool in ((train, "train_good"), (test, "validation_good")):
        for row in rows:
            if row["ref_image"] not in getattr(data[row["category"]], pool):
                raise FadtqError(f"internal: pair {row['id']} reference {row['ref_image']} is not from {pool}")


def count_table(rows: list[dict], categories: list[str]) -> dict[str, dict[str, int]]:
    table = {name: {"total": 0, **{label: 0 for label in LABELS}} for name in categories}
    for row in rows:
        table[row["category"]][row["label"]] += 1
        table[row["category"]]["total"] += 1
    return table


def make_stats(train: list[dict], test: list[dict], categories: list[str], seed: int, train_per_class: int) -> dict:
    per_split = {"train": count_table(train, categories), "test": count_table(test, categories)}
    stats: dict = {"seed": seed, "train_per_class": train_per_class, "categories": {}}
    for name in categories:
        stats["categories"][name] = {split: per_split[split][name] for split in SPLITS}
    stats["total"] = {
        split: {key: sum(per_split[split][name][key] for name in categories) for key in ("total", *LABELS)}
        for split in SPLITS
    }
    return stats


def build_pair3c(
    loco_root: str | Path,
    *,
    seed: int = 0,
    train_per_class: int = DEFAULT_TRAIN_PER_CLASS,
    categories: list[str] | None = None,
    check: bool = True,
) -> Benchmark:
    """Build the benchmark in memory; nothing touches the disk. ``check``: decode every image the
    manifests name first (``False`` only for a tree the generator has just written whole)."""
    if train_per_class < 0:
        raise FadtqError(f"--train-per-class {train_per_class}: expected a number >= 0")
    loco_root = Path(loco_root)
    data = read_loco(loco_root, categories)
    train: list[dict] = []
    test: list[dict] = []
    for category in data.values():
        category_train, category_test = split_category(category, seed, train_per_class, loco_root)
        train += category_train
        test += category_test
    check_guarantees(train, test, data)
    for split, rows in (("training", train), ("test", test)):
        if not rows:
            raise FadtqError(f"--train-per-class {train_per_class}: leaves no {split} pairs; expected a number "
                             "between 1 and the images per class minus 1")
    if check:
        check_images(loco_root, sorted({row[key] for row in train + test for key in ("test_image", "ref_image")}))
    stats = make_stats(train, test, list(data), seed, train_per_class)
    stats["loco_root"] = str(loco_root.resolve())
    return Benchmark(train, test, stats)


def check_images(loco_root: Path, relatives: list[str]) -> None:
    """Decode every image the manifests name (a bar shows when it takes more than 2 s)."""
    from tqdm import tqdm

    for relative in tqdm(relatives, desc="checking images", unit="img", delay=2, dynamic_ncols=True):
        check_image(loco_root / relative)


def write_benchmark(benchmark: Benchmark, out: str | Path) -> Path:
    """Write ``train.jsonl``, ``test.jsonl`` and ``stats.json``.

    A new ``out`` appears whole (written in a sibling temporary folder, then renamed); in an
    existing folder each file is replaced atomically, ``stats.json`` last.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FadtqError(f"--out {out}: exists and is not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        atomic_write_jsonl(staging / "train.jsonl", benchmark.train)
        atomic_write_jsonl(staging / "test.jsonl", benchmark.test)
        atomic_write_json(staging / "stats.json", benchmark.stats)
        if out.exists():
            for name in MANIFEST_FILES:
                os.replace(staging / name, out / name)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def format_table1(stats: dict) -> str:
    """The paper's Table 1 as an aligned text table (train/test for total, good, SA, LA)."""
    groups = (("Total", "total"), ("Good", "good"), ("SA", "structural"), ("LA", "logical"))
    rows = [[name.replace("_", " ").title()] + _cells(counts, groups) for name, counts in stats["categories"].items()]
    rows.append(["Total"] + _cells(stats["total"], groups))
    header1 = ["Category"] + [name for name, _ in groups for _ in SPLITS]
    header2 = [""] + [split.title() for _ in groups for split in SPLITS]
    table = [header1, header2] + rows
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header1))]
    lines = []
    for number, line in enumerate(table):
        cells = [str(cell).ljust(widths[0]) if i == 0 else str(cell).rjust(widths[i]) for i, cell in enumerate(line)]
        lines.append("  ".join(cells).rstrip())
        if number == 1:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def _cells(counts: dict, groups: tuple) -> list[int]:
    return [counts[split][key] for _, key in groups for split in SPLITS]


def read_manifest(path: str | Path, loco_root: str | Path | None = None) -> list[dict]:
    """Read a manifest back, validating every row; errors name ``file:line`` and the field."""
    path = Path(path)
    rows: list[dict] = []
    seen: dict[str, int] = {}
    for number, row in read_jsonl(path):
        where = f"{path}:{number}"
        _validate_row(row, where)
        if row["id"] in seen:
            raise FadtqError(f"{where}: field 'id': {row['id']!r} already used on line {seen[row['id']]}")
        seen[row["id"]] = number
        if loco_root is not None:
            for key in ("test_image", "ref_image"):
                image = Path(loco_root) / row[key]
                problem = file_problem(image)
                if problem:
                    raise FadtqError(f"{where}: field '{key}': {image}: {problem}")
                if not image.resolve().is_relative_to(Path(loco_root).resolve()):
                    raise FadtqError(f"{where}: field '{key}': {image} leads outside {loco_root} (a link)")
        rows.append(row)
    if not rows:
        raise FadtqError(f"{path}: manifest holds no rows")
    return rows


def check_test_unseen(folder: Path) -> None:
    """No test pair's test image is among the training split's images: a pair seen in training
    would measure memory, not detection. (References are normal training images by design.)"""
    train, test = folder / "train.jsonl", folder / "test.jsonl"
    if not (train.is_file() and test.is_file()):
        return
    seen = {os.path.normpath(row[key]) for _, row in read_jsonl(train) for key in ("test_image", "ref_image")
            if isinstance(row.get(key), str)}
    for number, row in read_jsonl(test):
        image = row.get("test_image")
        if isinstance(image, str) and os.path.normpath(image) in seen:
            raise FadtqError(f"{test}:{number}: field 'test_image': {image} is also an image of the training split "
                             f"({train}); a test pair must be unseen in training")


def _validate_row(row: dict, where: str) -> None:
    for key, kind in REQUIRED_FIELDS.items():
        if key not in row:
            raise FadtqError(f"{where}: field '{key}' missing")
        if not isinstance(row[key], kind) or not row[key]:
            raise FadtqError(f"{where}: field '{key}': expected a non-empty string, got {row[key]!r}")
    for key in ("test_image", "ref_image"):
        path = PurePosixPath(row[key])
        if path.is_absolute() or ".." in path.parts:
            raise FadtqError(f"{where}: field '{key}': {row[key]!r}: expected a path inside the image folder "
                             "(relative, without '..')")
    if row["label"] not in LABELS:
        raise FadtqError(f"{where}: field 'label': expected one of {', '.join(LABELS)}, got {row['label']!r}")
    if row["split"] not in SPLITS:
        raise FadtqError(f"{where}: field 'split': expected train or test, got {row['split']!r}")
    types = row.get("defect_types", [])
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise FadtqError(f"{where}: field 'defect_types': expected a list of strings, got {types!r}")
