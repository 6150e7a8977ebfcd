"""Helpers shared by the judge tests: rollouts, judges built through the registry, server metrics."""

from __future__ import annotations

import urllib.request

from fadtq.api import JudgeItem
from fadtq.composition import PluginChoice, RewardConfig, TermConfig
from fadtq.judges.server import TINY_SERVED_NAME
from fadtq.plugin_manager import default_plugins
from fadtq.prompts import PromptLibrary
from fadtq.rollout import Rollout
from fadtq.scoring import Scorer, build_scorer

LABELS = ("good", "structural", "logical")


def rollouts(n: int, prefix: str = "r", wrong_every: int = 0) -> list[Rollout]:
    """``n`` well-formed rollouts with distinct reasoning; every ``wrong_every``-th answers wrongly."""
    out = []
    for i in range(n):
        label = LABELS[i % 3]
        answer = LABELS[(i + 1) % 3] if wrong_every and i % wrong_every == 0 else label
        completion = (f"<think>{prefix} {i}: the test image differs from the reference in the count of parts "
                      f"and position {i % 7}.</think><answer>{answer}</answer>")
        out.append(Rollout(f"{prefix}{i}", f"g{i // 4}", "Which class?", completion, label, "screw_bag"))
    return out


def items(n: int, prefix: str = "item") -> list[JudgeItem]:
    return [JudgeItem("Which class?", f"{prefix} {i}: the test image matches the reference.", "good", "pushpins")
            for i in range(n)]


def openai_judge(urls: list[str], **options):
    options = {"base_urls": urls, "model": TINY_SERVED_NAME, **options}
    return default_plugins().judges.get("openai").build(options, PromptLibrary())


def seed_reward_config() -> RewardConfig:
    terms = {
        "format": TermConfig(reward="format"),
        "accuracy": TermConfig(reward="accuracy"),
        "conciseness": TermConfig(reward="conciseness", gate="accuracy"),
        "relevance": TermConfig(reward="relevance", gate="accuracy"),
        "tq": TermConfig(mix={"conciseness": "eta", "relevance": "1-eta"}, gate="accuracy"),
    }
    return RewardConfig(terms=terms, active=["format", "accuracy", "tq"])


def openai_scorer(urls: list[str], **options) -> Scorer:
    choice = PluginChoice("openai", {"base_urls": urls, "model": TINY_SERVED_NAME, **options})
    return build_scorer(seed_reward_config(), choice, default_plugins(), PromptLibrary())


def scorer_around(judge) -> Scorer:
    """The paper's reward terms scored with an already built ``judge`` (so a test can watch its counts)."""
    return Scorer(seed_reward_config(), default_plugins().rewards.get, lambda: judge)


def server_metric(base_url: str, name: str) -> float:
    """Sum of one Prometheus metric's samples on a vLLM server (``/metrics`` beside ``/v1``)."""
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/metrics", timeout=5) as reply:
        lines = reply.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines
               if line.startswith(name + "{") or line.startswith(name + " "))

