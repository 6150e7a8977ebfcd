"""A verdict cache shared by the model judges: identical reasoning is judged once.

The key is a SHA-256 of (judge model, hash of both judge templates, every ``JudgeItem`` field), so
a change of model or prompt never reuses an old verdict. Only successful verdicts are stored: a
failure (server down, unreadable reply) is retried the next time the item comes up instead of
being remembered. Entries live in memory and, with a ``cache_path``, in a SQLite file that later
runs (and several judges) reuse; SQLite's own locking keeps concurrent writers consistent.
The in-memory layer keeps the ``memory_entries`` most recently used verdicts, so a run of many
thousands of steps does not grow without bound; the SQLite file keeps everything.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from fadtq.api import JudgeItem, Verdict
from fadtq.errors import ConfigError
from fadtq.judges.options import JudgeOptions
from fadtq.judges.protocol import JUDGE_TEMPLATES
from fadtq.prompts import PromptLibrary

DEFAULT_MEMORY_ENTRIES = 200_000  # about 60 MB of keys and verdicts
_SCHEMA = "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, conciseness INTEGER, relevance INTEGER)"


def templates_hash(library: PromptLibrary) -> str:
    """One hash over both judge templates (system and user), as the run's library resolves them."""
    return hashlib.sha256("|".join(library.template_hash(name) for name in JUDGE_TEMPLATES).encode()).hexdigest()[:16]


class VerdictCache:
    """Successful verdicts by (model, templates, item); ``hits`` and ``misses`` count lookups."""

    def __init__(self, model: str, template_hash: str, path: str | Path | None = None, *,
                 memory_entries: int = DEFAULT_MEMORY_ENTRIES) -> None:
        self._prefix = json.dumps([model, template_hash])
        self._memory: OrderedDict[str, Verdict] = OrderedDict()
        self._memory_entries = memory_entries
        self._lock = threading.Lock()
        self._db = self._open(Path(path)) if path else None
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            db.execute(_SCHEMA)
            db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError("judge.options.cache_path", f"{path}: cannot open the verdict cache ({exc})") from None
        return db

    def key(self, item: JudgeItem) -> str:
        payload = self._prefix + json.dumps(asdict(item), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def get(self, item: JudgeItem) -> Verdict | None:
        key = self.key(item)
        with self._lock:
            verdict = self._memory.get(key) or self._from_disk(key)
            if verdict is None:
                self.misses += 1
                return None
            self.hits += 1
            self._remember(key, verdict)
            return verdict

    def _remember(self, key: str, verdict: Verdict) -> None:
        """Insert or refresh ``key`` as most recently used, dropping the least recently used beyond the bound."""
        self._memory[key] = verdict
        self._memory.move_to_end(key)
        while len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)

    def _from_disk(self, key: str) -> Verdict | None:
        if self._db is None:
            return None
        row = self._db.execute("SELECT conciseness, relevance FROM verdicts WHERE key = ?", (key,)).fetchone()
        return Verdict(*row) if row else None

    def put_many(self, pairs: Sequence[tuple[JudgeItem, Verdict]]) -> None:
        """Store the successful verdicts of ``pairs``; failures are skipped on purpose."""
        rows = [(self.key(item), v.conciseness, v.relevance) for item, v in pairs if v.ok]
        with self._lock:
            for key, conc, rel in rows:
                self._remember(key, Verdict(conc, rel))
            if self._db is not None and rows:
                self._db.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?)", rows)
                self._db.commit()

    def __len__(self) -> int:
        return len(self._memory)


def judge_through_cache(cache: VerdictCache | None, items: Sequence[JudgeItem],
                        judge_new: Callable[[list[JudgeItem]], list[Verdict]]) -> list[Verdict]:
    """Verdicts for ``items`` in order: cached ones as they are, each distinct remaining item sent
    to ``judge_new`` once (duplicates within the batch share its verdict), successes stored."""
    known: dict[JudgeItem, Verdict] = {}
    if cache is not None:
        for item in dict.fromkeys(items):
            if (verdict := cache.get(item)) is not None:
                known[item] = verdict
    todo = [item for item in dict.fromkeys(items) if item not in known]
    if todo:
        fresh = judge_new(todo)
        known.update(zip(todo, fresh))
        if cache is not None:
            cache.put_many(list(zip(todo, fresh)))
    return [known[item] for item in items]


def cache_from_options(options: JudgeOptions, model: str, prompts: PromptLibrary) -> VerdictCache | None:
    """The cache a model judge's ``cache`` (default true) and ``cache_path`` options ask for."""
    enabled = options.boolean("cache", True)
    path = options.string("cache_path", None)
    memory_entries = options.integer("cache_memory_entries", DEFAULT_MEMORY_ENTRIES, 1)
    if path and not enabled:
        raise ConfigError("judge.options.cache_path", "given while judge.options.cache is false")
    return VerdictCache(model, templates_hash(prompts), path, memory_entries=memory_entries) if enabled else None
