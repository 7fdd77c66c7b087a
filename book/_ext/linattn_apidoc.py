"""Sphinx helpers for the book's API reference (book/api.md), loaded from _config.yml.

Three fixes to how autodoc + napoleon render the package's Google-style docstrings:

1. A constant's or a property's first line is its summary. Napoleon reads ``"X: Y"`` on that
   line as "type X, description Y" (so ``#: Sizes per preset for f: the keys of ...`` would show
   the type "Sizes per preset for f"); here those docstrings keep their text as written.
2. ``Attributes:`` entries may name several attributes, ``a, b: description``, as ``Args:``
   entries already may (napoleon splits only the latter).
3. A cross-reference to a name through the subpackage that re-exports it
   (:func:`linattn_edu.kernels.flash_attention`) resolves to where it is documented, in the module
   that defines it (``linattn_edu.kernels.flash.flash_attention``).
"""

from __future__ import annotations

import importlib
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.ext import napoleon
from sphinx.ext.napoleon.docstring import GoogleDocstring

PACKAGE = "linattn_edu"
_NO_INLINE_TYPE = ("data", "attribute", "property")


class _GoogleDocstring(GoogleDocstring):
    """Napoleon's Google-style parser, with multi-name ``Attributes:`` entries split."""

    _split_names = False

    def _parse_attributes_section(self, section: str) -> list[str]:
        self._split_names = True
        try:
            return super()._parse_attributes_section(section)
        finally:
            self._split_names = False

    def _consume_fields(self, parse_type: bool = True, prefer_type: bool = False,
                        multiple: bool = False) -> list[tuple[str, str, list[str]]]:
        return super()._consume_fields(parse_type, prefer_type, multiple or self._split_names)

    def _escape_args_and_kwargs(self, name: str) -> str:
        # "a, **kw" is split later: escape each name, not only a leading one.
        if ", " in name:
            return ", ".join(super(_GoogleDocstring, self)._escape_args_and_kwargs(n) for n in name.split(", "))
        return super()._escape_args_and_kwargs(name)


def _process_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Napoleon's ``autodoc-process-docstring`` handler with the two parsing fixes above."""
    if not app.config.napoleon_google_docstring:
        return
    if what in _NO_INLINE_TYPE:
        what = "object"  # parsed like any docstring: sections, but no "type: description" first line
    lines[:] = _GoogleDocstring(lines, app.config, app, what, name, obj, options).lines()


def _defining_name(target: str) -> str | None:
    """``pkg.name`` -> ``pkg.module.name``, the object's documented (defining) name, if it differs."""
    module_name, _, attr = target.rpartition(".")
    if not module_name.startswith(PACKAGE) or not attr:
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    obj = getattr(module, attr, None)
    real_module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(real_module, str) and isinstance(qualname, str) and real_module != module_name:
        return f"{real_module}.{qualname}"
    return None


def _resolve_reexport(app: Sphinx, env: Any, node: nodes.Element, contnode: nodes.Element) -> nodes.Element | None:
    """``missing-reference``: retry a Python reference at the defining module of its target."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    candidates = [target]
    if node.get("py:module") and not target.startswith(PACKAGE + "."):
        candidates.insert(0, f"{node['py:module']}.{target}")
    domain = env.get_domain("py")
    for candidate in candidates:
        real = _defining_name(candidate)
        if real is None:
            # A constant has no __module__: find the one documented object of that name below the package.
            package, _, attr = candidate.rpartition(".")
            matches = [n for n in domain.objects if n.startswith(package + ".") and n.endswith("." + attr)
                       and n.count(".") == candidate.count(".") + 1]
            real = matches[0] if len(matches) == 1 else None
        if real and real in domain.objects:
            return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], real, node, contnode)
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.napoleon")
    for listener in list(app.events.listeners.get("autodoc-process-docstring", [])):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("missing-reference", _resolve_reexport)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
