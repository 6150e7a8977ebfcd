"""Reader for an extracted MVTec LOCO AD root in its published layout.

::

    <root>/<category>/train/good/000.png ...
                     /validation/good/000.png ...
                     /test/{good,structural_anomalies,logical_anomalies}/000.png ...
                     /ground_truth/{structural_anomalies,logical_anomalies}/<NNN>/000.png ...
                     /defects_config.json

Folders are globbed; no count is hard-coded (the published archive and the paper differ).
Defect types are recovered from mask grey values through ``defects_config.json`` when both exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fadtq.errors import FadtqError
from fadtq.files import read_json

CATEGORIES = ("breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors")
LABELS = ("good", "structural", "logical")
LABEL_FOLDERS = {"good": "good", "structural": "structural_anomalies", "logical": "logical_anomalies"}
IMAGE_SUFFIX = ".png"
# The largest image decoded (width x height): 8192 x 8192. MVTec LOCO AD's are 1600 x 1100 at most,
# MMAD's a few megapixels; a manifest naming a larger file is refused rather than filling memory.
MAX_IMAGE_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class LocoImage:
    """One test image: ``path`` is relative to the LOCO root (POSIX separators)."""

    path: str
    label: str
    defect_types: tuple[str, ...] = ()


@dataclass
class LocoCategory:
    name: str
    train_good: list[str]
    validation_good: list[str]
    test: dict[str, list[LocoImage]] = field(default_factory=dict)


def load_rgb(path: str | Path):
    """Open an image as 8-bit RGB: grayscale, palette, RGBA (alpha dropped) and 16-bit are converted."""
    import numpy as np
    from PIL import Image

    image = decoded(Path(path))
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if wide.max(initial=0) > 255 or image.mode != "I" else 255.0
        image = Image.fromarray(np.clip(wide / scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return image if image.mode == "RGB" else image.convert("RGB")


def check_image(path: Path) -> None:
    """The image decodes fully: a truncated file fails here, not when a run first shows it."""
    decoded(path)


def decoded(path: Path):
    """``path`` opened and decoded in full; an unreadable file, or one of more than
    :data:`MAX_IMAGE_PIXELS` (read from its header, before anything is decoded), is one error."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise FadtqError(_too_large(path, f"{image.width} x {image.height} pixels"))
            image.load()
    except Image.DecompressionBombError as exc:  # PIL's own, larger limit, checked as it opens the file
        raise FadtqError(_too_large(path, str(exc).split(" exceeds")[0])) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise FadtqError(f"{path}: not a readable image ({exc})") from None
    return image


def _too_large(path: Path, size: str) -> str:
    return f"{path}: {size}, more than the {MAX_IMAGE_PIXELS:,} pixels (8192 x 8192) an image may have"


def list_images(folder: Path) -> list[Path]:
    """Sorted PNG files of a class folder; a missing or empty folder is an error."""
    if not folder.is_dir():
        raise FadtqError(f"{folder}: folder not found (expected the MVTec LOCO AD layout)")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() == IMAGE_SUFFIX and p.is_file())
    if not images:
        raise FadtqError(f"{folder}: no {IMAGE_SUFFIX} images in this class folder")
    return images


def read_defects_config(path: Path) -> dict[int, str]:
    """Map mask grey value -> defect name from ``defects_config.json`` (a list of objects)."""
    entries = read_json(path, expected=list, what='a list of {"defect_name", "pixel_value"} objects')
    table: dict[int, str] = {}
    for number, entry in enumerate(entries):
        name = entry.get("defect_name") if isinstance(entry, dict) else None
        value = entry.get("pixel_value") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not isinstance(value, int) or not 1 <= value <= 255:
            raise FadtqError(
                f"{path}: entry {number}: expected a string defect_name and an integer pixel_value 1-255"
            )
        table[value] = name
    return table


def mask_defect_types(mask_dir: Path, config: dict[int, str], config_path: Path) -> tuple[str, ...]:
    """Defect names of every non-zero grey value found in the masks of one anomalous image."""
    import numpy as np
    from PIL import Image

    masks = sorted(p for p in mask_dir.iterdir() if p.suffix.lower() == IMAGE_SUFFIX)
    if not masks:
        raise FadtqError(f"{mask_dir}: mask folder holds no {IMAGE_SUFFIX} masks")
    names: set[str] = set()
    for mask_path in masks:
        try:
            with Image.open(mask_path) as mask:
                values = np.unique(np.asarray(mask.convert("L")))
        except (OSError, ValueError, SyntaxError) as exc:
            raise FadtqError(f"{mask_path}: not a readable mask image ({exc})") from None
        for value in values[values > 0].tolist():
            if value not in config:
                raise FadtqError(f"{mask_path}: grey value {value} is not listed in {config_path}")
            names.add(config[value])
    return tuple(sorted(names))


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _anomalies(category_dir: Path, root: Path, label: str, config: dict[int, str] | None) -> list[LocoImage]:
    folder_name = LABEL_FOLDERS[label]
    images = list_images(category_dir / "test" / folder_name)
    gt_dir = category_dir / "ground_truth" / folder_name
    config_path = category_dir / "defects_config.json"
    if not gt_dir.is_dir():
        return [LocoImage(_relative(p, root), label) for p in images]
    stems = {p.stem for p in images}
    for mask_dir in sorted(p for p in gt_dir.iterdir() if p.is_dir()):
        if mask_dir.name not in stems:
            raise FadtqError(f"{mask_dir}: mask folder without its image test/{folder_name}/{mask_dir.name}.png")
    result = []
    for image in images:
        mask_dir = gt_dir / image.stem
        if not mask_dir.is_dir():
            raise FadtqError(f"{image}: anomalous image without its mask folder {mask_dir}")
        types = mask_defect_types(mask_dir, config, config_path) if config is not None else ()
        result.append(LocoImage(_relative(image, root), label, types))
    return result


def read_category(root: str | Path, category: str, *, with_defects: bool = True) -> LocoCategory:
    """Read one category's file lists (and defect types from masks when ``with_defects``)."""
    root = Path(root)
    category_dir = root / category
    if not category_dir.is_dir():
        raise FadtqError(f"{category_dir}: category folder not found (expected one of {', '.join(CATEGORIES)})")
    config_path = category_dir / "defects_config.json"
    if with_defects and not config_path.is_file():
        raise FadtqError(f"{config_path}: not found (every category of the MVTec LOCO AD layout has one)")
    config = read_defects_config(config_path) if with_defects else None
    result = LocoCategory(
        name=category,
        train_good=[_relative(p, root) for p in list_images(category_dir / "train" / "good")],
        validation_good=[_relative(p, root) for p in list_images(category_dir / "validation" / "good")],
    )
    result.test["good"] = [LocoImage(_relative(p, root), "good") for p in list_images(category_dir / "test" / "good")]
    for label in ("structural", "logical"):
        result.test[label] = _anomalies(category_dir, root, label, config)
    return result


def read_loco(root: str | Path, categories: list[str] | tuple[str, ...] | None = None) -> dict[str, LocoCategory]:
    """Read every requested category (all five by default) of a LOCO root."""
    root = Path(root)
    if not root.is_dir():
        raise FadtqError(f"--loco-root {root}: directory not found (expected an extracted MVTec LOCO AD root)")
    return {name: read_category(root, name) for name in (categories or CATEGORIES)}
