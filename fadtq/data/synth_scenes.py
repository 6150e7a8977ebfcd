"""The five look-alike scenes. Each draws a normal scene or one with a given defect.

A scene function takes ``(rng, canvas, defect, sparse)``: ``defect`` is ``None`` for a normal
image, a logical defect name (one rule broken, every object intact) or one of the structural
defects that the scene draws itself; ``sparse`` (the ``easy`` difficulty) asks for less clutter
and larger items where the scene has many small ones. It marks the defect's region on the canvas,
records what it drew in ``canvas.facts`` (counts and presence of parts) and returns anchors, the
places (``group -> [(x, y, r)]``) where generic local damage may be applied afterwards.
"""

from __future__ import annotations

import math

import numpy as np

from fadtq.data.synth_draw import Canvas, ellipse_points, jitter, rotated_rect

Anchors = dict[str, list[tuple[float, float, float]]]


# ---------------------------------------------------------------- breakfast_box

def breakfast_box(rng: np.random.Generator, c: Canvas, defect: str | None, sparse: bool = False) -> Anchors:
    x0, x1, y0, y1 = 0.07 + rng.uniform(-0.02, 0.02), 1.18 + rng.uniform(-0.02, 0.02), 0.08, 0.92
    c.rect(x0, y0, x1, y1, jitter(rng, (226, 214, 192), 8))
    divider = (x0 + x1) / 2 - 0.04 + rng.uniform(-0.01, 0.01)
    c.line([(divider, y0), (divider, y1)], jitter(rng, (196, 184, 160), 6), 0.025)
    left, right = (x0 + 0.02, divider - 0.015), (divider + 0.015, x1 - 0.02)
    if defect == "compartments_swapped":
        c.rect(x0, y0, x1, y1, None, mark=defect, draw=False)
        left, right = (right[0], right[0] + (left[1] - left[0])), (left[0], left[0] + (right[1] - right[0]))
    anchors: Anchors = {"box_edge": [(x0, rng.uniform(0.2, 0.8), 0.06), (x1, rng.uniform(0.2, 0.8), 0.06)]}
    anchors["fruit"] = _fruits(rng, c, left, y0, y1, defect)
    anchors["cereal"], anchors["toppings"] = _cereal_and_toppings(rng, c, right, y0, y1, defect, sparse)
    return anchors


def _fruits(rng: np.random.Generator, c: Canvas, span: tuple[float, float], y0: float, y1: float,
            defect: str | None) -> list:
    kinds = ["tangerine", "tangerine", "nectarine"]
    if defect == "wrong_fruit_count":
        kinds.append("tangerine") if rng.random() < 0.5 else kinds.remove("tangerine")
    mid = (span[0] + span[1]) / 2
    slots = [(mid - 0.07, y0 + 0.2), (mid + 0.08, y0 + 0.42), (mid - 0.06, y0 + 0.63), (mid + 0.07, y0 + 0.73)]
    order = rng.permutation(len(slots))[: len(kinds)]
    c.facts["fruits"] = len(kinds)
    anchors = []
    for kind, slot in zip(kinds, order, strict=False):
        x, y = slots[slot][0] + rng.uniform(-0.02, 0.02), slots[slot][1] + rng.uniform(-0.02, 0.02)
        r = rng.uniform(0.085, 0.095) if kind == "tangerine" else rng.uniform(0.1, 0.11)
        mark = defect if defect == "wrong_fruit_count" else None
        color = (236, 132, 28) if kind == "tangerine" else (206, 78, 44)
        c.circle(x, y, r, jitter(rng, color, 10), mark=mark)
        shine = (250, 170, 70) if kind == "tangerine" else (235, 150, 60)
        c.circle(x - r * 0.3, y - r * 0.3, r * 0.35, jitter(rng, shine, 8))
        anchors.append((x, y, r))
    return anchors


