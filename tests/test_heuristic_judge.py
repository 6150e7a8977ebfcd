"""The heuristic judge: its documented rules, checked with expected scores computed by hand.

Rules (plugins/judge_heuristic.py docstring): conciseness starts at 3 and loses one point each for
> 60 words, > 120 words, rate of trigrams used a third time > .15, > .4, filler share > .05; empty -> 0.
Relevance earns one point each for: mentions both images; a comparison word plus an object word;
implied class == answered class (a cue right after no, not, without or never does not count).
A contradicting implied class caps relevance at 1, and so does
low diversity (>= 10 words with distinct/total < .45).
"""

from __future__ import annotations

import pytest

from fadtq.api import JudgeItem, Verdict
from fadtq.errors import FadtqError
from fadtq.plugin_manager import default_plugins
from fadtq.prompts import PromptLibrary
from fadtq_plugins import judge_heuristic as h

GROUNDED = "The reference image shows four pins; the test image has only three, so one pin is missing."
STUFFED = "reference test missing count pin " * 8


def judge():
    return default_plugins().judges.get("heuristic").build({}, PromptLibrary())


def distinct_words(n: int) -> str:
    """n distinct tokens (w0 .. w{n-1}): no repeated trigram, no filler, no cue words."""
    return " ".join(f"w{i}" for i in range(n))


def test_deterministic():
    items = [JudgeItem("Q", GROUNDED, "logical"), JudgeItem("Q", STUFFED, "logical"), JudgeItem("Q", "", "good")]
    first = judge().judge(items)
    second = judge().judge(list(items))
    third = judge().judge(items[::-1])[::-1]
    assert first == second == third
    assert all(isinstance(v, Verdict) and v.ok for v in first)


def test_grounded_reasoning_scores_full():
    # 17 words, no repeated trigram, no filler -> conciseness 3
    # reference+test -> 1; "only"/"missing" with "pin"/"pins" -> 1; cues {missing} -> logical == answer -> 1
    assert judge().judge([JudgeItem("Q", GROUNDED, "logical")]) == [Verdict(3, 3)]


def test_keyword_stuffing_scores_strictly_lower_on_both():
    stuffed, grounded = judge().judge([JudgeItem("Q", STUFFED, "logical"), JudgeItem("Q", GROUNDED, "logical")])
    assert stuffed.conciseness < grounded.conciseness
    assert stuffed.relevance < grounded.relevance
    # by hand: 40 words, 38 trigrams, 5 distinct -> rate 1 - 5/38 = .868 > .4 -> -2 -> conciseness 1
    # relevance would be 3 but 5 distinct / 40 words = .125 < .45 -> capped at 1
    assert (stuffed.conciseness, stuffed.relevance) == (1, 1)


@pytest.mark.parametrize("repeat", [3, 8, 20])
def test_stuffing_never_pays_at_any_length(repeat):
    text = "reference test image compared missing count pin screw " * repeat
    (v,) = judge().judge([JudgeItem("Q", text, "logical")])
    assert v.relevance <= 1 and v.conciseness <= 1


@pytest.mark.parametrize(
    "text, expected",
    [
        (distinct_words(60), 3),  # exactly 60 words: not > 60 -> no penalty
        (distinct_words(61), 2),  # > 60 -> -1
        (distinct_words(120), 2),  # not > 120
        (distinct_words(121), 1),  # > 60 and > 120 -> -2
        # 20 distinct + "hmm" + "basically": 22 words, filler 2/22 = .091 > .05 -> -1
        (distinct_words(20) + " hmm basically", 2),
        # 61 distinct + 4 fillers: 65 words (> 60: -1), filler 4/65 = .0615 > .05 (-1) -> 1
        ("hmm well " + distinct_words(61) + " basically actually", 1),
        # 121 distinct + "let me think" (3 words) + "you know" (2) + "um" + "uh": 128 words;
        # > 60, > 120 (-2); filler 7/128 = .0547 > .05 (-1) -> 0
        ("let me think " + distinct_words(121) + " you know um uh", 0),
        # 19 distinct + "well": 20 words, filler 1/20 = .05, not > .05 -> no penalty
        (distinct_words(19) + " well", 3),
        # w0..w9 twice: every trigram used at most twice -> rate 0 -> 3
        (distinct_words(10) + " " + distinct_words(10), 3),
        # w0..w23, then w0..w7 twice: 40 words, 38 trigrams; the last copy's 6 internal trigrams are
        # third uses -> rate 6/38 = .158 > .15 (-1), not > .4 -> 2 (24 distinct / 40: not padded)
        (distinct_words(24) + " " + distinct_words(8) + " " + distinct_words(8), 2),
        # w0..w9 four times: 40 words, 38 trigrams; copies 3 and 4 (8 internal each) and the third
        # boundary (2) are third uses -> 18/38 = .47 > .4 (-2) -> 1; also padded (10 distinct / 40)
        (" ".join([distinct_words(10)] * 4), 1),
        # 4 words: fewer than TERSE_WORDS (5) -> at most 1; 5 words -> no cap
        (distinct_words(4), 1),
        (distinct_words(5), 3),
    ],
)
def test_conciseness_rules(text, expected):
    assert h.conciseness(text) == expected


