"""Declarative configuration: YAML files validated on load into typed dataclasses.

Every error names the file and the dotted key at fault (``configs/x.yaml: reward.terms.tq.gate:
unknown term 'acc'; known: accuracy, format, tq``). ``--key value`` overrides use the same dotted
keys and are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from fadtq.errors import FadtqError

T = TypeVar("T")
DEFAULT_CONFIG = "cpu_default.yaml"


def packaged_configs_dir() -> Path:
    return Path(str(resources.files("fadtq_configs")))


def resolve_config_path(name_or_path: str | Path | None) -> Path:
    """A path, or the name of a preset shipped in ``configs/`` (with or without ``.yaml``)."""
    if name_or_path is None:
        return packaged_configs_dir() / DEFAULT_CONFIG
    path = Path(name_or_path)
    if path.is_file():
        return path
    for candidate in (packaged_configs_dir() / path.name, packaged_configs_dir() / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    presets = ", ".join(sorted(p.stem for p in packaged_configs_dir().glob("*.yaml")))
    raise FadtqError(f"--config {name_or_path}: no such file or preset; presets: {presets}")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise FadtqError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FadtqError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """Set dotted keys (``train.lr=1e-5``); values are YAML scalars or flow collections."""
    for dotted, raw in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise FadtqError(f"--{dotted}: {key!r} is not a section")
            node = child
        node[leaf] = yaml.safe_load(raw) if isinstance(raw, str) else raw
    return data


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
        raise errors[0] if len(errors) == 1 else FadtqError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise FadtqError(f"{key}: expected a mapping, got {type(value).__name__}")
        _, value_type = typing.get_args(tp)
        return {str(k): _convert(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise FadtqError(f"{key}: expected a list, got {type(value).__name__}")
        (item_type,) = typing.get_args(tp)
        return [_convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        return _float_literal(value, key)
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise FadtqError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _float_literal(value: str, key: str) -> float:
    """YAML 1.1 reads ``1e-5`` (no dot) as a string; accept it as the number it means."""
    try:
        return float(value)
    except ValueError:
        raise FadtqError(f"{key}: expected float, got {value!r}") from None


def from_mapping(cls: type[T], data: Any, key: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys, missing keys and wrong types are errors."""
    where = key or "(top level)"
    if not isinstance(data, dict):
        raise FadtqError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{key}." if key else ""
        raise FadtqError(f"{prefix}{unknown[0]}: unknown key; expected one of {', '.join(sorted(fields))}")
    values = {}
    for name, field in fields.items():
        dotted = f"{key}.{name}" if key else name
        if name in data:
            values[name] = _convert(data[name], hints[name], dotted)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise FadtqError(f"{dotted}: missing required key")
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


def read_with_extends(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A file's mapping, merged over the preset or file its ``extends:`` key names."""
    if path.resolve() in seen:
        raise FadtqError(f"{path}: extends: circular chain {' -> '.join(map(str, seen + (path,)))}")
    data = read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise FadtqError(f"{path}: extends: expected a preset name or path, got {parent!r}")
    local = path.parent / parent
    parent_path = local if local.is_file() else resolve_config_path(parent)
    return deep_merge(read_with_extends(parent_path, seen + (path.resolve(),)), data)


def load(cls: type[T], path: Path, overrides: dict[str, str] | None = None) -> T:
    """Read (following ``extends:``), override, and validate a config file; errors are prefixed
    with the file's path."""
    data = apply_overrides(read_with_extends(path), overrides or {})
    try:
        return from_mapping(cls, data)
    except FadtqError as exc:
        raise FadtqError(f"{path}: {exc}") from None
