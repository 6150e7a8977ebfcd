"""Pretraining that gives a small offline Qwen2.5-VL eyes for the look-alike's world.

The paper's policy, Qwen2.5-VL-3B, comes to RL already able to see parts, counts and damage; RL
teaches it to decide. A model built offline sees nothing, and RL from a random vision tower barely
moves in the CPU budget. This supervised pass stands in for broad pretraining, in two stages:
first the vision tower alone learns each image's facts (``fadtq.pretraining.vision_facts``), as
Qwen2.5-VL's encoder learned to see before it met the language model; then the whole model
learns descriptions. On freshly generated look-alike pairs, never an image of a benchmark, the
policy's own question is answered
with reasoning that describes each image on its own (``fadtq.data.describe``) and an answer drawn
at random. So the policy learns to look and to write the format while its accuracy stays at
chance: the answer is independent of the images, and the targets never compare the two images,
never say whether one is normal and never use an answer word. What RL gains afterwards, RL learned.

Seeds: a benchmark image draws from ``[seed, category index, folder, index]`` with a category index
below ``len(CATEGORIES)``; a pretraining image from ``[seed, len(CATEGORIES) + category index,
role, index]``, a range no benchmark uses, whatever the benchmark's seed.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fadtq.data.describe import describe
from fadtq.data.loco import CATEGORIES
from fadtq.data.synth import DEFAULT_SIZE, difficulty_named, render
from fadtq.data.varied_reasoning import stated_facts, true_facts, varied_reasoning
from fadtq.errors import FadtqError
from fadtq.files import atomic_write_json, create_dir_once
from fadtq.policy.family import family_of_model
from fadtq.prompts import CLASS_NAMES, PromptLibrary, policy_messages, pretty_category
from fadtq.pretraining.vision_facts import FactHeads, captured_image_tokens, fact_loss, fact_targets, tower_loss

REFERENCE_ROLE = len(CLASS_NAMES)  # roles 0-2: a test image of that class; 3: the reference
VALIDATION_OFFSET = 10**9  # example indices of the held-out check, never trained on
FIRST_LOSSES = 3  # recorded with a shipped checkpoint; tests/training/test_pretrain.py reproduces them
RECIPE_FILE = "recipe.json"  # beside a shipped checkpoint: recipe, command, check, weights' sha256
REASONINGS = ("template", "varied")


@dataclass(frozen=True)
class PretrainRecipe:
    """Everything that determines the pretrained model: the same recipe gives the same bytes."""

    size: str = "base"  # the make-tiny-model preset the weights start from (seeded by ``seed``)
    vision_steps: int = 3000  # first stage: the vision tower alone learns the facts (vision_facts.py)
    vision_batch_size: int = 32
    steps: int = 1500  # second stage: the whole model learns the descriptions, the facts kept
    batch_size: int = 16
    single_share: float = 0.6  # share of single-image description examples; the rest are pairs
    reference: str = "any"  # a pair's reference: "good", as in the benchmark, or "any" class (see make_example)
    categories: tuple[str, ...] = CATEGORIES  # the scenes drawn (fewer: more images of each)
    lr: float = 1e-3
    seed: int = 0
    difficulty: str = "easy"
    image_size: int = 112  # longest side, as the trainer's data.image_size
    reasoning: str = "template"  # a pair's reasoning: the one template, or "varied" (fadtq/data/varied_reasoning.py)
    start: str = "fresh"  # a fresh size model, or the folder name of a checkpoint in pretrained/ to go on from

    def __post_init__(self) -> None:
        if self.reasoning not in REASONINGS:
            raise FadtqError(f"pretrain reasoning {self.reasoning!r}: expected one of {', '.join(REASONINGS)}")
        if self.start != "fresh" and self.vision_steps:
            raise FadtqError(f"pretrain start {self.start!r} with {self.vision_steps} vision steps: expected 0 "
                             "(going on from a checkpoint, its vision tower is kept frozen)")

    def as_dict(self) -> dict:
        """The recipe as ``recipe.json`` stores it (tuples as lists)."""
        return json.loads(json.dumps(vars(self)))

    def folder_name(self) -> str:
        """Names the look-alike's revision too: a model pretrained on older drawings is another model."""
        varied = "" if self.reasoning == "template" else f"-{self.reasoning}"
        if self.start != "fresh":
            return f"{self.start}-then{self.steps}{varied}"
        return (f"qwen2.5-vl-{self.size}-seed{self.seed}-pretrain{self.vision_steps}+{self.steps}-{self.difficulty}"
                f"{difficulty_named(self.difficulty).revision_tag}-{self.image_size}px{varied}")