def _cereal_and_toppings(rng: np.random.Generator, c: Canvas, span: tuple[float, float], y0: float, y1: float,
                         defect: str | None, sparse: bool) -> tuple[list, list]:
    split = y0 + 0.36 + rng.uniform(-0.02, 0.02)
    cereal_top = split - (0.18 if defect == "overflow" else 0.0) + (0.16 if defect == "underflow" else 0.0)
    if defect in ("overflow", "underflow"):
        c.rect(span[0], min(split, cereal_top), span[1], max(split, cereal_top) + 0.02, None, mark=defect, draw=False)
    if defect == "missing_cereals":
        c.rect(span[0], split, span[1], y1 - 0.02, None, mark=defect, draw=False)
    else:
        c.rect(span[0], cereal_top, span[1], y1 - 0.02, jitter(rng, (164, 112, 60), 10))
        for _ in range(10 if sparse else 40):
            x, y = rng.uniform(span[0] + 0.02, span[1] - 0.02), rng.uniform(cereal_top + 0.02, y1 - 0.04)
            c.ellipse(x, y, 0.02, 0.013, jitter(rng, (130, 86, 44), 20), angle=rng.uniform(0, math.pi))
    bananas, almonds = 7 + int(rng.integers(-1, 2)), 5 + int(rng.integers(-1, 2))
    if defect == "wrong_ratio":
        bananas, almonds = (bananas + almonds, 0) if rng.random() < 0.5 else (0, bananas + almonds)
    if defect in ("wrong_ratio", "missing_toppings"):
        c.rect(span[0], y0 + 0.02, span[1], split, None, mark=defect, draw=False)
    c.facts["cereals"] = defect != "missing_cereals"
    c.facts["toppings"] = defect != "missing_toppings"
    if defect == "missing_toppings":
        return [((span[0] + span[1]) / 2, (split + y1) / 2, 0.1)], [((span[0] + span[1]) / 2, (y0 + split) / 2, 0.08)]
    for index in range(bananas + almonds):
        x, y = rng.uniform(span[0] + 0.04, span[1] - 0.04), rng.uniform(y0 + 0.05, split - 0.04)
        if index < bananas:
            c.circle(x, y, 0.035, jitter(rng, (236, 222, 164), 10))
        else:
            c.ellipse(x, y, 0.036, 0.02, jitter(rng, (150, 92, 50), 10), angle=rng.uniform(0, math.pi))
    cereal = [((span[0] + span[1]) / 2 + rng.uniform(-0.1, 0.1), (split + y1) / 2, 0.1)]
    toppings = [((span[0] + span[1]) / 2 + rng.uniform(-0.1, 0.1), (y0 + split) / 2, 0.08)]
    return cereal, toppings


# ---------------------------------------------------------------- juice_bottle

JUICES = {"cherry": (150, 22, 34), "orange": (226, 168, 34), "banana": (226, 220, 198)}


def juice_bottle(rng: np.random.Generator, c: Canvas, defect: str | None, sparse: bool = False) -> Anchors:
    cx, bottom, half = 0.25 + rng.uniform(-0.025, 0.025), 0.93, 0.11 + rng.uniform(-0.004, 0.004)
    neck_top, shoulder = 0.14, 0.32
    outline = [(cx - 0.035, neck_top), (cx + 0.035, neck_top), (cx + half, shoulder), (cx + half, bottom),
               (cx - half, bottom), (cx - half, shoulder)]
    c.polygon(outline, jitter(rng, (38, 40, 44), 4), outline=jitter(rng, (96, 100, 106), 8))
    c.rect(cx - 0.042, 0.08, cx + 0.042, neck_top, jitter(rng, (210, 210, 214), 10))
    fruit = ("cherry", "orange", "banana")[int(rng.integers(3))]
    level = rng.uniform(0.9, 1.0)
    if defect == "wrong_fill_level":
        level = rng.uniform(0.55, 0.78)
    top = bottom - level * (bottom - neck_top - 0.04)
    if defect in ("wrong_fill_level", "empty_bottle"):
        c.polygon(outline, None, mark=defect, draw=False)
    if defect != "empty_bottle":
        c.polygon(_clip_to_level(outline, top), jitter(rng, JUICES[fruit], 10))
    c.facts["juice"] = "none" if defect == "empty_bottle" else fruit
    c.facts["labels"] = 2 - (defect in ("missing_center_label", "missing_bottom_label"))
    center, lower = (0.44, 0.62), (0.72, 0.82)
    shift = rng.uniform(-0.01, 0.01)
    center, lower = (center[0] + shift, center[1] + shift), (lower[0] + shift, lower[1] + shift)
    if defect == "swapped_labels":
        center, lower = (lower[0] - 0.04, lower[0] + 0.14), (center[0] + 0.03, center[0] + 0.13)
    if defect == "misplaced_label":
        offset = rng.choice([-0.09, 0.09])
        c.rect(cx - 0.09, center[0], cx + 0.09, center[1], None, mark=defect, draw=False)
        center = (center[0] + offset, center[1] + offset)
    label_mark = defect if defect in ("swapped_labels", "misplaced_label") else None
    white = jitter(rng, (236, 236, 230), 6)
    anchors: Anchors = {"label": [], "liquid": [(cx + rng.uniform(-0.05, 0.05), rng.uniform(top + 0.05, 0.9), 0.05)]}
    if defect == "missing_center_label":
        c.rect(cx - 0.09, center[0], cx + 0.09, center[1], None, mark=defect, draw=False)
    else:
        c.rect(cx - 0.09, center[0], cx + 0.09, center[1], white, mark=label_mark)
        _icon(rng, c, cx, (center[0] + center[1]) / 2, fruit, defect)
        anchors["label"].append((cx, (center[0] + center[1]) / 2, 0.06))
    if defect == "missing_bottom_label":
        c.rect(cx - 0.08, lower[0], cx + 0.08, lower[1], None, mark=defect, draw=False)
    else:
        c.rect(cx - 0.08, lower[0], cx + 0.08, lower[1], white, mark=label_mark)
        _text(rng, c, cx, lower, defect)
        anchors["label"].append((cx, (lower[0] + lower[1]) / 2, 0.04))
    return anchors


