"""The workbook: every piece the lessons build is an exercise with a check that names the mistake.

- ``core``: :func:`check` (a check cell: the student's version if it passes, else the package's),
  :func:`checking` (the notebook's own asserts as a check), :func:`summary` (the lesson's last cell),
  the student/instructor/grader modes, and the watch for answers that call the package's own version;
- ``diagnose``: comparing an answer with the right one and with the usual wrong ones;
- ``answers``: answers checked by hash (:func:`digest`, :func:`check_prediction` for the predict-first
  questions before a widget); lesson 12's quiz and lesson 07's drill check with the same :func:`digest`;
- ``lesson01`` … : each lesson's checkers, registered under stable exercise names.
"""
from . import answers, lesson00, lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07, lesson08, lesson09, lesson10, lesson11, lesson12
from .answers import check_prediction, digest
from .core import (EXERCISES, ExerciseFailed, Mistake, check, checking, edition, is_strict, lesson_exercises,
                   remember_functions, run_checker, summary)

remember_functions()

__all__ = ["EXERCISES", "ExerciseFailed", "Mistake", "check", "check_prediction", "checking", "digest",
           "edition", "is_strict", "lesson_exercises", "run_checker", "summary"]
