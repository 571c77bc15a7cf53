"""The workbook's machinery: run a student's exercise through its check, name the mistake, fall back.

Every piece a lesson builds is an exercise in the student edition. Its check cell is one line::

    box_iou = workbook.check("box_iou", box_iou)

:func:`check` runs the exercise's checker (``retinanet_lite.workbook.lessonNN``) on the student's
function or class. A checker raises :class:`Mistake` with a message that names the likely mistake
("the intersection is not clamped at 0 …"). Then:

* it passes → ``check`` prints one ✓ line and returns the student's version, which the rest of the
  lesson uses;
* it fails, in the **student edition** → ``check`` prints the failure (on stderr: red in Jupyter),
  then one line saying that the rest of the lesson uses the package's version, and returns that
  version: Run All goes on, a stuck student still finishes the lesson;
* it fails, in the **instructor edition**, under the grader, or with ``RETINANET_WORKBOOK=strict``
  → ``check`` raises :class:`ExerciseFailed`, so nbval and the grader see the failure.

Exercises whose result nothing later uses (the end-of-lesson ones) keep their asserts in the
notebook, wrapped in ``with workbook.checking("name"):``, which behaves the same way.

An answer that calls the package's own implementation of the component (or torchvision's) does not
pass: while the checker runs the student's code, a profiler hook watches for calls into those
functions (however they were imported or renamed).
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Environment variable that overrides the edition's mode: "strict", "lenient" or "grade:<exercise>"
#: (strict for that one exercise only: the grader's mode).
MODE_VARIABLE = "RETINANET_WORKBOOK"
#: The file ``make student`` writes beside the student edition's lessons.
EDITION_FILE = "edition.json"

PASSED, FAILED, UNSOLVED = "passed", "failed", "unsolved"


class Mistake(AssertionError):
    """A checker found a specific, named mistake; the message says which and how to fix it."""


class ExerciseFailed(AssertionError):
    """Raised by :func:`check` / :func:`checking` in strict mode when an exercise does not pass."""


@dataclass
class Exercise:
    """One exercise: its stable name, its lesson, how to check it and what the lesson uses instead."""
    name: str
    lesson: str  # "01", "02", …
    checker: Callable[[Any], None] | None = None  # raises Mistake (or anything) when wrong
    fallback: Any = None  # the package's version the lesson uses while the student's fails
    forbidden: tuple[Callable, ...] = ()  # implementations of the same component an answer may not call

    @property
    def fallback_name(self) -> str:
        return _qualified_name(self.fallback) if self.fallback is not None else ""


@dataclass
class _Status:
    state: str
    message: str = ""
    fallback: str = ""


EXERCISES: dict[str, Exercise] = {}
_STATUS: dict[str, _Status] = {}
#: Modules whose functions a check relies on; an answer may not replace them (``boxes.box_iou = mine``).
WATCHED_MODULES = ("retinanet_lite", "torchvision.ops", "torch.nn.functional")


def _module_functions() -> dict[tuple[str, str], int]:
    """(module, name) → id of every function of the watched modules loaded now."""
    found = {}
    for module_name, module in list(sys.modules.items()):
        if module is not None and module_name.startswith(WATCHED_MODULES):
            for name, value in list(vars(module).items()):
                if callable(value) and not name.startswith("__"):
                    found[(module_name, name)] = id(value)
    return found


_ORIGINAL_FUNCTIONS: dict[tuple[str, str], int] = {}


def remember_functions() -> None:
    """Record the watched functions as they are now (the workbook's ``__init__`` calls it once, when the
    lesson's set-up cell imports the workbook, before any student code has run)."""
    _ORIGINAL_FUNCTIONS.update(_module_functions())


def replaced_functions(functions: tuple[Any, ...]) -> list[str]:
    """Where one of ``functions`` (the package's versions of an exercise) was replaced in a watched module
    since the workbook was imported: ``["retinanet_lite.boxes.box_iou"]`` after ``boxes.box_iou = mine``."""
    flat = [f for group in functions for f in (group if isinstance(group, (tuple, list)) else (group,))]
    originals = {id(f) for f in flat}
    return [f"{module}.{name}" for (module, name), ident in _ORIGINAL_FUNCTIONS.items()
            if ident in originals and id(getattr(sys.modules.get(module), name, None)) != ident]


def exercise(name: str, lesson: str, *, fallback: Any = None, forbidden: tuple[Callable, ...] = ()):
    """Register a checker (use as a decorator) for exercise ``name`` of ``lesson``; ``fallback`` is the
    package's version the lesson uses while the student's fails; ``forbidden`` lists further
    implementations of the same component that an answer may not call (the fallback always is)."""
    def register(checker: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
        if name in EXERCISES:
            raise ValueError(f"exercise {name!r} is registered twice")
        EXERCISES[name] = Exercise(name, lesson, checker, fallback, tuple(forbidden))
        return checker
    return register


def declare(lesson: str, *names: str) -> None:
    """Register exercises whose asserts live in the notebook (checked with :func:`checking`)."""
    for name in names:
        exercise(name, lesson)(None)


def lesson_exercises(lesson: str) -> list[Exercise]:
    """The exercises of ``lesson`` ("01"), in the order they were registered (= the lesson's order)."""
    return [e for e in EXERCISES.values() if e.lesson == lesson]


# --- modes -------------------------------------------------------------------------------------------

def edition(folder: Path | None = None) -> dict:
    """The contents of ``edition.json`` in ``folder`` (default: the working directory, i.e. the folder
    of the running notebook); ``{}`` for the instructor edition, which has no such file."""
    path = Path(folder or Path.cwd()) / EDITION_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error.msg}); regenerate it with `make student`") from None


