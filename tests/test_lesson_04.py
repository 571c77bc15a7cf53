"""Lesson 04 (heads): the prior explorer computes the right numbers (its exercises' checks: test_workbook_lesson04.py)."""
import math

import pytest

from retinanet_lite.widgets import (COCO_CLASSES, PAPER_ANCHORS_800, draw_prior_loss,
                                    loss_at_initialisation, prior_explorer)


def cross_entropy_at_init(prior: float, positives: int) -> float:
    """Independent formula: −log π + (N·K − P)·(−log(1 − π)) / P for the paper's N and K."""
    negatives = PAPER_ANCHORS_800 * COCO_CLASSES - positives
    return -math.log(prior) - math.log(1 - prior) * negatives / positives


@pytest.mark.parametrize("prior", [0.5, 0.1, 0.01, 1e-4])
def test_draw_prior_loss_gives_the_cross_entropy_at_initialisation(prior):
    result = draw_prior_loss(prior=prior, gamma=2.0, num_positives=100)
    assert result["bias"] == pytest.approx(math.log(prior / (1 - prior)), abs=1e-12)
    assert result["ce"] == pytest.approx(cross_entropy_at_init(prior, 100), rel=1e-9)


def test_draw_prior_loss_focal_numbers():
    at_prior = draw_prior_loss(prior=0.01, gamma=2.0, num_positives=100)
    positive = -0.25 * 0.99**2 * math.log(0.01)
    background = -0.75 * 0.01**2 * math.log(0.99) * (PAPER_ANCHORS_800 * COCO_CLASSES - 100) / 100
    assert at_prior["focal"] == pytest.approx(positive + background, rel=1e-9)
    assert at_prior["focal_background_share"] == pytest.approx(background / (positive + background), rel=1e-9)
    without_prior = draw_prior_loss(prior=0.5, gamma=2.0, num_positives=100)
    assert without_prior["focal"] > 1e4 and at_prior["focal"] < 1.5  # the paper's argument, in numbers
    assert without_prior["ce_background_share"] > 0.9999 and at_prior["focal_background_share"] < 0.1


def test_draw_prior_loss_reacts_to_gamma_and_positives():
    base = draw_prior_loss(prior=0.01, gamma=2.0, num_positives=100)
    assert draw_prior_loss(prior=0.01, gamma=0.0, num_positives=100)["focal"] > base["focal"]
    more = draw_prior_loss(prior=0.01, gamma=2.0, num_positives=1000)
    assert more["ce"] < base["ce"] and more["ce_background_share"] < base["ce_background_share"]


def test_loss_at_initialisation_accepts_arrays():
    import numpy as np

    priors = np.array([0.5, 0.01])
    positive, background = loss_at_initialisation(priors, 100)
    assert positive.shape == background.shape == (2,)
    assert positive + background == pytest.approx([cross_entropy_at_init(p, 100) for p in priors], rel=1e-9)


def test_prior_explorer_redraws_on_a_new_prior():
    w = prior_explorer()
    slider = next(c for c in w.children if getattr(c, "description", "") == "prior π")
    before = w.result
    assert before["bias"] == pytest.approx(-4.59512, abs=1e-4)
    slider.value = 0.5
    assert w.result["ce"] > 50 * before["ce"]
    gamma = next(c for c in w.children if getattr(c, "description", "") == "focal γ")
    focal_at_gamma_2 = w.result["focal"]
    gamma.value = 0.0
    assert w.result["focal"] > focal_at_gamma_2
