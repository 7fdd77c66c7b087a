"""Two fixes to the built HTML that the browser check (``tools/sitecheck.py``) caught.

1. **Inline scripts written twice.** Sphinx 7.4 emits an inline ``<script>`` added by an
   extension after the builder is set up once per registration path, so sphinx-thebe's
   ``const THEBE_JS_URL = ...`` appears twice and the second copy throws "Identifier
   'THEBE_JS_URL' has already been declared" on every page. Fixed upstream in Sphinx 8
   (sphinx-doc/sphinx#13402), which Jupyter Book 1.x cannot use (it pins ``sphinx~=7.0``); until
   then this drops exact duplicates from each page's script list, keeping the first.
2. The theme's display mode is set in ``_config.yml`` (``html_context.default_mode``), not here.
"""

from __future__ import annotations

from typing import Any


def _drop_duplicate_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    seen: set[tuple] = set()
    unique = []
    for script in context.get("script_files", []):
        key = (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Any) -> dict[str, bool]:
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
