"""Lesson 09's exercise checks name the usual mistakes, pass other correct answers, and refuse the package's."""
from pathlib import Path

import pytest
import torch

from retinanet_lite import workbook
from retinanet_lite.workbook import lesson_exercises
from workbook_checks import failed_with, notebook_check, passes

LESSON = "09_focal_loss_experiments.ipynb"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"



def normalised_cdf(losses):  # the lesson's solution
    ordered = losses.sort().values
    cumulative = ordered.cumsum(0) / ordered.sum()
    return torch.linspace(0, 1, len(ordered)), cumulative


def cdf_with(descending=False, normalise=True, sort=True, cumulative=True, x="linspace"):
    def cdf(losses):
        ordered = losses.sort(descending=descending).values if sort else losses
        y = ordered.cumsum(0) if cumulative else ordered
        n = len(losses)
        xs = {"linspace": torch.linspace(0, 1, n), "arange": torch.arange(n) / n,
              "from 1": torch.arange(1, n + 1) / n, "count": torch.arange(n).float()}[x]
        return xs, y / ordered.sum() if normalise else y
    return cdf


def test_exercises_are_registered_in_the_lessons_order():
    assert [e.name for e in lesson_exercises("09")] == ["normalised_cdf", "hardest_fraction"]


def test_normalised_cdf():
    passes("normalised_cdf", normalised_cdf)
    passes("normalised_cdf", lambda l: (torch.arange(len(l)) / max(len(l) - 1, 1), torch.sort(l)[0].cumsum(0) / l.sum()))
    failed_with("normalised_cdf", cdf_with(descending=True), "descending")
    failed_with("normalised_cdf", cdf_with(normalise=False), "not normalised")
    failed_with("normalised_cdf", cdf_with(sort=False), "not sorted")
    failed_with("normalised_cdf", cdf_with(cumulative=False), "cumulative sum")
    failed_with("normalised_cdf", cdf_with(x="arange"), "stop short of 1")
    failed_with("normalised_cdf", cdf_with(x="from 1"), "start at 1/n")
    failed_with("normalised_cdf", cdf_with(x="count"), "counts the samples")
    failed_with("normalised_cdf", workbook.lesson09.cumulative_loss_share, "ready-made")
    failed_with("normalised_cdf", lambda l: workbook.lesson09.cumulative_loss_share(l), "ready-made")


def hardest_fraction(losses, share):  # the lesson's solution
    ordered = losses.sort(descending=True).values
    cumulative = ordered.cumsum(0) / ordered.sum()
    count = int((cumulative < share).sum()) + 1
    return count / len(losses)


def hardest_by_loop(losses, share):  # another correct answer
    total, running = float(losses.sum()), 0.0
    for count, value in enumerate(sorted(losses.tolist(), reverse=True), start=1):
        running += value
        if running >= share * total - 1e-12:
            return count / len(losses)
    return 1.0


def test_hardest_fraction_check():
    check = notebook_check(LESSON, "hardest_fraction")
    check({"torch": torch, "hardest_fraction": hardest_fraction})
    check({"torch": torch, "hardest_fraction": hardest_by_loop})

    def variant(descending=True, strict=True, plus_one=1):
        def wrong(losses, share):
            ordered = losses.sort(descending=descending).values
            cumulative = ordered.cumsum(0) / ordered.sum()
            below = cumulative < share if strict else cumulative <= share
            return (int(below.sum()) + plus_one) / len(losses)
        return wrong
    with pytest.raises(AssertionError, match="descending order"):
        check({"torch": torch, "hardest_fraction": variant(descending=False)})
    with pytest.raises(AssertionError, match="off by one"):
        check({"torch": torch, "hardest_fraction": variant(plus_one=0)})
    with pytest.raises(AssertionError, match="includes equality"):
        check({"torch": torch, "hardest_fraction": variant(strict=False)})
