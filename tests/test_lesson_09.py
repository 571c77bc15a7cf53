"""Lesson 09 (focal loss experiments): the CDF self-check has teeth."""
import sys
from pathlib import Path

import pytest
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(Path(__file__).parent))
from notebook_runner import run_lesson  # noqa: E402

# Sorts the wrong way round, so the curve rises fastest at the start.
DESCENDING = '''
def normalised_cdf(losses):
    ordered = losses.sort(descending=True).values
    cumulative = ordered.cumsum(0) / ordered.sum()
    return torch.linspace(0, 1, len(ordered)), cumulative
'''

# Forgets to normalise by the total loss.
UNNORMALISED = '''
def normalised_cdf(losses):
    ordered = losses.sort().values
    return torch.linspace(0, 1, len(ordered)), ordered.cumsum(0)
'''


@pytest.mark.parametrize("wrong", [DESCENDING, UNNORMALISED], ids=["descending", "unnormalised"])
def test_cdf_check_catches_a_wrong_cdf(wrong):
    with pytest.raises(CellExecutionError, match="AssertionError"):
        run_lesson("09_focal_loss_experiments.ipynb", replace={"impl-cdf": wrong}, stop_after="check-cdf")


def fake_grid(ap_of) -> str:
    """A grid cell that fills ``results`` from ``ap_of(gamma, alpha)`` instead of training."""
    return f'''
STEPS = 250
GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]
ALPHAS = [0.25, 0.5, 0.75]
results = {{(g, a): {{"map": ({ap_of})(g, a), "map_50": 0.9}} for g in GAMMAS for a in ALPHAS}}
'''


# Each fake grid breaks exactly one of the paper's trends that the check cell asserts
# (value: the AP of (gamma, alpha), and a phrase of the assertion message that must fire).
WRONG_GRIDS = {
    "plain-ce-best": ("lambda g, a: 0.7 if g == 0 else 0.6 - 0.05 * g", "beat the best α-balanced"),
    "large-alpha-best": ("lambda g, a: (0.5 if g == 0 else 0.55 if g < 5 else 0.1) + 0.1 * a", "should beat α = 0.75"),
    "gamma5-fine": ("lambda g, a: (0.65 if g == 0.5 else 0.6) - 0.1 * a", "γ = 5 focuses too much"),
}


@pytest.mark.parametrize("ap_of, message", WRONG_GRIDS.values(), ids=WRONG_GRIDS.keys())
def test_grid_check_catches_a_grid_without_the_papers_trends(ap_of, message):
    with pytest.raises(CellExecutionError, match=message):
        run_lesson("09_focal_loss_experiments.ipynb", replace={"grid": fake_grid(ap_of)}, stop_after="check-grid")


# AP after 250 steps, measured with bench/focal_loss_grid.py --seeds 0,1,2 (2026-11-25): one row per
# γ = 0, 0.5, 1, 2, 5; columns α = 0.25, 0.5, 0.75.
MEASURED_GRIDS = {
    0: [
        [0.552, 0.578, 0.587],
        [0.626, 0.621, 0.554],
        [0.606, 0.564, 0.438],
        [0.546, 0.447, 0.357],
        [0.253, 0.260, 0.239],
    ],
    1: [
        [0.554, 0.591, 0.576],
        [0.642, 0.628, 0.533],
        [0.633, 0.570, 0.469],
        [0.499, 0.403, 0.310],
        [0.251, 0.232, 0.215],
    ],
    2: [
        [0.442, 0.552, 0.559],
        [0.644, 0.631, 0.541],
        [0.641, 0.587, 0.408],
        [0.547, 0.467, 0.291],
        [0.271, 0.252, 0.246],
    ],
}


@pytest.mark.parametrize("seed", sorted(MEASURED_GRIDS))
def test_grid_check_accepts_the_measured_grid_of_every_seed(seed):
    ap_of = f"lambda g, a: {MEASURED_GRIDS[seed]!r}[GAMMAS.index(g)][ALPHAS.index(a)]"
    run_lesson("09_focal_loss_experiments.ipynb", replace={"grid": fake_grid(ap_of)}, stop_after="check-grid")
