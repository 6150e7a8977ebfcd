"""The format rule (``fadtq.answer.format_ok``) and answer extraction, edge by edge.

The rule under test is the one written in ``fadtq/answer.py``'s docstring: exactly one
``<think>T</think>`` followed by exactly one ``<answer>A</answer>``, lower-case tags, whitespace
(and nothing else) allowed before, between and after the blocks, no tag inside either block, and
both T and A containing something other than whitespace.
"""

from __future__ import annotations

import pytest

from fadtq.answer import answer_text, extract_answer, format_ok, parse_class, think_text

GOOD = "<think>The test image matches the reference.</think><answer>good</answer>"


# --------------------------------------------------------------------------------------------
# format_ok: cases that must pass
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "completion",
    [
        GOOD,
        # whitespace before, between and after the blocks (spaces, tabs, newlines)
        "   " + GOOD,
        "\n\n" + GOOD,
        GOOD + "\n",
        GOOD + " \t\n ",
        "<think>x</think> <answer>good</answer>",
        "<think>x</think>\n<answer>good</answer>",
        "<think>x</think>\n\n\t <answer>good</answer>",
        " \n<think>x</think>\n\n<answer>good</answer>\n ",
        # whitespace inside the blocks around real content is fine
        "<think>\n  step one\n  step two\n</think><answer> logical </answer>",
        # multi-line think with characters that look like markup but are not the four tags
        "<think>a < b and c > d; <b>bold</b></think><answer>structural</answer>",
    ],
)
def test_format_ok_accepts(completion):
    assert format_ok(completion) is True


# --------------------------------------------------------------------------------------------
# format_ok: cases that must fail
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "completion",
    [
        # text before, between, after the blocks
        "Sure! " + GOOD,
        "x<think>x</think><answer>good</answer>",
        "<think>x</think> so <answer>good</answer>",
        "<think>x</think>.<answer>good</answer>",
        GOOD + " Done.",
        GOOD + ".",
        # repeated tags / blocks
        "<think>a</think><think>b</think><answer>good</answer>",
        "<think>a</think><answer>good</answer><answer>good</answer>",
        "<think>a</think><answer>good</answer><think>b</think>",
        "<think>a</think><answer>good</answer></answer>",
        "<think><think>a</think><answer>good</answer>",
        # nested tags
        "<think>x<think>y</think></think><answer>good</answer>",
        "<think>x <answer>good</answer></think><answer>good</answer>",
        "<think>x</think><answer><answer>good</answer></answer>",
        "<think>x</think><answer>good <think>y</think></answer>",
        # empty or whitespace-only think
        "<think></think><answer>good</answer>",
        "<think> </think><answer>good</answer>",
        "<think>\n\t \n</think><answer>good</answer>",
        # empty or whitespace-only answer
        "<think>x</think><answer></answer>",
        "<think>x</think><answer>  \n</answer>",
        # letter case of the tags
        "<THINK>x</THINK><ANSWER>good</ANSWER>",
        "<Think>x</Think><Answer>good</Answer>",
        "<think>x</THINK><answer>good</answer>",
        "<think>x</think><answer>good</Answer>",
        # reversed order
        "<answer>good</answer><think>x</think>",
        # missing blocks / missing closing tags
        "<think>x</think>",
        "<answer>good</answer>",
        "<think>x<answer>good</answer>",
        "<think>x</think><answer>good",
        "<think>x</think><answer>good</answer",
        "good",
        "",
        "   \n",
        # spaces inside the tags themselves are not the tags
        "< think>x</think><answer>good</answer>",
        "<think >x</think><answer>good</answer>",
    ],
)
def test_format_ok_rejects(completion):
    assert format_ok(completion) is False


# --------------------------------------------------------------------------------------------
# answer_text / think_text
# --------------------------------------------------------------------------------------------

def test_answer_text_is_the_single_block_verbatim():
    assert answer_text("<think>x</think><answer> Logical \n</answer>") == " Logical \n"


