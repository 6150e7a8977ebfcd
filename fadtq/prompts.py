"""Jinja prompt templates: the policy's question and the judge's instructions.

Templates ship in the package (``prompts/`` in the repository, importable as ``fadtq_prompts``)
and any of them can be overridden by a file of the same name in ``--prompts-dir``.

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

from fadtq.errors import FadtqError

CLASS_NAMES = ("good", "structural", "logical")
CLASS_MEANINGS = {
    "good": "no anomaly",
    "structural": "structural anomaly: damage, missing or deformed parts, contamination",
    "logical": "logical anomaly: wrong count, position, pairing or size of otherwise intact parts",
}
OPTION_LETTERS = ("A", "B", "C")
POLICY_TEMPLATE = "policy_question.j2"


def packaged_prompts_dir() -> Path:
    return Path(str(resources.files("fadtq_prompts")))


class PromptLibrary:
    """Loads templates from an optional override folder, then from the packaged ones."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        search = [packaged_prompts_dir()]
        if override_dir is not None:
            override_dir = Path(override_dir)
            if not override_dir.is_dir():
                raise FadtqError(f"--prompts-dir {override_dir}: not a directory")
            search.insert(0, override_dir)
        self.search_path = search
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader([str(p) for p in search]),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

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
        self.source_path(name)
        try:
            return self.env.get_template(name).render(**variables).strip()
        except jinja2.TemplateError as exc:
            raise FadtqError(f"prompt template {name}: {exc}") from None


def pretty_category(category: str) -> str:
    return category.replace("_", " ")


def policy_question(library: PromptLibrary, category: str) -> str:
    """The text of the policy's question for one (reference, test) pair of ``category``."""
    options = [
        {"letter": letter, "name": name, "meaning": CLASS_MEANINGS[name]}
        for letter, name in zip(OPTION_LETTERS, CLASS_NAMES)
    ]
    return library.render(POLICY_TEMPLATE, category=pretty_category(category), options=options)


def policy_messages(library: PromptLibrary, category: str) -> list[dict]:
    """Chat messages in the Hugging Face multimodal format: reference image, test image, question."""
    content = [
        {"type": "text", "text": "Reference image (normal):"},
        {"type": "image"},
        {"type": "text", "text": "Test image:"},
        {"type": "image"},
        {"type": "text", "text": policy_question(library, category)},
    ]
    return [{"role": "user", "content": content}]
