"""Lesson 09's exercises: the normalised cumulative loss of the paper's Fig. 4, and the hardest fraction."""
from __future__ import annotations

from collections.abc import Callable

import torch

from .core import Mistake, declare, exercise
from .diagnose import as_tensor, diagnose, expect_shape


def cumulative_loss_share(losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fig. 4's curve of ``losses`` [N]: (fraction of samples 0 … 1, cumulative share of the total loss), both [N],
    the losses sorted ascending. The lesson uses it while the student's ``normalised_cdf`` does not pass."""
    ordered = losses.sort().values
    return torch.linspace(0, 1, len(ordered)), ordered.cumsum(0) / ordered.sum()


CDF_CASES = [torch.tensor([0.5, 3.0, 0.1, 0.1, 2.0, 7.0, 0.3]), torch.tensor([2.0, 1.0, 1.0]),
             torch.rand(50, generator=torch.Generator().manual_seed(0)) ** 3]


@exercise("normalised_cdf", "09", fallback=cumulative_loss_share)
def check_normalised_cdf(normalised_cdf: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``normalised_cdf(losses [N])`` → ``(x [N], y [N])``: x runs 0 → 1, y the cumulative share of the sorted losses."""
    for losses in CDF_CASES:
        answer = normalised_cdf(losses.clone())
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Mistake("normalised_cdf should return two tensors: (fraction of samples, cumulative share of the loss)")
        n = len(losses)
        x, y = as_tensor(answer[0], "normalised_cdf's first result"), as_tensor(answer[1], "normalised_cdf's second result")
        expect_shape(x, (n,), f"the fractions of samples for {n} losses")
        expect_shape(y, (n,), f"the cumulative shares for {n} losses")
        expected_x, expected_y = (t.double() for t in cumulative_loss_share(losses))
        diagnose(x, expected_x, {
            "the fractions of samples stop short of 1 (torch.arange(n) / n): they should run from 0 to 1, "
            "torch.linspace(0, 1, n)": lambda: torch.arange(n, dtype=torch.float64) / n,
            "the fractions of samples start at 1/n (torch.arange(1, n + 1) / n): they should run from 0 to 1, "
            "torch.linspace(0, 1, n)": lambda: torch.arange(1, n + 1, dtype=torch.float64) / n,
            "the first result counts the samples (0, 1, 2, …): divide to get fractions from 0 to 1":
                lambda: torch.arange(n, dtype=torch.float64),
        }, "the fractions of samples should run evenly from 0 to 1: torch.linspace(0, 1, n)")
        ordered = losses.double().sort().values
        diagnose(y, expected_y, {
            "the losses are sorted in descending order: sort them ascending, so the curve ends with the "
            "hardest samples (as in the paper's Fig. 4)": lambda: ordered.flip(0).cumsum(0) / ordered.sum(),
            "the cumulative loss is not normalised: divide by the total loss, so the curve ends at 1":
                lambda: ordered.cumsum(0),
            "the losses are not sorted: sort them (ascending) before the cumulative sum":
                lambda: losses.double().cumsum(0) / losses.sum(),
            "the shares are the sorted losses themselves: take the cumulative sum (cumsum) before dividing by the total":
                lambda: ordered / ordered.sum(),
        }, "the cumulative shares should be the cumulative sum of the ascending-sorted losses divided by their total")


declare("09", "hardest_fraction")
