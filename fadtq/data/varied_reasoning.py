"""Pair reasonings that vary as a model's own do: the targets of the lab policy's pretraining.

The demo policy reasons in one template (``reference: 6 pins, no damage. test: 5 pins, no damage.``),
so every method's reasoning has the same 14 words and a reasoning reward has nothing to act on.
These reasonings follow the same rules as ``fadtq.data.describe`` (each image described on its
own; no class name, answer word or comparison of the two images; nothing on whether an image is
normal) but vary, as sampled reasoning does:

- the order: the reference first or the test image first;
- which facts: each fact of each image is stated or left out (a left-out fact of the test image
  can leave the decision open: that is what a relevance reward can act on);
- the wording around the facts, details that say nothing about the class (the view, the background,
  where the object lies), fillers ("let me see") and restatements of a fact already said;

from about 10 to 60 words. :func:`stated_facts` reads the facts back from any such reasoning (and
from the template), for the held-out check of pretraining and the relevance rate of evaluation.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from fadtq.data.describe import REGIONS, damage_of
from fadtq.data.synth import Scene

IMAGES = ("reference", "test")
FACT_SHARE = {"reference": 0.6, "test": 0.85}  # chance that a fact of that image is stated
FILLER_SHARE = 0.35  # chance of a filler at the start, and again of one in the middle
DETAIL_SHARE = 0.5  # chance of each of up to two details that say nothing about the class
MIN_WORDS = 10  # details are added to a shorter reasoning
RESTATE_SHARE = 0.35  # chance that a stated fact of the test image is said again at the end

OBJECT = {"breakfast_box": "box", "juice_bottle": "bottle", "pushpins": "tray", "screw_bag": "bag",
          "splicing_connectors": "cable"}
FILLERS = ("Let me see.", "Well.", "Hmm.", "Let me think.")  # phrases the heuristic judge counts as filler
OPENERS = ("The {image} image shows {body}.", "{Image}: {body}.", "In the {image} image I see {body}.",
           "Looking at the {image} image, I find {body}.")
DETAILS = ("the photo is taken from above", "the background is plain", "the {object} lies in the middle",
           "the light is even", "the {object} fills most of the image", "the edges are sharp")

# a counted fact -> its noun, singular; the other facts have their own phrases below
COUNTS = {"fruits": "fruit", "labels": "label", "pins": "pin", "parts": "small part", "screws": "screw",
          "connectors": "connector", "cables": "cable"}
PRESENCE = ("toppings", "cereals")
JUICES = ("cherry", "orange", "banana")
_REGION_NAMES = [region for row in REGIONS for region in row]


def true_facts(category: str, scene: Scene) -> dict[str, object]:
    """A scene's facts as :func:`stated_facts` reads them: presence as 0/1, and ``damage``."""
    facts = {fact: int(value) if isinstance(value, bool) else value for fact, value in scene.facts.items()}
    return {**facts, "damage": damage_of(category, scene)}


def fact_phrases(category: str, scene: Scene) -> list[str]:
    """A noun phrase for each fact of one scene and for its damage."""
    phrases = []
    for fact, value in scene.facts.items():
        if fact in COUNTS:
            phrases.append(f"{value} {COUNTS[fact]}{'' if value == 1 else 's'}")
        elif fact in PRESENCE:
            phrases.append(fact if value else f"no {fact}")
        elif fact == "juice":
            phrases.append("an empty bottle" if value == "none" else f"{value} juice")
    region = damage_of(category, scene)
    return phrases + ["no damage" if region == "none" else f"damage at the {region}"]


def image_sentence(image: str, category: str, scene: Scene, rng: random.Random) -> tuple[str, list[str]] | None:
    """One image's sentence (None when no fact of it is stated) and the stated phrases."""
    stated = [phrase for phrase in fact_phrases(category, scene) if rng.random() < FACT_SHARE[image]]
    if not stated:
        return None
    rng.shuffle(stated)
    body = ", ".join(stated[:-1]) + (f" and {stated[-1]}" if len(stated) > 1 else stated[-1])
    return rng.choice(OPENERS).format(image=image, Image=image.capitalize(), body=body), stated


