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


def prediction_answer(lesson: str, name: str) -> Any:
    """The instructor's answer to predict-first question ``name``: its answer cell, run on its own."""
    cells = nbformat.read(NOTEBOOKS / lesson, as_version=4).cells
    source = next(c.source for c in cells if "exercise" in c.metadata.get("tags", []) and c.metadata.get("exercise") == name)
    namespace: dict = {}
    exec(source, namespace)
    return namespace[name]()


def prediction_is(lesson: str, name: str, computed: Any) -> None:
    """Predict-first question ``name``'s stored digest is that of ``computed`` (the answer worked out with the
    package), and the lesson's instructor answer is that same answer."""
    from retinanet_lite.workbook.answers import PREDICTIONS, digest
    question = PREDICTIONS[name]
    assert digest(name, computed, question.decimals) == question.expected, \
        f"{name}: the stored digest is not that of the computed answer {computed!r}: update it"
    given = prediction_answer(lesson, name)
    assert digest(name, given, question.decimals) == question.expected, \
        f"{name}: the lesson's answer {given!r} disagrees with the computed one {computed!r}"