def _clip_to_level(outline: list, top: float) -> list:
    """The part of the bottle polygon below the liquid surface ``top``."""
    (nl, nt), (nr, _), (sr, sy), (br, by), (bl, _), (sl, _) = outline
    if top >= sy:
        return [(sl, top), (sr, top), (br, by), (bl, by)]
    t = (top - nt) / (sy - nt)
    return [(nl + (sl - nl) * t, top), (nr + (sr - nr) * t, top), (sr, sy), (br, by), (bl, by), (sl, sy)]


def _icon(rng: np.random.Generator, c: Canvas, x: float, y: float, fruit: str, defect: str | None) -> None:
    if defect == "missing_fruit_icon":
        c.circle(x, y, 0.05, None, mark=defect, draw=False)
        return
    if defect == "icon_mismatch":
        fruit = [f for f in JUICES if f != fruit][int(rng.integers(2))]
    mark = defect if defect in ("icon_mismatch", "unknown_icon") else None
    if defect == "unknown_icon":
        points = [(x + rng.uniform(-0.045, 0.045), y + rng.uniform(-0.045, 0.045)) for _ in range(5)]
        c.polygon(points, jitter(rng, (60, 130, 200), 30), mark=mark)
    elif fruit == "cherry":
        c.line([(x, y - 0.045), (x - 0.02, y + 0.01)], (60, 120, 40), 0.008, mark=mark)
        c.circle(x - 0.022, y + 0.018, 0.022, jitter(rng, (170, 20, 30), 10), mark=mark)
        c.circle(x + 0.018, y + 0.024, 0.022, jitter(rng, (170, 20, 30), 10), mark=mark)
    elif fruit == "orange":
        c.circle(x, y, 0.04, jitter(rng, (240, 140, 20), 10), mark=mark)
        c.circle(x - 0.012, y - 0.012, 0.012, (250, 190, 90), mark=mark)
    else:
        c.ellipse(x, y, 0.045, 0.03, jitter(rng, (240, 214, 50), 10), mark=mark)
        c.ellipse(x, y - 0.014, 0.042, 0.025, (236, 236, 230))


def _text(rng: np.random.Generator, c: Canvas, cx: float, lower: tuple[float, float], defect: str | None) -> None:
    """Two lines of dark bars stand for the "100% Juice" print."""
    rows = (lower[0] + 0.03, lower[0] + 0.07)
    for row_number, y in enumerate(rows):
        x = cx - 0.06
        while x < cx + 0.055:
            width = rng.uniform(0.008, 0.02)
            missing = defect == "incomplete_text" and row_number == 1 and x > cx - 0.01
            if missing:
                c.rect(x, y - 0.012, x + width, y + 0.012, None, mark=defect, draw=False)
            else:
                c.rect(x, y - 0.01, x + width, y + 0.01, (40, 40, 46))
            x += width + 0.008


