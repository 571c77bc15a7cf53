"""Give every lesson a first code cell that installs the course when it runs on Google Colab.

    python tools/colab_cell.py             # insert or update the cell in every notebooks/*.ipynb
    python tools/colab_cell.py --check     # only report lessons whose first code cell is not it

Colab opens a single notebook straight from GitHub, without the rest of the repository and without
``retinanet_lite``. The cell below (the same in every lesson) notices that it runs on Colab
(``google.colab`` is imported there before any user code), clones the repository, pip-installs the
course's package with its pinned dependencies (and the ``lessons`` extra: what the lessons import
beyond the package's own dependencies), and moves into ``notebooks/`` so that relative paths
(the lesson 07 checkpoint) work as they do locally. Anywhere else — ``make lab``, Binder, nbval —
it does nothing at all.

Running this script twice changes nothing the second time: the cell is recognised by its tag
``colab-setup`` and only rewritten if its text changed (e.g. after editing ``REPOSITORY_URL``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

#: The one place where the course's public repository is named (README badges must agree; a test checks).
REPOSITORY_URL = "https://github.com/retinanet-course/retinanet-course"
BRANCH = "main"
TAG = "colab-setup"

SOURCE = f'''\
# Google Colab only: fetch and install the course (anywhere else this cell does nothing).
import sys

if "google.colab" in sys.modules:
    import importlib
    import os
    import subprocess

    course = "/content/retinanet-course"
    if not os.path.isdir(course):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{BRANCH}",
                        "{REPOSITORY_URL}", course], check=True)
    # a regular (not editable) install is importable at once, without restarting the runtime
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", course + "[lessons]"], check=True)
    subprocess.run([sys.executable, "-m", "retinanet_lite", "data", "trees", "--fetch-only"], cwd=course)
    importlib.invalidate_caches()
    os.chdir(os.path.join(course, "notebooks"))'''


def is_colab_cell(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and TAG in cell.get("metadata", {}).get("tags", [])


def first_code_cell(notebook: nbformat.NotebookNode) -> int | None:
    return next((i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"), None)


def insert_colab_cell(notebook: nbformat.NotebookNode) -> bool:
    """Make the Colab cell the notebook's first code cell (placed just before the lesson's first
    code cell, so the title and objectives stay on top). Returns whether anything changed."""
    first = first_code_cell(notebook)
    if first is not None and is_colab_cell(notebook.cells[first]):
        if notebook.cells[first].source == SOURCE:
            return False
        notebook.cells[first].source = SOURCE  # e.g. the repository moved
        return True
    notebook.cells = [cell for cell in notebook.cells if not is_colab_cell(cell)]  # a stray copy elsewhere
    cell = nbformat.v4.new_code_cell(SOURCE, metadata={"tags": [TAG]})
    if notebook.get("nbformat_minor", 0) >= 5:
        ids = {c.get("id") for c in notebook.cells}
        if TAG not in ids:
            cell["id"] = TAG
    else:
        cell.pop("id", None)  # cell ids only exist from nbformat 4.5 on
    first = first_code_cell(notebook)
    notebook.cells.insert(len(notebook.cells) if first is None else first, cell)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a lesson lacks the cell")
    args = parser.parse_args(argv)
    missing = []
    for path in args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        if insert_colab_cell(notebook):
            missing.append(path)
            if not args.check:
                nbformat.write(notebook, path)
    for path in missing:
        print(f"{path.name}: lacks the current Colab cell" if args.check else f"{path.name}: Colab cell written")
    if not missing:
        print("every lesson starts with the current Colab cell")
    return 1 if args.check and missing else 0


if __name__ == "__main__":
    sys.exit(main())
