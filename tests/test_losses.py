"""Losses: focal loss against torchvision and analytic values; box losses."""
import math

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from retinanet_lite.losses import focal_loss, giou_loss, smooth_l1_loss


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [-1.0, 0.25, 0.5, 0.75])
def test_focal_loss_matches_torchvision(alpha, gamma):
    g = torch.Generator().manual_seed(int(gamma * 10 + alpha * 100))
    logits = (torch.randn(64, 5, generator=g) * 4).double().requires_grad_()
    targets = (torch.rand(64, 5, generator=g) < 0.2).double()
    ours = focal_loss(logits, targets, alpha, gamma)
    theirs = sigmoid_focal_loss(logits, targets, alpha, gamma)
    torch.testing.assert_close(ours, theirs)
    (grad_ours,) = torch.autograd.grad(ours.sum(), logits)
    (grad_theirs,) = torch.autograd.grad(theirs.sum(), logits)
    torch.testing.assert_close(grad_ours, grad_theirs)
    for reduction in ("mean", "sum"):
        torch.testing.assert_close(focal_loss(logits, targets, alpha, gamma, reduction),
                                   sigmoid_focal_loss(logits, targets, alpha, gamma, reduction))


def test_focal_loss_analytic():
    # p = 0.9 for a positive: FL = −0.25 · 0.1² · log(0.9)
    logit = torch.tensor([math.log(0.9 / 0.1)])
    assert focal_loss(logit, torch.ones(1)).item() == pytest.approx(-0.25 * 0.01 * math.log(0.9), rel=1e-6)
    # γ = 0, α < 0: plain cross-entropy
    assert focal_loss(logit, torch.zeros(1), alpha=-1, gamma=0).item() == pytest.approx(-math.log(0.1), rel=1e-6)


def test_focal_loss_is_finite_for_extreme_logits():
    logits = torch.tensor([-200.0, 200.0, -200.0, 200.0], requires_grad=True)
    loss = focal_loss(logits, torch.tensor([1.0, 0.0, 0.0, 1.0]))
    assert torch.isfinite(loss).all() and loss[0] > 40 and loss[1] > 40
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_focal_loss_rejects_soft_targets_and_wrong_shapes():
    with pytest.raises(ValueError, match="0 or 1"):
        focal_loss(torch.zeros(3), torch.tensor([0.0, 0.9, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        focal_loss(torch.zeros(2, 3), torch.zeros(3))


def test_unknown_reduction():
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(torch.zeros(2), torch.zeros(2), reduction="average")


def test_smooth_l1_matches_torch():
    a, b = torch.randn(20, 4), torch.randn(20, 4)
    for beta in (0.0, 0.1, 1.0):
        torch.testing.assert_close(smooth_l1_loss(a, b, beta, "sum"),
                                   torch.nn.functional.smooth_l1_loss(a, b, beta=beta, reduction="sum"))


def test_giou_loss_values():
    box = torch.tensor([[0.0, 0, 10, 10]])
    assert giou_loss(box, box).item() == pytest.approx(0.0, abs=1e-6)
    far = torch.tensor([[20.0, 0, 30, 10]])  # disjoint: IoU 0, enclosing 30×10, union 200
    assert giou_loss(box, far).item() == pytest.approx(1 + 100 / 300, rel=1e-5)


@pytest.mark.parametrize("gamma", [0.2, 0.5, 2.0])
def test_focal_loss_gradient_is_finite_for_confident_logits(gamma):
    # 1 - p_t underflows to 0 for |logit| ≈ 17+; a naive (1 - p_t) ** gamma then gives NaN gradients for gamma < 1
    logits = torch.tensor([-40.0, -20.0, 20.0, 40.0], requires_grad=True)
    targets = torch.tensor([0.0, 0.0, 1.0, 1.0])
    focal_loss(logits, targets, 0.25, gamma).sum().backward()
    assert torch.isfinite(logits.grad).all(), logits.grad
