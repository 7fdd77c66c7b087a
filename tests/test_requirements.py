"""The project's declared requirements: Colab's runtime satisfies them, every import is declared,
one Python floor, the licences, the extras, Binder's light environment.

Fast: files are read, nothing is installed or built. ``tests/data/colab_versions.txt`` is Google
Colab's published list of preinstalled versions (its header says where from and when).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
COLAB_VERSIONS = ROOT / "tests" / "data" / "colab_versions.txt"
README = ROOT / "README.md"

#: Import names whose distribution is named otherwise, for imports not installed here.
IMPORT_TO_DIST = {"yaml": "pyyaml", "IPython": "ipython", "sphinx": "sphinx", "playwright": "playwright"}
#: Our own top-level names: the package, the repository tooling, the test helpers.
LOCAL_IMPORTS = {"linattn_edu", "tools", "conftest", "linattn_html", "linattn_apidoc"}
#: The only package Colab's CPU runtime lacks: Triton, which the kernels need there for the
#: interpreter (``TRITON_INTERPRET=1``). Installing it adds a package and replaces none.
COLAB_CPU_ADDS = {"triton"}


# --------------------------------------------------------------------------------------------
# Colab
# --------------------------------------------------------------------------------------------


def colab_runtimes(path: Path = COLAB_VERSIONS) -> dict[str, dict[str, Version]]:
    """``{runtime: {canonical package name: version}}`` from the stored list (``python`` included)."""
    runtimes: dict[str, dict[str, Version]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = runtimes.setdefault(line[1:-1], {})
            continue
        name, sep, version = line.partition("==")
        if current is None or not sep:
            raise ValueError(f"{path}: cannot read line {raw!r}")
        current[canonicalize_name(name)] = Version(version)
    return runtimes


def colab_environment(python: Version) -> dict[str, str]:
    """The PEP 508 marker environment of a Colab runtime (Linux x86_64, CPython ``python``)."""
    env = default_environment()
    env.update(
        python_version=f"{python.major}.{python.minor}", python_full_version=str(python),
        platform_system="Linux", platform_machine="x86_64", sys_platform="linux", os_name="posix",
        implementation_name="cpython", platform_python_implementation="CPython",
    )
    return env


def unmet(requirements: list[str], installed: dict[str, Version]) -> tuple[list[str], set[str]]:
    """``(requirements an installed version violates, names that are not installed)``.

    Requirements whose marker is false on the runtime are skipped. A violated requirement means
    pip would replace a package Colab has (and may have imported already: a restart prompt).
    """
    env = colab_environment(installed["python"])
    violated, missing = [], set()
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        if name not in installed:
            missing.add(name)
        elif not req.specifier.contains(installed[name], prereleases=True):
            violated.append(f"{text} (Colab has {installed[name]})")
    return violated, missing


RUNTIMES = colab_runtimes()


def test_colab_list_has_current_gpu_and_cpu_runtimes() -> None:
    assert {"current-gpu", "current-cpu"} <= set(RUNTIMES)
    for name, installed in RUNTIMES.items():
        assert {"python", "torch", "numpy", "matplotlib", "ipywidgets", "tqdm"} <= set(installed), name
    assert "triton" in RUNTIMES["current-gpu"]


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_colab_satisfies_the_runtime_requirements(runtime: str) -> None:
    """Installing the package on Colab replaces none of Colab's packages (no restart prompt)."""
    installed = RUNTIMES[runtime]
    assert SpecifierSet(PROJECT["requires-python"]).contains(installed["python"]), PROJECT["requires-python"]
    violated, missing = unmet(PROJECT["dependencies"], installed)
    assert not violated, f"Colab {runtime}: pip would replace {violated}"
    allowed = COLAB_CPU_ADDS if runtime.endswith("-cpu") else set()
    assert missing <= allowed, f"Colab {runtime} lacks {sorted(missing - allowed)}: pip would add them"


def test_the_colab_check_fails_on_a_range_colab_does_not_satisfy() -> None:
    """The old ``ipywidgets>=8.0`` (Colab loads 7.7.1), a too new torch, a missing package."""
    installed = RUNTIMES["current-gpu"]
    violated, missing = unmet(["ipywidgets>=8.0", "torch>=99", "numpy>=1.26", "einops>=0.8"], installed)
    assert [v.split(" ")[0] for v in violated] == ["ipywidgets>=8.0", "torch>=99"]
    assert missing == {"einops"}
    # A marker that is false on Linux x86_64 is not held against Colab.
    assert unmet(["pywin32>=300; sys_platform == 'win32'"], installed) == ([], set())


def test_colab_list_is_read_strictly(tmp_path: Path) -> None:
    bad = tmp_path / "versions.txt"
    bad.write_text("[gpu]\ntorch 2.11\n", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot read"):
        colab_runtimes(bad)


def test_readme_claims_what_the_colab_test_checks() -> None:
    text = README.read_text(encoding="utf-8")
    assert "tests/data/colab_versions.txt" in text and "Colab" in text


# --------------------------------------------------------------------------------------------
# Every import declared
# --------------------------------------------------------------------------------------------


def declared(*groups: str) -> set[str]:
    """Canonical names required by the runtime (``"runtime"``) and/or the named extras."""
    extras = PROJECT.get("optional-dependencies", {})
    names: set[str] = set()
    todo = list(groups)
    seen: set[str] = set()
    while todo:
        group = todo.pop()
        if group in seen:
            continue
        seen.add(group)
        for text in PROJECT["dependencies"] if group == "runtime" else extras[group]:
            req = Requirement(text)
            if canonicalize_name(req.name) == canonicalize_name(PROJECT["name"]):
                todo += sorted(req.extras) + ["runtime"]  # e.g. linattn_edu[book]
            else:
                names.add(canonicalize_name(req.name))
    return names


def third_party_imports(source: str) -> set[str]:
    """Top-level names of the absolute imports in ``source`` that are neither stdlib nor ours."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - LOCAL_IMPORTS


def _notebook_source(path: Path) -> str:
    """The code cells of a notebook, without shell (``!``) and magic (``%``) lines."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    lines = [
        line
        for cell in cells if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines()
        if not line.lstrip().startswith(("!", "%"))
    ]
    return "\n".join(lines)


