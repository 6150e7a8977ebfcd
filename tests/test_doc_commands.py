"""The commands in README.md and docs/*.md still work: every ``fadtq`` subcommand and flag they
use exists, every training command's config and ``--section.key value`` overrides load, and
every script exists and every ``make`` target is in the Makefile. Nothing is run, so the check takes seconds whatever
the commands would cost."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```(?:bash|sh|console)\n(.*?)```", re.S)


def shell_lines(doc: Path) -> list[str]:
    """The command lines of a document's shell blocks, comments and continuations resolved."""
    lines = []
    for block in _BLOCK.findall(doc.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def words_of(line: str) -> list[str]:
    """The command's words without leading ``VAR=value`` assignments and ``.venv/bin/`` prefixes."""
    words = shlex.split(line)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)
    return [w.removeprefix(".venv/bin/") for w in words]


def train_argv(words: list[str]) -> list[str] | None:
    """The arguments of ``fadtq/train.py`` or ``fadtq train``, or ``None`` for another command."""
    if "fadtq/train.py" in words:
        return words[words.index("fadtq/train.py") + 1:]
    if words[:2] == ["fadtq", "train"]:
        return words[2:]
    return None


COMMANDS = [(doc.relative_to(REPO).as_posix(), line) for doc in DOCS for line in shell_lines(doc)]


@pytest.mark.parametrize("doc, line", COMMANDS)
def test_documented_command_is_valid(doc, line):
    from fadtq.cli import build_parser
    from fadtq.run_config import load_run_config
    from fadtq.commands.train import parse_args

    words = words_of(line)
    if not words:
        return
    train = train_argv(words)
    if train is not None:
        if "--resume" in train:  # the documented run folder does not exist here: check the rest
            at = train.index("--resume")
            train = train[:at] + train[at + 2:]
        args = parse_args(train)
        load_run_config(args.config, args.overrides)
    elif words[0] == "fadtq" and len(words) > 1 and not words[1].startswith("-"):
        parser = build_parser(words[1:])
        subparsers = next(a for a in parser._actions if a.choices and words[1] in a.choices)
        command = subparsers.choices[words[1]]
        flags = {w.split("=", 1)[0] for w in words[2:] if w.startswith("--")}
        unknown = flags - set(command._option_string_actions)
        assert not unknown, f"{doc}: `{line}`: fadtq {words[1]} has no {', '.join(sorted(unknown))}"
    elif words[0] == "python" and len(words) > 1 and words[1].endswith(".py"):
        assert (REPO / words[1]).is_file(), f"{doc}: `{line}`: no script {words[1]}"
    elif words[0] == "make" and len(words) > 1:
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M)
        assert words[1] in targets, f"{doc}: `{line}`: no make target {words[1]}"


def test_the_documents_hold_commands():
    assert any(train_argv(words_of(line)) is not None for _, line in COMMANDS)
    assert any(words_of(line)[:1] == ["fadtq"] for _, line in COMMANDS)
