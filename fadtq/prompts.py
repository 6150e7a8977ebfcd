"""Jinja prompt templates: the policy's question and the judge's instructions.

Templates ship in the package (``prompts/`` in the repository, importable as ``fadtq_prompts``)
and any of them can be overridden by a file of the same name in ``--prompts-dir``. Every file
there must name a shipped template, except those starting with ``_`` (pieces the templates
include) or ``.``: a misspelt name would otherwise be ignored.

Rendering is sandboxed with ``StrictUndefined``: a misspelt variable is an error, not an empty
string. Untrusted text (the policy's reasoning) is only ever passed as a *variable*, never as
template source, so ``{{ ... }}`` inside it is shown verbatim.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from fadtq.errors import ConfigError, FadtqError
from fadtq.files import read_text

CLASS_NAMES = ("good", "structural", "logical")
CLASS_MEANINGS = {
    "good": "no anomaly",
    "structural": "structural anomaly: damage, missing or deformed parts, contamination",
    "logical": "logical anomaly: wrong count, position, pairing or size of otherwise intact parts",
}
OPTION_LETTERS = ("A", "B", "C")
POLICY_TEMPLATE = "policy_question.j2"
MMAD_TEMPLATE = "mmad_question.j2"


def packaged_prompts_dir() -> Path:
    return Path(str(resources.files("fadtq_prompts")))


class _Loader(jinja2.BaseLoader):
    """Templates found by :meth:`PromptLibrary.source_path` and read as UTF-8 (errors name the file)."""

    def __init__(self, library: "PromptLibrary") -> None:
        self.library = library

    def get_source(self, environment: jinja2.Environment, template: str):
        path = self.library.source_path(template)
        mtime = path.stat().st_mtime
        return read_text(path), str(path), lambda: path.stat().st_mtime == mtime


class PromptLibrary:
    """Loads templates from an optional override folder, then from the packaged ones."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        search = [packaged_prompts_dir()]
        if override_dir is not None:
            override_dir = Path(override_dir)
            if not override_dir.is_dir():
                raise ConfigError("prompts_dir", f"{override_dir}: not a directory")
            search.insert(0, override_dir)
        self.search_path = search
        self.overridden = self._check_overrides(override_dir) if override_dir is not None else frozenset()
        self.rendered: set[str] = set()  # the templates rendered so far: those a run uses
        self.env = SandboxedEnvironment(
            loader=_Loader(self),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    @staticmethod
    def _check_overrides(folder: Path) -> frozenset[str]:
        """The shipped templates ``folder`` replaces; a file that names none is an error."""
        known = sorted(p.name for p in packaged_prompts_dir().glob("*.j2"))
        names = {p.name for p in folder.iterdir() if not p.name.startswith(("_", "."))}
        for name in sorted(names - set(known)):
            raise ConfigError("prompts_dir", f"{folder / name}: names no template; known: {', '.join(known)} "
                              "(a file the templates include starts with '_')")
        return frozenset(names)

    def source_path(self, name: str) -> Path:
        for folder in self.search_path:
            candidate = folder / name
            if candidate.is_file():
                return candidate
        raise FadtqError(f"prompt template {name!r} not found in {', '.join(map(str, self.search_path))}")

    def template_hash(self, name: str) -> str:
        """SHA-256 (first 16 hex digits) of the template source: recorded in run metadata."""
        return hashlib.sha256(self.source_path(name).read_bytes()).hexdigest()[:16]

    def render(self, name: str, /, **variables: object) -> str:
        self.rendered.add(name)
        try:
            return self.env.get_template(name).render(**variables).strip()
        except jinja2.TemplateError as exc:
            raise FadtqError(f"{_where(exc, self.source_path(name))}: {exc.message or exc}") from None


def _where(exc: jinja2.TemplateError, path: Path) -> str:
    """``file:line`` of a template error: a syntax error carries it, a rendering error (an
    undefined variable, a sandbox refusal) has it in the template's frame of the traceback."""
    filename, line = getattr(exc, "filename", None), getattr(exc, "lineno", None)
    if line is None:
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.endswith(".j2"):
                filename, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
            tb = tb.tb_next
    return f"{filename or path}:{line}" if line else str(filename or path)


def pretty_category(category: str) -> str:
    return category.replace("_", " ")


def policy_question(library: PromptLibrary, category: str) -> str:
    """The text of the policy's question for one (reference, test) pair of ``category``."""
    options = [
        {"letter": letter, "name": name, "meaning": CLASS_MEANINGS[name]}
        for letter, name in zip(OPTION_LETTERS, CLASS_NAMES)
    ]
    return library.render(POLICY_TEMPLATE, category=pretty_category(category), options=options)


def mmad_question(library: PromptLibrary, question: str, options: dict[str, str]) -> str:
    """The text asking one multiple-choice question of an MMAD file (``options``: letter -> text)."""
    choices = [{"letter": letter, "text": text} for letter, text in options.items()]
    return library.render(MMAD_TEMPLATE, question=question, options=choices)


def pair_messages(question: str) -> list[dict]:
    """Chat messages in the Hugging Face multimodal format: reference image, test image, question.

    The order of training: every evaluation (a local model, a served one, MMAD) asks the same way."""
    content = [
        {"type": "text", "text": "Reference image (normal):"},
        {"type": "image"},
        {"type": "text", "text": "Test image:"},
        {"type": "image"},
        {"type": "text", "text": question},
    ]
    return [{"role": "user", "content": content}]


def policy_messages(library: PromptLibrary, category: str) -> list[dict]:
    """The policy's question about one (reference, test) pair of ``category``, as chat messages."""
    return pair_messages(policy_question(library, category))