def test_long_rambling_with_filler_loses_points():
    # natural-looking ramble: 7 filler sentences + the grounded sentence
    ramble = ("Hmm, well, let me think about this. Basically, I think I should look at the images. "
              "Well, let me see. Actually, hmm, I think so. ") * 3 + GROUNDED
    words = h.words_of(ramble)
    # one copy of the filler block: "hmm well let me think about this" (7) "basically i think i should
    # look at the images" (9) "well let me see" (4) "actually hmm i think so" (5) = 25 words;
    # x3 = 75, + 17 grounded = 92 words
    assert len(words) == 92
    # > 60 -> -1; not > 120.
    # 90 trigrams; a trigram counts as repeated from its third use. Copy 1 has 23 internal trigrams
    # ("well let me" twice: free); the copy boundaries add "think so hmm" and "so hmm well" twice
    # each (free). Copy 2 repeats copy 1 (second uses, free) except "well let me", at its third and
    # fourth use (2); copy 3's 23 trigrams are all third uses (23). -> 25 / 90 = .278 > .15 -> -1
    assert h.repetition_rate(words) == pytest.approx(25 / 90)
    # fillers per copy: hmm x2, well x2, "let me think" (3), basically, "i think" x2 (4), "let me see" (3),
    # actually -> 2+2+3+1+4+3+1 = 16 words; x3 = 48 of 92 -> .52 > .05 -> -1
    assert h.filler_share(ramble, len(words)) == pytest.approx(48 / 92)
    # 3 - 1 - 1 - 1 = 0
    assert h.conciseness(ramble) == 0
    (v,) = judge().judge([JudgeItem("Q", ramble, "logical")])
    assert v.conciseness == 0 < h.conciseness(GROUNDED)


def test_parallel_description_of_both_images_is_not_repetition():
    # describing both images in the same words is a comparison: each trigram is used twice at most
    parallel = "reference: 3 fruits, toppings, cereals, no damage. test: 3 fruits, toppings, cereals, no damage."
    assert h.repetition_rate(h.words_of(parallel)) == 0.0
    assert h.conciseness(parallel) == 3
    # a loop uses its trigrams a third time: 15 words, 13 trigrams; the third "labels no damage",
    # "no damage labels" and "damage labels no" -> 3 / 13 = .23 > .15 -> conciseness 2
    loop = "reference: 4 small parts, no damage. labels, no damage. labels, no damage. labels, no damage."
    assert h.repetition_rate(h.words_of(loop)) == pytest.approx(3 / 13)
    assert h.conciseness(loop) == 2


@pytest.mark.parametrize("answer", ["good", "structural", "A", "B. structural"])
def test_implied_class_contradicting_answer_caps_relevance(answer):
    # GROUNDED implies logical (cue "missing"); it earns 2 points before the class check
    assert h.implied_class(set(h.words_of(GROUNDED))) == "logical"
    assert h.relevance(GROUNDED, answer) == 1


def test_implied_class_matching_answer_by_letter():
    assert h.relevance(GROUNDED, "C") == 3


def test_no_implied_class_no_cap():
    # both images + comparison/object, but no class cue: 2, no contradiction cap
    text = "The reference image and the test image differ in the position of the label."
    assert h.implied_class(set(h.words_of(text))) is None
    assert h.relevance(text, "good") == 2


def test_tie_between_classes_implies_nothing():
    # "scratch" (structural) and "missing" (logical): one cue each -> tie -> None
    assert h.implied_class({"scratch", "missing"}) is None


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "...", "!!!"])
def test_empty_reasoning(text):
    assert h.conciseness(text) == 0
    assert h.relevance(text, "good") == 0


def test_unrelated_text_scores_zero_relevance():
    assert h.relevance("The weather today is sunny and warm with a light breeze.", "good") == 0


def test_factory_rejects_options():
    factory = default_plugins().judges.get("heuristic")
    with pytest.raises(FadtqError) as info:
        factory.build({"temperature": 0.0}, PromptLibrary())
    assert str(info.value).startswith("judge.options:")
    assert "temperature" in str(info.value)


def test_a_negated_cue_is_no_evidence():
    # "no damage": no structural cue; both images named -> 1; "damage at" asserts it -> +1 for structural
    negated = "reference: 6 pins, no damage. test: 5 pins, no damage."
    assert h.relevance(negated, "good") == 1 and h.relevance(negated, "structural") == 1
    asserted = "reference: 6 pins, no damage. test: 6 pins, damage at the top left."
    assert h.relevance(asserted, "structural") == 2
    assert h.relevance(asserted, "logical") == 1
