"""A tiny Qwen3-style judge built offline: a local BPE tokenizer, Qwen3's chat template (with
``enable_thinking``) and a random ``Qwen3ForCausalLM`` of about 2.5M parameters.

It knows nothing, which is the point: served by vLLM with the verdict JSON schema it still
answers in the schema, so the tests exercise the real server, the real protocol and the real
parser; unconstrained, it answers garbage, which exercises the failure policy. The tokenizer is
trained on the rendered judge prompt so that one judge request stays a few hundred tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from fadtq.api import JudgeItem
from fadtq.judges.protocol import judge_messages
from fadtq.prompts import PromptLibrary

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
THINK_TAGS = ("<think>", "</think>")
VOCAB_SIZE = 768

# Qwen3's layout, reduced to text messages: with enable_thinking=false the generation prompt
# ends in an empty think block, which is how Qwen3 switches its thinking off.
CHAT_TEMPLATE = r"""{%- for message in messages %}
{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}
{%- endif %}"""


def corpus() -> list[str]:
    """Judge prompts for a few made-up items plus verdict JSON: what the judge reads and writes."""
    library = PromptLibrary()
    items = [JudgeItem("Which class?", "The test image matches the reference; the count is the same.", "good", "pushpins"),
             JudgeItem("Which class?", "A scratch and a missing screw differ from the reference.", "logical", "screw_bag")]
    texts = [m["content"] for item in items for m in judge_messages(library, item)]
    return texts + [f'{{"conciseness": {c}, "relevance": {r}}}' for c in range(4) for r in range(4)]


def build_tokenizer() -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=list(SPECIAL_TOKENS[1:]), model_max_length=4096)
    tokenizer.add_tokens(list(THINK_TAGS))
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(tokenizer: PreTrainedTokenizerFast, seed: int) -> Qwen3ForCausalLM:
    eos, pad = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=pad, eos_token_id=eos, pad_token_id=pad)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM._from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, do_sample=False)
    return model.eval()


def make_tiny_judge(out: str | Path, seed: int = 0) -> Path:
    """Build and save the tiny judge to ``out`` (an ordinary Hugging Face checkpoint folder)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    build_model(tokenizer, seed).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
