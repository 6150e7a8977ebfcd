"""``heuristic``: a judge that needs no model, the embedded default. Deterministic.

Conciseness (0-3) starts at 3 and loses a point for each of:
  * more than ``LONG_WORDS`` words, and another beyond ``VERY_LONG_WORDS``;
  * a repetition rate (share of word trigrams seen twice before) above ``REPEAT_SOME``, and another
    above ``REPEAT_MUCH``;
  * filler phrases making up more than ``FILLER_SHARE`` of the words.
A reasoning of fewer than ``TERSE_WORDS`` words scores at most 1: too terse to be clear (without
this rule RL collapsed the reasoning to one word, which scored full conciseness). An empty
reasoning scores 0.

Relevance (0-3) earns a point for each of:
  * it speaks of both images (the reference and the test image);
  * it names what differs or matches: a comparison word together with an object or attribute;
  * the class its evidence implies (cue words for good, structural, logical; each distinct cue
    counts once; a cue right after "no", "not", "without" or "never" is negated and does not
    count: "no damage" is no evidence of damage) is the class of the final answer. Evidence
    implying another class caps the score at 1.
Keyword stuffing does not pay: with ten or more words and fewer than ``MIN_DIVERSITY`` distinct
words per word, relevance and conciseness are capped at 1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fadtq.answer import parse_class
from fadtq.api import JudgeFactory, JudgeItem, Verdict, hookimpl
from fadtq.errors import ConfigError

LONG_WORDS = 60
VERY_LONG_WORDS = 120
REPEAT_SOME = 0.15
REPEAT_MUCH = 0.4
FILLER_SHARE = 0.05
MIN_DIVERSITY = 0.45
TERSE_WORDS = 5

FILLERS = ("hmm", "um", "uh", "well", "basically", "actually", "let me think", "let me see", "i think",
           "you know", "okay so", "wait", "to be honest", "kind of", "sort of", "in other words")
REFERENCE_WORDS = {"reference", "ref", "template", "first"}
TEST_WORDS = {"test", "query", "second", "inspected"}
COMPARISON_WORDS = {"differ", "differs", "different", "difference", "missing", "extra", "compared", "same",
                    "matches", "match", "identical", "unlike", "whereas", "instead", "fewer", "more", "absent",
                    "additional", "only", "both", "while", "but", "than", "consistent", "shifted", "swapped"}
OBJECT_WORDS = {"count", "number", "position", "place", "colour", "color", "label", "labels", "pin", "pins",
                "screw", "screws", "nut", "nuts", "washer", "washers", "cable", "cables", "connector",
                "connectors", "fruit", "fruits", "tangerine", "tangerines", "nectarine", "bottle", "fill",
                "level", "liquid", "compartment", "compartments", "surface", "part", "parts", "box", "tray",
                "bag", "icon", "granola", "almonds", "length", "size", "shape", "object", "objects", "clamp"}
CLASS_CUES = {
    "good": {"identical", "same", "matches", "match", "intact", "normal", "consistent", "complete", "correct"},
    "structural": {"scratch", "scratched", "crack", "cracked", "broken", "damaged", "damage", "contamination",
                   "contaminated", "dent", "bent", "torn", "stain", "hole", "deformed", "defect", "dirt", "spot"},
    "logical": {"missing", "extra", "count", "swapped", "misplaced", "mismatch", "additional", "wrong",
                "too", "fewer", "absent", "instead", "pairing", "order"},
}
NEGATORS = {"no", "not", "without", "never"}
_WORD = re.compile(r"[a-z0-9']+")


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def repetition_rate(words: Sequence[str], n: int = 3) -> float:
    """The share of word ``n``-grams used for the third time or more. A second use is free: a
    comparison describes the reference and the test image in the same words ("reference: 6 pins,
    no damage. test: 6 pins, no damage."), which is parallel, not redundant."""
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    seen: dict[tuple[str, ...], int] = {}
    repeats = 0
    for gram in grams:
        seen[gram] = seen.get(gram, 0) + 1
        repeats += seen[gram] > 2
    return repeats / len(grams) if grams else 0.0


def filler_share(text: str, n_words: int) -> float:
    lowered = f" {' '.join(words_of(text))} "
    hits = sum(lowered.count(f" {phrase} ") * len(phrase.split()) for phrase in FILLERS)
    return hits / max(1, n_words)


def conciseness(reasoning: str) -> int:
    words = words_of(reasoning)
    if not words:
        return 0
    penalties = (len(words) > LONG_WORDS) + (len(words) > VERY_LONG_WORDS)
    rate = repetition_rate(words)
    penalties += (rate > REPEAT_SOME) + (rate > REPEAT_MUCH)
    penalties += filler_share(reasoning, len(words)) > FILLER_SHARE
    score = max(0, 3 - penalties)
    return min(score, 1) if len(words) < TERSE_WORDS or padded(words) else score


def padded(words: Sequence[str]) -> bool:
    """Ten or more words with fewer than ``MIN_DIVERSITY`` distinct words per word: keyword stuffing."""
    return len(words) >= 10 and len(set(words)) / len(words) < MIN_DIVERSITY


def implied_class(vocabulary: set[str]) -> str | None:
    """The class whose distinct cue words the reasoning uses most; ``None`` on a tie or no cue."""
    counts = {name: len(cues & vocabulary) for name, cues in CLASS_CUES.items()}
    best = max(counts.values())
    winners = [name for name, count in counts.items() if count == best]
    return winners[0] if best > 0 and len(winners) == 1 else None


def relevance(reasoning: str, answer: str) -> int:
    words = words_of(reasoning)
    vocabulary = set(words)
    score = int(bool(vocabulary & REFERENCE_WORDS) and bool(vocabulary & TEST_WORDS))
    score += int(bool(vocabulary & COMPARISON_WORDS) and bool(vocabulary & OBJECT_WORDS))
    asserted = {w for i, w in enumerate(words) if i == 0 or words[i - 1] not in NEGATORS}
    implied, answered = implied_class(asserted), parse_class(answer)
    score += int(implied is not None and implied == answered)
    if implied is not None and answered is not None and implied != answered:
        score = min(score, 1)
    return min(score, 1) if padded(words) else score


class HeuristicJudge:
    name = "heuristic"

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        return [Verdict(conciseness(i.reasoning), relevance(i.reasoning, i.answer)) for i in items]


def build(options: dict, prompts) -> HeuristicJudge:
    if options:
        raise ConfigError("judge.options", f"the heuristic judge takes no options, got {', '.join(sorted(options))}")
    return HeuristicJudge()


@hookimpl
def register_judges():
    return [JudgeFactory("heuristic", build, description="rule-based conciseness and relevance; needs no model")]
