"""A PNG grid of examples: one column per category, one row per class (good, structural, logical)."""

from __future__ import annotations

from pathlib import Path

from fadtq.data.loco import CATEGORIES, LABEL_FOLDERS, LABELS, list_images, load_rgb
from fadtq.errors import FadtqError
from fadtq.prompts import pretty_category

MARGIN = 4
CAPTION = 14


def render_grid(loco_root: str | Path, out: str | Path, cell: int = 160, index: int = 0,
                categories: tuple[str, ...] = CATEGORIES) -> Path:
    """Write the grid to ``out`` using the ``index``-th image of each test class."""
    from PIL import Image, ImageDraw

    root = Path(loco_root)
    width = CAPTION * 6 + len(categories) * (cell + MARGIN)
    height = CAPTION + len(LABELS) * (cell + MARGIN)
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for row, label in enumerate(LABELS):
        draw.text((2, CAPTION + row * (cell + MARGIN) + cell // 2), label, fill=(0, 0, 0))
    for column, category in enumerate(categories):
        x = CAPTION * 6 + column * (cell + MARGIN)
        draw.text((x, 1), pretty_category(category), fill=(0, 0, 0))
        for row, label in enumerate(LABELS):
            images = list_images(root / category / "test" / LABEL_FOLDERS[label])
            if index >= len(images):
                raise FadtqError(f"{images[0].parent}: no image number {index} for the grid")
            tile = load_rgb(images[index])
            scale = cell / max(tile.size)
            tile = tile.resize((max(1, round(tile.width * scale)), max(1, round(tile.height * scale))), Image.LANCZOS)
            grid.paste(tile, (x, CAPTION + row * (cell + MARGIN)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    return out
