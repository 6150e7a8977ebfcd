"""Local structural damage applied to a rendered scene (in place), each returning its mask.

The shapes come from smooth value noise (as DRAEM does with Perlin noise) or from a patch of the
image itself (as CutPaste does), so damage is irregular and never a clean geometric shape.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from fadtq.data.synth_draw import smooth_noise


def _blob(rng: np.random.Generator, shape: tuple[int, int], x: float, y: float, r: float) -> np.ndarray:
    """An irregular region of radius about ``r`` pixels around (x, y)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    distance = np.hypot(xs - x, ys - y) / max(r, 1.5)
    noise = smooth_noise(rng, h, w, cells=max(2, int(w / max(r, 2))))
    mask = distance + 0.6 * (noise - 0.5) < 1.0
    if not mask.any():
        mask[int(np.clip(y, 0, h - 1)), int(np.clip(x, 0, w - 1))] = True
    return mask


CONTAMINANTS = np.array([(70, 52, 38), (30, 30, 32), (236, 236, 240), (96, 120, 60)], np.float32)
STANDS_OUT = 100.0  # RGB distance from the covered pixels' mean at which a contaminant is seen at 112 px


def _farthest(colours: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """The colour of ``colours`` farthest from the mean of ``pixels``: the one that stands out on them."""
    mean = pixels.astype(np.float32).mean(axis=0)
    return colours[int(np.argmax(np.linalg.norm(colours - mean, axis=1)))]


def _soil(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, color: np.ndarray) -> None:
    texture = smooth_noise(rng, *image.shape[:2], cells=12)[..., None] * 50 - 25
    image[mask] = np.clip(0.15 * image[mask] + 0.85 * (color + texture[mask]), 0, 255).astype(np.uint8)


def contamination(rng: np.random.Generator, image: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
    """A foreign blob (dirt, hair, fluff) with its own texture."""
    mask = _blob(rng, image.shape[:2], x, y, r * rng.uniform(0.5, 0.9))
    _soil(rng, image, mask, CONTAMINANTS[int(rng.integers(len(CONTAMINANTS)))])
    return mask


def vivid_contamination(rng: np.random.Generator, image: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
    """A contaminant that stands out on what it covers (white fluff on a white bag or black dirt on a
    dark pin tray vanishes at 112 px): any of those at least ``STANDS_OUT`` away in RGB, at random, so
    that no one colour betrays the class in an image's histogram."""
    mask = _blob(rng, image.shape[:2], x, y, r * rng.uniform(0.5, 0.9))
    distance = np.linalg.norm(CONTAMINANTS - image[mask].astype(np.float32).mean(axis=0), axis=1)
    distant = CONTAMINANTS[distance >= STANDS_OUT]
    _soil(rng, image, mask, distant[int(rng.integers(len(distant)))] if len(distant) else
          CONTAMINANTS[int(np.argmax(distance))])
    return mask


def bruise(rng: np.random.Generator, image: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
    """A darkened, discoloured spot: damaged fruit, crushed material."""
    mask = _blob(rng, image.shape[:2], x + rng.uniform(-r, r) * 0.3, y + rng.uniform(-r, r) * 0.3, r * 0.6)
    image[mask] = (image[mask] * np.array([0.45, 0.4, 0.35])).astype(np.uint8)
    return mask


def _line(rng: np.random.Generator, shape: tuple[int, int], x: float, y: float, r: float, width: int) -> np.ndarray:
    h, w = shape
    layer = Image.new("L", (w, h), 0)
    points = [(x + rng.uniform(-r, r), y + rng.uniform(-r, r)) for _ in range(3)]
    ImageDraw.Draw(layer).line(points, fill=255, width=width)
    return np.asarray(layer) > 0


def scratch(rng: np.random.Generator, image: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
    """A thin bright or dark crooked line: scratches, tears."""
    mask = _line(rng, image.shape[:2], x, y, r, max(1, round(r / 8)))
    shade = 235.0 if rng.random() < 0.5 else 25.0
    image[mask] = (0.3 * image[mask] + 0.7 * shade).astype(np.uint8)
    return mask


def bold_scratch(rng: np.random.Generator, image: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
    """A tear a few pixels wide, dark on a light part and light on a dark one: ``scratch``'s line, a
    pixel wide, is lost when the image shrinks to 112 px."""
    mask = _line(rng, image.shape[:2], x, y, r, max(2, round(r / 3)))
    shade = 25.0 if mask.any() and image[mask].mean() > 128 else 235.0  # an empty mask: a line off the image
    image[mask] = (0.2 * image[mask] + 0.8 * shade).astype(np.uint8)
    return mask


def recolour(rng: np.random.Generator, image: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
    """A wrong colour on part of an object: channels permuted inside an irregular region."""
    mask = _blob(rng, image.shape[:2], x, y, r * 0.9)
    order = [(1, 2, 0), (2, 0, 1), (2, 1, 0)][int(rng.integers(3))]
    image[mask] = image[mask][:, order]
    return mask


# Green, blue and magenta: no juice has these hues (a yellow tint on a bottle read as banana juice).
TINTS = np.array([(40, 170, 60), (40, 90, 210), (200, 40, 190)], np.float32)


def tint(rng: np.random.Generator, image: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
    """A wrong colour that shows on any object: the region blended towards the saturated colour
    farthest from its own (``recolour`` permutes channels, which leaves a grey part grey)."""
    mask = _blob(rng, image.shape[:2], x, y, r * 0.9)
    image[mask] = (0.3 * image[mask] + 0.7 * _farthest(TINTS, image[mask])).astype(np.uint8)
    return mask


def erase(rng: np.random.Generator, image: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
    """A broken-off piece: the region takes the colour of its surroundings."""
    h, w = image.shape[:2]
    cx, cy = x + rng.uniform(-0.5, 0.5) * r, y + rng.uniform(-0.5, 0.5) * r
    mask = _blob(rng, (h, w), cx, cy, r * 0.7)
    ring = _blob(rng, (h, w), cx, cy, r * 1.6) & ~mask
    fill = np.median(image[ring], axis=0) if ring.any() else image.reshape(-1, 3)[0]
    image[mask] = fill.astype(np.uint8)
    return mask


def cut_paste(rng: np.random.Generator, image: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
    """A patch from elsewhere in the image pasted, rotated, over the spot (CutPaste)."""
    h, w = image.shape[:2]
    size = max(2, int(r * 1.2))
    sy, sx = int(rng.integers(0, max(1, h - size))), int(rng.integers(0, max(1, w - size)))
    patch = np.rot90(image[sy:sy + size, sx:sx + size], k=int(rng.integers(1, 4))).copy()
    ty = int(np.clip(y - size / 2, 0, max(0, h - patch.shape[0])))
    tx = int(np.clip(x - size / 2, 0, max(0, w - patch.shape[1])))
    ph, pw = min(patch.shape[0], h - ty), min(patch.shape[1], w - tx)
    image[ty:ty + ph, tx:tx + pw] = patch[:ph, :pw]
    mask = np.zeros((h, w), dtype=bool)
    mask[ty:ty + ph, tx:tx + pw] = True
    return mask


def crush(rng: np.random.Generator, image: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
    """Pixels shuffled inside a region: crumbs where there were whole pieces."""
    mask = _blob(rng, image.shape[:2], x, y, r)
    pixels = image[mask]
    image[mask] = (pixels[rng.permutation(len(pixels))] * 0.85).astype(np.uint8)
    return mask


# The ``easy`` look-alike's versions of the damage a small policy could not see at 112 px.
VIVID = {"recolour": "tint", "contamination": "vivid_contamination", "scratch": "bold_scratch"}

OPS = {
    "contamination": contamination,
    "vivid_contamination": vivid_contamination,
    "bruise": bruise,
    "scratch": scratch,
    "bold_scratch": bold_scratch,
    "recolour": recolour,
    "tint": tint,
    "erase": erase,
    "cut_paste": cut_paste,
    "crush": crush,
}