@functools.cache
def _installed_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution(module: str) -> str:
    """The canonical distribution name that provides top-level ``module``."""
    dists = _installed_distributions().get(module)
    return canonicalize_name(dists[0] if dists else IMPORT_TO_DIST.get(module, module))


#: Where code lives -> the requirement groups that must declare what it imports.
IMPORT_SCOPES: dict[str, tuple[str, ...]] = {
    "linattn_edu": ("runtime",),
    "scripts": ("runtime",),
    "book": ("runtime", "book"),  # the chapters and book/_ext
    "tests": ("runtime", "book", "test"),
    "tools": ("runtime", "book", "test"),
}


def undeclared_imports(folder: Path, groups: tuple[str, ...]) -> dict[str, list[str]]:
    """``{distribution: [files importing it]}`` for imports under ``folder`` no group declares."""
    allowed = declared(*groups)
    missing: dict[str, list[str]] = {}
    files = sorted(folder.rglob("*.py")) + sorted(folder.glob("*.ipynb"))
    for path in files:
        if {".ipynb_checkpoints", "_build", "__pycache__"} & set(path.parts):
            continue
        text = path.read_text(encoding="utf-8") if path.suffix == ".py" else _notebook_source(path)
        for module in third_party_imports(text):
            dist = distribution(module)
            if dist not in allowed:
                missing.setdefault(dist, []).append(str(path.relative_to(folder.parent)))
    return missing


@pytest.mark.parametrize("folder", sorted(IMPORT_SCOPES))
def test_every_import_is_declared(folder: str) -> None:
    groups = IMPORT_SCOPES[folder]
    missing = undeclared_imports(ROOT / folder, groups)
    assert not missing, f"imports in {folder}/ that pyproject's {groups} do not declare: {missing}"


def test_the_import_check_finds_an_undeclared_import(tmp_path: Path) -> None:
    pkg = tmp_path / "linattn_edu"
    pkg.mkdir()
    (pkg / "m.py").write_text("import os\nimport numpy as np\nfrom packaging import version\nfrom . import x\n")
    assert undeclared_imports(pkg, ("runtime",)) == {"packaging": ["linattn_edu/m.py"]}
    assert undeclared_imports(pkg, ("runtime", "test")) == {}


def test_test_extra_includes_the_book_extra() -> None:
    """The suite builds the book (slow tests): ``[test]`` pulls ``[book]`` and the runtime."""
    assert declared("book") | declared("runtime") <= declared("test")
    assert {"pytest", "playwright", "pyyaml", "packaging"} <= declared("test")


# --------------------------------------------------------------------------------------------
# requirements.txt, Binder, metadata, licences
# --------------------------------------------------------------------------------------------


def _requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_requirements_txt_is_the_editable_install_with_the_extras() -> None:
    assert _requirement_lines(ROOT / "requirements.txt") == ["-e .[book,test]"]
    assert {"book", "test"} <= set(PROJECT["optional-dependencies"])


def test_binder_gets_a_light_cpu_environment() -> None:
    lines = _requirement_lines(ROOT / "binder" / "requirements.txt")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "." in lines  # the package with its runtime requirements only
    assert not any(re.match(r"(jupyter-book|pytest|playwright|-e \.\[)", line) for line in lines), lines
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["launch_buttons"]["notebook_interface"] == "jupyterlab"


def _python_floor() -> str:
    match = re.fullmatch(r">=\s*(3\.\d+)", PROJECT["requires-python"])
    assert match, f"requires-python should be a plain floor, got {PROJECT['requires-python']!r}"
    return match.group(1)


def test_one_python_floor_everywhere() -> None:
    floor = _python_floor()
    text = README.read_text(encoding="utf-8")
    stated = re.findall(r"Python (?:≥|>=)?\s*(3\.\d+)(?:\+| or newer| or later)", text)
    assert stated and set(stated) == {floor}, f"README states Python {stated}, pyproject >={floor}"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"sys.version_info >= ({floor.replace('.', ', ')})" in ci, ".ci/run does not check the floor"


def test_licences_and_metadata() -> None:
    assert PROJECT["license"] == "MIT"
    assert "LICENSE" in PROJECT["license-files"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    text_licence = (ROOT / "LICENSE-text").read_text(encoding="utf-8")
    assert "CC BY 4.0" in text_licence and "Creative Commons Attribution 4.0 International Public License" in text_licence
    (setuptools,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert not setuptools.specifier.contains("76.1") and setuptools.specifier.contains("77.0.3")
    footer = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["html"]["extra_footer"]
    assert "CC BY 4.0" in footer and "MIT" in footer
    readme = README.read_text(encoding="utf-8")
    licence = readme[readme.index("## License"):]
    assert "CC BY 4.0" in licence and "MIT" in licence and "LICENSE-text" in licence
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and set(citation["license"]) == {"MIT", "CC-BY-4.0"}
    assert citation["repository-code"] == yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def test_the_wheel_ships_only_the_package() -> None:
    """Only ``linattn_edu`` is packaged: no ``tools/`` (the site check), tests or scripts."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include == ["linattn_edu*"]
    assert not list((ROOT / "linattn_edu").rglob("sitecheck*"))
