"""Vision-language models built fully offline: tokenizer, chat template, image processor and random
weights, for each family with a tiny-model builder (:data:`TINY_FAMILIES`).

Tests and CPU runs need real architectures (3-D rotary positions, vision tower, image placeholder
tokens) without a model hub. Everything here is made locally and is
deterministic from its seed: the byte-level BPE tokenizer is trained on an in-repo corpus (the
policy's question, the class names, words a reasoning about anomalies uses, the think/answer
tags), and the weights are drawn after ``torch.manual_seed(seed)``.

The saved folder is an ordinary Hugging Face checkpoint: ``AutoModelForImageTextToText``
loads the model, and :func:`fadtq.policy.processor.load_processor` the processor.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2_5_VLConfig
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from fadtq.errors import FadtqError
from fadtq.prompts import CLASS_MEANINGS, CLASS_NAMES, PromptLibrary, policy_question

CONTROL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
REASONING_TAGS = ("<think>", "</think>", "<answer>", "</answer>")

# Qwen's chat layout; an image content part becomes <|vision_start|><|image_pad|><|vision_end|>,
# which the processor expands to one <|image_pad|> per merged image patch.
CHAT_TEMPLATE = r"""{%- if messages[0].role != 'system' %}{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{%- endif %}
{%- for message in messages %}
{{- '<|im_start|>' + message.role + '\n' }}
{%- if message.content is string %}{{- message.content }}
{%- else %}{%- for part in message.content %}
{%- if part.type == 'image' %}{{- '<|vision_start|><|image_pad|><|vision_end|>' }}
{%- elif part.type == 'text' %}{{- part.text }}
{%- endif %}{%- endfor %}
{%- endif %}
{{- '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"""

SMOLVLM_CONTROL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>",
                          "<global-img>", "<image>")
# SmolVLM's chat layout (its processor's default, images only): an image becomes <image>, which the
# processor expands to <fake_token_around_image><global-img>, image_seq_len <image> tokens and
# <fake_token_around_image>.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")

# Product names of industrial inspection benchmarks: they only shape the tokenizer's merges.
_CATEGORIES = ("bottle", "screw", "pcb", "capsule", "breakfast box", "juice bottle", "pushpins", "screw bag")
_REASONING = (
    "The test image looks the same as the reference image, so the part is normal.",
    "Compared with the reference, the test image shows a scratch, a crack and a missing corner.",
    "There is a dent, a hole, contamination and a deformed edge on the surface.",
    "The number of pushpins is wrong: one compartment is empty and another has two.",
    "The position, pairing and size of the parts differ from the reference although each part is intact.",
    "I compare the shape, color, texture, count and alignment of every component.",
    "Therefore the answer is good. Therefore the answer is structural. Therefore the answer is logical.",
)


@dataclass(frozen=True)
class ModelSize:
    """Architecture, image resolution and weight dtype of one preset."""

    vocab_size: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    mrope_section: tuple[int, int, int]
    vision_depth: int
    vision_hidden: int
    vision_heads: int
    vision_intermediate: int
    min_pixels: int
    max_pixels: int
    patch_size: int = 14  # vision patch side in pixels; an LLM image token covers 2 x 2 patches
    embedding_rows: int = 0  # rows of the token embedding and LM head; 0: the tokenizer's size
    fullatt_blocks: tuple[int, ...] = ()  # vision blocks that attend over the whole image; (): the last
    tie_embeddings: bool = False  # the LM head shares the token embedding's weights
    dtype: torch.dtype = torch.float32  # of the weights, as drawn and as saved
    # Draw the weights on the GPU when there is one: seconds instead of minutes for billions of
    # them (the GPU's random stream differs from the CPU's, so the weights depend on the machine).
    draw_on_gpu: bool = False


SIZES: dict[str, ModelSize] = {
    # about 0.2M parameters, 16 LLM tokens per 112x112 image: for tests. Head size 32, the
    # smallest vLLM's CPU attention takes (rollout.engine: vllm).
    "tiny": ModelSize(512, 64, 2, 2, 1, 128, (4, 6, 6), 2, 32, 2, 64, 56 * 56, 112 * 112),
    # about 2M parameters, 16 LLM tokens per 112x112 image, head_dim 32: the CPU default's policy
    # after `fadtq pretrain` (large enough to see the look-alike's parts, small enough for 2 cores).
    "base": ModelSize(768, 128, 3, 4, 2, 384, (4, 6, 6), 4, 128, 4, 256, 56 * 56, 112 * 112),
    # the same with 7-pixel patches: four times the patches (and image tokens) per image
    "base7": ModelSize(768, 128, 3, 4, 2, 384, (4, 6, 6), 4, 128, 4, 256, 56 * 56, 112 * 112, patch_size=7),
    # about 20M parameters, up to 64 LLM tokens per image: for benchmarks.
    "small": ModelSize(1024, 512, 6, 8, 4, 1376, (8, 12, 12), 4, 256, 4, 512, 56 * 56, 224 * 224),
    # Qwen2.5-VL-3B's architecture (its config.json and preprocessor_config.json), 3.75B random
    # parameters in bf16, for the GPU check (bench/gpu_check.sh). Its embedding has Qwen's 151,936
    # rows, so the logits cost what the real model's do; this module's tokenizer uses the first few
    # hundred, and sampled ids beyond them decode to nothing.
    "3b": ModelSize(1024, 2048, 36, 16, 2, 11008, (16, 24, 24), 32, 1280, 16, 3420, 56 * 56, 28 * 28 * 16384,
                    embedding_rows=151936, fullatt_blocks=(7, 15, 23, 31), tie_embeddings=True, dtype=torch.bfloat16,
                    draw_on_gpu=True),
}


def _description_corpus() -> list[str]:
    """Reasoning in the words of ``fadtq pretrain``'s image descriptions, so they tokenize short."""
    from fadtq.data.describe import REGIONS, objects_phrase

    facts = {
        "breakfast_box": [{"fruits": n, "toppings": t, "cereals": c} for n in (2, 3, 4) for t in (0, 1) for c in (0, 1)],
        "juice_bottle": [{"juice": j, "labels": n} for j in ("cherry", "orange", "banana", "none") for n in (1, 2)],
        "pushpins": [{"pins": n} for n in range(4, 18)],
        "screw_bag": [{"parts": n, "screws": 2} for n in (3, 4, 5)],
        "splicing_connectors": [{"connectors": n, "cables": k} for n in (1, 2) for k in (0, 1, 2)],
    }
    damages = ["no damage"] + [f"damage at the {region}" for row in REGIONS for region in row]
    asks = [f"Describe this {c.replace('_', ' ')}: its parts, how many, and any damage." for c in facts]
    return asks + [f"reference: {objects_phrase(c, f)}, no damage. test: {objects_phrase(c, f)}, {d}."
                   for c, options in facts.items() for f in options for d in damages]


def tokenizer_corpus() -> list[str]:
    """The deterministic text the BPE tokenizer is trained on."""
    library = PromptLibrary()
    texts = [policy_question(library, category) for category in _CATEGORIES]
    texts += list(CLASS_NAMES) + list(CLASS_MEANINGS.values()) + list(_REASONING)
    texts += [f"<think>{line}</think><answer>{name}</answer>" for line in _REASONING for name in CLASS_NAMES]
    texts += ["Reference image (normal):", "Test image:", "system", "user", "assistant", "You are a helpful assistant."]
    return texts + _description_corpus()


@dataclass(frozen=True)
class ChatTokens:
    """A family's special tokens (the first is the padding), its end-of-turn token and chat template."""

    control: tuple[str, ...]
    eos: str
    template: str


QWEN_CHAT = ChatTokens(CONTROL_TOKENS, "<|im_end|>", CHAT_TEMPLATE)
SMOLVLM_CHAT = ChatTokens(SMOLVLM_CONTROL_TOKENS, "<end_of_utterance>", SMOLVLM_CHAT_TEMPLATE)


def build_tokenizer(vocab_size: int, chat: ChatTokens = QWEN_CHAT) -> PreTrainedTokenizerFast:
    """A byte-level BPE with the family's control tokens (special) and the reasoning tags (not special).

    The tags stay non-special so that decoding with ``skip_special_tokens=True`` keeps them,
    as the format reward needs to see them.
    """
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(chat.control),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(tokenizer_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=chat.eos,
        pad_token=chat.control[0],
        additional_special_tokens=list(chat.control[1:]),
        model_max_length=4096,
    )
    tokenizer.add_tokens(list(REASONING_TAGS))
    tokenizer.chat_template = chat.template
    return tokenizer


def build_image_processor(size: ModelSize, patch_size: int | None = None) -> Qwen2VLImageProcessorPil:
    # An explicit size dict: min_pixels/max_pixels keywords would mutate the class-level default.
    return Qwen2VLImageProcessorPil(size={"shortest_edge": size.min_pixels, "longest_edge": size.max_pixels},
                                    patch_size=patch_size or size.patch_size)


def _control_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    return {token: tokenizer.convert_tokens_to_ids(token) for token in CONTROL_TOKENS}


def _text_config(size: ModelSize, tokenizer: PreTrainedTokenizerFast, **rope: object) -> dict:
    ids = _control_ids(tokenizer)
    return {
        "vocab_size": max(len(tokenizer), size.embedding_rows),
        "hidden_size": size.text_hidden,
        "intermediate_size": size.text_intermediate,
        "num_hidden_layers": size.text_layers,
        "num_attention_heads": size.text_heads,
        "num_key_value_heads": size.text_kv_heads,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": list(size.mrope_section),
                            **rope},
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def _vision_tokens(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    ids = _control_ids(tokenizer)
    return {"image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
            "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"]}


def _vision_config(size: ModelSize, **family: object) -> dict:
    return {"depth": size.vision_depth, "hidden_size": size.vision_hidden, "num_heads": size.vision_heads,
            "intermediate_size": size.vision_intermediate, "out_hidden_size": size.text_hidden, **family}


def _qwen2_5_vl_config(size: ModelSize, tokenizer: PreTrainedTokenizerFast):
    vision = _vision_config(size, patch_size=size.patch_size,
                            fullatt_block_indexes=list(size.fullatt_blocks or (size.vision_depth - 1,)))
    return Qwen2_5_VLConfig(text_config=_text_config(size, tokenizer), vision_config=vision,
                            tie_word_embeddings=size.tie_embeddings, **_vision_tokens(tokenizer))


def _qwen3_vl_config(size: ModelSize, tokenizer: PreTrainedTokenizerFast):
    """Qwen3-VL: interleaved multimodal RoPE, 16-pixel patches (two frames deep), learned position
    embeddings on an 8 x 8 grid (interpolated to the image), DeepStack from the first vision block."""
    from transformers import Qwen3VLConfig

    text = _text_config(size, tokenizer, mrope_interleaved=True)
    text["head_dim"] = size.text_hidden // size.text_heads
    vision = _vision_config(size, patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                            num_position_embeddings=64, deepstack_visual_indexes=[0])
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=size.tie_embeddings,
                         **_vision_tokens(tokenizer))


def _qwen3_5_config(size: ModelSize, tokenizer: PreTrainedTokenizerFast):
    """Qwen3.5: Qwen3-VL's vision tower without DeepStack, a hybrid language model (gated delta net
    linear attention, full attention in every fourth layer, or in the last of fewer) and rotary
    positions on a quarter of each attention head, split 2:1:1 between time, height and width. The
    linear heads are 64 wide, the narrowest vLLM's CPU kernel takes."""
    from transformers import Qwen3_5Config

    head_dim = size.text_hidden // size.text_heads
    rotary_half = head_dim // 8  # a quarter of the head is rotated: half of it per frequency
    text = _text_config(size, tokenizer, mrope_interleaved=True, partial_rotary_factor=0.25)
    text["rope_parameters"]["mrope_section"] = [rotary_half // 2, rotary_half // 4, rotary_half // 4]
    interval = min(4, size.text_layers)
    text |= {"head_dim": head_dim, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 64, "linear_value_head_dim": 64,
             "linear_num_key_heads": 2, "linear_num_value_heads": 4,
             "layer_types": ["full_attention" if (layer + 1) % interval == 0 else "linear_attention"
                             for layer in range(size.text_layers)]}
    vision = _vision_config(size, patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                            num_position_embeddings=64)
    return Qwen3_5Config(text_config=text, vision_config=vision, tie_word_embeddings=size.tie_embeddings,
                         **_vision_tokens(tokenizer))


SMOLVLM_PATCH = 14  # 8 x 8 patches per 112-pixel image, 4 x 4 tokens after the 2 x 2 pixel shuffle


def smolvlm_image_side(size: ModelSize) -> int:
    """The square side every image is resized to: the preset's largest image."""
    return int(size.max_pixels ** 0.5)


def _smolvlm_config(size: ModelSize, tokenizer: PreTrainedTokenizerFast):
    """SmolVLM: a SigLIP tower on square images of the preset's largest side, 2 x 2 pixel shuffle,
    a Llama language model with plain rotary positions."""
    from transformers import SmolVLMConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SMOLVLM_CONTROL_TOKENS}
    text = {"model_type": "llama", "vocab_size": max(len(tokenizer), size.embedding_rows),
            "hidden_size": size.text_hidden, "intermediate_size": size.text_intermediate,
            "num_hidden_layers": size.text_layers, "num_attention_heads": size.text_heads,
            "num_key_value_heads": size.text_kv_heads, "head_dim": size.text_hidden // size.text_heads,
            "max_position_embeddings": 4096, "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
            "bos_token_id": ids["<|im_start|>"], "eos_token_id": ids["<end_of_utterance>"],
            "pad_token_id": ids["<|endoftext|>"], "tie_word_embeddings": size.tie_embeddings}
    vision = {"hidden_size": size.vision_hidden, "intermediate_size": size.vision_intermediate,
              "num_hidden_layers": size.vision_depth, "num_attention_heads": size.vision_heads,
              "image_size": smolvlm_image_side(size), "patch_size": SMOLVLM_PATCH}
    return SmolVLMConfig(text_config=text, vision_config=vision, scale_factor=2, image_token_id=ids["<image>"],
                         pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=size.tie_embeddings)


def _smolvlm_image_processor(size: ModelSize):
    """SmolVLM's PIL image processor: one global view per image, no tiles."""
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    side = smolvlm_image_side(size)
    return SmolVLMImageProcessorPil(do_image_splitting=False, size={"longest_edge": side},
                                    max_image_size={"longest_edge": side})


def _smolvlm_processor_options(size: ModelSize) -> dict:
    return {"image_seq_len": (smolvlm_image_side(size) // SMOLVLM_PATCH) ** 2 // 4}


@dataclass(frozen=True)
class TinyFamily:
    """How to build one family's model offline: its config from a preset, its model class, the
    processor class its folder names, the vision patch side (None: the preset's), its chat tokens,
    its image processor (None: Qwen's) and what its processor config records beside the class."""

    config: Callable
    model_type: str
    model_class: str
    processor_class: str
    patch_size: int | None = None
    chat: ChatTokens = QWEN_CHAT
    image_processor: Callable | None = None
    processor_options: Callable = lambda size: {}


TINY_FAMILIES: dict[str, TinyFamily] = {
    "qwen2_5_vl": TinyFamily(_qwen2_5_vl_config, "qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration",
                             "Qwen2_5_VLProcessor"),
    "qwen3_vl": TinyFamily(_qwen3_vl_config, "qwen3_vl", "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor",
                           patch_size=16),
    "qwen3_5": TinyFamily(_qwen3_5_config, "qwen3_5", "Qwen3_5ForConditionalGeneration", "Qwen3VLProcessor",
                          patch_size=16),
    "smolvlm": TinyFamily(_smolvlm_config, "smolvlm", "SmolVLMForConditionalGeneration", "SmolVLMProcessor",
                          chat=SMOLVLM_CHAT, image_processor=_smolvlm_image_processor,
                          processor_options=_smolvlm_processor_options),
}


def tiny_family(name: str) -> TinyFamily:
    if name not in TINY_FAMILIES:
        raise FadtqError(f"--family {name}: not a family with a tiny model; supported: {', '.join(TINY_FAMILIES)}")
    return TINY_FAMILIES[name]


def build_config(size: ModelSize, tokenizer: PreTrainedTokenizerFast, family: str = "qwen2_5_vl"):
    return tiny_family(family).config(size, tokenizer)


def preset_config(size: str, family: str = "qwen2_5_vl") -> dict:
    """The parts of the ``size`` preset's ``config.json`` that say which engines can run it."""
    preset, builder = SIZES[size], tiny_family(family)
    return {"model_type": builder.model_type, "architectures": [builder.model_class],
            "text_config": {"hidden_size": preset.text_hidden, "num_attention_heads": preset.text_heads}}


def build_model(config, seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu",
                family: str = "qwen2_5_vl"):
    import transformers

    torch.manual_seed(seed)
    model_class = getattr(transformers, tiny_family(family).model_class)
    with torch.device(device):
        model = model_class._from_config(config, dtype=dtype)
    model.generation_config = GenerationConfig(
        eos_token_id=[config.text_config.eos_token_id, config.text_config.pad_token_id],
        pad_token_id=config.text_config.pad_token_id,
        do_sample=True,
    )
    return model.eval()


def make_tiny_model(out: str | Path, size: str = "tiny", seed: int = 0, family: str = "qwen2_5_vl") -> Path:
    """Build and save the ``size`` preset of ``family`` to ``out``; returns the folder. The folder
    appears whole: it is written beside ``out`` and renamed into place (replacing what ``out`` held)."""
    builder = tiny_family(family)
    if size not in SIZES:
        raise FadtqError(f"--size {size}: expected one of {', '.join(SIZES)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FadtqError(f"--out {out}: exists and is not a directory")
    preset = SIZES[size]
    tokenizer = build_tokenizer(preset.vocab_size, builder.chat)
    device = "cuda" if preset.draw_on_gpu and torch.cuda.is_available() else "cpu"
    model = build_model(builder.config(preset, tokenizer), seed, preset.dtype, device, family)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        image_processor = builder.image_processor or (lambda p: build_image_processor(p, builder.patch_size))
        image_processor(preset).save_pretrained(staging)
        _write_processor_config(staging, builder.processor_class, builder.processor_options(preset))
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _write_processor_config(out: Path, processor_class: str, options: dict) -> None:
    """Name the standard processor class, so ``AutoProcessor`` rebuilds it where torchvision works."""
    config = {"processor_class": processor_class, **options}
    (out / "processor_config.json").write_text(json.dumps(config, indent=2) + "\n")
