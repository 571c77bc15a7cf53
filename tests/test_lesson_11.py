"""Lesson 11 (tree crowns): the test run trains the lesson's models by the lesson's own recipes."""
import ast
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from notebook_runner import NOTEBOOKS, SHARED_RUNS

from retinanet_lite.train import TREES_CHECKPOINT


def test_the_test_run_trains_the_lessons_models_by_the_lessons_recipes(shared_runs):
    """notebook_runner.shared_runs makes both of lesson 11's models with the very arguments of the
    lesson's train_or_reuse calls, so that the lesson under nbval and the student edition reuse them. (This
    test trains the shared runs, first thing in ``make test``: see conftest.TRAINS_FIRST.)"""
    calls = {}
    for cell in nbformat.read(NOTEBOOKS / "11_tree_crowns.ipynb", as_version=4).cells:
        if cell.cell_type != "code" or "train_or_reuse(" not in cell.source:
            continue
        tree = ast.parse(TransformerManager().transform_cell(cell.source))
        constants = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.walk(tree)
                     if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                     and isinstance(node.value, ast.Dict)}  # e.g. SHORT = {"steps": 300, ...}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "train_or_reuse":
                path_code, preset = node.args[0], ast.literal_eval(node.args[1])
                path = TREES_CHECKPOINT if ast.unparse(path_code) == "TREES_CHECKPOINT" else \
                    Path(ast.literal_eval(path_code.args[0]))
                recipe = {"preset": preset}
                for keyword in node.keywords:
                    if keyword.arg is None:  # **SHORT
                        recipe.update(constants[keyword.value.id])
                    elif keyword.arg not in ("retrain", "callback", "progress"):
                        recipe[keyword.arg] = ast.literal_eval(keyword.value)
                calls[path] = recipe
    assert calls == {path: SHARED_RUNS[path] for path in calls} and len(calls) == 2
    assert all(NOTEBOOKS / path in shared_runs and (NOTEBOOKS / path).is_file() for path in calls)
