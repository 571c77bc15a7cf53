"""Every lesson starts (first code cell) with the Colab install cell of tools/colab_cell.py, and that
cell does nothing outside Colab; on Colab it clones, installs and moves into notebooks/.

If the first test fails, run ``.venv/bin/python tools/colab_cell.py`` to (re)insert the cell.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def colab_cell(tool):
    return tool("colab_cell")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_starts_with_the_colab_cell(lesson, colab_cell):
    notebook = nbformat.read(lesson, as_version=4)
    first = colab_cell.first_code_cell(notebook)
    assert first is not None and colab_cell.is_colab_cell(notebook.cells[first]), \
        f"{lesson.name}: the first code cell is not the Colab cell; run .venv/bin/python tools/colab_cell.py"
    assert notebook.cells[first].source == colab_cell.SOURCE, \
        f"{lesson.name}: the Colab cell is out of date; run .venv/bin/python tools/colab_cell.py"
    assert sum(colab_cell.is_colab_cell(c) for c in notebook.cells) == 1, "exactly one Colab cell"


def test_insertion_is_idempotent_and_keeps_the_lesson(colab_cell):
    notebook = nbformat.read(LESSONS[0], as_version=4)
    without = [c for c in notebook.cells if not colab_cell.is_colab_cell(c)]
    notebook.cells = list(without)
    assert colab_cell.insert_colab_cell(notebook) is True
    once = nbformat.writes(notebook)
    assert colab_cell.insert_colab_cell(notebook) is False and nbformat.writes(notebook) == once
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown", "the title stays first"
    assert [c for c in notebook.cells if not colab_cell.is_colab_cell(c)] == without


def test_readme_links_point_at_the_same_repository(colab_cell):
    """The README's Binder and Colab badges, and the guide's links, name the repository the Colab
    cell clones (tools/colab_cell.py's REPOSITORY_URL)."""
    slug = colab_cell.REPOSITORY_URL.removeprefix("https://github.com/")
    readme = (ROOT / "README.md").read_text()
    assert f"mybinder.org/v2/gh/{slug}/" in readme, "README needs a Binder badge for " + slug
    assert f"colab.research.google.com/github/{slug}/" in readme, "README needs a Colab link for " + slug
    for path in (ROOT / "README.md", ROOT / "docs" / "teaching.md"):
        for link in re.findall(r"(?:mybinder\.org/v2/gh|colab\.research\.google\.com/github)/([^/\s]+/[^/\s]+)/",
                               path.read_text()):
            assert link == slug, f"{path.name} links to {link}, but the Colab cell clones {slug}"


@pytest.fixture()
def kernel(start_kernel, tmp_path):
    return start_kernel(tmp_path)


def run(kernel, code: str) -> str:
    """Execute ``code``; returns what it printed; fails the test on an exception."""
    error, text = kernel.run(code, timeout=120)
    assert error is None, text
    return text


def test_the_cell_does_nothing_outside_colab(kernel, tmp_path, colab_cell):
    before = run(kernel, "import json, os, sys; modules_before = set(sys.modules); print(os.getcwd())")
    printed = run(kernel, colab_cell.SOURCE)
    look = "print(json.dumps([os.getcwd(), sorted(set(sys.modules) - modules_before)]))"  # (a short output)
    after, imported = json.loads(run(kernel, look))
    assert printed == "", "the cell must print nothing outside Colab"
    assert after == before.strip() == str(tmp_path), "the cell must not change directory outside Colab"
    assert imported == [], f"the cell must not import anything (e.g. subprocess) outside Colab: {imported}"
    assert not any(tmp_path.iterdir()), "the cell must not write files outside Colab"


def test_on_colab_the_cell_clones_installs_fetches_and_enters_notebooks(kernel, colab_cell):
    """Pretend to be Colab (a fake ``google.colab`` module) and record what the cell would run."""
    run(kernel, """
import os, subprocess, sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")
calls = []
subprocess.run = lambda command, **kwargs: calls.append(command)
os.chdir = lambda path: calls.append(["cd", path])
""")
    run(kernel, colab_cell.SOURCE)
    calls = json.loads(run(kernel, "import json; print(json.dumps(calls))"))
    clone, install, fetch, cd = calls
    assert clone[:2] == ["git", "clone"] and colab_cell.REPOSITORY_URL in clone
    assert install[1:4] == ["-m", "pip", "install"] and install[-1] == clone[-1] + "[lessons]"
    assert fetch[1:] == ["-m", "retinanet_lite", "data", "trees", "--fetch-only"]  # the tree-crown images
    assert cd == ["cd", clone[-1] + "/notebooks"]
