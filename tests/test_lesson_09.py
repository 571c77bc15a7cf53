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
