"""Grade students' lessons against the released student edition: ``make grade SUBMISSIONS=folder``.

    python tools/grade.py SUBMISSIONS [--release build/student] [--out build/grades] [--timeout 120] [--jobs N]

``SUBMISSIONS/<student>/<lesson>.ipynb`` — any students, any subset of the lessons. For every exercise of
every submitted lesson the grader runs, in a fresh process with a fresh IPython shell and a time limit:

1. the lesson's set-up cells and the earlier cells the exercise needs (``lesson_cells.dependency_slice``),
2. the student's exercise cell,
3. the exercise's check cell — always the **released** one, never the submission's,

with ``RETINANET_WORKBOOK=grade:<exercise>``: that exercise's check raises when it fails; earlier exercises
the slice needs fall back to the package's version, as in class. Every cell except the exercise cells
comes from the release, so edited or deleted checks earn nothing. The exercise passes when all of it runs.

Writes ``OUT/grades.csv`` (student, lesson, exercise, passed, points, max_points, message) and one feedback
page per student, ``OUT/<student>.html``. A submission that is not a notebook, runs too long, lost cells or
raises gets rows that say so; the grader itself never stops for one bad submission.

On Linux the processes are forked from a fork server that has already imported PyTorch, so a fresh run
costs a fraction of a second plus what the exercise's cells compute.
"""
from __future__ import annotations

import argparse
import csv
import html
import json
import multiprocessing
from multiprocessing import forkserver
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is a folder of scripts
from lesson_cells import dependency_slice  # noqa: E402

from retinanet_lite.workbook.core import MODE_VARIABLE  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TIMEOUT = 120.0  # seconds per exercise (its set-up, the cells it needs, the answer, the check)
COLUMNS = ["student", "lesson", "exercise", "passed", "points", "max_points", "message"]


@dataclass
class Row:
    student: str
    lesson: str
    exercise: str
    passed: bool
    points: float
    max_points: float
    message: str


@dataclass
class Job:
    """One exercise of one submission: the sources of the cells to run, in order."""
    student: str
    lesson: str
    exercise: str
    points: float
    cells: list[str]
    labels: list[str]  # what each cell is, for messages ("the set-up cell 2", "your exercise cell", …)
    notes: list[str] = field(default_factory=list)  # about the submission (release, structure)


# --- the release ---------------------------------------------------------------------------------------

@dataclass
class Lesson:
    """A released lesson: its notebook, the exercises (name → points) and where each exercise's cells are."""
    name: str
    notebook: nbformat.NotebookNode
    points: dict[str, float]
    cell_of: dict[str, int]  # exercise → index of its exercise cell
    check_of: dict[str, int]  # exercise → index of its check cell


