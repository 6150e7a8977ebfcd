"""Pairs for training and evaluation, and the embedded default benchmark.

Without ``--loco-root`` the pipeline uses a look-alike tree generated on first use into the
project's cache folder (``$FADTQ_CACHE``, else ``<repo>/.cache/fadtq``), with its benchmark built
next to it. Both appear atomically, so an interrupted first run leaves nothing half-written.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fadtq.data.loco import load_rgb
from fadtq.data.pair3c import build_pair3c, check_test_unseen, read_manifest, write_benchmark
from fadtq.errors import ConfigError, FadtqError
from fadtq.files import atomic_write_json, create_dir_once, read_json, read_text
from fadtq.paths import cache_dir
from fadtq.prompts import PromptLibrary, policy_messages, policy_question

DEFAULT_MAX_SIDE = 448
# Written into every model folder the project saves: the image size the model was trained at, so
# that evaluation feeds it images of that size (a small policy's eyes know only that patch grid).
INPUTS_FILE = "fadtq_inputs.json"
# The tiny tree has 10 images per test class; 6 per class for training leaves 4 per class to test.
TINY_TRAIN_PER_CLASS = 6
# Training pairs per class and category of each look-alike scale (the rest of the test folders is tested):
# tiny 6 of 10, cpu 120 of 140 (1,800 training and 300 test pairs), paper 40 as the paper does.
TRAIN_PER_CLASS = {"tiny": TINY_TRAIN_PER_CLASS, "cpu": 120, "paper": 40}


def record_image_size(model_dir: str | Path, image_size: int | None) -> None:
    """Note in ``model_dir`` the longest image side its training used (``None``: images as they are)."""
    atomic_write_json(Path(model_dir) / INPUTS_FILE, {"image_size": image_size})


def trained_image_size(model_dir: str | Path) -> int | None:
    """The image size recorded by ``record_image_size``; ``None`` for a model saved elsewhere."""
    path = Path(model_dir) / INPUTS_FILE
    if not path.is_file():
        return None
    size = read_json(path).get("image_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise FadtqError(f"{path}: image_size: expected a positive integer or null, got {size!r}")
    return size


@dataclass
class Pair:
    id: str
    category: str
    label: str
    ref_image: object  # PIL.Image.Image, RGB
    test_image: object
    prompt: str
    messages: list[dict]
    defect_types: list[str]
    ref_path: str | None = None  # the image files (None: images made in memory)
    test_path: str | None = None


class ImageCache:
    """Images under ``root`` by relative path, as RGB, resized once so that their longest side is
    at most ``max_side`` (``None``: as they are). The ``capacity`` most recently used are kept
    (``None``: all): an MMAD evaluation reads thousands of images, a few at a time."""

    def __init__(self, root: Path, max_side: int | None, capacity: int | None = None) -> None:
        self.root = root
        self.max_side = max_side
        self.capacity = capacity
        self._images: OrderedDict[str, object] = OrderedDict()

    def image(self, relative: str):
        if relative in self._images:
            self._images.move_to_end(relative)
            return self._images[relative]
        image = load_rgb(self.root / relative)
        if self.max_side and max(image.size) > self.max_side:
            image.thumbnail((self.max_side, self.max_side))
        self._images[relative] = image
        if self.capacity is not None and len(self._images) > self.capacity:
            self._images.popitem(last=False)
        return image


class PairDataset:
    """Reference/test pairs of one manifest, images resized once to ``max_side`` and cached."""

    def __init__(self, manifest: str | Path, loco_root: str | Path | None = None, *,
                 max_side: int | None = DEFAULT_MAX_SIDE, prompts: PromptLibrary | None = None) -> None:
        manifest = Path(manifest)
        self.loco_root = Path(loco_root) if loco_root is not None else _root_from_stats(manifest)
        self.rows = read_manifest(manifest, self.loco_root)
        self.max_side = max_side
        self.prompts = prompts or PromptLibrary()
        self.images = ImageCache(self.loco_root, max_side)
        self._questions: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> list[str]:
        """Every pair's class, in order, read from the manifest: no image is touched."""
        return [row["label"] for row in self.rows]

    def image(self, relative: str):
        return self.images.image(relative)

    def question(self, category: str) -> str:
        if category not in self._questions:
            self._questions[category] = policy_question(self.prompts, category)
        return self._questions[category]

    def __getitem__(self, index: int) -> Pair:
        row = self.rows[index]
        return Pair(
            id=row["id"],
            category=row["category"],
            label=row["label"],
            ref_image=self.image(row["ref_image"]),
            test_image=self.image(row["test_image"]),
            prompt=self.question(row["category"]),
            messages=policy_messages(self.prompts, row["category"]),
            defect_types=list(row.get("defect_types", [])),
            ref_path=str(self.loco_root / row["ref_image"]),
            test_path=str(self.loco_root / row["test_image"]),
        )

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def _root_from_stats(manifest: Path) -> Path:
    """The LOCO root recorded in ``stats.json`` next to the manifest."""
    stats_path = manifest.parent / "stats.json"
    try:
        return Path(json.loads(read_text(stats_path))["loco_root"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise FadtqError(f"{stats_path}: cannot read 'loco_root'; pass --loco-root explicitly") from None


def _tree_name(scale: str, seed: int, difficulty: str, size: int | None) -> str:
    from fadtq.data.synth import difficulty_named

    return (f"synth-{scale}-seed{seed}" + ("" if difficulty == "standard" else f"-{difficulty}")
            + difficulty_named(difficulty).revision_tag + ("" if size is None else f"-{size}px"))


def ensure_default_tree(scale: str = "tiny", seed: int = 0, difficulty: str = "standard",
                        size: int | None = None) -> Path:
    """The cached look-alike LOCO root, generated on first use; ``size`` is the longest side of its
    images (``None``: the generator's default, 128 pixels)."""
    from fadtq.data.synth import DEFAULT_SIZE, synthesize

    root = cache_dir() / _tree_name(scale, seed, difficulty, size)
    if not root.is_dir():
        create_dir_once(root, lambda tmp: synthesize(tmp / "tree", seed=seed, scale=scale, difficulty=difficulty,
                                                     size=size or DEFAULT_SIZE))
    return root


def ensure_default_benchmark(scale: str = "tiny", seed: int = 0, difficulty: str = "standard",
                             size: int | None = None) -> Path:
    """The cached benchmark folder (train.jsonl, test.jsonl, stats.json) over the default tree."""
    root = ensure_default_tree(scale, seed, difficulty, size)
    bench = root.with_name(f"{root.name}-pair3c")
    if not (bench / "stats.json").is_file():
        # no decoding pass (11 s at the CPU scale): the generator wrote the tree whole (create_dir_once),
        # and a run decodes its training images, and an evaluation its test images, before any work
        built = build_pair3c(root, seed=seed, train_per_class=TRAIN_PER_CLASS[scale], check=False)
        create_dir_once(bench, lambda tmp: write_benchmark(built, tmp / "tree"))
    return bench


# The look-alike's splits: training pairs and the *dev* split (test.jsonl) of generator seed
# data.seed, where every choice is made; the *test* split is the test.jsonl of a tree drawn with a
# generator seed this far away, which no tuning or diagnosis reads.
HELDOUT_SEED_OFFSET = 1000


def ensure_heldout_benchmark(scale: str = "tiny", seed: int = 0, difficulty: str = "standard") -> Path:
    """The look-alike's test split (its ``test.jsonl``): a benchmark over a fresh tree of generator
    seed ``seed + HELDOUT_SEED_OFFSET``, drawn by the same generator as the training tree of ``seed``."""
    return ensure_default_benchmark(scale, seed + HELDOUT_SEED_OFFSET, difficulty)


def resolve_benchmark(folder: str | Path | None, split: str, where: str, *, scale: str = "tiny", seed: int = 0,
                      difficulty: str = "standard") -> tuple[Path, Path]:
    """(benchmark folder, its manifest of ``split``): ``folder``, which ``where`` (a flag or config key)
    gave, else the cached look-alike of ``scale``, ``seed`` and ``difficulty``."""
    if not folder:
        folder = ensure_default_benchmark(scale, seed, difficulty)
    manifest = Path(folder) / f"{split}.jsonl"
    if not manifest.is_file():
        raise ConfigError(where, f"{folder}: no {split}.jsonl there (build one with fadtq build-benchmark)")
    check_test_unseen(Path(folder))
    return Path(folder), manifest


def decode_images(dataset: PairDataset | ImageCache, rows: Sequence[dict], desc: str = "images") -> None:
    """Decode every image of ``rows`` fully, through ``dataset``'s cache (so none is decoded
    twice, unless the cache is bounded); a truncated or unreadable file fails here, naming it. A
    bar shows after 2 s."""
    from tqdm import tqdm

    paths = sorted({row[key] for row in rows for key in ("ref_image", "test_image")})
    for relative in tqdm(paths, desc=desc, unit="img", delay=2, dynamic_ncols=True):
        dataset.image(relative)
