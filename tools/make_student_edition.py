"""Write the student edition of the course: every lesson with its exercise solutions removed.

    python tools/make_student_edition.py                 # notebooks/ → build/student/   (= make student)
    python tools/make_student_edition.py SRC OUT         # any other pair of folders

In the lessons, each exercise's solution sits between nbgrader's markers::

    def giou(a, b):
        ### BEGIN SOLUTION
        ...the instructor's code...
        ### END SOLUTION

The student edition replaces every such block with nbgrader's stub, indented like the block::

    def giou(a, b):
        # YOUR CODE HERE
        raise NotImplementedError()

so the exercise's check cell fails loudly until the student writes the code. The replacement is done
by nbgrader's own ``ClearSolutions`` preprocessor (the one ``nbgrader generate_assignment`` uses);
outputs are cleared too, so no printed result gives a solution away. Everything else — markdown,
other code, cell tags and ids — is copied unchanged, and so is every other file in the notebooks
folder that a lesson may read (data, images, the trained model in checkpoints/ that lessons 08–11
load), except caches.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor
from nbgrader.preprocessors import ClearSolutions

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "notebooks"
OUT = ROOT / "build" / "student"
#: Caches that Jupyter and Python leave in the notebooks folder: not part of the course.
CACHES = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")


def student_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with solution blocks replaced by nbgrader's stubs and outputs cleared."""
    notebook = nbformat.from_dict(notebook)  # deep copy: the instructor's notebook stays as it is
    ClearOutputPreprocessor().preprocess(notebook, {})
    # enforce_metadata=False: our exercise cells are marked with tags, not with nbgrader's own
    # "solution" metadata (which only nbgrader's full grading workflow needs).
    notebook, _ = ClearSolutions(enforce_metadata=False).preprocess(notebook, {})
    return notebook


def make_student_edition(source: Path = SOURCE, out: Path = OUT) -> list[Path]:
    """Write ``out`` afresh: the student version of every ``source/*.ipynb`` and a copy of every other
    (non-generated) file. Returns the notebooks written."""
    source, out = Path(source), Path(out)
    if out.exists():
        shutil.rmtree(out)
    # everything except the notebooks (written below) and caches, with the folder structure
    shutil.copytree(source, out, ignore=lambda d, names: {*CACHES(d, names), *(n for n in names if n.endswith(".ipynb"))})
    written = []
    for path in sorted(source.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        nbformat.write(student_notebook(notebook), out / path.name)
        written.append(out / path.name)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=SOURCE, help="folder of lessons (default: notebooks/)")
    parser.add_argument("out", nargs="?", type=Path, default=OUT, help="where to write (default: build/student/)")
    args = parser.parse_args(argv)
    written = make_student_edition(args.source, args.out)
    where = args.out.resolve()
    shown = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
    print(f"student edition: {len(written)} lessons in {shown}/")


if __name__ == "__main__":
    sys.exit(main())
