"""The plugin contract is documented where it is defined (as datasette tests its hooks): every
hook in ``fadtq.hookspecs`` and every public name of ``fadtq.api`` has a docstring of its own."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Protocol

import pytest

from fadtq import api, hookspecs

HOOKS = sorted(name for name, value in vars(hookspecs).items()
               if inspect.isfunction(value) and name.startswith("register_"))


def own_docstring(obj: object) -> str:
    """The object's own docstring: not one inherited from ``object``, ``Protocol`` or a base class,
    and not the signature that ``dataclass`` writes for a class without one."""
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if inspect.isclass(obj) and doc and doc.startswith(f"{obj.__name__}("):
        return ""
    return (doc or "").strip()


def test_every_hook_is_a_hookspec():
    assert HOOKS == sorted(name for name in dir(hookspecs) if name.startswith("register_"))
    for name in HOOKS:
        assert hasattr(getattr(hookspecs, name), "fadtq_spec"), f"{name} is not marked @hookspec"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hookspec_has_a_docstring(name):
    assert own_docstring(getattr(hookspecs, name)), f"hookspec {name} has no docstring"


@pytest.mark.parametrize("name", api.__all__)
def test_every_public_name_of_the_api_has_a_docstring(name):
    assert own_docstring(getattr(api, name)), f"fadtq.api.{name} has no docstring"


def test_api_all_lists_every_public_class_and_function_defined_there():
    defined = {name for name, value in vars(api).items() if not name.startswith("_")
               and (inspect.isclass(value) or inspect.isfunction(value)) and value.__module__ == api.__name__}
    assert defined <= set(api.__all__)


def test_own_docstring_sees_what_is_missing():
    class Bare:
        pass

    def bare() -> None:
        pass

    @dataclass
    class BareData:
        x: int

    class BareProtocol(Protocol):
        def __call__(self) -> None: ...

    assert [own_docstring(o) for o in (Bare, bare, BareData, BareProtocol)] == ["", "", "", ""]
