"""Files on disk: atomic writes, UTF-8, JSON and line-numbered JSONL reading, and output paths
checked before any work starts."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from fadtq.errors import ConfigError, FadtqError


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that readers see either the old file or the whole new one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Valid JSON only: a NaN or infinity is a bug to surface, not a file to write."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, sort_keys=True, allow_nan=False) + "\n" for row in rows))


def _decode(data: bytes, path: Path, first_line: int = 1) -> str:
    """UTF-8 text; anything else is an error naming ``file:line``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        raise FadtqError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                         "expected a UTF-8 file") from None


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, in a few words (a folder, a link loop, a link to
    nothing, not found); None when it can."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a loop of symbolic links"
        if path.is_symlink():
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
        return "not found" if exc.errno == errno.ENOENT else exc.strerror or str(exc)
    return "is a folder; expected a file" if path.is_dir() else None


def listed(names: Sequence[str], limit: int = 3) -> str:
    """``a, b, c and 4 more``: the first ``limit`` names of a list an error shows."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def entries(folder: Path, besides: Iterable[str] = ()) -> list[str]:
    """The sorted names in ``folder`` other than ``besides`` (none when it is not a folder)."""
    skipped = set(besides)
    return sorted(p.name for p in folder.iterdir() if p.name not in skipped) if folder.is_dir() else []


def read_text(path: str | os.PathLike) -> str:
    """The whole of a UTF-8 text file."""
    path = Path(path)
    return _decode(path.read_bytes(), path)


def read_json(path: str | os.PathLike, remedy: str = "", expected: type = dict, what: str = "a JSON object"):
    """A JSON file holding an ``expected`` value (``what``, in words); an unreadable file or another
    value names the path, and ``remedy`` (such as ``"delete it to start over"``) is added."""
    path = Path(path)
    suffix = f"; {remedy}" if remedy else ""
    try:
        data = json.loads(read_text(path))
    except (OSError, json.JSONDecodeError) as exc:
        raise FadtqError(f"{path}: unreadable JSON ({exc}){suffix}") from None
    if not isinstance(data, expected):
        raise FadtqError(f"{path}: expected {what}, got {type(data).__name__}{suffix}")
    return data


def _not_json(constant: str) -> NoReturn:
    """Python's json reads NaN and Infinity, which JSON does not have."""
    raise json.JSONDecodeError(f"{constant} is not a JSON number", constant, 0)


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, row)`` for each non-blank line; invalid JSON names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FadtqError(f"{path}: {'is a folder; expected a JSONL file' if path.is_dir() else 'file not found'}")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = _decode(raw, path, number)
            if not line.strip():
                continue
            try:
                row = json.loads(line, parse_constant=_not_json)
            except json.JSONDecodeError as exc:
                raise FadtqError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise FadtqError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


def drop_partial_last_line(path: Path) -> None:
    """Cut what a killed writer left after the last newline of an append-only JSONL file."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        path.write_bytes(complete)


def create_dir_once(final: Path, make: Callable[[Path], Path]) -> None:
    """Build ``final`` through ``make(tmp) -> folder`` in a sibling temporary folder, then rename
    it into place, so ``final`` appears whole. When another process finished first, its result
    is kept and ours discarded."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        made = make(tmp)
        try:
            os.rename(made, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_parents(path: Path, where: str) -> None:
    """Every existing ancestor of ``path`` is a folder, and the nearest one is writable."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(where, f"{parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(where, f"cannot write in {parent} (permission denied)")
            return


def check_output_file(path: str | os.PathLike, where: str) -> Path:
    """``path`` can be written as a file: it is not a folder and its folder can be made. ``where``
    names the flag or config key that gave it."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(where, f"{path} is a folder; expected a file name")
    _check_parents(path, where)
    return path


def check_output_dir(path: str | os.PathLike, where: str, files: Iterable[str] = (), *,
                     replaces: str | None = None) -> Path:
    """``path`` can be written as a folder: not a file, its parents can be made, and none of the
    ``files`` it will receive is a folder. A command that replaces the whole folder names the file
    that marks its own output (``replaces="config.json"``): any other non-empty folder is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(where, f"{path} is a file; expected a folder")
    if replaces and path.is_dir() and any(path.iterdir()) and not (path / replaces).is_file():
        raise ConfigError(where, f"{path} holds other files; expected a new folder or one with {replaces} to replace")
    _check_parents(path, where)
    for name in files:
        if (path / name).is_dir():
            raise ConfigError(where, f"{path / name} is a folder; expected a file or nothing there")
    return path
