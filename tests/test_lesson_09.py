"""Lesson 09 (focal loss experiments): the grid and re-run self-checks have teeth, the committed
grid file passes the grid check, and the test run saves the lesson's re-run (the exercises' checks:
test_workbook_lesson09.py). None of these tests trains a model: they stop before the lesson's one re-run,
skip the Fig. 4 cells (which load or train lesson 07's model) and the data cell."""
import ast
import json
from pathlib import Path

import re

import nbformat
import pytest

from notebook_runner import NOTEBOOKS, SHARED_RUNS, Kernel

LESSON = "09_focal_loss_experiments.ipynb"
ROOT = Path(__file__).resolve().parent.parent
GRID_FILE = ROOT / "bench" / "results" / "focal_loss_grid.json"
#: How the lesson's grid cell finds the committed result file (tests point it at a fake one instead).
GRID_LOOKUP = 'bench_result("focal_loss_grid")'
#: Cells that the grid's checks do not need: the training data and everything about Fig. 4.
SKIPPED = {"data": "", "fig4-model": "", "check-fig4": "", "fig4": ""}

def grid_cell_reading(path: Path) -> str:
    """The lesson's grid cell, reading the result file at ``path`` instead of the committed one."""
    notebook = nbformat.read(ROOT / "notebooks" / LESSON, as_version=4)
    source = next(c.source for c in notebook.cells if "grid" in c.metadata.get("tags", []))
    assert GRID_LOOKUP in source, f"the grid cell no longer finds its file with {GRID_LOOKUP}"
    return source.replace(GRID_LOOKUP, f"__import__('json').loads(Path({str(path)!r}).read_text())")


def fake_grid_file(tmp_path: Path, seed: int, ap_of) -> Path:
    """The committed result file with seed ``seed``'s AP grid replaced by ``ap_of(gamma, alpha)``."""
    result = json.loads(GRID_FILE.read_text())
    gammas, alphas = result["settings"]["gammas"], result["settings"]["alphas"]
    result["grids"][str(seed)]["map"] = [[ap_of(g, a) for a in alphas] for g in gammas]
    path = tmp_path / "fake_grid.json"
    path.write_text(json.dumps(result))
    return path


# Each fake grid breaks exactly one of the paper's trends that the check cell asserts
# (value: the AP of (gamma, alpha), and a phrase of the assertion message that must fire).
WRONG_GRIDS = {
    "plain-ce-best": (lambda g, a: 0.7 if g == 0 else 0.6 - 0.05 * g, "beat the best α-balanced"),
    "large-alpha-best": (lambda g, a: (0.5 if g == 0 else 0.55 if g < 5 else 0.1) + 0.1 * a, "should beat α = 0.75"),
    "gamma5-fine": (lambda g, a: (0.65 if g == 0.5 else 0.6) - 0.1 * a, "γ = 5 focuses too much"),
}


@pytest.fixture(scope="module")
def lesson_kernel():
    """One kernel in notebooks/ that has run the lesson's cells before the grid cell (without the skipped
    ones), and the lesson's cells by tag: each test then runs only the grid and re-run cells it changes."""
    notebook = nbformat.read(ROOT / "notebooks" / LESSON, as_version=4)
    by_tag = {tag: cell.source for cell in notebook.cells for tag in cell.metadata.get("tags", [])}
    kernel = Kernel(ROOT / "notebooks")
    try:
        for cell in notebook.cells:
            tags = cell.metadata.get("tags", [])
            if "grid" in tags:
                break
            if cell.cell_type == "code" and not set(tags) & set(SKIPPED):
                error, text = kernel.run(cell.source)
                assert error is None, f"a set-up cell of lesson 09 failed: {text[-1500:]}"
        yield kernel, by_tag
    finally:
        kernel.close()


def run_cells(kernel: Kernel, *sources: str) -> tuple[str | None, str]:
    """Run ``sources`` in order; (the first error's name or None, everything printed)."""
    printed = ""
    for source in sources:
        error, text = kernel.run(source)
        printed += text
        if error:
            return error, printed
    return None, printed


@pytest.mark.notebook
@pytest.mark.parametrize("ap_of, message", WRONG_GRIDS.values(), ids=WRONG_GRIDS.keys())
def test_grid_check_catches_a_grid_without_the_papers_trends(lesson_kernel, tmp_path, ap_of, message):
    # Only the last seed's grid is wrong: the check must look at every seed, not only the first.
    kernel, cells = lesson_kernel
    last_seed = json.loads(GRID_FILE.read_text())["settings"]["seeds"][-1]
    fake = fake_grid_file(tmp_path, last_seed, ap_of)
    error, text = run_cells(kernel, grid_cell_reading(fake), cells["check-grid"])
    assert error == "AssertionError" and re.search(f"seed {last_seed}: .*{message}", text), text[-1500:]


@pytest.mark.notebook
def test_grid_check_accepts_the_committed_grid_of_every_seed(lesson_kernel):
    kernel, cells = lesson_kernel
    error, text = run_cells(kernel, cells["grid"], cells["check-grid"])
    assert error is None, text[-1500:]


