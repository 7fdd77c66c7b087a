"""The student edition of the book: every chapter notebook without its solutions.

The notebooks in ``book/`` are the *solution* edition: they execute to ✓ on the web page, with each
solution behind a dropdown. This module derives the edition a reader opens on Colab from the cells'
tags (the convention is stated in ``book/course_kit.md``):

- ``solution``, ``proof`` and ``hidden-check`` cells are removed (and so are untagged cells of the
  older layout: ``remove-cell`` cells starting ``# Hidden in the book`` and markdown cells opening a
  ``{dropdown} Solution``);
- in ``exercise`` cells, each block from a line ``# BEGIN SOLUTION`` to the line ``# END SOLUTION``
  (same indentation) becomes ``# YOUR CODE HERE`` plus ``raise NotImplementedError`` at that
  indentation; inside a ``@triton.jit`` function the second line is ``pass`` instead (a Triton
  kernel cannot raise);
- everything else (text, checkers, experiments) is kept, outputs are cleared, and the ``hide-input``
  tag is dropped from exercise cells (the reader must see the code they complete).

Run ``python -m linattn_edu.student_edition OUT_DIR`` from the repository root; the book's
chapters come from ``_toc.yml`` in toc order. The repository commits the result in ``student/``
(the Colab links of the built book open those files), and ``tests/test_student_edition.py`` fails
when the committed files differ from what this module generates.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

__all__ = [
    "REMOVED_TAGS",
    "BEGIN",
    "END",
    "strip_solution_blocks",
    "student_cells",
    "student_notebook",
    "chapter_notebooks",
    "write_student_edition",
    "main",
]

#: Cells carrying any of these tags do not appear in the student edition.
REMOVED_TAGS = frozenset({"solution", "proof", "hidden-check"})
#: The line opening a solution block inside an ``exercise`` cell.
BEGIN = "# BEGIN SOLUTION"
#: The line closing it (same indentation as ``BEGIN``).
END = "# END SOLUTION"
#: The line every block the reader completes starts with.
YOUR_CODE = "# YOUR CODE HERE"

_HIDDEN_PROOF = "# Hidden in the book"
_SOLUTION_DROPDOWN = re.compile(r"^(`{3,}|:{3,})\{dropdown\} Solution")


def _in_triton_kernel(lines: list[str], index: int, indent: str) -> bool:
    """Whether line ``index`` (indented by ``indent``) lies in a function decorated ``@triton.jit``."""
    for j in range(index - 1, -1, -1):
        line = lines[j]
        stripped = line.lstrip()
        if not stripped or line.startswith(indent):
            continue
        # the first less-indented line above: the enclosing block's header (or code outside any def)
        if stripped.startswith("def "):
            k = j - 1
            while k >= 0 and lines[k].lstrip().startswith("@"):
                if re.match(r"@triton\.jit\b", lines[k].lstrip()):
                    return True
                k -= 1
            return False
        indent = line[: len(line) - len(stripped)]
    return False


def strip_solution_blocks(source: str, *, where: str = "cell") -> str:
    """Replace each ``# BEGIN SOLUTION`` .. ``# END SOLUTION`` block of ``source`` by a stub.

    Args:
        source: a code cell's source.
        where: names the cell in error messages.

    Returns:
        The source with each block replaced by ``# YOUR CODE HERE`` and ``raise NotImplementedError``
        (``pass`` inside a ``@triton.jit`` function), at the indentation of the ``BEGIN`` line.

    Raises:
        ValueError: on an ``END`` without ``BEGIN``, a ``BEGIN`` without ``END``, nested blocks, or
            markers at different indentations.
    """
    lines = source.split("\n")
    out: list[str] = []
    begin: tuple[int, str] | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped == BEGIN:
            if begin is not None:
                raise ValueError(f"{where}: nested {BEGIN!r} at line {i + 1}")
            begin = (i, indent)
            continue
        if stripped == END:
            if begin is None:
                raise ValueError(f"{where}: {END!r} without {BEGIN!r} at line {i + 1}")
            if indent != begin[1]:
                raise ValueError(f"{where}: {BEGIN!r} and {END!r} have different indentation (line {i + 1})")
            body = "pass" if _in_triton_kernel(lines, begin[0], begin[1]) else "raise NotImplementedError"
            out += [f"{begin[1]}{YOUR_CODE}", f"{begin[1]}{body}"]
            begin = None
            continue
        if begin is None:
            out.append(line)
    if begin is not None:
        raise ValueError(f"{where}: {BEGIN!r} at line {begin[0] + 1} has no {END!r}")
    return "\n".join(out)


def _removed(cell: nbformat.NotebookNode) -> bool:
    tags = set(cell.get("metadata", {}).get("tags", []))
    if tags & REMOVED_TAGS:
        return True
    # cells from before the tags existed (chapter 7): a proof hidden on the web page, and a
    # solution dropdown, which Colab shows in full
    if cell.cell_type == "code":
        return "remove-cell" in tags and cell.source.startswith(_HIDDEN_PROOF)
    return cell.cell_type == "markdown" and bool(_SOLUTION_DROPDOWN.match(cell.source))


def student_cells(nb: nbformat.NotebookNode, *, where: str = "notebook") -> list[nbformat.NotebookNode]:
    """The cells of the student edition of ``nb`` (copies; ``nb`` is not modified)."""
    cells = []
    for index, cell in enumerate(nb.cells):
        if _removed(cell):
            continue
        cell = nbformat.from_dict(dict(cell))
        cell.metadata = nbformat.from_dict(dict(cell.get("metadata", {})))
        tags = list(cell.metadata.get("tags", []))
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if "exercise" in tags:
                cell.source = strip_solution_blocks(cell.source, where=f"{where} cell {index}")
                tags = [t for t in tags if t != "hide-input"]
        if "tags" in cell.metadata:
            cell.metadata["tags"] = tags
        cells.append(cell)
    return cells


def student_notebook(path: str | Path) -> nbformat.NotebookNode:
    """Read the solution notebook at ``path`` and return its student edition."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    nb.cells = student_cells(nb, where=path.name)
    return nb


def chapter_notebooks(root: str | Path = ".") -> list[Path]:
    """The book's notebooks (``.ipynb`` entries of ``root/_toc.yml``) in toc order."""
    root = Path(root)
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    found: list[Path] = []

    def walk(items: list[dict]) -> None:
        for item in items or []:
            if "file" in item and (root / f"{item['file']}.ipynb").exists():
                found.append(root / f"{item['file']}.ipynb")
            for key in ("parts", "chapters", "sections"):
                walk(item.get(key, []))

    walk([{"file": toc["root"]}, *toc.get("parts", []), *toc.get("chapters", [])])
    return found


def write_student_edition(out_dir: str | Path, root: str | Path = ".") -> list[Path]:
    """Write the student edition of every chapter notebook to ``out_dir`` (same file names).

    Returns:
        The paths written, in toc order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in chapter_notebooks(root):
        target = out_dir / path.name
        nbformat.write(student_notebook(path), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m linattn_edu.student_edition OUT_DIR [--root REPO]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="where to write the student notebooks (e.g. student)")
    parser.add_argument("--root", default=".", help="repository root holding _toc.yml (default: .)")
    args = parser.parse_args(argv)
    for path in write_student_edition(args.out_dir, args.root):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
