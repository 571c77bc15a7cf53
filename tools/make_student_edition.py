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

so the exercise's check reports it unsolved (and the lesson goes on with the package's version, see
``retinanet_lite.workbook``) until the student writes the code. The replacement is done
by nbgrader's own ``ClearSolutions`` preprocessor (the one ``nbgrader generate_assignment`` uses);
outputs are cleared too, so no printed result gives a solution away. Everything else — markdown,
other code, cell tags and ids — is copied unchanged, and so is every other file in the notebooks
folder that a lesson may read (data, images, the trained model in checkpoints/ that lessons 08–12
load), except caches — plus `edition.json` (the release id) and the benchmark result files lessons 07, 09 and 11 read
(`COURSE_FOLDER`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor
from nbgrader.preprocessors import ClearSolutions

from retinanet_lite.results import RESULTS_FOLDER

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "notebooks"
#: Written beside the student edition's lessons: ``retinanet_lite.workbook`` reads it to know that a failing
#: check must not stop the lesson, and the grader reads the release id from it.
EDITION_FILE = "edition.json"
#: The folder outside notebooks/ that lessons read: the benchmark result files they show (lesson 07: the debugging
#: drill's runs; lesson 09: the grid and the ablations; lesson 11: the tree benchmark; retinanet_lite.results),
#: copied into the edition at the same relative path, so that the edition also runs where it is unzipped on its own.
COURSE_FOLDER = RESULTS_FOLDER
OUT = ROOT / "build" / "student"
#: Caches that Jupyter and Python leave in the notebooks folder, and the lock and half-written files of a
#: checkpoint being trained (retinanet_lite.train.checkpoint_lock, save_checkpoint): not part of the course.
CACHES = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc", "*.lock", "*.partial")


def not_course_files(directory: str, names: list[str]) -> set[str]:
    """``shutil.copytree``'s ``ignore``: copying the notebooks folder, leave out the caches and the lessons."""
    return {*CACHES(directory, names), *(n for n in names if n.endswith(".ipynb"))}


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
    shutil.copytree(source, out, ignore=not_course_files)
    if (source.parent / COURSE_FOLDER).is_dir():
        shutil.copytree(source.parent / COURSE_FOLDER, out / COURSE_FOLDER, ignore=shutil.ignore_patterns("*.partial"))
    lessons = {path.name: student_notebook(nbformat.read(path, as_version=4)) for path in sorted(source.glob("*.ipynb"))}
    release = release_id(lessons)
    written = []
    for name, notebook in lessons.items():
        notebook.metadata.setdefault("workbook", {})["release"] = release
        nbformat.write(notebook, out / name)
        written.append(out / name)
    (out / EDITION_FILE).write_text(json.dumps({"edition": "student", "release": release,
                                                "lessons": sorted(lessons)}, indent=1) + "\n")
    return written


def release_id(lessons: dict[str, nbformat.NotebookNode]) -> str:
    """12 hex digits that identify this student edition: a hash of its lessons' cells, so the same
    instructor notebooks always give the same release (and any change to a lesson a new one)."""
    digest = hashlib.sha256()
    for name, notebook in sorted(lessons.items()):
        digest.update(name.encode())
        for cell in notebook.cells:
            digest.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
    return digest.hexdigest()[:12]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=SOURCE, help="folder of lessons (default: notebooks/)")
    parser.add_argument("out", nargs="?", type=Path, default=OUT, help="where to write (default: build/student/)")
    args = parser.parse_args(argv)
    written = make_student_edition(args.source, args.out)
    where = args.out.resolve()
    shown = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
    release = json.loads((args.out / EDITION_FILE).read_text())["release"]
    print(f"student edition {release}: {len(written)} lessons in {shown}/")


if __name__ == "__main__":
    sys.exit(main())
