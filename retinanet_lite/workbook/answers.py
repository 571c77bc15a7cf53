"""Answers checked by hash: the predict-first questions before a widget, and the quizzes.

A question's right answer is stored only as a short hash, so a notebook can check an answer without
showing it::

    digest("predict_iou_shift", 0.67)      # → 12 hex digits, the same for "0.670", " .67 " or 0.6666
    workbook.check_prediction("predict_iou_shift", predict_iou_shift)

**Normalisation** (what :func:`digest` hashes, ``"question:answer"``):

* a number — an ``int``, a ``float``, or a string that reads as one (``"0.50"``, ``" 32 "``) — is
  rounded to ``decimals`` places (default :data:`DECIMALS`, half away from zero, as written:
  0.665 → 0.67) and written without trailing zeros, so ``0.5 == "0.50"`` and ``3 == 3.0 == "3"``;
* anything else is text: surrounding spaces removed, letters lower-cased (``" C" == "c"``);
* ``None`` (no answer) is the empty text, which matches no stored digest.

A **predict-first question** is a workbook exercise (``retinanet_lite.workbook.core``): its answer cell is
a function returning the student's prediction (the instructor edition holds the answer between the
solution markers), its check cell is ``workbook.check_prediction(name, function)``, and the lesson's module
registers it with :func:`prediction` (expected digest, explanation, hint), in lesson order. The check:

* unanswered (the function still raises ``NotImplementedError`` or returns ``None``) → "not written yet:
  answer first, then move the slider" — reported unsolved, so Run All goes on in the student edition;
* wrong → "not right yet", with the hint, never the answer;
* right → a ✓ line, then the explanation (why, with the math).

As with every exercise, a wrong or missing answer raises ``ExerciseFailed`` in the instructor edition and
under the grader.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from .core import EXERCISES, FAILED, PASSED, UNSOLVED, declare, record

#: Hex digits of the sha256 that a digest keeps.
DIGEST_LENGTH = 12
#: Decimal places a numeric answer is rounded to, unless a question says otherwise.
DECIMALS = 6
#: What an unanswered question reports (in the words every unsolved exercise uses: "not written yet").
UNANSWERED = "not written yet: answer first, then move the slider"


def _number(answer: Any) -> Decimal | None:
    """``answer`` as an exact decimal if it is a finite number or a string that reads as one, else None."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, (int, float)):
        text = repr(answer)
    elif isinstance(answer, str):
        text = answer.strip()
    else:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def normalise(answer: Any, decimals: int = DECIMALS) -> str:
    """The canonical text of ``answer`` that :func:`digest` hashes (see the module's docstring)."""
    if not isinstance(decimals, int) or decimals < 0:
        raise ValueError(f"decimals must be a whole number ≥ 0, got {decimals!r}")
    if answer is None:
        return ""
    number = _number(answer)
    if number is None:
        return str(answer).strip().lower()
    rounded = number.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP).normalize()
    return format(rounded + 0, "f")  # + 0 turns −0 into 0


def digest(question: str | int, answer: Any, decimals: int = DECIMALS) -> str:
    """The first 12 hex digits of sha256("question:answer"), the answer normalised by :func:`normalise`
    (numbers rounded to ``decimals`` places; letters case-insensitive)."""
    return hashlib.sha256(f"{question}:{normalise(answer, decimals)}".encode()).hexdigest()[:DIGEST_LENGTH]


def _answer_of(answer: Any) -> Any:
    """The student's answer: ``answer`` itself, or what it returns if it is a function (None while it
    still raises NotImplementedError)."""
    if callable(answer):
        try:
            return answer()
        except NotImplementedError:
            return None
    return answer


@dataclass(frozen=True)
class Prediction:
    """A registered predict-first question: the digest of its answer, what a right answer explains, a hint."""
    expected: str
    explanation: str
    hint: str = ""
    decimals: int = DECIMALS


PREDICTIONS: dict[str, Prediction] = {}


def prediction(name: str, lesson: str, expected: str, explanation: str, hint: str = "",
               decimals: int = DECIMALS) -> None:
    """Register predict-first question ``name`` of ``lesson`` as an exercise (call it in lesson order);
    ``expected`` is :func:`digest` of ``name`` and the right answer."""
    if not (isinstance(expected, str) and len(expected) == DIGEST_LENGTH
            and all(c in "0123456789abcdef" for c in expected)):
        raise ValueError(f"expected must be {DIGEST_LENGTH} lower-case hex digits (a digest), got {expected!r}")
    declare(lesson, name)
    PREDICTIONS[name] = Prediction(expected, explanation, hint, decimals)


def check_prediction(name: str, answer: Any | Callable[[], Any]) -> None:
    """The check cell of predict-first question ``name``: ``answer`` (a value, or a function returning it)
    against the registered digest. Right: prints the explanation. Unanswered or wrong: reported like any
    unsolved or failing exercise, the wrong one with the hint (raises ExerciseFailed in the instructor
    edition and under the grader). Returns nothing, so the cell shows no value."""
    if name not in PREDICTIONS:
        raise ValueError(f"no predict-first question {name!r} is registered (retinanet_lite.workbook)")
    question = PREDICTIONS[name]
    given = _answer_of(answer)
    if given is None or (isinstance(given, str) and not given.strip()):
        record(name, UNSOLVED, UNANSWERED)
    elif digest(name, given, question.decimals) != question.expected:
        record(name, FAILED, f"{given!r} is not right yet" + (f" — hint: {question.hint}" if question.hint else ""))
    else:
        record(name, PASSED)
        print(question.explanation)
