"""The one exception type users see, and the command line's one error boundary."""

from __future__ import annotations

import sys
from collections.abc import Callable


class FadtqError(Exception):
    """A user-facing error. Its message names the file, field or flag at fault and what was expected.

    The command line prints ``error: <message>`` and exits with status 2; no traceback.
    """


class ConfigError(FadtqError):
    """An error in one setting: a dotted config key, or a flag. For a config key, where its value
    came from (a file, a preset of an ``extends:`` chain, a flag) is added by
    :meth:`fadtq.config.Origins.blame`. ``related`` names the other keys whose values make this one
    wrong (``rollout.group_size`` for a micro-batch size that does not divide the rollouts): their
    origins are named too, and one of them answers for a key that nobody set."""

    def __init__(self, key: str, detail: str, related: tuple[str, ...] = ()) -> None:
        super().__init__(f"{key}: {detail}" if key else detail)
        self.key = key
        self.detail = detail
        self.related = related


# Failures of the input or the machine rather than of the code: shown as one line, not a traceback.
EXPECTED = (FadtqError, OSError, UnicodeError)


def one_line(exc: BaseException) -> str:
    """The message of an expected failure; an ``OSError`` names its path(s)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        paths = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
        return f"{paths}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    return " ".join(str(exc).split()) or type(exc).__name__


def report_errors(run: Callable[[], int]) -> int:
    """Run a command: expected failures print ``error: <one line>`` and return 2; anything else
    (a bug) propagates with its traceback."""
    try:
        return int(run() or 0)
    except EXPECTED as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
