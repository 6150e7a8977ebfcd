"""Drawing primitives for the procedural look-alike: a supersampled canvas with defect masks.

Coordinates are in units of the image height (x runs from 0 to the aspect ratio, y from 0 to 1),
so a circle stays round whatever the output size. Every shape can also be *marked*: drawn with
255 on the mask of a named defect, which becomes that defect's ground-truth region.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 2
Color = tuple[int, int, int]
Point = tuple[float, float]


class Canvas:
    def __init__(self, width: int, height: int, background: Color) -> None:
        self.size = (width, height)
        self.scale = height * SUPERSAMPLE
        self.aspect = width / height
        self.image = Image.new("RGB", (width * SUPERSAMPLE, height * SUPERSAMPLE), background)
        self.draw = ImageDraw.Draw(self.image)
        self.masks: dict[str, ImageDraw.ImageDraw] = {}
        # What the scene put in the image, for an object-level description (``fadtq pretrain``):
        # counts and presence of parts, e.g. {"pins": 6} or {"juice": "cherry", "labels": 2}.
        self.facts: dict[str, object] = {}
        self._mask_images: dict[str, Image.Image] = {}

    def _mask(self, name: str) -> ImageDraw.ImageDraw:
        if name not in self.masks:
            self._mask_images[name] = Image.new("L", self.image.size, 0)
            self.masks[name] = ImageDraw.Draw(self._mask_images[name])
        return self.masks[name]

    def _px(self, points: Sequence[Point]) -> list[tuple[float, float]]:
        return [(x * self.scale, y * self.scale) for x, y in points]

    def polygon(self, points: Sequence[Point], fill: Color | None, mark: str | None = None, draw: bool = True,
                outline: Color | None = None) -> None:
        xy = self._px(points)
        if draw:
            self.draw.polygon(xy, fill=fill, outline=outline, width=max(1, SUPERSAMPLE))
        if mark:
            self._mask(mark).polygon(xy, fill=255)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: Color | None, angle: float = 0.0,
                mark: str | None = None, draw: bool = True, outline: Color | None = None) -> None:
        self.polygon(ellipse_points(cx, cy, rx, ry, angle), fill, mark, draw, outline)

    def circle(self, cx: float, cy: float, r: float, fill: Color | None, mark: str | None = None,
               draw: bool = True) -> None:
        box = [(cx - r) * self.scale, (cy - r) * self.scale, (cx + r) * self.scale, (cy + r) * self.scale]
        if draw:
            self.draw.ellipse(box, fill=fill)
        if mark:
            self._mask(mark).ellipse(box, fill=255)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: Color | None, mark: str | None = None,
             draw: bool = True, outline: Color | None = None) -> None:
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], fill, mark, draw, outline)

    def line(self, points: Sequence[Point], fill: Color, width: float, mark: str | None = None,
             draw: bool = True) -> None:
        xy = self._px(points)
        px = max(1, round(width * self.scale))
        if draw:
            self.draw.line(xy, fill=fill, width=px, joint="curve")
        if mark:
            self._mask(mark).line(xy, fill=255, width=px + 2 * SUPERSAMPLE, joint="curve")

    def finish(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Downsample to the output size: the RGB array and one boolean mask per marked defect."""
        image = np.asarray(self.image.reduce(SUPERSAMPLE), dtype=np.uint8).copy()
        masks = {name: np.asarray(m.reduce(SUPERSAMPLE)) > 0 for name, m in self._mask_images.items()}
        return image, masks


def ellipse_points(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0, n: int = 20) -> list[Point]:
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    points = []
    for i in range(n):
        t = 2 * math.pi * i / n
        x, y = rx * math.cos(t), ry * math.sin(t)
        points.append((cx + x * cos_a - y * sin_a, cy + x * sin_a + y * cos_a))
    return points


def rotated_rect(cx: float, cy: float, length: float, width: float, angle: float) -> list[Point]:
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    half = [(-length / 2, -width / 2), (length / 2, -width / 2), (length / 2, width / 2), (-length / 2, width / 2)]
    return [(cx + x * cos_a - y * sin_a, cy + x * sin_a + y * cos_a) for x, y in half]


def jitter(rng: np.random.Generator, color: Sequence[int], amount: int = 12) -> Color:
    """A colour varied per channel, as different objects of one kind are never the same shade."""
    shifted = np.asarray(color) + rng.integers(-amount, amount + 1, size=3)
    return tuple(int(v) for v in np.clip(shifted, 0, 255))


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int = 4) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid upsampled bicubically (a cheap Perlin stand-in)."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    image = Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC)
    noise = np.asarray(image)
    return (noise - noise.min()) / (np.ptp(noise) + 1e-6)


def apply_lighting(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Global exposure, white balance and a soft gradient: natural variation between captures."""
    h, w, _ = image.shape
    gain = rng.uniform(0.78, 1.2)
    tint = rng.uniform(0.92, 1.08, size=3)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    slope = rng.uniform(-0.12, 0.12, size=2)
    gradient = 1.0 + slope[0] * (xs / w - 0.5) + slope[1] * (ys / h - 0.5)
    lit = image.astype(np.float32) * (gain * gradient)[..., None] * tint
    return np.clip(lit + 0.5, 0, 255).astype(np.uint8)
