"""The relevance rate: the share of answers whose reasoning states the fact that decides the pair,
checked against the generator's own facts of the test image (the paper's relevance, measured
without a judge, on the look-alike).

The look-alike's manifests do not store the scenes' facts, so they are drawn again: a tree's name
holds its generator seed, difficulty and image size (``fadtq.data.dataset``), and each test image
is rendered anew from its seed and checked pixel for pixel against the file on disk, so facts of
another drawing can never be scored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from fadtq.answer import think_text
from fadtq.data.varied_reasoning import decisive_facts, states_decisive_facts, true_facts
from fadtq.errors import FadtqError

_TREE = re.compile(r"synth-[a-z]+-seed(?P<seed>\d+)(?:-(?P<difficulty>[a-z]+))?(?:-r\d+)?(?:-(?P<size>\d+)px)?")


def tree_parameters(root: Path) -> tuple[int, str, int]:
    """(generator seed, difficulty, image size) of a look-alike tree, read from its folder name."""
    from fadtq.data.synth import DEFAULT_SIZE

    match = _TREE.fullmatch(root.name)
    if not match:
        raise FadtqError(f"{root}: not a look-alike tree of fadtq synth (expected a name like synth-cpu-seed0-easy-r5); "
                         "the relevance rate needs the generator's facts")
    return int(match["seed"]), match["difficulty"] or "standard", int(match["size"] or DEFAULT_SIZE)


def generator_facts(root: Path, rows: Sequence[dict]) -> dict[str, dict[str, object]]:
    """The generator's facts of each row's test image (``true_facts``), by pair id."""
    from fadtq.data.synth import DIFFICULTIES, FOLDERS, image_rng, render

    seed, difficulty, size = tree_parameters(root)
    folders = {(split, folder): number for number, (split, folder, _) in enumerate(FOLDERS)}
    facts = {}
    for row in rows:
        category, split, folder, name = Path(row["test_image"]).with_suffix("").parts
        number = folders[(split, folder)]
        scene = render(category, FOLDERS[number][2], image_rng(seed, category, number, int(name)), size,
                       DIFFICULTIES[difficulty])
        on_disk = np.asarray(Image.open(root / row["test_image"]).convert("RGB"))
        if on_disk.shape != scene.image.shape or not np.array_equal(on_disk, scene.image):
            raise FadtqError(f"{root / row['test_image']}: differs from the image generator seed {seed} draws; the "
                             "tree was made by another revision of fadtq synth")
        facts[row["id"]] = true_facts(category, scene)
    return facts


def decisive_stated_by_id(records: Sequence[dict], rows: Sequence[dict], root: Path) -> dict[str, int]:
    """1 where a record's reasoning states every decisive fact of its pair's test image, else 0."""
    from fadtq.evaluation.baselines import normal_facts

    by_id = {row["id"]: row for row in rows}
    facts = generator_facts(root, [by_id[r["id"]] for r in records])
    difficulty = tree_parameters(root)[1]
    normal = {category: normal_facts(category, difficulty) for category in {r["category"] for r in records}}
    return {r["id"]: int(states_decisive_facts(think_text(r["completion"] or "") or "", decisive_facts(
        r["label"], {k: v for k, v in facts[r["id"]].items() if k != "damage"}, normal[r["category"]])))
        for r in records}


def relevance_rate(records: Sequence[dict], rows: Sequence[dict], root: Path) -> float:
    stated = decisive_stated_by_id(records, rows, root)
    return sum(stated.values()) / len(stated)
