"""Colab launch buttons open the *student* edition of a chapter, not the page's solution notebook.

sphinx-book-theme builds the Colab link from ``repository.path_to_book`` and the page name, i.e.
``{colab_url}/github/{org}/{repo}/blob/{branch}/book/NN_chapter.ipynb``: the notebook with every
solution in it (Colab does not render ``{dropdown}``, so they all show). After the theme has added
its launch buttons (``html-page-context`` at priority 501), this rewrites the Colab entry of a
chapter page to ``.../blob/{branch}/{linattn_student_dir}/NN_chapter.ipynb``, the notebook
``python -m linattn_edu.student_edition student`` writes and the repository commits. Pages without
a student notebook keep the theme's link; Binder and the download button are left alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: The Colab link of a page under book/: group 1 ends with "/blob/<branch>/", group 2 is the file name.
_COLAB_BOOK_URL = re.compile(r"^(https?://[^ ]*/github/[^/]+/[^/]+/blob/[^/]+/)book/([^/]+\.ipynb)$")


def student_url(url: str, student_dir: str, available: set[str]) -> str:
    """``url`` rewritten to the student notebook when ``available`` holds its file name."""
    match = _COLAB_BOOK_URL.match(url)
    if not match or match.group(2) not in available:
        return url
    return f"{match.group(1)}{student_dir.strip('/')}/{match.group(2)}"


def _rewrite_colab(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    student_dir = app.config.linattn_student_dir
    available = {p.name for p in (Path(app.srcdir) / student_dir).glob("*.ipynb")}
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if button.get("text") == "Colab" and "url" in button:
                button["url"] = student_url(button["url"], student_dir, available)


def setup(app: Any) -> dict[str, bool]:
    app.add_config_value("linattn_student_dir", "student", "html")
    app.connect("html-page-context", _rewrite_colab, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
