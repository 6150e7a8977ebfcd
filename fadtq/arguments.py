"""What every command line of the project parses with: the parser class, comma-separated name
lists, and ``--section.key value`` config overrides. The error boundary is ``fadtq.errors.report_errors``."""

from __future__ import annotations

import argparse
from typing import NoReturn

from fadtq.errors import FadtqError


class Parser(argparse.ArgumentParser):
    """Every parser of the command line: no abbreviated flags (``--inp`` is never taken for
    ``--input``), and a usage error is one ``error:`` line through the error boundary."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise FadtqError(f"{self.prog}: {message} (see {self.prog} --help)")


def parse_name_list(raw: str, flag: str) -> list[str]:
    """``a,b,c`` as names: none empty, none repeated."""
    names = [name.strip() for name in raw.split(",")]
    if not all(names):
        raise FadtqError(f"{flag}: empty name in {raw!r}; expected comma-separated names")
    if len(set(names)) != len(names):
        raise FadtqError(f"{flag}: a name is repeated in {raw!r}")
    return names


def parse_overrides(rest: list[str]) -> dict[str, str]:
    """``--section.key value`` (or ``--section.key=value``) pairs, each key once."""
    overrides: dict[str, str] = {}
    i = 0
    while i < len(rest):
        flag = rest[i]
        if not flag.startswith("--") or len(flag) == 2:
            raise FadtqError(f"unexpected argument {flag!r}; overrides look like --section.key value")
        if "=" in flag:
            key, value = flag[2:].split("=", 1)
            i += 1
        elif i + 1 < len(rest):
            key, value = flag[2:], rest[i + 1]
            i += 2
        else:
            raise FadtqError(f"{flag}: missing value")
        if key in overrides:
            raise FadtqError(f"--{key}: given twice")
        overrides[key] = value
    return overrides