def read_release(release: Path) -> tuple[str, dict[str, Lesson]]:
    """The release id and the lessons of a student edition written by ``make student``."""
    edition_file = release / "edition.json"
    if not edition_file.is_file():
        raise ValueError(f"{release} is not a student edition (no edition.json): run `make student` first, "
                         "or pass --release with the folder you handed out")
    release_id = json.loads(edition_file.read_text())["release"]
    lessons = {}
    for path in sorted(release.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        listed = notebook.metadata.get("workbook", {}).get("exercises", [])
        cell_of, check_of = {}, {}
        for index, cell in enumerate(notebook.cells):
            name = cell.metadata.get("exercise")
            tags = cell.metadata.get("tags", [])
            if name and "exercise" in tags:
                cell_of[name] = index
            elif name and "exercise-check" in tags:
                check_of[name] = index
        points = {e["name"]: float(e.get("points", 1)) for e in listed if e["name"] in cell_of and e["name"] in check_of}
        lessons[path.stem] = Lesson(path.stem, notebook, points, cell_of, check_of)
    return release_id, lessons


# --- reading a submission ---------------------------------------------------------------------------------

def read_submission(path: Path) -> tuple[nbformat.NotebookNode | None, str]:
    """The submitted notebook, or None and why it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return None, "the file is not text (not a notebook)"
    except json.JSONDecodeError as error:
        return None, f"not a valid notebook: the file is not JSON (line {error.lineno}: {error.msg})"
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None, "not a valid notebook: it has no list of cells"
    try:
        return nbformat.reads(json.dumps(data), as_version=4), ""
    except Exception as error:  # nbformat raises several kinds for malformed notebooks
        return None, f"not a valid notebook ({type(error).__name__}: {error})"


def structure_notes(lesson: Lesson, submission: nbformat.NotebookNode) -> tuple[list[str], dict[str, str]]:
    """What changed in the submission besides the exercise cells (notes), and the submitted source of
    every exercise cell found (by cell id, else by its ``exercise`` metadata)."""
    released = lesson.notebook.cells
    by_id = {cell.get("id"): cell for cell in submission.cells if cell.get("id")}
    answers, notes = {}, []
    for name, index in lesson.cell_of.items():
        cell = by_id.get(released[index].get("id"))
        if cell is None:
            cell = next((c for c in submission.cells if c.metadata.get("exercise") == name
                         and "exercise" in c.metadata.get("tags", [])), None)
        if cell is not None and cell.cell_type == "code":
            answers[name] = cell.source
    exercise_cells = set(lesson.cell_of.values())
    deleted = [i for i, c in enumerate(released) if c.get("id") not in by_id and i not in exercise_cells]
    edited = [i for i, c in enumerate(released) if i not in exercise_cells and c.get("id") in by_id
              and by_id[c.get("id")].source != c.source]
    order = [c.get("id") for c in submission.cells if c.get("id") in {r.get("id") for r in released}]
    expected = [c.get("id") for c in released if c.get("id") in set(order)]
    if deleted:
        notes.append(f"{len(deleted)} cell(s) of the lesson were deleted (cells {', '.join(map(str, deleted[:8]))})")
    if edited:
        checks = [i for i in edited if i in set(lesson.check_of.values())]
        notes.append(f"{len(edited)} cell(s) other than exercises were edited"
                     + (f", {len(checks)} of them checks" if checks else "")
                     + " (cells " + ", ".join(map(str, edited[:8])) + ")")
    if order != expected:
        notes.append("cells were reordered")
    if notes:
        notes[-1] += "; graded with the released cells"
    return notes, answers


def jobs_for(student: str, lesson: Lesson, submission: nbformat.NotebookNode, release_id: str) -> tuple[list[Job], list[Row]]:
    """The grading jobs of one submitted lesson, and rows for exercises that cannot be run at all."""
    notes, answers = structure_notes(lesson, submission)
    submitted_release = submission.metadata.get("workbook", {}).get("release")
    if submitted_release != release_id:
        notes.insert(0, f"submitted from release {submitted_release or 'unknown'}, graded against release {release_id}")
    released = lesson.notebook.cells
    sources = [c.source for c in released]  # what the grader runs: released cells with the submitted answers
    for name, answer in answers.items():
        sources[lesson.cell_of[name]] = answer
    # what it analyses and runs as earlier answers: an answer that is not valid Python counts as the stub
    usable = [runnable(sources[i], c.source) if i in lesson.cell_of.values() else c.source for i, c in enumerate(released)]
    notebook = nbformat.from_dict({**lesson.notebook, "cells": [nbformat.from_dict({**c, "source": u})
                                                                for c, u in zip(released, usable)]})
    jobs, rows = [], []
    for name, points in lesson.points.items():
        if name not in answers:
            rows.append(Row(student, lesson.name, name, False, 0, points,
                            "; ".join(["the exercise cell was deleted (or is no longer a code cell)", *notes])))
            continue
        cell, check = lesson.cell_of[name], lesson.check_of[name]
        needed = dependency_slice(notebook, [cell, check])
        labels = [f"cell {i} of the lesson" + (" (your answer to " + next(n for n, j in lesson.cell_of.items() if j == i) + ")"
                                               if i in lesson.cell_of.values() else "") for i in needed]
        jobs.append(Job(student, lesson.name, name, points, [usable[i] for i in needed] + [sources[cell], sources[check]],
                        labels + ["your exercise cell", "the check"], notes))
    return jobs, rows


def runnable(answer: str, stub: str) -> str:
    """An earlier exercise's answer that this exercise needs, or the released stub if the answer is not even
    valid Python (so that one syntax error costs only its own exercise: the stub's check falls back)."""
    try:
        compile(TransformerManager().transform_cell(answer), "<answer>", "exec")
        return answer
    except SyntaxError:
        return stub


# --- running one job --------------------------------------------------------------------------------------

def _child(job: Job, workdir: str, threads: int, connection) -> None:
    """In the forked process: run the job's cells in a fresh IPython shell; send back (index, error)."""
    import contextlib
    import io

    import torch

    torch.set_num_threads(threads)  # the jobs running side by side share the cores
    os.chdir(workdir)
    os.environ[MODE_VARIABLE] = f"grade:{job.exercise}"
    os.environ["MPLBACKEND"] = "Agg"
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.enable_gui = lambda gui=None: None  # `%matplotlib inline` needs no GUI event loop here (no kernel)
    result = (None, "")
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        for index, source in enumerate(job.cells):
            outcome = shell.run_cell(source, silent=True, store_history=False)
            error = outcome.error_before_exec or outcome.error_in_exec
            if error is not None:
                result = (index, f"{type(error).__name__}: {error}".strip())
                break
    connection.send(result)
    connection.close()


#: What every lesson's set-up imports, and what this script imports (each process imports the script again, to
#: find ``_child``; nbformat alone takes about 2 s, longer than most exercises): loaded once by the fork server, so
#: each grading process starts with it.
PRELOAD = ["torch", "torchvision", "numpy", "matplotlib.pyplot", "ipywidgets", "IPython.core.interactiveshell",
           "nbformat", "IPython.core.inputtransformer2",
           "retinanet_lite.workbook", "retinanet_lite.model", "retinanet_lite.train", "retinanet_lite.metrics",
           "retinanet_lite.viz", "retinanet_lite.widgets", "retinanet_lite.classical"]


def _context() -> multiprocessing.context.BaseContext:
    """Linux: a fork server — a clean process that imports PRELOAD once and forks one child per exercise (not
    a fork of this process, whose PyTorch thread pools may already run: forking those can hang). Elsewhere:
    spawn (each process imports what it needs; slower)."""
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    previous = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"  # the server imports matplotlib: no GUI backend (only while it starts)
    try:
        forkserver.ensure_running()
    finally:
        if previous is None:
            del os.environ["MPLBACKEND"]
        else:
            os.environ["MPLBACKEND"] = previous
    return context


def run_jobs(jobs: list[Job], release: Path, timeout: float, parallel: int) -> list[Row]:
    """Run every job (``parallel`` at a time), each in its own process and scratch folder."""
    rows: list[Row] = []
    pending = list(jobs)
    running: list[tuple[Job, multiprocessing.Process, object, float, str]] = []
    context = _context()
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            workdir = scratch_folder(release)
            receiver, sender = context.Pipe(duplex=False)
            threads = max(1, (os.cpu_count() or 1) // parallel)
            process = context.Process(target=_child, args=(job, workdir, threads, sender), daemon=True)
            process.start()
            sender.close()
            running.append((job, process, receiver, time.monotonic(), workdir))
        time.sleep(0.02)
        for entry in list(running):
            job, process, receiver, started, workdir = entry
            done = receiver.poll()
            late = time.monotonic() - started > timeout
            if not done and not late and process.is_alive():
                continue
            if done:
                try:
                    index, error = receiver.recv()
                except EOFError:
                    index, error = -1, "the grading process died (out of memory?)"
            elif late:
                index, error = -1, f"stopped after the time limit of {timeout:g} s (an endless loop, or far too slow?)"
            else:
                index, error = -1, f"the grading process died (exit code {process.exitcode})"
            process.kill()
            process.join()
            shutil.rmtree(workdir, ignore_errors=True)
            running.remove(entry)
            rows.append(row_for(job, index, error))
    return rows


def row_for(job: Job, index: int | None, error: str) -> Row:
    """The grade of one job from where (and why) it stopped."""
    notes = list(job.notes)
    if index is None:
        return Row(job.student, job.lesson, job.exercise, True, job.points, job.points, "; ".join(["passed", *notes]))
    if index == -1:
        message = error
    elif index == len(job.cells) - 1:  # the check: its message names the mistake
        prefix = f"ExerciseFailed: {job.exercise}: "
        message = error[len(prefix):] if error.startswith(prefix) else f"the check failed: {error}"
    else:
        message = f"{job.labels[index]} raised {error}"
    return Row(job.student, job.lesson, job.exercise, False, 0, job.points, "; ".join([message, *notes]))


def scratch_folder(release: Path) -> str:
    """A fresh working folder for one job: links to the release's files (data, checkpoints), no notebooks."""
    folder = Path(tempfile.mkdtemp(prefix="grade-"))
    for item in release.iterdir():
        if item.suffix != ".ipynb" and item.name != "edition.json":
            (folder / item.name).symlink_to(item.resolve())
    return str(folder)


# --- the whole class --------------------------------------------------------------------------------------

def grade(submissions: Path, release: Path, out: Path, timeout: float = DEFAULT_TIMEOUT,
          parallel: int | None = None) -> list[Row]:
    """Grade every ``submissions/<student>/<lesson>.ipynb``; write grades.csv and the feedback pages."""
    submissions, release, out = Path(submissions), Path(release), Path(out)
    if not submissions.is_dir():
        raise ValueError(f"SUBMISSIONS={submissions} is not a folder of <student>/<lesson>.ipynb")
    release_id, lessons = read_release(release)
    rows: list[Row] = []
    jobs: list[Job] = []
    for student_dir in sorted(p for p in submissions.iterdir() if p.is_dir()):
        for path in sorted(student_dir.glob("*.ipynb")):
            student, lesson = student_dir.name, lessons.get(path.stem)
            if lesson is None:
                rows.append(Row(student, path.stem, "", False, 0, 0, f"{path.name} is not a lesson of release {release_id}"))
                continue
            notebook, problem = read_submission(path)
            if notebook is None:
                rows += [Row(student, lesson.name, name, False, 0, points, problem) for name, points in lesson.points.items()]
                continue
            new_jobs, new_rows = jobs_for(student, lesson, notebook, release_id)
            jobs += new_jobs
            rows += new_rows
    rows += run_jobs(jobs, release, timeout, parallel or os.cpu_count() or 1)
    order = {(j.student, j.lesson): n for n, j in enumerate(jobs)}
    rows.sort(key=lambda r: (r.student, r.lesson, order.get((r.student, r.lesson), 0),
                             list(lessons[r.lesson].points).index(r.exercise) if r.lesson in lessons and r.exercise in lessons[r.lesson].points else 0))
    write_csv(rows, out / "grades.csv")
    for student in sorted({r.student for r in rows}):
        write_feedback([r for r in rows if r.student == student], out / f"{student}.html", release_id)
    return rows


def write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow([r.student, r.lesson, r.exercise, int(r.passed), f"{r.points:g}", f"{r.max_points:g}", r.message])


def write_feedback(rows: list[Row], path: Path, release_id: str) -> None:
    """One HTML page for one student: per lesson, each exercise, passed or not, with the check's message."""
    student = rows[0].student
    total, possible = sum(r.points for r in rows), sum(r.max_points for r in rows)
    parts = [f"<!doctype html><meta charset='utf-8'><title>Feedback: {html.escape(student)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:.3em .6em;"
             "border-bottom:1px solid #ddd;text-align:left;vertical-align:top}.ok{color:#176b2c}.no{color:#b00020}</style>",
             f"<h1>{html.escape(student)}: {total:g} of {possible:g} points</h1>",
             f"<p>Graded against release {html.escape(release_id)} of the student edition.</p>"]
    for lesson in sorted({r.lesson for r in rows}):
        parts.append(f"<h2>{html.escape(lesson)}</h2><table><tr><th>exercise</th><th>result</th><th>points</th>"
                     "<th>message</th></tr>")
        for r in (r for r in rows if r.lesson == lesson):
            mark = "<span class='ok'>✓ passed</span>" if r.passed else "<span class='no'>✗ not passed</span>"
            parts.append(f"<tr><td><code>{html.escape(r.exercise)}</code></td><td>{mark}</td>"
                         f"<td>{r.points:g} / {r.max_points:g}</td><td>{html.escape(r.message)}</td></tr>")
        parts.append("</table>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("submissions", type=Path, help="folder of <student>/<lesson>.ipynb")
    parser.add_argument("--release", type=Path, default=ROOT / "build" / "student",
                        help="the student edition that was handed out (default: build/student)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "grades", help="where to write (default: build/grades)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds allowed per exercise (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--jobs", type=int, default=None, help="exercises graded at once (default: CPU count)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        rows = grade(args.submissions, args.release, args.out, args.timeout, args.jobs)
    except ValueError as error:
        print(f"grade: {error}", file=sys.stderr)
        return 2
    students = sorted({r.student for r in rows})
    for student in students:
        mine = [r for r in rows if r.student == student]
        print(f"{student}: {sum(r.points for r in mine):g} / {sum(r.max_points for r in mine):g} points")
    print(f"graded {len(rows)} exercises of {len(students)} students in {time.monotonic() - started:.0f} s → "
          f"{args.out / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
