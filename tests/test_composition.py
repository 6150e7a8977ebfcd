"""Reward composition (``fadtq.composition``) and scoring (``fadtq.scoring``).

The judge here is a small counting fake defined in the test: it records which items it was asked
about and answers from a table keyed by the reasoning text. Everything else (reward plugins, config,
gates, totals) is the real code.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest

from fadtq.api import JudgeFactory, Verdict
from fadtq.composition import PluginChoice, RewardConfig, TermConfig
from fadtq.config import from_mapping
from fadtq.errors import FadtqError
from fadtq.plugin_manager import Registry, default_plugins
from fadtq.prompts import PromptLibrary
from fadtq.rollout import Rollout
from fadtq.run_config import load_run_config
from fadtq.scoring import Scorer, build_scorer

SEED_TERMS = {
    "format": {"reward": "format"},
    "accuracy": {"reward": "accuracy"},
    "conciseness": {"reward": "conciseness", "gate": "accuracy"},
    "relevance": {"reward": "relevance", "gate": "accuracy"},
    "tq": {"mix": {"conciseness": "eta", "relevance": "1-eta"}, "gate": "accuracy"},
}


def seed_mapping(**changes):
    data = {"terms": copy.deepcopy(SEED_TERMS), "active": ["format", "accuracy", "tq"], "eta": 0.5}
    data.update(changes)
    return data


def error_of(data) -> str:
    with pytest.raises(FadtqError) as info:
        from_mapping(RewardConfig, data, "reward")
    return str(info.value)


# --------------------------------------------------------------------------------------------
# RewardConfig validation
# --------------------------------------------------------------------------------------------

def test_seed_mapping_is_valid():
    cfg = from_mapping(RewardConfig, seed_mapping(), "reward")
    assert cfg.terms["tq"].dependencies() == ["accuracy", "conciseness", "relevance"]


def test_term_with_both_reward_and_mix():
    data = seed_mapping()
    data["terms"]["tq"]["reward"] = "relevance"
    message = error_of(data)
    assert message.startswith("reward.terms.tq:") and "exactly one of 'reward'" in message


def test_term_with_neither_reward_nor_mix():
    data = seed_mapping()
    data["terms"]["empty"] = {"gate": "accuracy"}
    message = error_of(data)
    assert message.startswith("reward.terms.empty:") and "exactly one of 'reward'" in message


def test_unknown_gate_term_named():
    data = seed_mapping()
    data["terms"]["tq"]["gate"] = "acc"
    message = error_of(data)
    # names the term whose gate is wrong, the wrong name, and the known terms
    # (config.py's docstring example says "reward.terms.tq.gate: ..."; the message says "reward.terms.tq: ...")
    assert message.startswith("reward.terms.tq"), message
    assert "'acc'" in message
    assert "known: accuracy, conciseness, format, relevance, tq" in message


def test_unknown_mix_term_named():
    data = seed_mapping()
    data["terms"]["tq"]["mix"] = {"conciseness": "eta", "relevanse": "1-eta"}
    message = error_of(data)
    assert message.startswith("reward.terms.tq"), message
    assert "'relevanse'" in message


@pytest.mark.parametrize("symbol", ["2eta", "eta^2", "1+eta", "half", ""])
def test_bad_eta_symbol_named(symbol):
    data = seed_mapping()
    data["terms"]["tq"]["mix"] = {"conciseness": "eta", "relevance": symbol}
    message = error_of(data)
    assert message.startswith("reward.terms.tq.mix.relevance:"), message
    assert repr(symbol) in message


@pytest.mark.parametrize("symbol", ["eta", "1-eta", "1 - eta", " eta "])
def test_eta_symbols_accepted(symbol):
    data = seed_mapping()
    data["terms"]["tq"]["mix"] = {"conciseness": symbol, "relevance": 0.5}
    from_mapping(RewardConfig, data, "reward")


@pytest.mark.parametrize("eta, expected", [(-0.01, "[0, 1]"), (1.01, "[0, 1]"), (2, "[0, 1]"),
                                           (float("nan"), "finite"), (float("inf"), "finite")])
def test_eta_out_of_range_named(eta, expected):
    message = error_of(seed_mapping(eta=eta))
    assert message.startswith("reward.eta:") and expected in message


@pytest.mark.parametrize("eta", [0, 0.0, 1, 1.0, 0.3])
def test_eta_bounds_inclusive(eta):
    assert from_mapping(RewardConfig, seed_mapping(eta=eta), "reward").eta == float(eta)


def test_circular_reference_named():
    data = seed_mapping()
    data["terms"]["a"] = {"mix": {"b": 1}}
    data["terms"]["b"] = {"mix": {"a": 1}}
    message = error_of(data)
    assert message.startswith("reward.terms.a:") and "circular reference a -> b -> a" in message


def test_self_gate_is_circular():
    data = seed_mapping()
    data["terms"]["accuracy"]["gate"] = "accuracy"
    message = error_of(data)
    assert message.startswith("reward.terms.accuracy:") and "circular" in message


def test_empty_active_named():
    message = error_of(seed_mapping(active=[]))
    assert message.startswith("reward.active:")


def test_unknown_judge_failure_policy_named():
    message = error_of(seed_mapping(on_judge_failure="mean"))
    assert message.startswith("reward.on_judge_failure:")


# Regression test (fixed bug in fadtq/composition.py, RewardConfig.validate): an ``active`` entry that is not a configured
# term is accepted on load (e.g. ``active: [format, acuracy]``); the run then dies later in
# Scorer.needed_terms with a bare KeyError('acuracy') instead of a FadtqError naming
def test_unknown_active_term_named_on_load():
    message = error_of(seed_mapping(active=["format", "acuracy"]))
    assert message.startswith("reward.active"), message
    assert "'acuracy'" in message


# --------------------------------------------------------------------------------------------
# with_active (--rewards)
# --------------------------------------------------------------------------------------------

def seed_config(**changes) -> RewardConfig:
    return from_mapping(RewardConfig, seed_mapping(**changes), "reward")


def test_with_active_unknown_name_lists_known():
    cfg = seed_config()
    with pytest.raises(FadtqError) as info:
        cfg.with_active(["format", "acuracy"], ["format", "accuracy", "length_penalty"])
    message = str(info.value)
    assert message.startswith("--rewards: unknown reward 'acuracy'")
    assert "known: accuracy, conciseness, format, length_penalty, relevance, tq" in message


def test_with_active_plugin_reward_becomes_ungated_term():
    cfg = seed_config()
    out = cfg.with_active(["format", "length_penalty"], ["format", "accuracy", "length_penalty"])
    assert out.active == ["format", "length_penalty"]
    term = out.terms["length_penalty"]
    assert term.reward == "length_penalty" and term.gate is None and term.weight == 1.0 and term.mix is None
    assert "length_penalty" not in cfg.terms  # the original config is untouched
    assert out.eta == cfg.eta


# --------------------------------------------------------------------------------------------
# Scorer with a counting judge
# --------------------------------------------------------------------------------------------

class CountingJudge:
    """A fake judge: records every item and every call; answers from ``table[reasoning]``."""

    name = "counting"

    def __init__(self, table: dict[str, Verdict]) -> None:
        self.table = table
        self.items: list = []
        self.calls = 0

    def judge(self, items):
        self.calls += 1
        self.items.extend(items)
        return [self.table[i.reasoning] for i in items]


def rollout(rid: str, think: str, answer: str, label: str = "good", group: str = "g", raw: str | None = None):
    completion = raw if raw is not None else f"<think>{think}</think><answer>{answer}</answer>"
    return Rollout(id=rid, group=group, prompt="Q", completion=completion, label=label, category="pill")


def make_scorer(cfg: RewardConfig, judge: CountingJudge) -> Scorer:
    return Scorer(cfg, default_plugins().rewards.get, lambda: judge)


def test_judge_never_asked_about_wrong_or_unparseable():
    table = {"right": Verdict(3, 3), "right2": Verdict(1, 2)}
    judge = CountingJudge(table)
    rollouts = [
        rollout("r1", "right", "good"),
        rollout("w1", "wrong", "structural"),  # wrong class
        rollout("u1", "unparseable", "good or logical"),  # two classes -> None
        rollout("u2", "no answer", "", raw="<think>no answer</think>"),  # no answer block
        rollout("r2", "right2", "logical", label="logical"),
        rollout("u3", "two blocks", "", raw="<think>two blocks</think><answer>good</answer><answer>good</answer>"),
    ]
    scored = make_scorer(seed_config(), judge).score(rollouts)
    assert sorted(i.reasoning for i in judge.items) == ["right", "right2"]
    assert scored.judge.judged == 2
    assert scored.judge.skipped == 4
    assert scored.judge.failed == 0
    # wrong / unparseable: judge terms not computed (null), total = format + 0
    for i in (1, 2, 3, 5):
        assert scored.components["conciseness"][i] is None
        assert scored.components["relevance"][i] is None
        assert scored.components["tq"][i] is None
    # r1: 1 + 1 + 1*(.5*3/3 + .5*3/3) = 3
    # w1: 1 + 0 = 1; u1: 1 + 0 = 1; u2: format 0 (no answer block) + 0 = 0
    # r2: 1 + 1 + (.5*1/3 + .5*2/3) = 2.5; u3: format 0 (two answer blocks) + acc 0 = 0
    assert scored.total == pytest.approx([3.0, 1.0, 1.0, 0.0, 2.5, 0.0])


def test_conciseness_and_relevance_share_one_judge_call_per_rollout():
    table = {f"t{i}": Verdict(i % 4, (i + 1) % 4) for i in range(5)}
    judge = CountingJudge(table)
    rollouts = [rollout(f"r{i}", f"t{i}", "good") for i in range(5)]
    # both raw judge terms active as well as tq: still one verdict per rollout
    cfg = seed_config(active=["format", "accuracy", "conciseness", "relevance", "tq"])
    scored = make_scorer(cfg, judge).score(rollouts)
    assert judge.calls == 1
    assert [i.reasoning for i in judge.items] == [f"t{i}" for i in range(5)]
    assert scored.judge.judged == 5 and scored.judge.calls == 1
    # item contents: the think text, the stripped answer text, the category
    assert judge.items[0].reasoning == "t0" and judge.items[0].answer == "good" and judge.items[0].category == "pill"


def test_judge_error_gives_nulls_and_counts_failure():
    table = {"ok": Verdict(3, 0), "broken": Verdict(error="reply is not JSON")}
    judge = CountingJudge(table)
    rollouts = [rollout("a", "ok", "good"), rollout("b", "broken", "good")]
    scored = make_scorer(seed_config(eta=0.5), judge).score(rollouts)
    c = scored.components
    assert c["conciseness"][1] is None and c["relevance"][1] is None and c["tq"][1] is None
    # a: 1 + 1 + (.5*1 + .5*0) = 2.5; b: 1 + 1 + tq counted 0 = 2
    assert scored.total == pytest.approx([2.5, 2.0])
    assert c["tq"][0] == pytest.approx(0.5)
    assert scored.judge.failed == 1 and scored.judge.judged == 2
    assert scored.judge.failure_examples and scored.judge.failure_examples[0].startswith("b:")


@pytest.mark.parametrize(
    "eta, conc, rel, expected",
    [
        # R = 1 + 1 + min(1, max(0, 1)) * (eta*c/3 + (1-eta)*r/3)
        (0.5, 3, 3, 3.0),  # 2 + .5 + .5
        (0.5, 0, 0, 2.0),  # 2 + 0
        (0.0, 3, 0, 2.0),  # eta 0: relevance only -> 2 + 0
        (0.0, 1, 2, 2 + 2 / 3),  # 2 + 1*(2/3)
        (1.0, 3, 0, 3.0),  # eta 1: conciseness only -> 2 + 1
        (1.0, 1, 3, 2 + 1 / 3),  # 2 + 1/3
        (0.25, 2, 1, 2 + 5 / 12),  # 2 + .25*2/3 + .75*1/3 = 2 + 1/6 + 1/4 = 2 + 5/12
        (0.7, 2, 3, 2 + 23 / 30),  # 2 + .7*2/3 + .3*3/3 = 2 + 14/30 + 9/30 = 2.7667
    ],
)
def test_seed_total_by_hand(eta, conc, rel, expected):
    judge = CountingJudge({"why": Verdict(conc, rel)})
    cfg = load_run_config(None, {"reward.eta": str(eta)}).reward
    scored = make_scorer(cfg, judge).score([rollout("x", "why", "good")])
    assert scored.total[0] == pytest.approx(expected)
    assert scored.components["format"][0] == 1.0 and scored.components["accuracy"][0] == 1.0
    assert scored.components["tq"][0] == pytest.approx(expected - 2)


def test_total_without_format_but_correct():
    # format 0 (text before the blocks) but the answer block is right: R = 0 + 1 + 1*(.5*2/3 + .5*1/3) = 1.5
    judge = CountingJudge({"why": Verdict(2, 1)})
    r = rollout("x", "", "", raw="Sure. <think>why</think><answer>good</answer>")
    scored = make_scorer(seed_config(), judge).score([r])
    assert scored.components["format"][0] == 0.0
    assert scored.total[0] == pytest.approx(1.5)


def test_total_with_weights():
    # weights apply per active term: 2*format + 1*acc + 0.5*gate*tq = 2*1 + 1 + .5*(.5*1 + .5*1/3) = 3 + 1/3
    data = seed_mapping()
    data["terms"]["format"]["weight"] = 2
    data["terms"]["tq"]["weight"] = 0.5
    judge = CountingJudge({"why": Verdict(3, 1)})
    scored = make_scorer(from_mapping(RewardConfig, data, "reward"), judge).score([rollout("x", "why", "good")])
    assert scored.total[0] == pytest.approx(3 + 1 / 3)


def test_duplicate_ids_rejected():
    judge = CountingJudge({})
    with pytest.raises(FadtqError, match="unique"):
        make_scorer(seed_config(), judge).score([rollout("x", "a", "good"), rollout("x", "b", "good")])


def test_scorer_rejects_unknown_reward_plugin_at_construction():
    data = seed_mapping()
    data["terms"]["format"]["reward"] = "formatt"
    cfg = from_mapping(RewardConfig, data, "reward")
    with pytest.raises(FadtqError, match="formatt"):
        make_scorer(cfg, CountingJudge({}))


# --------------------------------------------------------------------------------------------
# build_scorer: the judge factory is only called when a term needs it
# --------------------------------------------------------------------------------------------

def plugins_with_counting_factory(judge: CountingJudge, builds: list):
    base = default_plugins()
    judges = Registry("judge", "--judge")

    def build(options, prompts):
        builds.append(options)
        return judge

    judges.add("counting", JudgeFactory("counting", build), "test")
    return dataclasses.replace(base, judges=judges)


def test_format_accuracy_never_builds_judge():
    builds: list = []
    judge = CountingJudge({"why": Verdict(3, 3)})
    plugins = plugins_with_counting_factory(judge, builds)
    cfg = seed_config().with_active(["format", "accuracy"], plugins.rewards.names())
    scorer = build_scorer(cfg, PluginChoice("counting"), plugins, PromptLibrary())
    scored = scorer.score([rollout("a", "why", "good"), rollout("b", "why", "logical")])
    assert builds == []
    assert judge.calls == 0
    # a: 1 + 1 = 2; b: 1 + 0 = 1
    assert scored.total == pytest.approx([2.0, 1.0])
    assert scored.components["tq"] == [None, None]
    assert scored.judge.judged == 0


def test_judge_factory_built_once_when_needed():
    builds: list = []
    judge = CountingJudge({"why": Verdict(3, 3)})
    plugins = plugins_with_counting_factory(judge, builds)
    scorer = build_scorer(seed_config(), PluginChoice("counting", {"k": 1}), plugins, PromptLibrary())
    scorer.score([rollout("a", "why", "good")])
    scorer.score([rollout("b", "why", "good")])
    assert builds == [{"k": 1}]
    assert judge.calls == 2


def test_build_scorer_unknown_judge_lists_known():
    builds: list = []
    plugins = plugins_with_counting_factory(CountingJudge({}), builds)
    with pytest.raises(FadtqError, match=r"--judge: unknown judge 'nope'; known: counting"):
        build_scorer(seed_config(), PluginChoice("nope"), plugins, PromptLibrary())


def test_term_config_dependencies():
    t = TermConfig(mix={"a": 1, "b": "eta"}, gate="g")
    assert t.dependencies() == ["g", "a", "b"]
