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
from fadtq.errors import FadtqError
from fadtq.files import atomic_write_json, create_dir_once
from fadtq.policy.family import family_of_model
from fadtq.prompts import CLASS_NAMES, PromptLibrary, policy_messages, pretty_category
from fadtq.pretraining.vision_facts import FactHeads, captured_image_tokens, fact_loss, fact_targets, tower_loss

REFERENCE_ROLE = len(CLASS_NAMES)  # roles 0-2: a test image of that class; 3: the reference
VALIDATION_OFFSET = 10**9  # example indices of the held-out check, never trained on
FIRST_LOSSES = 3  # recorded with a shipped checkpoint; tests/training/test_pretrain.py reproduces them
RECIPE_FILE = "recipe.json"  # beside a shipped checkpoint: recipe, command, check, weights' sha256


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

    def as_dict(self) -> dict:
        """The recipe as ``recipe.json`` stores it (tuples as lists)."""
        return json.loads(json.dumps(vars(self)))

    def folder_name(self) -> str:
        """Names the look-alike's revision too: a model pretrained on older drawings is another model."""
        return (f"qwen2.5-vl-{self.size}-seed{self.seed}-pretrain{self.vision_steps}+{self.steps}-{self.difficulty}"
                f"{difficulty_named(self.difficulty).revision_tag}-{self.image_size}px")


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
    think = f"reference: {describe(category, ref)}. test: {describe(category, test)}."
    answer = choice.choice(CLASS_NAMES)
    return PretrainExample(category, [_image(ref.image, recipe.image_size), _image(test.image, recipe.image_size)],
                           policy_messages(prompts, category), think, f"<think>{think}</think><answer>{answer}</answer>",
                           [fact_targets(category, ref), fact_targets(category, test)])


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
    descriptions, with the facts' loss kept on the tower so that it does not forget them."""
    torch.manual_seed(recipe.seed)
    heads = FactHeads(model.config.text_config.hidden_size)
    tower = list(family_of_model(model).tower(model).parameters()) + list(heads.parameters())
    yield from _steps(tower, recipe.lr, recipe.vision_steps, lambda step: _tower_step(
        model, processor, heads, list(examples(recipe, step * recipe.vision_batch_size, recipe.vision_batch_size,
                                               prompts, pair=False))))
    first = recipe.vision_steps * recipe.vision_batch_size  # stage two's images are new ones
    yield from _steps(list(model.parameters()) + list(heads.parameters()), recipe.lr, recipe.steps,
                      lambda step: _description_step(model, processor, heads, list(examples(
                          recipe, first + step * recipe.batch_size, recipe.batch_size, prompts))))


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


def _description_step(model, processor, heads: FactHeads, batch: list[PretrainExample]) -> torch.Tensor:
    """The descriptions' loss plus the facts' loss on the image tokens the same forward pass made."""
    from fadtq.pretraining.warmup import supervised_batch

    inputs = supervised_batch(processor, batch, [e.response for e in batch])
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
                          difficulty=cfg.data.synth_difficulty, image_size=cfg.data.image_size)


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
               f"--single-share {recipe.single_share} --reference {recipe.reference}")
    atomic_write_json(folder / RECIPE_FILE, {"recipe": recipe.as_dict(), "command": command, "check": check,
                                             "sha256": weights_sha256(folder), "threads": 1})


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
    """Greedy reasoning on ``count`` held-out fresh pairs: the share whose description of the test
    image (and of the whole reasoning) matches the scene's own facts exactly."""
    from fadtq.answer import think_text
    from fadtq.generation.engine import RolloutPrompt, SamplingParams
    from fadtq.generation.hf import HFRolloutEngine

    engine = HFRolloutEngine(model, processor)
    params = SamplingParams(max_new_tokens=64, greedy=True)
    held_out = list(examples(recipe, VALIDATION_OFFSET, count, prompts, pair=True))
    test_right = think_right = 0
    for start in range(0, count, 16):
        chunk = held_out[start:start + 16]
        result = engine.generate([RolloutPrompt(*e.images, e.messages) for e in chunk], 1, params)
        for example, group in zip(chunk, result.groups):
            think = think_text(group[0].text) or ""
            think_right += think.strip() == example.think
            test_right += think.split("test:")[-1].strip() == example.think.split("test:")[-1].strip()
    return {"examples": count, "test_description_exact": test_right / count, "reasoning_exact": think_right / count}


def build_pretrained(out: Path, recipe: PretrainRecipe, base_model: Path | None = None,
                     progress: bool = True, check_examples: int = 60) -> dict:
    """Pretrain ``base_model`` (default: a fresh ``recipe.size`` model seeded by ``recipe.seed``)
    into ``out``; returns the held-out check and the seconds taken."""
    import tempfile

    from fadtq.pretraining.tiny_model import make_tiny_model

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fadtq-pretrain-") as scratch:
        start = base_model or make_tiny_model(Path(scratch) / "base", size=recipe.size, seed=recipe.seed)
        check = pretrain(start, out, recipe, progress=progress, check_examples=check_examples)
    return {**check, "seconds": round(time.perf_counter() - started, 1)}
