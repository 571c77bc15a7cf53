"""Lesson 06 (focal loss): its explorer computes the right numbers (its exercises' checks: test_workbook_lesson06.py)."""
import pytest
import torch

from retinanet_lite.losses import focal_loss
from retinanet_lite.widgets import (EASY_P_T, anchor_population, draw_focal_loss, focal_loss_explorer,
                                    loss_shares)

def test_anchor_population_is_fixed_and_mostly_easy():
    logits, targets = anchor_population(100_000, 0.001)
    again, _ = anchor_population(100_000, 0.001)
    assert torch.equal(logits, again) and logits.shape == targets.shape == (100_000,)
    assert int(targets.sum()) == 100
    p_t_negative = torch.sigmoid(-logits[targets == 0])
    assert (p_t_negative > EASY_P_T).float().mean() > 0.99, "nearly every negative should be easy"


def test_loss_shares_add_up_and_match_a_direct_sum():
    logits, targets = anchor_population(10_000, 0.01)
    shares = loss_shares(logits, targets, 0.25, 2.0)
    assert sum(shares.values()) == pytest.approx(1.0)
    loss = focal_loss(logits, targets, 0.25, 2.0)
    assert shares["positives"] == pytest.approx(float(loss[targets > 0].sum() / loss.sum()))


def test_draw_focal_loss_gamma_zero_alpha_half_is_cross_entropy():
    result = draw_focal_loss(gamma=0.0, alpha=0.5)
    for part in ("positives", "hard_negatives", "easy_negatives"):
        assert result["focal"][part] == pytest.approx(result["ce"][part], rel=1e-9)
    assert result["ce"]["easy_negatives"] > 0.7, "with cross-entropy the easy negatives dominate"


def test_draw_focal_loss_focusing_moves_the_loss_to_the_positives():
    results = [draw_focal_loss(gamma=g, alpha=0.25) for g in (0.0, 1.0, 2.0, 5.0)]
    positives = [r["focal"]["positives"] for r in results]
    easy = [r["focal"]["easy_negatives"] for r in results]
    assert positives == sorted(positives) and easy == sorted(easy, reverse=True)
    assert results[2]["focal"]["easy_negatives"] < 0.1 < results[2]["focal"]["positives"]
    paper = results[2]
    assert paper["weight_positive"] == pytest.approx(0.25 * 0.5**2)
    assert paper["weight_easy_negative"] == pytest.approx(0.75 * 0.01**2)
    more_alpha = draw_focal_loss(gamma=2.0, alpha=0.75)
    assert more_alpha["focal"]["positives"] > paper["focal"]["positives"], "a larger α weighs the positives more"


def test_focal_loss_explorer_updates_when_a_slider_moves():
    explorer = focal_loss_explorer()
    assert [c.description for c in explorer.children[:2]] == ["γ (focus)", "α (balance)"]
    before = explorer.result["focal"]["positives"]
    explorer.children[0].value = 0.0
    assert explorer.result["focal"]["positives"] < before
    explorer.children[1].value = 0.5
    assert explorer.result["focal"]["positives"] == pytest.approx(explorer.result["ce"]["positives"])
