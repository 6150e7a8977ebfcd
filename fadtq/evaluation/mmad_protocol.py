"""MMAD's own protocol (``--protocol mmad``): a question asked, and its reply read, as MMAD's scripts do.

Facts read from github jam-cc/MMAD (``evaluation/examples``), reproduced here in this project's
own code:

* **The request** (``Transformers/qwen2_5_vl_query.py``, the questions built by
  ``GPT4/gpt4v.py``'s ``parse_conversation``): one user message of parts: the inspector
  instruction; "Answer with the option's letter from the given choices directly! "; with a
  template, "Following is/are 1 image of normal sample, ..." and the template image; "Following is
  the query image: " and the image asked about; "Following is the question list: "; then the one
  question, ``Question <its place in the conversation>: <question> \\n`` and a line ``<letter>.
  <text>`` per option. One question per request, no history.
* **Re-lettering**: the options are lettered A, B, C, ... in the file's order, and the answer
  follows its option (``{"A": .., "C": ..}`` is asked as A and B).
* **The reply** (``parse_answer``): the last capital A-E standing alone; with none, the option
  whose text ``difflib.get_close_matches`` finds closest to the whole reply, with no cutoff, so
  every reply gives a letter. The reply is read whole (a ``<think>`` block too).

The words are MMAD's, with their spacing, so they live here rather than in ``prompts/``: a
template there is meant to be tuned, and rendering it strips the spacing.
"""

from __future__ import annotations

import difflib

from fadtq.answer import MMAD_LETTER
from fadtq.data.mmad_file import LETTERS

# GPT4/gpt4v.py's ``instruction``, which every shipped query script imports.
INSTRUCTION = ("\nYou are an industrial inspector who checks products by images. You should judge whether there is "
               "a defect in the query image and answer the questions about it.\nAnswer with the option's letter "
               "from the given choices directly.\n")
DIRECTLY = "Answer with the option's letter from the given choices directly! "
TEMPLATE_INTRO = ("Following is/are 1 image of normal sample, which can be used as a template to compare the image "
                  "being queried.")
QUERY_INTRO = "Following is the query image: "
QUESTIONS_INTRO = "Following is the question list: "
READ_LETTER, READ_OPTION_TEXT = "letter", "option text"  # how a reply's answer was read


def relettered(row: dict) -> dict:
    """``row`` with its options lettered A, B, C, ... in order and its answer moved with them."""
    letters = dict(zip(row["options"], LETTERS, strict=False))
    options = {letters[old]: text for old, text in row["options"].items()}
    return {**row, "options": options, "answer": letters[row["answer"]]}


def question_text(row: dict) -> str:
    """The question part of the request, numbered by its place in the image's conversation."""
    options = "".join(f"{letter}. {text}\n" for letter, text in row["options"].items())
    return f"Question {row['index'] + 1}: {row['question']} \n{options}"


def messages(row: dict) -> list[dict]:
    """The request about a (re-lettered) row in the Hugging Face multimodal format; an image part
    is the template (when the row has one), then the image asked about."""
    template = [{"type": "text", "text": TEMPLATE_INTRO}, {"type": "image"}] if row["ref_image"] else []
    content = [
        {"type": "text", "text": INSTRUCTION}, {"type": "text", "text": DIRECTLY}, *template,
        {"type": "text", "text": QUERY_INTRO}, {"type": "image"},
        {"type": "text", "text": QUESTIONS_INTRO}, {"type": "text", "text": question_text(row)},
    ]
    return [{"role": "user", "content": content}]


def read_reply(reply: str, options: dict[str, str]) -> tuple[str | None, str | None]:
    """(letter, how it was read) of a reply to a question with ``options``: the last standalone
    A-E (so "B. A scratch" reads A, as in MMAD), else the option whose text is closest to the reply."""
    letters = MMAD_LETTER.findall(reply)
    if letters:
        return letters[-1], READ_LETTER
    closest = difflib.get_close_matches(reply, list(options.values()), n=1, cutoff=0.0)
    if not closest:
        return None, None
    return next(letter for letter, text in options.items() if text == closest[0]), READ_OPTION_TEXT