def varied_reasoning(category: str, reference: Scene, test: Scene, rng: random.Random) -> str:
    """A reasoning about a (reference, test) pair, drawn by ``rng``; see the module's docstring."""
    parts: list[str] = []
    if rng.random() < FILLER_SHARE:
        parts.append(rng.choice(FILLERS))
    order = list(IMAGES) if rng.random() < 0.5 else list(reversed(IMAGES))
    said: dict[str, list[str]] = {}
    for image, scene in zip(order, (reference, test) if order[0] == "reference" else (test, reference)):
        sentence = image_sentence(image, category, scene, rng)
        if sentence:
            parts.append(sentence[0])
            said[image] = sentence[1]
        if image == order[0] and rng.random() < FILLER_SHARE:
            parts.append(rng.choice(FILLERS))
    details = [_sentence(template.format(object=OBJECT[category])) for template in rng.sample(DETAILS, len(DETAILS))]
    parts += [detail for detail in details[:2] if rng.random() < DETAIL_SHARE]
    if said.get("test") and rng.random() < RESTATE_SHARE:
        parts.append(f"So the test image has {rng.choice(said['test'])}.")
    for detail in details[2:]:  # at least MIN_WORDS words
        if len(" ".join(parts).split()) >= MIN_WORDS:
            break
        parts.append(detail)
    return " ".join(parts)


def _sentence(text: str) -> str:
    return f"{text[0].upper()}{text[1:]}."


# Reading the facts back: a sentence's facts belong to the last image it or an earlier one named.
_SENTENCE = re.compile(r"[^.]+\.?")
_COUNT = re.compile(r"\b(\d+) (" + "|".join(sorted(COUNTS.values(), key=len, reverse=True)) + r")s?\b")
_DAMAGE_AT = re.compile(r"damage at the (" + "|".join(sorted(_REGION_NAMES, key=len, reverse=True)) + r")\b")
_NOUN_FACT = {noun: fact for fact, noun in COUNTS.items()}


def stated_facts(reasoning: str) -> dict[str, dict[str, object]]:
    """What a reasoning says of each image: ``{"test": {"pins": 5, "damage": "none"}, ...}``. Keys
    are the scene's facts (``Canvas.facts``) and ``damage`` (``"none"`` or the region); a fact not
    stated is absent. Reads the template of ``fadtq.data.describe`` as well as varied reasonings."""
    found: dict[str, dict[str, object]] = {}
    current: str | None = None
    for sentence in _SENTENCE.findall(reasoning.lower()):
        named = [(sentence.find(image), image) for image in IMAGES if image in sentence]
        if named:
            current = min(named)[1]
        if current is not None:
            found.setdefault(current, {}).update(_sentence_facts(sentence))
    return found


def _sentence_facts(sentence: str) -> dict[str, object]:
    """The facts one lower-cased sentence states."""
    facts: dict[str, object] = {_NOUN_FACT[noun]: int(count) for count, noun in _COUNT.findall(sentence)}
    for fact in PRESENCE:
        if re.search(rf"\bno {fact}\b", sentence):
            facts[fact] = 0
        elif re.search(rf"\b{fact}\b", sentence):
            facts[fact] = 1
    if "empty bottle" in sentence:
        facts["juice"] = "none"
    facts.update({"juice": juice for juice in JUICES if f"{juice} juice" in sentence})
    region = _DAMAGE_AT.search(sentence)
    if region:
        facts["damage"] = region.group(1)
    elif re.search(r"\bno damage\b", sentence):
        facts["damage"] = "none"
    return facts


def decisive_facts(label: str, facts: dict[str, object], normal: Sequence[dict[str, object]]) -> dict[str, object]:
    """The facts of a test image that fix its class, with their values: for a structural image its
    damage (any region counts as stated); for a logical one each fact that no normal scene of the
    category has with that value; for a good one every fact and ``damage: none``."""
    if label == "structural":
        return {"damage": "any"}
    if label == "logical":
        return {fact: value for fact, value in facts.items()
                if all(scene.get(fact) != value for scene in normal)}
    return {**facts, "damage": "none"}


def states_decisive_facts(reasoning: str, decisive: dict[str, object]) -> bool:
    """Whether the reasoning states every decisive fact of the test image, with its value."""
    said = stated_facts(reasoning).get("test", {})
    for fact, value in decisive.items():
        if fact == "damage" and value == "any":
            if said.get("damage") in (None, "none"):
                return False
        elif said.get(fact) != value:
            return False
    return True
