"""``hf``: a local transformers causal LM as judge, batched, for small judges without a server.

Options (``judge.options``)::

    model: PATH_OR_HUB_ID     # required; a causal LM with a chat template
    batch_size: 8
    structured_output: true   # the reply is the verdict JSON with only the two digits chosen by the model
    max_new_tokens: 64        # free generation (structured_output: false) only
    dtype: float32            # or bfloat16 / float16
    device: cpu
    cache: true               # verdict cache (fadtq.judges.cache), in memory
    cache_path: null          # and in this SQLite file
    cache_memory_entries: 200000  # most recently used verdicts kept in memory

Same templates (``judge_messages``, Qwen3 thinking off through ``enable_thinking=False``), same
parser (``parse_verdict``) and same failure policy as the ``openai`` judge. With
``structured_output`` the judge plays the part of a server's JSON schema: the reply is written as
``{"conciseness": D, "relevance": D}`` and the model only picks each ``D`` among the tokens 0-3
(greedy, one forward pass per score), so even a small model's reply always parses; without it
the model generates greedily and an unreadable reply is a recorded failure.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence

from fadtq.api import JudgeFactory, JudgeItem, Verdict, hookimpl
from fadtq.errors import ConfigError
from fadtq.judges.cache import VerdictCache, cache_from_options, judge_through_cache
from fadtq.judges.options import JudgeOptions
from fadtq.judges.protocol import JUDGE_TEMPLATES, SCORE_FIELDS, SCORE_RANGE, judge_messages, parse_verdict
from fadtq.paths import missing_local_folder
from fadtq.prompts import PromptLibrary

log = logging.getLogger("fadtq.judge.hf")
DTYPES = ("float32", "bfloat16", "float16")


class HFJudge:
    name = "hf"

    def __init__(self, model, tokenizer, prompts: PromptLibrary, cache: VerdictCache | None, batch_size: int,
                 structured: bool, max_new_tokens: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.prompts = prompts
        self.cache = cache
        self.batch_size = batch_size
        self.structured = structured
        self.max_new_tokens = max_new_tokens
        self.counts: Counter[str] = Counter()
        self._digits = self._digit_ids() if structured else None

    def _digit_ids(self) -> list[int]:
        ids = [self.tokenizer.encode(str(d), add_special_tokens=False) for d in SCORE_RANGE]
        if any(len(i) != 1 for i in ids):
            raise ConfigError("judge.options.structured_output", "the tokenizer has no single token for each digit 0-3")
        return [i[0] for i in ids]

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        started, hits_before = time.perf_counter(), self.cache.hits if self.cache else 0
        verdicts = judge_through_cache(self.cache, items, self._judge_new)
        self.counts.update(items=len(items), cache_hits=(self.cache.hits if self.cache else 0) - hits_before)
        failed = sum(not v.ok for v in verdicts)
        log.info("hf judge: %d items in %.2f s, %d failed", len(items), time.perf_counter() - started, failed)
        return verdicts

    def _judge_new(self, items: list[JudgeItem]) -> list[Verdict]:
        self.counts["sent"] += len(items)
        replies: list[str] = []
        for start in range(0, len(items), self.batch_size):
            prompts = [self._prompt(item) for item in items[start:start + self.batch_size]]
            replies += self._structured(prompts) if self.structured else self._generate(prompts)
        verdicts = [parse_verdict(reply) for reply in replies]
        self.counts["failed_unparseable"] += sum(not v.ok for v in verdicts)
        return verdicts

    def _prompt(self, item: JudgeItem) -> str:
        return self.tokenizer.apply_chat_template(judge_messages(self.prompts, item), tokenize=False,
                                                  add_generation_prompt=True, enable_thinking=False)

    def _generate(self, prompts: list[str]) -> list[str]:
        import torch

        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        with torch.no_grad():
            out = self.model.generate(**batch, do_sample=False, max_new_tokens=self.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)

    def _structured(self, prompts: list[str]) -> list[str]:
        """Write the verdict JSON around the model's choice of digit for each score field."""
        texts = list(prompts)
        for i, name in enumerate(SCORE_FIELDS):
            texts = [t + ("{" if i == 0 else ", ") + f'"{name}": ' for t in texts]
            texts = [t + str(d) for t, d in zip(texts, self._pick_digits(texts))]
        return [t[len(p):] + "}" for t, p in zip(texts, prompts)]

    def _pick_digits(self, texts: list[str]) -> list[int]:
        import torch

        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        # positions count real tokens only, so a left-padded row scores as it would alone
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = self.model(**batch, position_ids=positions).logits[:, -1, self._digits]
        return logits.argmax(dim=-1).tolist()


def _load(name: str, dtype: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if missing_local_folder(name):
        raise ConfigError("judge.options.model", f"{name}: no such folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=getattr(torch, dtype)).to(device).eval()
    except (OSError, ValueError) as exc:
        raise ConfigError("judge.options.model", f"{name}: cannot load ({str(exc).splitlines()[0]})") from None
    tokenizer.padding_side = "left"  # the last position of every row is the next token's
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def build(options: dict, prompts: PromptLibrary) -> HFJudge:
    opts = JudgeOptions(options, "hf")
    name = opts.string("model")
    batch_size = opts.integer("batch_size", 8, 1)
    structured = opts.boolean("structured_output", True)
    max_new_tokens = opts.integer("max_new_tokens", 64, 8)
    dtype = opts.string("dtype", "float32")
    if dtype not in DTYPES:
        raise ConfigError("judge.options.dtype", f"expected one of {', '.join(DTYPES)}, got {dtype!r}")
    device = opts.string("device", "cpu")
    cache = cache_from_options(opts, name, prompts)
    opts.check_unknown()
    model, tokenizer = _load(name, dtype, device)
    return HFJudge(model, tokenizer, prompts, cache, batch_size, structured, max_new_tokens)


@hookimpl
def register_judges():
    return [JudgeFactory("hf", build, description="a local transformers causal LM, batched, cached",
                         templates=JUDGE_TEMPLATES)]