@dataclass
class PretrainExample:
    """A single image with its description, or a (reference, test) pair with the policy's question
    answered by both descriptions and a random answer. ``think`` is the target reasoning of a pair."""

    category: str
    images: list[Image.Image]
    messages: list[dict]
    think: str
    response: str
    facts: list[dict[str, int]]  # per image, the vision tower's targets (vision_facts.fact_targets)
    said: dict[str, dict[str, object]] | None = None  # a pair's true facts per image (varied_reasoning.true_facts)


def pretrain_rng(seed: int, category: str, role: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, len(CATEGORIES) + CATEGORIES.index(category), role, index])


def _image(scene_image: np.ndarray, image_size: int) -> Image.Image:
    """As the benchmark's images reach the policy: rendered, then shrunk to ``image_size``."""
    image = Image.fromarray(scene_image, "RGB")
    image.thumbnail((image_size, image_size))
    return image


def make_example(recipe: PretrainRecipe, index: int, prompts: PromptLibrary, pair: bool | None = None
                 ) -> PretrainExample:
    """Example ``index``: a fresh test image of a random class, described alone (a share
    ``single_share`` of the examples) or after a fresh reference in the policy's question, with both
    images described and an answer drawn at random. ``pair`` forces the kind.

    With ``reference="any"`` the reference is of a random class too, so its counts and damage differ
    from the test image's as often as two random images' do. With normal references only, the test
    image matches the reference in most pairs, and the language model learnt to copy the reference's
    count instead of reading the test image (revision 3: 14 of 20 logical pushpin pairs said "6 pins")."""
    choice = random.Random(f"pretrain:{recipe.seed}:{index}")
    category = choice.choice(recipe.categories)
    label = choice.randrange(len(CLASS_NAMES))
    single = choice.random() < recipe.single_share if pair is None else not pair
    difficulty = difficulty_named(recipe.difficulty)
    test = render(category, CLASS_NAMES[label], pretrain_rng(recipe.seed, category, label, index), DEFAULT_SIZE,
                  difficulty)
    if single:
        return PretrainExample(category, [_image(test.image, recipe.image_size)], single_image_messages(category),
                               describe(category, test), f"{describe(category, test)}.",
                               [fact_targets(category, test)])
    ref_class = CLASS_NAMES[choice.randrange(len(CLASS_NAMES))] if recipe.reference == "any" else "good"
    ref = render(category, ref_class, pretrain_rng(recipe.seed, category, REFERENCE_ROLE, index), DEFAULT_SIZE,
                 difficulty)
    if recipe.reasoning == "varied":
        think = varied_reasoning(category, ref, test, choice)
    else:
        think = f"reference: {describe(category, ref)}. test: {describe(category, test)}."
    answer = choice.choice(CLASS_NAMES)
    return PretrainExample(category, [_image(ref.image, recipe.image_size), _image(test.image, recipe.image_size)],
                           policy_messages(prompts, category), think, f"<think>{think}</think><answer>{answer}</answer>",
                           [fact_targets(category, ref), fact_targets(category, test)],
                           {"reference": true_facts(category, ref), "test": true_facts(category, test)})


def single_image_messages(category: str) -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "image"},
        {"type": "text", "text": f"Describe this {pretty_category(category)}: its parts, how many, and any damage."},
    ]}]


def examples(recipe: PretrainRecipe, start: int, count: int, prompts: PromptLibrary,
             pair: bool | None = None) -> Iterator[PretrainExample]:
    return (make_example(recipe, index, prompts, pair) for index in range(start, start + count))


def load_start(model_path: str | Path):
    """The model (float32, training mode) and processor that pretraining starts from."""
    from transformers import AutoModelForImageTextToText

    from fadtq.policy.processor import load_processor

    model = AutoModelForImageTextToText.from_pretrained(str(model_path), dtype=torch.float32)
    return model.train(), load_processor(model_path)


def training_losses(model, processor, recipe: PretrainRecipe, prompts: PromptLibrary) -> Iterator[float]:
    """Run the recipe's two stages on ``model``, yielding each step's loss; stop consuming to stop
    early (the first steps of a recipe are the same whatever follows, so they can be checked alone).

    Stage one trains the vision tower alone on single images' facts; stage two the whole model on
    descriptions, with the facts' loss kept on the tower so that it does not forget them. Going on
    from a pretrained checkpoint (``recipe.start``), the tower is frozen instead: it already sees, and
    fact heads drawn afresh would pull it towards their random start."""
    torch.manual_seed(recipe.seed)
    tower_params = list(family_of_model(model).tower(model).parameters())
    first = recipe.vision_steps * recipe.vision_batch_size  # stage two's images are new ones

    def batch(step: int) -> list[PretrainExample]:
        return list(examples(recipe, first + step * recipe.batch_size, recipe.batch_size, prompts))

    if recipe.start != "fresh":
        frozen = {id(p) for p in tower_params}
        for parameter in tower_params:
            parameter.requires_grad_(False)
        yield from _steps([p for p in model.parameters() if id(p) not in frozen], recipe.lr, recipe.steps,
                          lambda step: _description_step(model, processor, None, batch(step)))
        return
    heads = FactHeads(model.config.text_config.hidden_size)
    tower = tower_params + list(heads.parameters())
    yield from _steps(tower, recipe.lr, recipe.vision_steps, lambda step: _tower_step(
        model, processor, heads, list(examples(recipe, step * recipe.vision_batch_size, recipe.vision_batch_size,
                                               prompts, pair=False))))
    yield from _steps(list(model.parameters()) + list(heads.parameters()), recipe.lr, recipe.steps,
                      lambda step: _description_step(model, processor, heads, batch(step)))