def is_strict(name: str) -> bool:
    """Must a failure of exercise ``name`` raise? Yes in the instructor edition and under the grader;
    no in the student edition (the lesson goes on with the package's version)."""
    mode = os.environ.get(MODE_VARIABLE, "")
    if mode == "strict":
        return True
    if mode == "lenient":
        return False
    if mode.startswith("grade:"):
        return name == mode.removeprefix("grade:")
    if mode:
        raise ValueError(f"{MODE_VARIABLE}={mode!r}: expected 'strict', 'lenient' or 'grade:<exercise>'")
    return edition().get("edition") != "student"


# --- running a check ---------------------------------------------------------------------------------

def _qualified_name(obj: Any) -> str:
    if isinstance(obj, (tuple, list)):
        return ", ".join(_qualified_name(item) for item in obj)
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return f"{module}.{name}" if module else name


def _code_objects(obj: Any) -> set[types.CodeType]:
    """Every code object of a function, method or class (with the functions nested in them)."""
    found: set[types.CodeType] = set()

    def add(code: types.CodeType) -> None:
        if code not in found:
            found.add(code)
            for const in code.co_consts:
                if isinstance(const, types.CodeType):
                    add(const)

    def visit(item: Any) -> None:
        if isinstance(item, (tuple, list)):
            for part in item:
                visit(part)
            return
        item = getattr(item, "__func__", item)  # bound methods, classmethods, staticmethods
        item = getattr(item, "func", item) if not isinstance(item, type) else item  # functools.partial
        if isinstance(item, types.FunctionType) and hasattr(item, "__wrapped__"):
            visit(item.__wrapped__)  # a decorated function (``@torch.no_grad()``): the decorator's code is shared
        elif isinstance(item, types.FunctionType):
            add(item.__code__)
        elif isinstance(item, type):
            for value in vars(item).values():
                if isinstance(value, property):
                    for accessor in (value.fget, value.fset):
                        if accessor is not None:
                            visit(accessor)
                elif isinstance(value, (types.FunctionType, staticmethod, classmethod)):
                    visit(value)
        elif callable(item) and hasattr(type(item), "__call__") and not isinstance(item, types.BuiltinFunctionType):
            visit(type(item).__call__)

    visit(obj)
    return found


