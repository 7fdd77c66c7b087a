"""The API reference (book/api.md and book/api/*.md) covers the whole public package.

Fast checks, no Sphinx build:

- every public module of ``linattn_edu`` has an ``automodule`` directive in the API pages, so a
  module added later without one fails here rather than silently missing from the book;
- every name in a public module's ``__all__`` has a docstring (autodoc's ``:members:`` silently
  leaves out a name without one), constants included: their ``#:`` doc comment, as autodoc reads it;
- a package's own section uses ``:ignore-module-all:``, so that its re-exports are documented once,
  in the module that defines them (documenting an object twice breaks the ``-W`` build).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "linattn_edu"
API_PAGES = [ROOT / "book" / "api.md", *sorted((ROOT / "book" / "api").glob("*.md"))]

# An automodule directive, in MyST's {eval-rst} block or written as a MyST directive; a line that
# is commented out (MyST's "% ") does not match.
_DIRECTIVE = re.compile(r"^(?:\.\. automodule::|```\{automodule\})\s+(?P<name>[\w.]+)\s*$")
_OPTION = re.compile(r"^\s*:(?P<option>[\w-]+):")
# A single object documented by hand in the API pages (its text in the directive's body): a name a
# package re-exports from a private module, which no automodule section would show. Written as
# ".. py:data:: NAME" with a ":module: PACKAGE" option.
_SINGLE = re.compile(r"^\.\. py:(?:data|function|class|exception)::\s+(?P<name>\w+)\s*$")
_MODULE_OPTION = re.compile(r"^\s*:module:\s+(?P<module>[\w.]+)\s*$")


def _public_modules() -> list[str]:
    """Dotted names of the package's public modules (no path part starting with ``_``), from the files."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(part.startswith("_") for part in parts):
            continue
        names.append(".".join(parts))
    return names


def _directives() -> dict[str, list[set[str]]]:
    """Module name -> the option sets of each automodule directive for it in the API pages."""
    found: dict[str, list[set[str]]] = {}
    for page in API_PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = _DIRECTIVE.match(line.strip())
            if not match:
                continue
            options = set()
            for following in lines[i + 1:]:
                option = _OPTION.match(following)
                if not option:
                    break
                options.add(option["option"])
            found.setdefault(match["name"], []).append(options)
    return found


def _single_objects() -> set[str]:
    """Full names (``module.name``) of the objects documented one by one in the API pages."""
    found = set()
    for page in API_PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = _SINGLE.match(line.strip())
            if not match:
                continue
            for following in lines[i + 1:]:
                if not _OPTION.match(following):
                    break
                if module := _MODULE_OPTION.match(following):
                    found.add(f"{module['module']}.{match['name']}")
    return found


PUBLIC_MODULES = _public_modules()
DIRECTIVES = _directives()
SINGLE_OBJECTS = _single_objects()


def _is_package(name: str) -> bool:
    return (ROOT.joinpath(*name.split(".")) / "__init__.py").exists()


def test_api_pages_exist() -> None:
    assert (ROOT / "book" / "api.md").exists(), "book/api.md, the API reference's entry page, is missing"
    assert DIRECTIVES, "no automodule directive found in book/api.md or book/api/*.md"


def test_every_public_module_is_documented() -> None:
    missing = [m for m in PUBLIC_MODULES if m not in DIRECTIVES]
    assert not missing, (
        f"public modules without an automodule directive in book/api.md or book/api/*.md: {missing}. "
        "Add a section (a heading and the directive) to the API page of its subpackage."
    )


def test_directives_name_public_modules_once() -> None:
    unknown = sorted(set(DIRECTIVES) - set(PUBLIC_MODULES))
    assert not unknown, f"automodule directives for modules that do not exist (renamed? private?): {unknown}"
    twice = sorted(name for name, uses in DIRECTIVES.items() if len(uses) > 1)
    assert not twice, f"modules documented more than once (duplicate object warnings under -W): {twice}"


def test_package_sections_do_not_repeat_reexports() -> None:
    """A package's section documents what its ``__init__`` defines, not what it re-exports."""
    bad = sorted(
        name for name, uses in DIRECTIVES.items()
        if _is_package(name) and any("ignore-module-all" not in options for options in uses)
    )
    assert not bad, f"package sections without :ignore-module-all: (would document re-exports twice): {bad}"


def test_module_sections_list_members() -> None:
    bare = sorted(name for name, uses in DIRECTIVES.items() if any("members" not in options for options in uses))
    assert not bare, f"automodule directives without :members: (only the module docstring would show): {bare}"


# ---------------------------------------------------------------------------------------------
# Docstrings
# ---------------------------------------------------------------------------------------------


def _attr_docs(module_name: str) -> dict[str, str]:
    """Module-level ``#:`` doc comments (and strings after assignments), as autodoc reads them."""
    from sphinx.pycode import ModuleAnalyzer

    analyzer = ModuleAnalyzer.for_module(module_name)
    return {name: "\n".join(lines) for (scope, name), lines in analyzer.find_attr_docs().items() if scope == ""}


def _own_doc(obj: object) -> str:
    """The docstring an object itself carries: not inherited, not the one dataclasses generate."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__") or ""
        if dataclasses.is_dataclass(obj):
            generated = obj.__name__ + str(inspect.signature(obj)).replace(" -> None", "")
            if doc == generated:
                return ""
        return doc.strip()
    return (getattr(obj, "__doc__", None) or "").strip()


def _is_data(obj: object) -> bool:
    """A constant (documented by a ``#:`` comment) rather than something carrying its own docstring."""
    return not (inspect.isclass(obj) or inspect.ismodule(obj) or callable(obj))


def _data_doc(module: ModuleType, name: str, obj: object) -> str:
    """The doc comment of a constant: in ``module``, or in the public module that defines it."""
    candidates = [module.__name__] + [
        m for m in PUBLIC_MODULES
        if m != module.__name__ and m.startswith(module.__name__ + ".") and not _is_package(m)
    ]
    for name_of_module in candidates:
        if name_of_module != module.__name__:
            defining = importlib.import_module(name_of_module)
            if name not in getattr(defining, "__all__", ()) or getattr(defining, name, None) is not obj:
                continue
        doc = _attr_docs(name_of_module).get(name, "")
        if doc.strip():
            return doc
    return ""


def _public_names(module: ModuleType) -> list[str]:
    """``__all__``, or (a module without one) the functions and classes it defines, as autodoc picks them."""
    if hasattr(module, "__all__"):
        return [name for name in module.__all__ if not (name.startswith("__") and name.endswith("__"))]
    return [
        name for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or callable(obj))
        and getattr(obj, "__module__", None) == module.__name__
    ]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_names_have_docstrings(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no module docstring"
    undocumented = []
    for name in _public_names(module):
        assert hasattr(module, name), f"{module_name}.__all__ names {name!r}, which the module lacks"
        if f"{module_name}.{name}" in SINGLE_OBJECTS:
            continue  # documented by hand in the API pages
        obj = getattr(module, name)
        doc = _data_doc(module, name, obj) if _is_data(obj) else _own_doc(obj)
        if not doc:
            undocumented.append(name)
    assert not undocumented, (
        f"{module_name}: public names without a docstring (the API reference would leave them out; "
        f"a constant needs a '#:' comment on the line above it): {undocumented}"
    )
