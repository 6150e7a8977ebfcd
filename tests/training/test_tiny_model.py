"""The offline Qwen2.5-VL: builds, saves, reloads, generates with two images, deterministic."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoTokenizer

from fadtq.commands import make_tiny_model as command
from fadtq.errors import FadtqError
from fadtq.generation.engine import SamplingParams
from fadtq.generation.hf import HFRolloutEngine
from fadtq.policy.processor import load_processor
from fadtq.pretraining.tiny_model import CONTROL_TOKENS, REASONING_TAGS, SIZES, make_tiny_model


def test_folder_is_a_hugging_face_checkpoint(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"} <= names
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl"
    assert json.loads((tiny_model_dir / "processor_config.json").read_text())["processor_class"] == "Qwen2_5_VLProcessor"


def test_reload_parameter_count_and_token_ids(tiny_model_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert 150_000 < sum(p.numel() for p in model.parameters()) < 300_000
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.text_config.vocab_size == len(tokenizer)
    for token in CONTROL_TOKENS + REASONING_TAGS:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert tokenizer.tokenize(token) == [token]


def test_reasoning_tags_survive_decoding_and_control_tokens_do_not(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "<think>a scratch on the bottle</think><answer>structural</answer>"
    ids = tokenizer(text + "<|im_end|>")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_chat_template_places_two_images(tiny_model_dir, two_prompts):
    processor = load_processor(tiny_model_dir)
    text = processor.apply_chat_template(two_prompts[0].messages, add_generation_prompt=True, tokenize=False)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    inputs = processor(text=[text], images=[[two_prompts[0].ref_image, two_prompts[0].test_image]], return_tensors="pt")
    # 100x90 is resized to 112x84 at most 112*112 pixels: 8x6 patches, 12 tokens after the 2x2 merge.
    assert inputs["image_grid_thw"].tolist() == [[1, 6, 8], [1, 6, 8]]
    assert (inputs["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum() == 24


def test_generates_a_few_tokens_with_two_images(tiny_model_dir, two_prompts):
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    engine = HFRolloutEngine(model, load_processor(tiny_model_dir))
    torch.manual_seed(0)
    result = engine.generate(two_prompts, 2, SamplingParams(max_new_tokens=5))
    assert [len(group) for group in result.groups] == [2, 2]
    assert all(1 <= len(c.completion_ids) <= 5 for group in result.groups for c in group)


def test_same_seed_same_model_other_seed_other_weights(tmp_path):
    first = make_tiny_model(tmp_path / "a", seed=3)
    second = make_tiny_model(tmp_path / "b", seed=3)
    third = make_tiny_model(tmp_path / "c", seed=4)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert (first / "model.safetensors").read_bytes() != (third / "model.safetensors").read_bytes()
    assert (first / "tokenizer.json").read_bytes() == (third / "tokenizer.json").read_bytes()


def test_command_writes_the_model(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args(["--out", str(tmp_path / "m"), "--seed", "1"])) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert "tiny" in capsys.readouterr().out


def test_bad_size_and_out_are_one_line_errors(tmp_path):
    with pytest.raises(FadtqError, match="--size"):
        make_tiny_model(tmp_path / "m", size="huge")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FadtqError, match="--out"):
        make_tiny_model(tmp_path / "file")



@pytest.mark.parametrize("name", sorted(SIZES))
def test_rotary_sections_cover_half_of_each_head(name):
    size = SIZES[name]
    assert 2 * sum(size.mrope_section) == size.text_hidden // size.text_heads
    assert size.text_heads % size.text_kv_heads == 0 and size.vision_hidden % size.vision_heads == 0


def test_3b_preset_is_qwen2_5_vl_3b():
    """Qwen2.5-VL-3B's architecture (built on the meta device: no weights): its 3.75B parameters with
    the 151,936-row embedding tied to the LM head, and the vision tower's full-attention blocks."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from fadtq.pretraining.tiny_model import build_config, build_tokenizer

    size = SIZES["3b"]
    config = build_config(size, build_tokenizer(size.vocab_size))
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=size.dtype)
    assert sum(p.numel() for p in model.parameters()) == 3_754_622_976
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    assert config.text_config.vocab_size == 151_936 and config.vision_config.fullatt_block_indexes == [7, 15, 23, 31]


def test_the_model_folder_appears_whole(tmp_path, monkeypatch):
    """Written beside the target and renamed: a failure half-way leaves the target as it was."""
    from fadtq.pretraining import tiny_model

    target = make_tiny_model(tmp_path / "m")
    before = sorted(p.name for p in target.iterdir())

    def broken(out, processor_class, options):
        raise OSError("disk full")

    monkeypatch.setattr(tiny_model, "_write_processor_config", broken)
    with pytest.raises(OSError, match="disk full"):
        make_tiny_model(target, seed=1)
    assert sorted(p.name for p in target.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no staging folder left behind
