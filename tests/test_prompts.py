"""Jinja prompts: sandboxed, StrictUndefined, overridable, hashed; untrusted text stays data."""

from __future__ import annotations

import hashlib

import jinja2.sandbox
import pytest

from fadtq.api import JudgeItem
from fadtq.errors import FadtqError
from fadtq.judges.protocol import JUDGE_TEMPLATES, JUDGE_USER_TEMPLATE, judge_messages
from fadtq.prompts import (
    CLASS_MEANINGS,
    CLASS_NAMES,
    OPTION_LETTERS,
    POLICY_TEMPLATE,
    PromptLibrary,
    packaged_prompts_dir,
    policy_messages,
    policy_question,
)


def test_policy_prompt_names_category_and_all_options():
    text = policy_question(PromptLibrary(), "splicing_connectors")
    assert "splicing connectors" in text  # underscores become spaces
    for letter, name in zip(OPTION_LETTERS, CLASS_NAMES):
        assert f"{letter}. {name} - {CLASS_MEANINGS[name]}" in text
    assert "<think>" in text and "<answer>" in text


def test_policy_messages_have_two_images_then_question():
    (message,) = policy_messages(PromptLibrary(), "pushpins")
    kinds = [part["type"] for part in message["content"]]
    assert kinds == ["text", "image", "text", "image", "text"]
    assert "pushpins" in message["content"][-1]["text"]


def test_templates_load_from_package_without_override():
    lib = PromptLibrary()
    for name in (POLICY_TEMPLATE, *JUDGE_TEMPLATES):
        assert lib.source_path(name).parent == packaged_prompts_dir()


def test_strict_undefined_names_template():
    with pytest.raises(FadtqError) as info:
        PromptLibrary().render(POLICY_TEMPLATE, category="pill")  # 'options' not given
    message = str(info.value)
    assert POLICY_TEMPLATE in message and "options" in message and "undefined" in message


def test_strict_undefined_in_override(tmp_path):
    (tmp_path / "_mine.j2").write_text("Hello\n{{ nmae }}")  # "nmae" misspelt; "who" is given
    with pytest.raises(FadtqError) as info:
        PromptLibrary(tmp_path).render("_mine.j2", who="x")
    assert str(info.value) == f"{tmp_path / '_mine.j2'}:2: 'nmae' is undefined"


def test_syntax_error_names_file_and_line(tmp_path):
    (tmp_path / "_mine.j2").write_text("Hello\n{% if who %}\nno end")
    with pytest.raises(FadtqError, match=rf"^{tmp_path / '_mine.j2'}:3: Unexpected end of template"):
        PromptLibrary(tmp_path).render("_mine.j2", who="x")


def test_template_not_utf8_names_file_and_line(tmp_path):
    (tmp_path / "_mine.j2").write_bytes(b"Hello\n\xff\n")
    with pytest.raises(FadtqError, match=rf"^{tmp_path / '_mine.j2'}:2: not UTF-8 text"):
        PromptLibrary(tmp_path).render("_mine.j2")


def test_untrusted_reasoning_is_verbatim_in_judge_message():
    reasoning = "Check {{ 7*7 }} and {% raw %}x{% endraw %} and {# c #} and {% for i in range(3) %}i{% endfor %}"
    item = JudgeItem(question="Q", reasoning=reasoning, answer="good", category="pill")
    user = judge_messages(PromptLibrary(), item)[1]["content"]
    for fragment in ("{{ 7*7 }}", "{% raw %}", "{% endraw %}", "{# c #}", "{% for i in range(3) %}"):
        assert fragment in user
    assert "49" not in user and "iii" not in user


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ (1).__class__.__base__ }}",
    ],
)
def test_sandbox_blocks_attribute_escape(tmp_path, source):
    (tmp_path / "_evil.j2").write_text(source)
    lib = PromptLibrary(tmp_path)
    with pytest.raises((FadtqError, jinja2.sandbox.SecurityError)) as info:
        lib.render("_evil.j2")
    message = str(info.value)
    assert "unsafe" in message
    assert "<class" not in message and "object" not in message.split("unsafe")[-1]


def test_override_dir_wins_over_packaged(tmp_path):
    (tmp_path / POLICY_TEMPLATE).write_text("custom {{ category }} with {{ options | length }} options")
    lib = PromptLibrary(tmp_path)
    assert policy_question(lib, "screw_bag") == "custom screw bag with 3 options"
    assert lib.source_path(POLICY_TEMPLATE) == tmp_path / POLICY_TEMPLATE
    # templates not overridden still come from the package
    assert lib.source_path(JUDGE_USER_TEMPLATE) == packaged_prompts_dir() / JUDGE_USER_TEMPLATE


def test_template_hash_is_sha256_prefix_and_changes_with_template(tmp_path):
    packaged = PromptLibrary()
    expected = hashlib.sha256((packaged_prompts_dir() / POLICY_TEMPLATE).read_bytes()).hexdigest()[:16]
    assert packaged.template_hash(POLICY_TEMPLATE) == expected

    copy = (packaged_prompts_dir() / POLICY_TEMPLATE).read_bytes()
    (tmp_path / POLICY_TEMPLATE).write_bytes(copy)
    assert PromptLibrary(tmp_path).template_hash(POLICY_TEMPLATE) == expected  # same bytes, same hash

    (tmp_path / POLICY_TEMPLATE).write_bytes(copy + b" ")
    changed = PromptLibrary(tmp_path).template_hash(POLICY_TEMPLATE)
    assert changed != expected and len(changed) == 16


def test_missing_prompts_dir_names_flag(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FadtqError, match=r"^prompts_dir: .*nope: not a directory"):
        PromptLibrary(missing)


def test_prompts_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file.j2"
    f.write_text("x")
    with pytest.raises(FadtqError, match="prompts_dir: .*file.j2: not a directory"):
        PromptLibrary(f)


def test_missing_template_names_it():
    with pytest.raises(FadtqError, match=r"'nope\.j2' not found"):
        PromptLibrary().render("nope.j2")