@contextlib.contextmanager
def _watch_for_package_calls(yours: Any, forbidden: tuple[Any, ...]) -> Iterator[list[str]]:
    """Yield a list that fills with the names of ``forbidden`` functions called from ``yours``'s code."""
    own = _code_objects(yours)
    banned = {code: _qualified_name(f) for group in forbidden for f in (group if isinstance(group, (tuple, list))
                                                                          else (group,)) for code in _code_objects(f)}
    calls: list[str] = []
    if set(own) & set(banned):  # ``yours`` *is* the package's function (or a class using its code)
        calls.append(banned[next(iter(set(own) & set(banned)))])
    flat = [f for group in forbidden for f in (group if isinstance(group, (tuple, list)) else (group,))]
    calls += [_qualified_name(f) for f in flat  # a class that only subclasses the package's class
              if isinstance(yours, type) and isinstance(f, type) and issubclass(yours, f)]

    def hook(frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in banned:
            caller = frame.f_back
            while caller is not None:
                if caller.f_code in own:
                    calls.append(banned[frame.f_code])
                    return
                caller = caller.f_back

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield calls
    finally:
        sys.setprofile(previous)


def run_checker(name: str, yours: Any) -> _Status:
    """Run exercise ``name``'s checker on ``yours``: PASSED, or UNSOLVED / FAILED with the message."""
    ex = EXERCISES[name]
    forbidden = tuple(f for f in (ex.fallback, *ex.forbidden) if f is not None)
    calls: list[str] = []
    try:
        with _watch_for_package_calls(yours, forbidden) as calls:
            ex.checker(yours)
    except NotImplementedError:
        status = _Status(UNSOLVED, "not written yet (it still raises NotImplementedError)")
    except Mistake as mistake:
        status = _Status(FAILED, str(mistake))
    except Exception as error:  # a crash inside the student's code is a failed check, with its cause
        status = _Status(FAILED, f"the check crashed: {type(error).__name__}: {error}")
    else:
        status = _Status(PASSED)
    replaced = replaced_functions(forbidden)
    if replaced:
        return _Status(FAILED, f"{replaced[0]} was replaced (patched); the checks compare with the package, so "
                               "write your own function under your own name instead of patching the package")
    if calls:
        return _Status(FAILED, f"it calls {sorted(set(calls))[0]}, a ready-made version of this "
                               f"exercise; write it yourself")
    return status


def _report(name: str, status: _Status, fallback: str) -> None:
    if status.state == PASSED:
        print(f"✓ {name}: yours passes the check" + ("; the rest of this lesson uses it" if fallback else ""))
        return
    heading = "not solved yet" if status.state == UNSOLVED else "does not pass"
    if is_strict(name):
        raise ExerciseFailed(f"{name}: {status.message}")
    print(f"✗ {name} {heading}: {status.message}", file=sys.stderr)
    if fallback:
        print(f"{name}: yours does not pass yet, so the rest of this lesson uses {fallback}", file=sys.stderr)
    sys.stderr.flush()


def check(name: str, yours: Any) -> Any:
    """Check the student's ``yours`` for exercise ``name``; return what the rest of the lesson uses
    (yours if it passes, else the package's version — or, in strict mode, raise ExerciseFailed)."""
    if name not in EXERCISES or EXERCISES[name].checker is None:
        raise ValueError(f"no checker is registered for exercise {name!r}")
    ex = EXERCISES[name]
    status = run_checker(name, yours)
    status.fallback = ex.fallback_name if status.state != PASSED else ""
    _STATUS[name] = status
    _report(name, status, ex.fallback_name)
    return yours if status.state == PASSED or ex.fallback is None else ex.fallback


@contextlib.contextmanager
def checking(name: str) -> Iterator[None]:
    """``with checking("giou"): <asserts>`` — the notebook's own asserts as exercise ``name``'s check."""
    if name not in EXERCISES:
        raise ValueError(f"exercise {name!r} is not registered (retinanet_lite.workbook)")
    try:
        yield
    except NotImplementedError:
        status = _Status(UNSOLVED, "not written yet (it still raises NotImplementedError)")
    except AssertionError as error:
        status = _Status(FAILED, str(error) or "an assert of the check failed")
    except Exception as error:
        status = _Status(FAILED, f"the check crashed: {type(error).__name__}: {error}")
    else:
        status = _Status(PASSED)
    record(name, status.state, status.message)


def record(name: str, state: str, message: str = "") -> None:
    """Record and report the result of exercise ``name`` when its check is not a checker (:func:`checking`'s
    asserts, ``answers``'s hash checks): ``state`` PASSED, FAILED or UNSOLVED, ``message`` saying why it did
    not pass (raises ExerciseFailed in strict mode when it did not pass)."""
    if name not in EXERCISES:
        raise ValueError(f"exercise {name!r} is not registered (retinanet_lite.workbook)")
    if state not in (PASSED, FAILED, UNSOLVED):
        raise ValueError(f"state must be {PASSED!r}, {FAILED!r} or {UNSOLVED!r}, got {state!r}")
    status = _Status(state, message)
    _STATUS[name] = status
    _report(name, status, "")


def summary(lesson: str) -> list[str]:
    """Print (and return) one line per exercise of ``lesson``: solved, or what the lesson ran on."""
    lines = []
    for ex in lesson_exercises(lesson):
        status = _STATUS.get(ex.name)
        if status is None:
            lines.append(f"· {ex.name}: its check has not run")
        elif status.state == PASSED:
            lines.append(f"✓ {ex.name}: solved")
        elif status.fallback:
            lines.append(f"✗ {ex.name}: not solved yet — this lesson ran on {status.fallback}")
        else:
            lines.append(f"✗ {ex.name}: not solved yet")
    solved = sum(line.startswith("✓") for line in lines)
    print(f"Lesson {lesson}: {solved} of {len(lines)} exercises solved")
    for line in lines:
        print("  " + line)
    return lines
