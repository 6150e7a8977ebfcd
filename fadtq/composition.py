"""How reward terms combine into R, declared in config and validated on load.

A *term* is either a reward plugin (``reward: accuracy``) or a weighted mix of other terms
(``mix: {conciseness: eta, relevance: 1-eta}``), optionally *gated* by another term: the gate's
value g = min(1, max(0, value)) multiplies the term, and where g = 0 the term is not computed at
all (so the judge is never asked about a wrong or unparseable answer). The total is
``sum(weight * g * value)`` over the ``active`` terms, which ``--rewards`` selects. The paper's

    R = r_format + r_acc + min(1, max(0, r_acc)) * (eta * r_conc + (1 - eta) * r_rel)

is ``configs/cpu_default.yaml``'s ``reward`` section. Judge failures: a term that could not be
computed for a rollout (the judge gave no verdict) is ``null`` in the output and contributes 0
to the total; the failure is counted and logged (``on_judge_failure: zero``, the one policy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fadtq.errors import ConfigError, FadtqError

ETA_SYMBOLS = ("eta", "1-eta")


@dataclass
class TermConfig:
    reward: str | None = None
    mix: dict[str, float | str] | None = None
    gate: str | None = None
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        if (self.reward is None) == (self.mix is None):
            raise ConfigError(key, "give exactly one of 'reward' (a plugin name) or 'mix' (weights of other terms)")
        if self.mix == {}:
            raise ConfigError(f"{key}.mix", "expected at least one term")
        for name, weight in (self.mix or {}).items():
            if isinstance(weight, str) and weight.replace(" ", "") not in ETA_SYMBOLS:
                raise ConfigError(f"{key}.mix.{name}", f"expected a number, 'eta' or '1-eta', got {weight!r}")

    def dependencies(self) -> list[str]:
        return ([self.gate] if self.gate else []) + list(self.mix or {})


@dataclass
class RewardConfig:
    terms: dict[str, TermConfig]
    active: list[str]
    eta: float = 0.5
    on_judge_failure: str = "zero"

    def validate(self, key: str) -> None:
        prefix = f"{key}." if key else ""
        if not 0.0 <= self.eta <= 1.0:
            raise ConfigError(f"{prefix}eta", f"expected a number in [0, 1], got {self.eta}")
        if self.on_judge_failure != "zero":
            raise ConfigError(f"{prefix}on_judge_failure", f"the only policy is 'zero', got {self.on_judge_failure!r}")
        known = ", ".join(sorted(self.terms))
        for name, term in self.terms.items():
            refs = ([("gate", term.gate)] if term.gate else []) + [(f"mix.{dep}", dep) for dep in term.mix or {}]
            for where, dep in refs:
                if dep not in self.terms:
                    raise ConfigError(f"{prefix}terms.{name}.{where}", f"unknown term {dep!r}; known: {known}")
        for name in self.active:
            if name not in self.terms:
                raise ConfigError(f"{prefix}active", f"unknown term {name!r}; known: {known} "
                                  "(a reward plugin needs a term here, or select it with --rewards)")
        for name in self.terms:
            self._check_acyclic(name, (), prefix)
        if not self.active:
            raise ConfigError(f"{prefix}active", "expected at least one term")
        if len(set(self.active)) != len(self.active):
            raise ConfigError(f"{prefix}active", f"a term is listed twice in {self.active}")

    def _check_acyclic(self, name: str, path: tuple[str, ...], prefix: str) -> None:
        if name in path:
            raise ConfigError(f"{prefix}terms.{name}", f"circular reference {' -> '.join(path + (name,))}")
        for dep in self.terms[name].dependencies():
            self._check_acyclic(dep, path + (name,), prefix)

    def mix_weight(self, weight: float | str) -> float:
        if isinstance(weight, str):
            return self.eta if weight.replace(" ", "") == "eta" else 1.0 - self.eta
        return float(weight)

    def with_active(self, names: list[str], reward_names: list[str]) -> "RewardConfig":
        """Select the active terms (``--rewards``). A registered reward plugin that is not a
        configured term becomes an ungated term of weight 1, so new plugins need no config."""
        terms = dict(self.terms)
        for name in names:
            if name not in terms:
                if name not in reward_names:
                    known = ", ".join(sorted(set(terms) | set(reward_names)))
                    raise FadtqError(f"--rewards: unknown reward {name!r}; known: {known}")
                terms[name] = TermConfig(reward=name)
        return RewardConfig(terms=terms, active=list(names), eta=self.eta, on_judge_failure=self.on_judge_failure)


@dataclass
class PluginChoice:
    name: str
    options: dict[str, Any] = field(default_factory=dict)