def _steps(parameters: list, lr: float, steps: int, loss_of_step) -> Iterator[float]:
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps))
    for step in range(steps):
        loss = loss_of_step(step)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        yield loss.item()


def _tower_step(model, processor, heads: FactHeads, batch: list[PretrainExample]) -> torch.Tensor:
    images = dict(processor.image_processor(images=[e.images[0] for e in batch], return_tensors="pt"))
    return tower_loss(model, heads, images, [e.facts[0] for e in batch])


def _description_step(model, processor, heads: FactHeads | None, batch: list[PretrainExample]) -> torch.Tensor:
    """The descriptions' loss plus (with ``heads``) the facts' loss on the image tokens the same
    forward pass made."""
    from fadtq.pretraining.warmup import supervised_batch

    inputs = supervised_batch(processor, batch, [e.response for e in batch])
    if heads is None:
        return model(**inputs).loss
    with captured_image_tokens(model) as seen:
        loss = model(**inputs).loss
    return loss + fact_loss(heads, seen, [f for e in batch for f in e.facts])


def pretrain(model_path: str | Path, out: str | Path, recipe: PretrainRecipe, *, progress: bool = True,
             check_examples: int = 60) -> dict:
    """Train ``model_path`` by ``recipe`` and save it to ``out`` (appears whole); returns the first
    losses and the held-out check (how often greedy decoding describes a fresh test image exactly)."""
    from tqdm import tqdm

    from fadtq.policy.processor import save_policy

    prompts = PromptLibrary()
    model, processor = load_start(model_path)
    bar = tqdm(training_losses(model, processor, recipe, prompts), total=recipe.vision_steps + recipe.steps,
               desc="pretrain", disable=not progress)
    losses = []
    for loss in bar:
        losses.append(loss)
        bar.set_postfix(loss=f"{loss:.3f}")
    model.eval()
    check = description_check(model, processor, recipe, check_examples, prompts)
    create_dir_once(Path(out), lambda tmp: save_policy(model, processor, tmp / "model", recipe.image_size))
    return {"first_losses": losses[:FIRST_LOSSES], "last_loss": losses[-1], **check}


