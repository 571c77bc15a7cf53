"""Lesson 04 (heads): why the classification head starts with the prior-probability bias — the loss at
initialisation, for cross-entropy and for focal loss, and how much of it the background carries."""
from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..heads import prior_bias
from ..losses import focal_loss
from .explore import explore

#: The prior explorer's default setting: the anchors of an 800×800 image with the paper's anchors
#: (P3–P7, A = 9: 120 087 anchors) and COCO's 80 classes.
PAPER_ANCHORS_800 = 120_087
COCO_CLASSES = 80


def loss_at_initialisation(prior: float | np.ndarray, num_positives: int = 100, num_anchors: int = PAPER_ANCHORS_800,
                           num_classes: int = COCO_CLASSES, alpha: float = -1.0, gamma: float = 0.0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """The classification loss of a freshly initialised head, split into ``(from positives, from background)``.

    At initialisation every logit equals the prior bias ``b = log(π / (1 − π))``. Of the ``num_anchors ×
    num_classes`` (anchor, class) outputs, ``num_positives`` are positive; the summed loss is divided by
    ``num_positives``, as RetinaNet normalises it. ``prior`` may be one π or an array of them (the results
    then have its shape). ``alpha < 0, gamma = 0`` is plain cross-entropy; the paper's focal loss is
    ``alpha = 0.25, gamma = 2``.
    """
    priors = torch.as_tensor(np.asarray(prior, dtype=np.float64))
    logits = (priors.log() - (-priors).log1p())[..., None].expand(*priors.shape, 2)  # [..., 2]: a positive, a negative
    targets = torch.tensor([1.0, 0.0], dtype=torch.float64).expand_as(logits)
    per_output = focal_loss(logits, targets, alpha, gamma)
    negatives = num_anchors * num_classes - num_positives
    return per_output[..., 0].numpy(), per_output[..., 1].numpy() * negatives / num_positives


def draw_prior_loss(prior: float = 0.01, gamma: float = 2.0, num_positives: int = 100,
                    num_anchors: int = PAPER_ANCHORS_800, num_classes: int = COCO_CLASSES) -> dict[str, float]:
    """Left: the loss at initialisation against the prior π (log–log), for cross-entropy and for focal loss
    (α = 0.25, ``gamma``), the chosen ``prior`` and the base rate ``P / (N·K)`` marked. Right: for the
    chosen prior, how much of each loss comes from the positives and how much from the background.

    Returns ``{"bias", "ce", "focal", "ce_background_share", "focal_background_share"}`` (losses divided
    by ``num_positives``).
    """
    losses = {"cross-entropy": (-1.0, 0.0), f"focal (α=0.25, γ={gamma:g})": (0.25, gamma)}
    priors = np.logspace(-6, math.log10(0.5), 120)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.4, 1]})
    parts = {}
    for (name, (alpha, g)), colour, dy in zip(losses.items(), ("tab:blue", "tab:red"), (4, -12)):
        left.plot(priors, sum(loss_at_initialisation(priors, num_positives, num_anchors, num_classes, alpha, g)),
                  color=colour, label=name)
        parts[name] = tuple(float(x) for x in loss_at_initialisation(prior, num_positives, num_anchors, num_classes, alpha, g))
        total = sum(parts[name])
        left.plot([prior], [total], "o", color=colour)
        left.annotate(f"{total:.3g}", (prior, total), textcoords="offset points", xytext=(-6 if prior > 0.03 else 6, dy),
                      ha="right" if prior > 0.03 else "left", color=colour, fontsize=9)
    base_rate = num_positives / (num_anchors * num_classes)
    left.axvline(prior, color="black", linestyle="--", linewidth=1, label=f"π = {prior:.2g}")
    left.axvline(base_rate, color="grey", linestyle=":", linewidth=1, label=f"base rate P/(NK) = {base_rate:.1e}")
    left.set(xscale="log", yscale="log", xlabel="prior π (every sigmoid starts here)",
             ylabel="loss at initialisation / P", title=f"b = −log((1−π)/π) = {prior_bias(prior) + 0.0:.2f}")
    left.legend(fontsize=8)

    names = list(parts)
    positive = np.array([parts[n][0] for n in names])
    background = np.array([parts[n][1] for n in names])
    shares = background / (positive + background)
    right.barh(names, 1 - shares, color="tab:green", label="from positives")
    right.barh(names, shares, left=1 - shares, color="tab:grey", label="from background")
    for row, (share, total) in enumerate(zip(shares, positive + background)):
        right.text(0.02, row, f"total {total:.3g}, background {100 * share:.{4 if share > 0.999 else 1}f}%", va="center", fontsize=9,
                   color="white", fontweight="bold")
    right.set(xlim=(0, 1), xlabel="share of the initial loss", title=f"P = {num_positives} positives, "
              f"N·K = {num_anchors:,}·{num_classes} outputs")
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8)
    fig.tight_layout()
    ce, focal = (float(positive[i] + background[i]) for i in (0, 1))
    return {"bias": prior_bias(prior) + 0.0, "ce": ce, "focal": focal,
            "ce_background_share": float(shares[0]), "focal_background_share": float(shares[1])}


def prior_explorer() -> widgets.interactive:
    """Sliders for the prior π, the focal γ and the number of positives, driving :func:`draw_prior_loss`."""
    return explore(
        draw_prior_loss,
        prior=widgets.FloatLogSlider(value=0.01, base=10, min=-6, max=math.log10(0.5), step=0.05,
                                     description="prior π", readout_format=".1e"),
        gamma=widgets.FloatSlider(value=2.0, min=0.0, max=5.0, step=0.5, description="focal γ"),
        num_positives=widgets.IntSlider(value=100, min=10, max=1000, step=10, description="positives P"),
    )