@pytest.mark.notebook
def test_rerun_check_catches_a_rerun_that_disagrees_with_the_file(lesson_kernel):
    # A "re-run" 0.1 AP above the file's value (no training): the tolerance check must fire.
    kernel, cells = lesson_kernel
    off = '''
SEED, GAMMA, ALPHA = 0, 2.0, 0.25
rerun = {key: grid[GAMMAS.index(GAMMA)][ALPHAS.index(ALPHA)] + 0.1 for key, grid in grid_file["grids"][str(SEED)].items()}
'''
    error, text = run_cells(kernel, cells["grid"], off, cells["check-rerun"])
    assert error == "AssertionError" and "the file says" in text, text[-1500:]


def test_the_grid_file_says_how_it_was_made():
    result = json.loads(GRID_FILE.read_text())
    assert "bench/focal_loss_grid.py" in result["command"]
    assert result["date"] and result["machine"]["cpu"] and result["machine"]["cores"] and result["machine"]["torch"]
    settings = result["settings"]
    assert sorted(result["grids"]) == sorted(map(str, settings["seeds"]))
    for grid in result["grids"].values():
        assert "map" in grid and set(grid) <= {"map", "map_50"}  # AP50 is there when `make bench` wrote the file
        for values in grid.values():
            assert [len(row) for row in values] == [len(settings["alphas"])] * len(settings["gammas"])


def test_the_full_runs_file_says_how_it_was_made():
    result = json.loads((ROOT / "bench" / "results" / "focal_loss_full.json").read_text())
    assert "bench/focal_loss_grid.py --full" in result["command"] and result["date"] and result["machine"]["cores"]
    assert {(r["gamma"], r["alpha"]) for r in result["runs"]} == {tuple(p) for p in result["settings"]["pairs"]}
    assert all(0 < r["map"] <= 1 and r["steps"] == result["settings"]["steps"] for r in result["runs"])


def train_or_reuse_call(tag: str, namespace: dict, defining: str) -> tuple[Path, dict]:
    """The path and the arguments of the ``train_or_reuse`` call in the lesson's cell tagged ``tag``, evaluated in
    ``namespace`` after the cell's line that starts with ``defining`` (its seed and setting) has run."""
    source = next(c.source for c in nbformat.read(ROOT / "notebooks" / LESSON, as_version=4).cells
                  if tag in c.metadata.get("tags", []))
    exec(next(line for line in source.splitlines() if line.startswith(defining)), namespace)
    (call,) = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
               and getattr(node.func, "id", None) == "train_or_reuse"]
    path = eval(ast.unparse(call.args[0]), namespace)
    return path, {"preset": ast.literal_eval(call.args[1]), **{k.arg: eval(ast.unparse(k.value), namespace)
                                                               for k in call.keywords if k.arg not in ("retrain", "progress")}}


def test_the_test_run_saves_the_rerun_the_lesson_makes(shared_runs):
    """notebook_runner.shared_runs trains the re-run with the arguments the lesson's train_or_reuse call gets
    (from the committed file's settings), so that nbval and the student edition reuse one model. (This test
    trains the shared runs, with tests/test_lesson_11.py, early in ``make test``: conftest.TRAINS_FIRST.)"""
    settings = json.loads(GRID_FILE.read_text())["settings"]
    path, arguments = train_or_reuse_call("rerun", {"settings": settings, "STEPS": settings["steps"], "Path": Path},
                                          "SEED, GAMMA, ALPHA =")
    assert SHARED_RUNS[path] == arguments and NOTEBOOKS / path in shared_runs and (NOTEBOOKS / path).is_file()


ABLATION_FILE = ROOT / "bench" / "results" / "ablations.json"


def test_the_ablation_file_says_how_it_was_made():
    result = json.loads(ABLATION_FILE.read_text())
    assert "bench/ablations.py" in result["command"] and result["date"] and result["machine"]["cores"]
    settings, seeds = result["settings"], result["settings"]["seeds"]
    grid_settings = json.loads(GRID_FILE.read_text())["settings"]
    assert all(settings[k] == grid_settings[k] for k in ("steps", "warmup_steps", "train_images", "val_images"))
    methods = {"FL", "CE + ohem", "CE + ohem_1:3", "CE + random", "CE, all anchors (from focal_loss_grid.json)"}
    assert {(r["method"], r["seed"]) for r in result["table_1d"]} == {(m, s) for m in methods for s in seeds}
    assert {(r["anchors_per_location"], r["seed"]) for r in result["table_1c"]} == {(a, s) for a in (1, 9) for s in seeds}
    assert {(r["prior_prob"], r["seed"]) for r in result["prior"]} == {(p, s) for p in settings["priors"] for s in seeds}
    assert all(len(r["loss"]) == settings["prior_steps"] or r["diverged"] for r in result["prior"])
    assert all(0 <= r["map"] <= 1 for r in result["table_1d"] + result["table_1c"])


def test_the_one_anchor_rerun_is_the_files_setting_and_a_shared_run():
    """The lesson's re-run of the ablation file (1 anchor per location, seed 0) uses the file's settings, and
    notebook_runner.shared_runs trains it with exactly the lesson's arguments."""
    settings = json.loads(ABLATION_FILE.read_text())["settings"]
    path, arguments = train_or_reuse_call("one-anchor-rerun", {"ablation_settings": settings, "Path": Path},
                                          "RERUN_SEED =")
    assert SHARED_RUNS[path] == arguments
    assert (arguments["anchor_ratios"], arguments["anchor_scales"]) == (
        tuple(settings["one_anchor"]["anchor_ratios"]), tuple(settings["one_anchor"]["anchor_scales"])) == ((1.0,), (1.0,))