def lr_factor(step: int, steps: int) -> float:
    """Linear warm-up over the first 5% of the steps, then a cosine decay to 10% of the peak."""
    warm = max(1, steps // 20)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress)))


def recipe_from_config(cfg) -> PretrainRecipe:
    """The recipe a run config asks for (``model.*`` and ``data.*``; the rest at its defaults)."""
    return PretrainRecipe(size=cfg.model.size, vision_steps=cfg.model.pretrain_vision_steps,
                          steps=cfg.model.pretrain_steps, seed=cfg.model.pretrain_seed,
                          difficulty=cfg.data.synth_difficulty, image_size=cfg.data.image_size,
                          reasoning=cfg.model.pretrain_reasoning, start=cfg.model.pretrain_start)


def weights_sha256(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def write_recipe(folder: Path, recipe: PretrainRecipe, check: dict) -> None:
    """``recipe.json`` beside a checkpoint: the recipe, the command that rebuilds it, its check
    and the sha256 of its weights."""
    command = (f"OMP_NUM_THREADS=1 fadtq pretrain --out OUT --size {recipe.size} "
               f"--vision-steps {recipe.vision_steps} --vision-batch-size {recipe.vision_batch_size} "
               f"--steps {recipe.steps} --batch-size {recipe.batch_size} "
               f"--lr {recipe.lr} --seed {recipe.seed} --difficulty {recipe.difficulty} "
               f"--image-size {recipe.image_size} --categories {','.join(recipe.categories)} "
               f"--single-share {recipe.single_share} --reference {recipe.reference} "
               f"--reasoning {recipe.reasoning} --start {recipe.start}")
    atomic_write_json(folder / RECIPE_FILE, {"recipe": recipe.as_dict(), "command": command, "check": check,
                                             "sha256": weights_sha256(folder), "threads": 1})


def shipped_start(name: str) -> Path:
    """The checkpoint in ``pretrained/`` that a recipe's ``start`` names, its own recipe and hash checked."""
    from fadtq.pretraining.default_policy import SHIPPED_MODELS

    folder = SHIPPED_MODELS / name
    record = folder / RECIPE_FILE
    if not record.is_file():
        known = sorted(p.name for p in SHIPPED_MODELS.iterdir() if (p / RECIPE_FILE).is_file())
        raise FadtqError(f"pretrain start {name!r}: no checkpoint of that name in {SHIPPED_MODELS}; "
                         f"known: {', '.join(known)}")
    made_by = json.loads(record.read_text(encoding="utf-8"))["recipe"]
    return verify_shipped(folder, PretrainRecipe(**{**made_by, "categories": tuple(made_by["categories"])}))


def verify_shipped(folder: Path, recipe: PretrainRecipe) -> Path:
    """A shipped checkpoint made by ``recipe`` whose weights hash to the one in its ``recipe.json``."""
    try:
        record = json.loads((folder / RECIPE_FILE).read_text(encoding="utf-8"))
        expected, made_by = record["sha256"], record["recipe"]
    except (OSError, ValueError, KeyError) as exc:
        raise FadtqError(f"{folder / RECIPE_FILE}: cannot read the checkpoint's recipe and sha256 ({exc})") from None
    if made_by != recipe.as_dict():
        raise FadtqError(f"{folder / RECIPE_FILE}: made by {made_by}, not by the configured {recipe.as_dict()}")
    if weights_sha256(folder) != expected:
        raise FadtqError(f"{folder / 'model.safetensors'}: sha256 differs from {RECIPE_FILE}; the checkpoint was "
                         "changed: restore it (git checkout) or rebuild it with the command in its recipe.json")
    return folder


@torch.no_grad()
def description_check(model, processor, recipe: PretrainRecipe, count: int, prompts: PromptLibrary) -> dict:
    """Greedy reasoning on ``count`` held-out fresh pairs. For the template: the share whose
    description of the test image (and whose whole reasoning) is exactly the target. For varied
    reasonings, which have no one right text: the share in which every fact stated of the test image
    is true and at least one is stated, and the mean length in words."""
    from fadtq.answer import think_text
    from fadtq.generation.engine import RolloutPrompt, SamplingParams
    from fadtq.generation.hf import HFRolloutEngine

    engine = HFRolloutEngine(model, processor)
    params = SamplingParams(max_new_tokens=64 if recipe.reasoning == "template" else 160, greedy=True)
    held_out = list(examples(recipe, VALIDATION_OFFSET, count, prompts, pair=True))
    said = []
    for start in range(0, count, 16):
        chunk = held_out[start:start + 16]
        result = engine.generate([RolloutPrompt(*e.images, e.messages) for e in chunk], 1, params)
        said += [think_text(group[0].text) or "" for group in result.groups]
    if recipe.reasoning == "varied":
        right = [_facts_true(think, e.said["test"]) for think, e in zip(said, held_out)]
        return {"examples": count, "test_facts_true": sum(right) / count,
                "reasoning_words_mean": sum(len(think.split()) for think in said) / count}
    exact = [think.strip() == e.think for think, e in zip(said, held_out)]
    test_exact = [think.split("test:")[-1].strip() == e.think.split("test:")[-1].strip()
                  for think, e in zip(said, held_out)]
    return {"examples": count, "test_description_exact": sum(test_exact) / count, "reasoning_exact": sum(exact) / count}


def _facts_true(reasoning: str, truth: dict[str, object]) -> bool:
    stated = stated_facts(reasoning).get("test", {})
    return bool(stated) and all(truth.get(fact) == value for fact, value in stated.items())


def build_pretrained(out: Path, recipe: PretrainRecipe, base_model: Path | None = None,
                     progress: bool = True, check_examples: int = 60) -> dict:
    """Pretrain ``base_model`` (default: a fresh ``recipe.size`` model seeded by ``recipe.seed``)
    into ``out``; returns the held-out check and the seconds taken."""
    import tempfile

    from fadtq.pretraining.tiny_model import make_tiny_model

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fadtq-pretrain-") as scratch:
        if base_model is None and recipe.start != "fresh":
            base_model = shipped_start(recipe.start)
        start = base_model or make_tiny_model(Path(scratch) / "base", size=recipe.size, seed=recipe.seed)
        check = pretrain(start, out, recipe, progress=progress, check_examples=check_examples)
    return {**check, "seconds": round(time.perf_counter() - started, 1)}
