"""Reading a completion: the format rule and the answer it gives.

The format rule (``format_ok``), decided once and tested edge by edge:

* the completion is ``<think>T</think><answer>A</answer>``; whitespace is allowed before, between
  and after the two blocks, and nowhere else outside them (any other text outside the tags fails);
* tags are lower case exactly as written (``<THINK>`` fails) and appear exactly once each, in that
  order; a tag inside either block (nesting or repetition) fails;
* ``T`` and ``A`` must each contain something other than whitespace (an empty think fails).

The answer (``extract_answer``) is read from the single ``<answer>`` block, even when the format
is otherwise wrong; no block, two blocks, or text naming no class or more than one class gives
``None``, which scores as wrong. Accepted spellings are in ``CLASS_PATTERNS`` and the option
letters of the policy prompt (``A`` good, ``B`` structural, ``C`` logical).

An MMAD multiple-choice reply (``option_letter``) is read with MMAD's own pattern, a capital
``A``-``E`` standing alone, in the single ``<answer>`` block when there is one and in the whole
reply otherwise. A reply naming no letter or two different ones gives ``None``: it is counted as
unparsed, never matched to the nearest option as MMAD's scripts do.
"""

from __future__ import annotations

import re

from fadtq.prompts import CLASS_NAMES, OPTION_LETTERS

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_FORMAT = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)

CLASS_PATTERNS: dict[str, re.Pattern[str]] = {
    "good": re.compile(
        r"\b(good|normal|ok|okay|no anomal(y|ies)|no defects?|non[- ]?anomalous|"
        r"defect[- ]free|anomaly[- ]free|flawless)\b"
    ),
    "structural": re.compile(r"\bstructur(e|al|ally)\b"),
    "logical": re.compile(r"\blogic(al|ally)?\b"),
}
# "not good", "is not normal": an anomaly of no stated kind, so no class at all.
NEGATED_GOOD = re.compile(r"\b(not|isn't|never)\s+(a\s+|an\s+)?(good|normal|ok|okay|defect[- ]free|anomaly[- ]free|flawless)\b")
LETTER_TO_CLASS = dict(zip((l.lower() for l in OPTION_LETTERS), CLASS_NAMES))
_LETTER_ONLY = re.compile(r"^(?:option\s+)?\(?([a-z])\)?[.):]?$")
_LETTER_PREFIX = re.compile(r"^(?:option\s+)?\(?([a-z])\)?[.):]\s+(.+)$")
MMAD_LETTER = re.compile(r"\b([A-E])\b")


def format_ok(completion: str) -> bool:
    match = _FORMAT.fullmatch(completion)
    if match is None:
        return False
    think, answer = match.group(1), match.group(2)
    if any(tag in think or tag in answer for tag in TAGS):
        return False
    return bool(think.strip()) and bool(answer.strip())


def answer_text(completion: str) -> str | None:
    """The text of the single ``<answer>`` block, or ``None`` when there is not exactly one."""
    blocks = _ANSWER_BLOCK.findall(completion)
    return blocks[0] if len(blocks) == 1 else None


def think_text(completion: str) -> str | None:
    """The text of the first ``<think>`` block, or ``None``."""
    match = _THINK_BLOCK.search(completion)
    return match.group(1) if match else None


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def classes_named(text: str) -> set[str]:
    text = NEGATED_GOOD.sub(" ", text)
    return {name for name, pattern in CLASS_PATTERNS.items() if pattern.search(text)}


def parse_class(text: str) -> str | None:
    """Map an answer's text to one class name; ambiguous or unknown text gives ``None``."""
    text = _normalise(text)
    if match := _LETTER_ONLY.match(text):
        return LETTER_TO_CLASS.get(match.group(1))
    named = classes_named(text)
    if match := _LETTER_PREFIX.match(text):
        letter_class = LETTER_TO_CLASS.get(match.group(1))
        if letter_class is None:
            return None
        named = classes_named(match.group(2)) | {letter_class}
    return named.pop() if len(named) == 1 else None


def extract_answer(completion: str) -> str | None:
    text = answer_text(completion)
    return None if text is None else parse_class(text)


def option_letter(reply: str) -> str | None:
    """The one option letter (``A``-``E``) a multiple-choice reply gives, or ``None``."""
    text = answer_text(reply)
    letters = set(MMAD_LETTER.findall(reply if text is None else text))
    return letters.pop() if len(letters) == 1 else None
