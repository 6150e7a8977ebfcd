"""MMAD's own answer files (``result/answers_<k>_shot_<model>.json`` of its query scripts), scored here.

Such a file is a JSON list of records ``{"image", "question", "question_type", "correct_answer",
"gpt_answer"}``, an image's questions one after another in the order of its conversation, with
``correct_answer`` in MMAD's re-lettering (:func:`fadtq.evaluation.mmad_protocol.relettered`) and
``gpt_answer`` the letter MMAD's reader took (or, where it found none, what it kept of the reply).
Each record is matched to its question in the MMAD file: the n-th record about an image is the
image's n-th question, and its type, question text and correct answer must agree with the file,
so that a file of another MMAD version or of shuffled answers fails with one line naming the
record and the field. Questions with no record are counted (MMAD's scripts skip an image whose
requests failed); an image answered twice is refused.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from fadtq.errors import FadtqError
from fadtq.evaluation.mmad_scores import answer_record
from fadtq.files import read_json

FIELDS = ("image", "question_type", "correct_answer", "gpt_answer")


def read_answers(path: Path, rows: list[dict]) -> tuple[list[dict], int]:
    """(records of the answer file ``path`` about the re-lettered ``rows``, questions left unanswered)."""
    data = read_json(path, expected=list, what="a list of MMAD answer records")
    questions: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        questions[row["image"]].append(row)
    taken: Counter[str] = Counter()
    records = []
    for number, item in enumerate(data):
        where = f"{path}: record {number}"
        if not isinstance(item, dict):
            raise FadtqError(f"{where}: expected an object, got {type(item).__name__}")
        for name in FIELDS:
            if not isinstance(item.get(name), str):
                raise FadtqError(f"{where}: {name}: expected a string, got {item.get(name)!r}")
        image = item["image"]
        if image not in questions:
            raise FadtqError(f"{where}: image: {image!r} is not a key of the MMAD file")
        if taken[image] == len(questions[image]):
            raise FadtqError(f"{where}: image: {image!r} has {len(questions[image])} questions, all answered "
                             "already (an image answered twice?)")
        row = questions[image][taken[image]]
        taken[image] += 1
        _check(item, row, where)
        records.append(answer_record(row, item["gpt_answer"]))
    return records, len(rows) - len(records)


def _check(item: dict, row: dict, where: str) -> None:
    """The record answers ``row``: same type, question and correct answer (re-lettered)."""
    question = item.get("question")
    text = question.get("text") if isinstance(question, dict) else question
    if not isinstance(text, str) or row["question"] not in text:
        raise FadtqError(f"{where}: question: expected the text of question {row['index'] + 1} about the image, "
                         f"{row['question']!r}; got {question!r}")
    if item["question_type"] != row["type"]:
        raise FadtqError(f"{where}: question_type: {item['question_type']!r}, but question {row['index'] + 1} "
                         f"about the image is of type {row['type']!r}")
    if item["correct_answer"] != row["answer"]:
        raise FadtqError(f"{where}: correct_answer: {item['correct_answer']!r}, but the MMAD file's answer, "
                         f"re-lettered as MMAD asks, is {row['answer']!r}")