# ---------------------------------------------------------------- pushpins

def pushpins(rng: np.random.Generator, c: Canvas, defect: str | None, sparse: bool = False) -> Anchors:
    rows, cols = (2, 3) if sparse else (3, 5)
    size = 1.8 if sparse else 1.0
    x0, y0 = 0.1 + rng.uniform(-0.02, 0.02), 0.08 + rng.uniform(-0.02, 0.02)
    x1, y1 = x0 + 1.5, y0 + 0.84
    c.rect(x0, y0, x1, y1, jitter(rng, (70, 76, 88), 6))
    cw, ch = (x1 - x0) / cols, (y1 - y0) / rows
    separators = [("v", x0 + cw * i) for i in range(1, cols)] + [("h", y0 + ch * j) for j in range(1, rows)]
    missing = int(rng.integers(len(separators))) if defect == "missing_separator" else -1
    wall = jitter(rng, (150, 156, 168), 6)
    for index, (kind, pos) in enumerate(separators):
        line = [(pos, y0), (pos, y1)] if kind == "v" else [(x0, pos), (x1, pos)]
        c.line(line, wall, 0.022, mark=defect if index == missing else None, draw=index != missing)
    c.rect(x0, y0, x1, y1, None, outline=wall)
    cells = [(x0 + cw * (i + 0.5), y0 + ch * (j + 0.5)) for j in range(rows) for i in range(cols)]
    pins = list(range(len(cells)))
    if defect == "missing_pushpin":
        gone = int(rng.integers(len(cells)))
        pins.remove(gone)
        c.rect(cells[gone][0] - cw / 2, cells[gone][1] - ch / 2, cells[gone][0] + cw / 2, cells[gone][1] + ch / 2,
               None, mark=defect, draw=False)
    extras = []
    if defect == "additional_pushpin":
        extras = rng.choice(len(cells), size=int(rng.integers(1, 3)), replace=False).tolist()
    bent = int(rng.integers(len(pins))) if defect == "front_bent" else -1
    anchors = []
    for number, cell in enumerate(pins + extras):
        extra = number >= len(pins)
        offset = (0.06 * size, 0.0) if extra else (0.0, 0.0)
        x = cells[cell][0] + rng.uniform(-cw * 0.18, cw * 0.18) + offset[0]
        y = cells[cell][1] + rng.uniform(-ch * 0.18, ch * 0.18)
        mark = defect if extra or number == bent else None
        anchors.append(_pin(rng, c, x, y, mark, bent=number == bent, size=size))
    c.facts["pins"] = len(pins) + len(extras)
    return {"pin": anchors, "box": [(x0 + cw * 0.5, y0 + ch * 0.2, 0.05)]}


def _pin(rng: np.random.Generator, c: Canvas, x: float, y: float, mark: str | None, bent: bool,
         size: float = 1.0) -> tuple:
    """A pushpin at (x, y); ``size`` scales it (larger pins in the sparse layout)."""
    angle = rng.uniform(0, 2 * math.pi)
    tip = (x + 0.075 * size * math.cos(angle), y + 0.075 * size * math.sin(angle))
    needle = [(x, y), tip]
    if bent:
        knee = (x + 0.045 * size * math.cos(angle), y + 0.045 * size * math.sin(angle))
        bend = 0.035 * size
        needle = [(x, y), knee, (knee[0] + bend * math.cos(angle + 1.3), knee[1] + bend * math.sin(angle + 1.3))]
    c.line(needle, jitter(rng, (196, 196, 200), 6), 0.012 * size, mark=mark)
    c.circle(x, y, 0.045 * size, jitter(rng, (232, 198, 40), 10), mark=mark)
    c.circle(x - 0.012 * size, y - 0.012 * size, 0.014 * size, jitter(rng, (250, 232, 120), 8))
    return (x, y, 0.045 * size)


# ---------------------------------------------------------------- screw_bag

