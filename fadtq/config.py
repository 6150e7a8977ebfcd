"""Declarative configuration: YAML files validated on load into typed dataclasses.

Every error names the dotted key at fault and where its value came from: the file or the preset
of an ``extends:`` chain that set it (``configs/x.yaml: reward.terms.tq.gate: unknown term 'acc';
known: accuracy, format, tq``), or the flag (``--train.lr: expected a number > 0, got -0.0001``).
``--key value`` overrides use the same dotted keys and are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from fadtq.errors import ConfigError, FadtqError
from fadtq.files import file_problem, read_text

T = TypeVar("T")
DEFAULT_CONFIG = "cpu_default.yaml"


def packaged_configs_dir() -> Path:
    return Path(str(resources.files("fadtq_configs")))


def resolve_config_path(name_or_path: str | Path | None, where: str = "--config") -> Path:
    """A path, or the name of a preset shipped in ``configs/`` (with or without ``.yaml``);
    ``where`` names what gave the name (the flag, or ``FILE: extends:``)."""
    if name_or_path is None:
        return packaged_configs_dir() / DEFAULT_CONFIG
    path = Path(name_or_path)
    if path.is_file():
        return path
    if os.path.lexists(path):
        raise FadtqError(f"{where} {name_or_path}: {file_problem(path)}")
    for candidate in (packaged_configs_dir() / path.name, packaged_configs_dir() / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    presets = ", ".join(sorted(p.stem for p in packaged_configs_dir().glob("*.yaml")))
    raise FadtqError(f"{where} {name_or_path}: no such file or preset; presets: {presets}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (PyYAML keeps the last one).
    Keys merged in with ``<<: *anchor`` are defaults the mapping's own keys may override."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(read_text(path), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise FadtqError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FadtqError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: dict[str, str], schema: type | None = None) -> dict[str, Any]:
    """Set dotted keys (``train.lr=1e-5``); values are YAML scalars or flow collections. A key below
    a value that is not a mapping is the flag's fault where ``schema`` (the config's dataclass) has
    no section there, else the fault of the value: a :class:`ConfigError` on its key."""
    for dotted, raw in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents, start=1):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                section = ".".join(parents[:depth])
                if schema is not None and _is_section(schema, parents[:depth]):
                    raise ConfigError(section, f"expected a mapping, got {type(child).__name__} (so --{dotted} "
                                      "has no section to go in)")
                raise FadtqError(f"--{dotted}: {section} is not a section (it holds {child!r})")
            node = child
        node[leaf] = yaml.safe_load(raw) if isinstance(raw, str) else raw
    return data


def _is_section(schema: Any, path: list[str]) -> bool:
    """Whether the dataclass ``schema`` holds a mapping (a dataclass or a dict) at ``path``."""
    for name in path:
        if not dataclasses.is_dataclass(schema):
            return typing.get_origin(schema) is dict
        schema = typing.get_type_hints(schema).get(name)
        if schema is None:
            return False
    return dataclasses.is_dataclass(schema) or typing.get_origin(schema) is dict


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            if option is type(None) and value is None:
                return None
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except FadtqError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else ConfigError(key, f"expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {type(value).__name__}")
        _, value_type = typing.get_args(tp)
        return {str(k): _convert(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {type(value).__name__}")
        (item_type,) = typing.get_args(tp)
        return [_convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is float:
        return _finite_float(value, key)
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(key, f"expected {_type_name(tp)}, got {value!r}")


# YAML 1.1 reads ``1e-5`` (no dot) as a string; it is accepted as the number it means.
_FLOAT_LITERAL = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _finite_float(value: Any, key: str) -> float:
    """A finite number (an int is widened); NaN and infinities are never a setting."""
    if isinstance(value, str) and _FLOAT_LITERAL.match(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"expected float, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(key, f"expected a finite number, got {value!r}")
    return float(value)


def from_mapping(cls: type[T], data: Any, key: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys, missing keys and wrong types are errors."""
    where = key or "(top level)"
    if not isinstance(data, dict):
        raise ConfigError(where, f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{key}." if key else ""
        raise ConfigError(f"{prefix}{unknown[0]}", f"unknown key; expected one of {', '.join(sorted(fields))}")
    values = {}
    for name, field in fields.items():
        dotted = f"{key}.{name}" if key else name
        if name in data:
            values[name] = _convert(data[name], hints[name], dotted)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(dotted, "missing required key")
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(key)
    return obj


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` wins; mappings present in both are merged key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Origins:
    """Where each dotted key of a loaded config came from: a file (a preset of an ``extends:``
    chain among them) or a flag. The file given by the user answers for keys nobody set."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self._by_key: dict[str, tuple[str, str | None]] = {}  # key -> (file or flag, the flag's key)

    def record(self, data: dict[str, Any], origin: str, prefix: str = "", flag_key: str | None = None) -> None:
        """Every key of ``data`` (and of its sub-mappings) came from ``origin``."""
        for key, value in data.items():
            dotted = f"{prefix}{key}"
            self._by_key[dotted] = (origin, flag_key)
            if isinstance(value, dict):
                self.record(value, origin, f"{dotted}.", flag_key)

    def record_flag(self, key: str, flag: str, value: Any) -> None:
        """``key`` was set to ``value`` by ``flag`` on the command line."""
        self._by_key[key] = (flag, key)
        if isinstance(value, dict):
            self.record(value, flag, f"{key}.", key)

    def blame_error(self, exc: ConfigError) -> FadtqError:
        """``exc`` prefixed with the file that set its key, or the flag (then the key is not repeated);
        a key nobody set is blamed on the first related key somebody did set, and the origins of the
        other related keys follow in brackets. An error about a flag (``--out``) is left as it is."""
        if exc.key.startswith("--"):
            return exc
        key = re.sub(r"\[\d+\]", "", exc.key)
        origin, flag_key = self._origin(key)
        if not self._was_set(key):
            for related in exc.related:
                if self._was_set(related):
                    origin, flag_key = self._origin(related)
                    break
        message = exc.detail if flag_key == exc.key else str(exc)
        others = [f"{related} from {where}" for related in exc.related
                  if (where := self._origin(related)[0]) not in (None, origin)]
        if others:
            message += f" ({'; '.join(others)})"
        return FadtqError(f"{origin or self.top}: {message}")

    def _was_set(self, key: str) -> bool:
        return key in self._by_key or any(dotted.startswith(f"{key}.") for dotted in self._by_key)

    def _origin(self, key: str) -> tuple[str | None, str | None]:
        """Who set ``key``: a flag that set it or something below it (the user just typed that),
        else whoever set it or its nearest section."""
        below = [origin for dotted, origin in self._by_key.items() if dotted.startswith(f"{key}.") and origin[1]]
        if below:
            return below[-1]
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            found = self._by_key.get(".".join(parts[:end]))
            if found is not None:
                return found
        return None, None

    @contextmanager
    def blame(self) -> Iterator[None]:
        """Config errors raised inside name the file, preset or flag that set the key."""
        try:
            yield
        except ConfigError as exc:
            raise self.blame_error(exc) from None


def read_with_extends(path: Path, origins: Origins, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A file's mapping, merged over the preset or file its ``extends:`` key names; ``origins``
    records which file set each key. Top-level keys starting with ``x-`` are left out: a place for
    YAML anchors that sections merge in (``<<: *anchor``)."""
    if path.resolve() in seen:
        raise FadtqError(f"{path}: extends: circular chain {' -> '.join(map(str, seen + (path,)))}")
    data = {key: value for key, value in read_yaml(path).items() if not str(key).startswith("x-")}
    parent = data.pop("extends", None)
    merged = data
    if parent is not None:
        if not isinstance(parent, str):
            raise FadtqError(f"{path}: extends: expected a preset name or path, got {parent!r}")
        local = path.parent / parent
        parent_path = resolve_config_path(local if os.path.lexists(local) else parent, f"{path}: extends:")
        merged = deep_merge(read_with_extends(parent_path, origins, seen + (path.resolve(),)), data)
    origins.record(data, str(path))
    return merged


def load_traced(cls: type[T], path: Path, overrides: dict[str, str] | None = None,
                flags: dict[str, str] | None = None) -> tuple[T, Origins]:
    """Read (following ``extends:``), override, and validate a config file. ``flags`` names the
    flag behind an override key when it is not ``--<key>`` (``{"judge.name": "--judge"}``)."""
    origins = Origins(path)
    data = read_with_extends(path, origins)
    flag_of = {key: (flags or {}).get(key, f"--{key}") for key in overrides or {}}
    for key, raw in (overrides or {}).items():
        if isinstance(raw, str) and not raw.strip():
            raise FadtqError(f"{flag_of[key]}: empty value; give null to unset it")
    with origins.blame():
        data = apply_overrides(data, overrides or {}, cls)
    for key, flag in flag_of.items():
        value = data
        for part in key.split("."):
            value = value[part]
        origins.record_flag(key, flag, value)
    with origins.blame():
        return from_mapping(cls, data), origins


def load(cls: type[T], path: Path, overrides: dict[str, str] | None = None) -> T:
    """:func:`load_traced` without the origins."""
    return load_traced(cls, path, overrides)[0]
