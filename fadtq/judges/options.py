"""Validation of a judge plugin's ``judge.options``: every error names ``judge.options.<key>``.

Config files are written by hand, so a misspelt key or a wrong type must fail when the judge is
built, with the key in the message, not deep inside a request loop.
"""

from __future__ import annotations

from typing import Any

from fadtq.errors import ConfigError

_MISSING = object()


class JudgeOptions:
    """Typed reads of an options mapping; ``check_unknown`` rejects keys nobody read."""

    def __init__(self, options: dict[str, Any] | None, judge: str) -> None:
        if options is not None and not isinstance(options, dict):
            raise ConfigError("judge.options", f"expected a mapping for the {judge} judge, got {type(options).__name__}",
                              related=("judge.name",))
        self._options = dict(options or {})
        self._judge = judge
        self._read: set[str] = set()

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        value = self._options.get(key, default)
        if value is _MISSING:
            raise ConfigError(f"judge.options.{key}", f"required by the {self._judge} judge", related=("judge.name",))
        return value

    def _fail(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"judge.options.{key}", f"expected {expected}, got {value!r}")

    def string(self, key: str, default: Any = _MISSING) -> str | None:
        value = self._get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self._fail(key, "a non-empty string", value)
        return value

    def strings(self, key: str, default: Any = _MISSING) -> list[str]:
        """A list of non-empty strings; a single string is accepted as a list of one."""
        value = self._get(key, default)
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise self._fail(key, "a non-empty list of strings", value)
        return value

    def integer(self, key: str, default: int, minimum: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._fail(key, f"an integer >= {minimum}", value)
        return value

    def number(self, key: str, default: float, minimum: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise self._fail(key, f"a number >= {minimum}", value)
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def check_unknown(self) -> None:
        unknown = sorted(set(self._options) - self._read)
        if unknown:
            raise ConfigError(f"judge.options.{unknown[0]}", f"unknown option of the {self._judge} judge; "
                              f"known: {', '.join(sorted(self._read))}", related=("judge.name",))