def screw_bag(rng: np.random.Generator, c: Canvas, defect: str | None, sparse: bool = False) -> Anchors:
    x0, y0 = 0.12 + rng.uniform(-0.03, 0.03), 0.1 + rng.uniform(-0.02, 0.02)
    x1, y1 = x0 + 1.2, y0 + 0.8
    bag = jitter(rng, (214, 218, 222), 6)
    c.rect(x0, y0, x1, y1, bag, outline=jitter(rng, (170, 174, 180), 6))
    c.rect(x0, y0, x1, y0 + 0.06, jitter(rng, (186, 190, 196), 6))
    screws = [0.3, 0.19]
    if defect == "screw_too_long":
        screws[1] = 0.42
    elif defect == "screw_too_short":
        screws[0] = 0.12
    small = ["washer", "washer", "nut", "nut"]
    lanes = rng.permutation([y0 + 0.22, y0 + 0.62])
    slots = [(x0 + 0.2 + 0.27 * i + rng.uniform(-0.03, 0.03), y0 + 0.42 + rng.uniform(-0.04, 0.04)) for i in range(4)]
    spare = (x0 + 1.05 + rng.uniform(-0.02, 0.02), lanes[0] + rng.uniform(-0.03, 0.03))
    anchors: Anchors = {"part": [], "bag_edge": [(x0 + rng.uniform(0.1, 1.1), y1, 0.05)]}
    if defect == "missing_part":
        gone = int(rng.integers(len(small)))
        c.circle(*slots[gone], 0.08, None, mark=defect, draw=False)
        small.pop(gone)
        slots.pop(gone)
    if defect == "additional_part":
        small.append(small[int(rng.integers(len(small)))])
        slots.append(spare)
    c.facts["parts"], c.facts["screws"] = len(small), len(screws)
    for number, (kind, (x, y)) in enumerate(zip(small, slots, strict=False)):
        mark = defect if defect == "additional_part" and number == len(small) - 1 else None
        anchors["part"].append(_small_part(rng, c, kind, x, y, bag, mark, 1.5 if sparse else 1.0))
    for length, lane in zip(screws, lanes, strict=False):
        x = x0 + 0.6 + rng.uniform(-0.12, 0.12)
        mark = defect if defect in ("screw_too_long", "screw_too_short") and length in (0.42, 0.12) else None
        anchors["part"].append(_screw(rng, c, x, lane, length, rng.uniform(-0.3, 0.3), mark))
    return anchors


def _small_part(rng: np.random.Generator, c: Canvas, kind: str, x: float, y: float, bag: tuple,
                mark: str | None, size: float = 1.0) -> tuple:
    """A washer or a nut at (x, y). ``size`` above 1 (the sparse layout) draws it larger, darker and
    with a smaller hole: at 112 px the standard ring is a faint outline a few pixels wide."""
    dark, hole = (0.0, 1.0) if size == 1.0 else (70.0, 1.2)
    if kind == "washer":
        c.circle(x, y, 0.06 * size, jitter(rng, (158 - dark, 160 - dark, 166 - dark), 8), mark=mark)
        c.circle(x, y, 0.028 * hole, bag)
        return (x, y, 0.06 * size)
    points = ellipse_points(x, y, 0.056 * size, 0.056 * size, rng.uniform(0, math.pi / 3), n=6)
    c.polygon(points, jitter(rng, (128 - dark, 130 - dark, 138 - dark), 8), mark=mark)
    c.circle(x, y, 0.024 * hole, bag)
    return (x, y, 0.056 * size)


def _screw(rng: np.random.Generator, c: Canvas, x: float, y: float, length: float, angle: float,
           mark: str | None) -> tuple:
    c.polygon(rotated_rect(x, y, length, 0.032, angle), jitter(rng, (118, 120, 128), 8), mark=mark)
    head = (x - length / 2 * math.cos(angle), y - length / 2 * math.sin(angle))
    c.circle(head[0], head[1], 0.04, jitter(rng, (104, 106, 114), 8), mark=mark)
    c.line([(head[0] - 0.02, head[1]), (head[0] + 0.02, head[1])], (70, 70, 76), 0.008)
    return (x, y, 0.04)


# ---------------------------------------------------------------- splicing_connectors

CABLE_COLORS = {2: (226, 196, 36), 3: (40, 90, 190), 5: (190, 36, 36)}


