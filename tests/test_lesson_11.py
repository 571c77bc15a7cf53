"""Lesson 11 (tree crowns): the test run trains the lesson's models by the lesson's own recipes, and the
benchmark's seeds that the lesson compares its model with were trained by the same schedule."""
import ast
import sys
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from notebook_runner import NOTEBOOKS, SHARED_RUNS

from retinanet_lite.config import preset_recipe
from retinanet_lite.results import bench_result
from retinanet_lite.train import TREES_CHECKPOINT

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import trees as trees_bench  # noqa: E402  (bench/trees.py)

LESSON = NOTEBOOKS / "11_tree_crowns.ipynb"


def training_cells() -> list[tuple[ast.Module, dict]]:
    """The code cells of lesson 11 that call train_or_reuse: (syntax tree, the dicts they assign to names,
    e.g. ``SHORT = {"steps": 300, ...}``)."""
    cells = []
    for cell in nbformat.read(LESSON, as_version=4).cells:
        if cell.cell_type != "code" or "train_or_reuse(" not in cell.source:
            continue
        tree = ast.parse(TransformerManager().transform_cell(cell.source))
        constants = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.walk(tree)
                     if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                     and isinstance(node.value, ast.Dict)}
        cells.append((tree, constants))
    return cells


def test_the_test_run_trains_the_lessons_models_by_the_lessons_recipes(shared_runs):
    """notebook_runner.shared_runs makes both of lesson 11's models with the very arguments of the
    lesson's train_or_reuse calls, so that the lesson under nbval and the student edition reuse them. (This
    test trains the shared runs, first thing in ``make test``: see conftest.TRAINS_FIRST.)"""
    calls = {}
    for tree, constants in training_cells():
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


def test_the_benchmark_seeds_the_self_check_compares_with_have_the_lessons_schedule():
    """The lesson trains for IN_CLASS's steps and compares its model with the benchmark's "ours in class" seeds
    (with "ours", the preset's own schedule, when IN_CLASS is emptied): bench/trees.py must train that row for
    the same steps, and bench/results/trees.json's rows must have been."""
    [in_class] = [constants["IN_CLASS"] for _, constants in training_cells() if "IN_CLASS" in constants]
    assert trees_bench.SCHEDULES["ours in class"] == in_class
    rows = bench_result("trees", quiet=True)["rows"]
    for model, steps in (("ours in class", in_class["steps"]), ("ours", preset_recipe("trees-cpu").steps)):
        seeds = [r for r in rows if r["model"] == model]
        assert len(seeds) >= 3 and all(r["steps"] == steps for r in seeds), (model, [r["steps"] for r in seeds])