@pytest.mark.parametrize(
    "completion",
    [
        "<think>x</think>",  # no block
        "<think>x</think><answer>good</answer><answer>good</answer>",  # two blocks, even if equal
        "<think>x</think><answer>good",  # unclosed
    ],
)
def test_answer_text_none_unless_exactly_one_block(completion):
    assert answer_text(completion) is None


def test_think_text_reads_first_block():
    assert think_text("<think>first</think><answer>good</answer>") == "first"
    assert think_text("<answer>good</answer>") is None


# --------------------------------------------------------------------------------------------
# parse_class: spellings a model produces
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        # good
        ("good", "good"),
        ("Good", "good"),
        ("normal", "good"),
        ("Normal.", "good"),
        ("no anomaly", "good"),
        ("No anomalies.", "good"),
        ("no defects", "good"),
        ("defect-free", "good"),
        # structural
        ("structural", "structural"),
        ("Structural anomaly", "structural"),
        ("structurally anomalous", "structural"),
        ("STRUCTURAL", "structural"),
        # logical
        ("logical", "logical"),
        ("Logical", "logical"),
        ("LOGICAL ANOMALY", "logical"),
        ("logical anomaly.", "logical"),
        # option letters of the policy prompt: A good, B structural, C logical
        ("A", "good"),
        ("(B)", "structural"),
        ("C.", "logical"),
        ("c", "logical"),
        ("B)", "structural"),
        ("option A", "good"),
        ("Option C.", "logical"),
        # letter plus the matching name
        ("A. good", "good"),
        ("B. structural anomaly", "structural"),
        ("(C) logical", "logical"),
        # whitespace and newlines around the answer
        ("\n  logical \n", "logical"),
    ],
)
def test_parse_class_spellings(text, expected):
    assert parse_class(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "A. logical",  # letter says good, word says logical: a contradiction
        "B. good",  # letter says structural, word says good
        "good or logical",  # two classes
        "structural and logical anomaly",
        "normal or structural",
        "D",  # not an offered option
        "option E",
        "",
        "   ",
        "anomalous",  # names no class
        "yes",
        "I don't know",
    ],
)
def test_parse_class_ambiguous_or_unknown_is_none(text):
    assert parse_class(text) is None


@pytest.mark.parametrize("text", ["abnormal", "anomalous", "defective"])
def test_parse_class_abnormal_is_never_good(text):
    assert parse_class(text) != "good"


# Regression test (fixed bug in fadtq/answer.py, CLASS_PATTERNS["good"] / parse_class): a negated class word is read as
# that class. parse_class("not good") and parse_class("not normal") return "good", so the
# accuracy reward pays a "not good" answer on a good image (and scores it wrong on an anomalous
# one). Expected: anything but "good" (None, as for other text naming no single class).
@pytest.mark.parametrize("text", ["not good", "not normal", "Not OK"])
def test_parse_class_negated_good_is_not_good(text):
    assert parse_class(text) != "good"


# --------------------------------------------------------------------------------------------
# extract_answer: the answer block of a whole completion
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "completion, expected",
    [
        (GOOD, "good"),
        ("<think>x</think><answer>Structural anomaly</answer>", "structural"),
        ("<think>x</think>\n<answer>\nC.\n</answer>", "logical"),
        # the answer is read even when the format is otherwise wrong (format is scored separately)
        ("Sure. <think>x</think> ok <answer>logical</answer> bye", "logical"),
        ("<answer>B</answer>", "structural"),
        ("<THINK>x</THINK><answer>good</answer>", "good"),
        # no answer block, two answer blocks, empty block, upper-case answer tag, unclosed
        ("<think>x</think>", None),
        ("<think>x</think>good", None),
        ("<think>x</think><answer>good</answer><answer>good</answer>", None),
        ("<think>x</think><answer>good</answer><answer>logical</answer>", None),
        ("<think>x</think><answer></answer>", None),
        ("<think>x</think><ANSWER>good</ANSWER>", None),
        ("<think>x</think><answer>good", None),
        # contradictions inside the block
        ("<think>x</think><answer>A. logical</answer>", None),
        ("<think>x</think><answer>good or logical</answer>", None),
    ],
)
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected
