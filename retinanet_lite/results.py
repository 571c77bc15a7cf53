"""The benchmark result files the lessons show: ``bench/results/<name>.json``, written by the scripts in ``bench/``.

Lessons that quote many training runs (a grid of settings, several seeds) do not train them in class: a bench
script trains them once and writes a result file that names the command, the date and the machine. A lesson
loads that file with :func:`bench_result`, which says where the numbers come from, then re-runs one point to
confirm it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_FOLDER = Path("bench") / "results"


def course_file(relative: str | Path) -> Path:
    """The file ``relative`` (a path inside the course folder, e.g. ``bench/results/trees.json``), looked for in
    the working directory and each folder above it — so it is found from ``notebooks/``, from a copy of the
    course under ``build/`` and from the student edition alike.

    Raises ``FileNotFoundError`` naming the file and where it was looked for.
    """
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / relative).exists():
            return folder / relative
    raise FileNotFoundError(f"{relative} is not in {here} or any folder above it: run the lesson inside the course folder")


def bench_result(name: str, quiet: bool = False) -> dict[str, Any]:
    """The parsed ``bench/results/<name>.json``; unless ``quiet``, first print its provenance: the command(s) that
    wrote it (``"commands"`` when several runs added to it, else ``"command"``), its date and machine, and its
    ``"provenance"`` note when it has one."""
    path = course_file(RESULTS_FOLDER / f"{name}.json")
    result = json.loads(path.read_text())
    if not quiet:
        commands = result.get("commands") or [result.get("command", "(not recorded)")]
        machine = result.get("machine", {})
        where = f": {machine.get('cpu')}, {machine.get('cores')} cores, torch {machine.get('torch')}" if machine else ""
        print(f"{RESULTS_FOLDER.as_posix()}/{path.name}")
        print("  made by  " + "\n     and  ".join(commands))
        print(f"  on       {result.get('date', '(not recorded)')}{where}")
        if "provenance" in result:
            print(f"  note     {result['provenance']}")
    return result
