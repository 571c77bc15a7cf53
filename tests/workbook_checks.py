"""What the tests of the lessons' exercise checks (test_workbook_lessonNN.py) share."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

from retinanet_lite import workbook
from retinanet_lite.workbook.core import MODE_VARIABLE

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def failed_with(name: str, answer: Any, words: str) -> None:
    """Exercise ``name``'s checker fails ``answer`` with a message containing ``words``."""
    status = workbook.run_checker(name, answer)
    assert status.state == "failed", f"{name}: expected a failure naming {words!r}, got {status}"
    assert words in status.message, f"{name}: expected a message about {words!r}, got {status.message!r}"


def passes(name: str, answer: Any) -> None:
    """Exercise ``name``'s checker passes ``answer``."""
    status = workbook.run_checker(name, answer)
    assert status.state == "passed", f"{name}: {status.message}"


def notebook_check(lesson: str, name: str) -> Callable[[dict], None]:
    """The check cell of exercise ``name`` (asserts inside ``workbook.checking``) as a function of a
    namespace; it runs the cell in strict mode, so a failing check raises ExerciseFailed."""
    cells = nbformat.read(NOTEBOOKS / lesson, as_version=4).cells
    source = next(c.source for c in cells if "exercise-check" in c.metadata.get("tags", [])
                  and c.metadata.get("exercise") == name)

    def run(namespace: dict) -> None:
        previous = os.environ.get(MODE_VARIABLE)
        os.environ[MODE_VARIABLE] = "strict"
        try:
            exec(source, {"workbook": workbook, **namespace})
        finally:
            if previous is None:
                del os.environ[MODE_VARIABLE]
            else:
                os.environ[MODE_VARIABLE] = previous
    return run
