"""MMAD's question file (Jiang et al., ICLR 2025): read, checked, and turned into one row per question.

The file is a JSON object keyed by an image's path relative to the dataset root; the first
segment names the source dataset (``MVTec-LOCO/breakfast_box/test/logical_anomalies/003.png``).
Each value holds ``conversation``, a list of ``{"Question", "Options": {letter: text}, "Answer":
letter, "type", "annotation"}``, and ``similar_templates`` and ``random_templates``, paths of
normal images of the same category (MMAD's also hold ``image_path`` and ``mask_path``, which no
evaluation reads). A question is asked about the image with one normal template as the
reference, chosen as MMAD's scripts choose it (``--template``): the first of ``random_templates``
(MMAD's default and its published 1-shot results), the first of ``similar_templates`` (MMAD's
``--similar_template``), or none (0-shot).

Everything is checked before any model loads: a missing field, an answer that is not one of its
options, an image that is not under the root each fail with one line naming the key and field.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from fadtq.errors import FadtqError
from fadtq.files import read_json

LETTERS = ("A", "B", "C", "D", "E")  # MMAD's answer pattern reads these
TEMPLATE_FIELDS = ("similar_templates", "random_templates")
# --template: the list whose first image is the reference; "none" asks with no reference (0-shot).
TEMPLATE_CHOICES = {"random": "random_templates", "similar": "similar_templates", "none": None}
# MMAD's summary merges these two into "Object Analysis" (evaluation/examples/helper/summary.py).
MERGED_TYPES = {"Object Structure": "Object Analysis", "Object Details": "Object Analysis"}
# Columns of MMAD's summary, in its paper's order; a type not listed follows, alphabetically.
SUMMARY_TYPES = ("Anomaly Detection", "Defect Classification", "Defect Localization", "Defect Description",
                 "Defect Analysis", "Object Classification", "Object Analysis")
NORMAL_FOLDER = "good"


def summary_type(question_type: str) -> str:
    return MERGED_TYPES.get(question_type, question_type)


def is_normal(key: str) -> bool:
    """An image of a ``good`` folder: MMAD splits Anomaly Detection's accuracy by it. (MMAD's
    ``summary.py`` asks whether ``good`` occurs anywhere in the path; the two differ only for a
    path with ``good`` inside another name, such as ``bad/goods_03.png``.)"""
    return NORMAL_FOLDER in PurePosixPath(key).parts


class _Entry:
    """Checks of one key's value; every error names the file, the key and the field."""

    def __init__(self, path: Path, key: str, value: object) -> None:
        self.where = f"{path}: {key!r}"
        if not isinstance(value, dict):
            raise self.error("", f"expected an object, got {type(value).__name__}")
        self.key = key
        self.value = value

    def error(self, field: str, detail: str) -> FadtqError:
        return FadtqError(f"{self.where}: {field + ': ' if field else ''}{detail}")

    def field(self, name: str, expected: type, what: str) -> object:
        if name not in self.value:
            raise self.error(name, f"missing (expected {what})")
        if not isinstance(self.value[name], expected):
            raise self.error(name, f"expected {what}, got {self.value[name]!r}")
        return self.value[name]

    def template(self, choice: str) -> str | None:
        """The reference of ``--template choice``: the first of its list (both lists are checked)."""
        lists = {name: self.field(name, list, "a list of image paths") for name in TEMPLATE_FIELDS}
        for name, paths in lists.items():
            for i, item in enumerate(paths):
                if not isinstance(item, str) or not item:
                    raise self.error(f"{name}[{i}]", f"expected an image path, got {item!r}")
        field = TEMPLATE_CHOICES[choice]
        if field is None:
            return None
        if not lists[field]:
            raise self.error(field, f"empty (--template {choice} asks with its first image; choose another "
                                    "--template)")
        return lists[field][0]

    def question(self, index: int, item: object) -> dict:
        field = f"conversation[{index}]"
        if not isinstance(item, dict):
            raise self.error(field, f"expected an object, got {type(item).__name__}")
        for name in ("Question", "Answer", "type"):
            if not isinstance(item.get(name), str) or not item[name].strip():
                raise self.error(f"{field}.{name}", f"expected a non-empty string, got {item.get(name)!r}")
        options = item.get("Options")
        if not isinstance(options, dict) or not options:
            raise self.error(f"{field}.Options", f"expected an object of letter -> text, got {options!r}")
        for letter, text in options.items():
            if letter not in LETTERS or not isinstance(text, str):
                raise self.error(f"{field}.Options", f"expected letters A-E with text, got {letter!r}: {text!r}")
        if item["Answer"] not in options:
            raise self.error(f"{field}.Answer", f"{item['Answer']!r} is not one of the options {', '.join(options)}")
        return item


def _relative(entry: _Entry, field: str, relative: str, root: Path) -> Path:
    """``root / relative``, which must be a file inside ``root``."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise entry.error(field, f"{relative!r}: expected a path relative to --root")
    path = root / relative
    if not path.is_file():
        raise entry.error(field, f"{path} not found (is --root {root} the folder that holds {parts[0]}/?)")
    return path


def check_template(choice: str) -> None:
    if choice not in TEMPLATE_CHOICES:
        raise FadtqError(f"--template {choice}: expected one of {', '.join(TEMPLATE_CHOICES)}")


def read_mmad(path: str | Path, root: str | Path | None, template: str = "random") -> list[dict]:
    """The questions of an MMAD file, one row each, in file order.

    A row: ``id`` (``<key>#<question index>``), ``image`` (the key), ``dataset`` (its first
    segment), ``category`` (its second, below the dataset), ``index`` (the question's place in its
    conversation), ``type``, ``question``, ``options``, ``answer``, ``normal``, ``ref_image`` (the
    reference of ``template``; None for ``none``) and ``test_image`` (the key again), paths
    relative to ``root``. Every image asked with must be a file under ``root``; with no ``root``
    (scoring answers made elsewhere) no image is looked at."""
    check_template(template)
    path = Path(path)
    root = None if root is None else Path(root)
    if root is not None and not root.is_dir():
        raise FadtqError(f"--root {root}: not a folder (expected the folder that holds the MMAD file's images)")
    data = read_json(path, what="an MMAD question file (a JSON object keyed by image path)")
    if not data:
        raise FadtqError(f"{path}: no questions (expected a JSON object keyed by image path)")
    rows = []
    for key, value in data.items():
        entry = _Entry(path, key, value)
        conversation = entry.field("conversation", list, "a list of questions")
        if not conversation:
            raise entry.error("conversation", "empty (expected a list of questions)")
        questions = [entry.question(i, item) for i, item in enumerate(conversation)]
        reference = entry.template(template)
        if root is not None:
            _relative(entry, "image", key, root)
            if reference is not None:
                _relative(entry, f"{TEMPLATE_CHOICES[template]}[0]", reference, root)
        rows += [_row(key, i, q, reference) for i, q in enumerate(questions)]
    return rows


def _row(key: str, index: int, question: dict, template: str | None) -> dict:
    parts = PurePosixPath(key).parts
    return {
        "id": f"{key}#{index}", "image": key, "dataset": parts[0], "category": parts[1] if len(parts) > 2 else "",
        "index": index, "type": question["type"],
        "question": question["Question"], "options": dict(question["Options"]), "answer": question["Answer"],
        "normal": is_normal(key), "ref_image": template, "test_image": key,
    }