def splicing_connectors(rng: np.random.Generator, c: Canvas, defect: str | None, sparse: bool = False) -> Anchors:
    clamps = [2, 3, 5][int(rng.integers(3))]
    other = [n for n in CABLE_COLORS if n != clamps][int(rng.integers(2))]
    gap = 0.35 if defect == "cable_too_short" else rng.uniform(0.85, 1.0)
    cy = 0.5 + rng.uniform(-0.05, 0.05)
    centers = (1.0 - gap / 2 - 0.1, 1.0 + gap / 2 + 0.1)
    counts = (clamps, other if defect == "wrong_connector_type" else clamps)
    level = int(rng.integers(clamps))
    levels = (level, (level + 1 + int(rng.integers(clamps - 1))) % clamps if defect == "wrong_location" else level)
    missing = int(rng.integers(2)) if defect == "missing_connector" else -1
    lever = (int(rng.integers(2)), int(rng.integers(clamps))) if defect == "open_lever" else (-1, -1)
    ends = []
    anchors: Anchors = {"connector": [], "cable": []}
    for side in range(2):
        n = min(counts[side], 5)
        mark = defect if (defect == "wrong_connector_type" and side == 1) or side == missing else None
        y_ports = _connector(rng, c, centers[side], cy, n, side, mark, draw=side != missing,
                             open_lever=lever[1] if lever[0] == side else -1, defect=defect)
        ends.append((centers[side] + (0.1 if side == 0 else -0.1), y_ports[min(levels[side], n - 1)]))
        anchors["connector"].append((centers[side], cy, 0.08))
    if missing >= 0:
        loose = ends[missing]
        ends[missing] = (loose[0] + (-0.15 if missing == 0 else 0.15), loose[1] + rng.uniform(0.05, 0.2))
    color = CABLE_COLORS[other if defect == "wrong_cable_color" else clamps]
    cable_defects = ("cable_too_short", "wrong_location", "wrong_cable_color", "missing_cable")
    cable_mark = defect if defect in cable_defects else None
    path = _cable_path(rng, ends[0], ends[1])
    c.line(path, jitter(rng, color, 10), 0.045, mark=cable_mark, draw=defect != "missing_cable")
    anchors["cable"] = [path[len(path) // 2] + (0.04,)]
    c.facts["connectors"] = 2 - (missing >= 0)
    c.facts["cables"] = {"missing_cable": 0, "extra_cable": 2}.get(defect or "", 1)
    if defect == "extra_cable":
        start = (ends[0][0] + rng.uniform(0.05, 0.2), ends[0][1] + 0.25)
        c.line(_cable_path(rng, start, (start[0] + 0.5, start[1] - 0.05)), jitter(rng, color, 10), 0.045, mark=defect)
    return anchors


def _connector(rng: np.random.Generator, c: Canvas, x: float, y: float, n: int, side: int, mark: str | None,
               draw: bool, open_lever: int, defect: str | None) -> list[float]:
    height = 0.065 * n + 0.03
    top = y - height / 2
    c.rect(x - 0.1, top, x + 0.1, top + height, jitter(rng, (206, 206, 210), 6), mark=mark, draw=draw,
           outline=(150, 150, 156))
    ports = [top + 0.03 + 0.065 * (i + 0.5) for i in range(n)]
    outer = x - 0.1 if side == 0 else x + 0.1
    direction = -1 if side == 0 else 1
    for index, port in enumerate(ports):
        if index == open_lever:
            tip = (outer + direction * 0.05, port - 0.09)
            c.line([(outer, port), tip], (232, 132, 30), 0.03, mark=defect)
        else:
            c.rect(min(outer, outer + direction * 0.05), port - 0.018, max(outer, outer + direction * 0.05),
                   port + 0.018, jitter(rng, (232, 132, 30), 8), mark=mark, draw=draw)
    return ports


def _cable_path(rng: np.random.Generator, a: tuple, b: tuple, n: int = 16) -> list:
    """A sagging quadratic Bezier between the two ports."""
    ctrl = ((a[0] + b[0]) / 2 + rng.uniform(-0.08, 0.08), (a[1] + b[1]) / 2 + rng.uniform(-0.3, 0.3))
    points = []
    for i in range(n + 1):
        t = i / n
        points.append(((1 - t) ** 2 * a[0] + 2 * (1 - t) * t * ctrl[0] + t * t * b[0],
                       (1 - t) ** 2 * a[1] + 2 * (1 - t) * t * ctrl[1] + t * t * b[1]))
    return points
