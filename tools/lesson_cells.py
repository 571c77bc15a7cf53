"""Find a lesson's exercises and the few earlier cells that each exercise really needs.

The student-edition tests run an exercise without running the whole lesson (lessons 07–09 train
models; that would take many minutes). For each exercise they execute, in a fresh kernel:

1. the lesson's *set-up cells*: its first code cells, as long as they import something (every
   lesson puts its imports there; a Colab install cell, if present, is one of them and does nothing
   outside Colab);
2. the earlier cells that define a name the exercise or its check uses, found by static analysis
   (:func:`dependency_slice`), recursively;
3. the exercise cell (tagged ``exercise``) and its check cell (tagged ``exercise-check``).

The analysis is deliberately simple — which cell last *assigns* a name before it is used — so it
misses state changed by mutation (``model.eval()``); the tests prove the slice is enough by running
the instructor's solution on it, which must pass.
"""
from __future__ import annotations

import ast
import builtins
import symtable
from dataclasses import dataclass
from functools import lru_cache

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISE_TAG, CHECK_TAG = "exercise", "exercise-check"
#: Names every IPython kernel provides without a definition in the notebook.
KERNEL_NAMES = set(dir(builtins)) | {"get_ipython", "display", "In", "Out", "exit", "quit"}


def tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def has_solution(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and BEGIN in cell.source


@dataclass(frozen=True)
class Exercise:
    """One exercise of a lesson: indices (into ``notebook.cells``) of its cell and its check cell."""
    number: int  # 1, 2, … in the order of the lesson
    cell: int
    check: int
    tagged: bool  # both cells carry the expected tags


def exercises(notebook: nbformat.NotebookNode) -> list[Exercise]:
    """The lesson's exercises: code cells with a solution block (or tagged ``exercise``), each with
    its check — the next cell tagged ``exercise-check``, or failing that the next code cell."""
    found = []
    cells = notebook.cells
    starts = [i for i, c in enumerate(cells) if has_solution(c) or (c.cell_type == "code" and EXERCISE_TAG in tags(c))]
    for number, start in enumerate(starts, 1):
        following = [j for j in range(start + 1, len(cells)) if cells[j].cell_type == "code"]
        nxt = next((s for s in starts if s > start), len(cells))
        tagged_checks = [j for j in following if j < nxt and CHECK_TAG in tags(cells[j])]
        check = tagged_checks[0] if tagged_checks else (following[0] if following else None)
        if check is None:
            raise ValueError(f"exercise cell {start} has no code cell after it to check it")
        tagged = EXERCISE_TAG in tags(cells[start]) and CHECK_TAG in tags(cells[check])
        found.append(Exercise(number, start, check, tagged))
    return found


@lru_cache(maxsize=None)
def defined_and_used(source: str) -> tuple[frozenset[str], frozenset[str]]:
    """(names a cell binds at module level, global names it reads before binding them itself).

    A name the cell both binds and reads counts as read when a top-level statement reads it no later than
    the first one that binds it: ``box_iou = workbook.check("box_iou", box_iou)`` needs an earlier
    ``box_iou``, ``x = 1; print(x)`` does not.

    IPython syntax (``%matplotlib inline``, ``!pip``) is first turned into Python, as the kernel does.
    """
    code = TransformerManager().transform_cell(source)
    table = symtable.symtable(code, "<cell>", "exec")
    defined = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    used: set[str] = set()

    def visit(scope: symtable.SymbolTable) -> None:
        for symbol in scope.get_symbols():
            module_level = scope.get_type() == "module"
            if symbol.is_referenced() and (module_level or symbol.is_global()):
                used.add(symbol.get_name())
        for child in scope.get_children():
            visit(child)

    visit(table)
    return frozenset(defined), frozenset((used - defined | read_before_bound(code, used & defined)) - KERNEL_NAMES)


def read_before_bound(code: str, names: set[str]) -> set[str]:
    """Those of ``names`` that ``code`` reads before it first binds them, statement by statement: an
    assignment's right-hand side runs before its target is bound (``x = f(x)`` reads ``x``); inside any
    other statement, source order decides (``for a in boxes: print(a)`` binds ``a`` first)."""
    found = set()
    for name in names:
        for statement in ast.parse(code).body:
            loads, stores = [], []
            for node in ast.walk(statement):
                if isinstance(node, ast.Name) and node.id == name:
                    (loads if isinstance(node.ctx, ast.Load) else stores).append((node.lineno, node.col_offset))
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                    stores.append((node.lineno, node.col_offset))
                elif isinstance(node, ast.alias) and (node.asname or node.name.split(".")[0]) == name:
                    stores.append((statement.lineno, statement.col_offset))
            if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and statement.value is not None:
                value = {(n.lineno, n.col_offset) for n in ast.walk(statement.value) if isinstance(n, ast.Name)}
                if any(position in value for position in loads):
                    found.add(name)
                    break
            if loads and (not stores or min(loads) < min(stores)):
                found.add(name)
                break
            if stores:
                break
    return found


def setup_cells(notebook: nbformat.NotebookNode) -> list[int]:
    """The lesson's first code cells, as long as each imports something (its imports and set-up)."""
    found = []
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        code = TransformerManager().transform_cell(cell.source)
        table = symtable.symtable(code, "<cell>", "exec")
        if not any(s.is_imported() for s in table.get_symbols()):
            break
        found.append(i)
    return found


def dependency_slice(notebook: nbformat.NotebookNode, targets: list[int]) -> list[int]:
    """Indices of the earlier code cells that ``targets`` need, transitively, plus the set-up cells
    (``targets`` themselves not included), in notebook order."""
    cells = notebook.cells
    code_cells = [i for i, c in enumerate(cells) if c.cell_type == "code"]
    chosen: set[int] = set(setup_cells(notebook))
    todo = list(targets) + sorted(chosen)
    seen = set(todo)
    while todo:
        index = todo.pop()
        _, used = defined_and_used(cells[index].source)
        for name in used:
            # the last code cell before `index` that binds `name`
            definer = next((j for j in reversed(code_cells) if j < index
                            and name in defined_and_used(cells[j].source)[0]), None)
            if definer is not None and definer not in seen:
                seen.add(definer)
                chosen.add(definer)
                todo.append(definer)
    return sorted(chosen - set(targets))
