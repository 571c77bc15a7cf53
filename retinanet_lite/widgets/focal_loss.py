"""Lesson 06 (focal loss): the loss and the weight of one example against ``p_t``, and where the loss of
a whole image's anchors comes from, for cross-entropy and for focal loss."""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from ..losses import focal_loss
from .explore import explore

#: A negative anchor counts as "easy" once the model gives it p_t above this.
EASY_P_T = 0.9


def anchor_population(num_anchors: int = 100_000, positive_fraction: float = 0.001
                      ) -> tuple[Tensor, Tensor]:
    """Logits and 0/1 targets ``([N], [N])`` float64 of an image's anchors for one class, mid-training.

    A made-up but typical picture: the background logits follow a normal distribution around −6
    (p ≈ 0.0025; sd 1.5, so a few hundred background anchors get p > 0.1), the object logits one around
    +0.5 (p ≈ 0.6; sd 1.5). They are the distribution's evenly spaced quantiles, not random draws,
    so the population is the same every time. The first ``round(N · positive_fraction)`` are positive.
    """
    num_positive = max(1, round(num_anchors * positive_fraction))

    def normal_quantiles(n: int, mean: float, std: float) -> Tensor:
        return mean + std * torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)

    logits = torch.cat([normal_quantiles(num_positive, 0.5, 1.5),
                        normal_quantiles(num_anchors - num_positive, -6.0, 1.5)])
    targets = torch.zeros(num_anchors, dtype=torch.float64)
    targets[:num_positive] = 1
    return logits, targets


def loss_shares(logits: Tensor, targets: Tensor, alpha: float, gamma: float) -> dict[str, float]:
    """How the summed focal loss of ``[N]`` logits splits: ``{"positives", "hard_negatives", "easy_negatives"}``.

    Shares sum to 1; a negative is easy when its ``p_t > EASY_P_T``. ``alpha < 0, gamma = 0`` is plain
    cross-entropy.
    """
    loss = focal_loss(logits, targets, alpha, gamma)
    p_t = torch.where(targets > 0, torch.sigmoid(logits), torch.sigmoid(-logits))
    groups = {"positives": targets > 0, "hard_negatives": (targets == 0) & (p_t <= EASY_P_T),
              "easy_negatives": (targets == 0) & (p_t > EASY_P_T)}
    return {name: float(loss[mask].sum() / loss.sum()) for name, mask in groups.items()}


def draw_focal_loss(gamma: float = 2.0, alpha: float = 0.25, num_anchors: int = 100_000,
                    positive_fraction: float = 0.001) -> dict[str, object]:
    """Four panels for focal loss with ``gamma`` and ``alpha``, against cross-entropy (CE).

    Top left: the loss against ``p_t`` (CE, focal loss, and focal loss times ``α_t`` for a positive and
    a negative). Top right: the weight focal loss gives an example relative to CE, ``α_t (1 − p_t)^γ``
    (log scale). Bottom left: the ``p_t`` of :func:`anchor_population`. Bottom right: the share of the
    total loss carried by the positives, the hard and the easy negatives, for CE and for focal loss.

    Returns ``{"ce": shares, "focal": shares, "weight_easy_negative", "weight_positive"}``: the shares of
    :func:`loss_shares`, and the relative weight of a negative at ``p_t = 0.99`` and a positive at 0.5.
    """
    p_t = torch.linspace(0.001, 0.999, 500, dtype=torch.float64)
    ce = -p_t.log()
    modulating = (1 - p_t) ** gamma
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (loss_ax, weight_ax), (population_ax, share_ax) = axes

    loss_ax.plot(p_t, ce, color="black", label="CE = −log p_t")
    loss_ax.plot(p_t, modulating * ce, color="tab:blue", label=f"FL, γ = {gamma:g}")
    loss_ax.plot(p_t, alpha * modulating * ce, "--", color="tab:green", label=f"α·FL (positive, α = {alpha:g})")
    loss_ax.plot(p_t, (1 - alpha) * modulating * ce, ":", color="tab:red", linewidth=2,
                 label=f"(1−α)·FL (negative, 1−α = {1 - alpha:g})")
    loss_ax.axvspan(EASY_P_T, 1, color="grey", alpha=0.15, label=f"easy: p_t > {EASY_P_T}")
    loss_ax.set(xlim=(0, 1), ylim=(0, 5), xlabel="probability of the true class p_t", ylabel="loss",
                title="loss of one example")
    loss_ax.legend(fontsize=8)

    for weight, colour, label in ((alpha, "tab:green", "positive: α(1−p_t)^γ"),
                                  (1 - alpha, "tab:red", "negative: (1−α)(1−p_t)^γ")):
        weight_ax.plot(p_t, weight * modulating, color=colour, label=label)
    weight_ax.axhline(1, color="black", linewidth=0.8, label="CE (weight 1)")
    for p, weight, colour in ((0.5, alpha * 0.5**gamma, "tab:green"), (0.99, (1 - alpha) * 0.01**gamma, "tab:red")):
        weight_ax.plot([p], [weight], "o", color=colour)
        weight_ax.annotate(f"×{weight:.2g} at p_t = {p:g}", (p, weight), textcoords="offset points", xytext=(-8, -4),
                           ha="right", va="top", color=colour, fontsize=8)
    weight_ax.axvspan(EASY_P_T, 1, color="grey", alpha=0.15)
    weight_ax.set(xlim=(0, 1), ylim=(1e-7, 2), yscale="log", xlabel="p_t", ylabel="FL / CE",
                  title="weight of an example relative to cross-entropy")
    weight_ax.legend(fontsize=8, loc="lower left")

    logits, targets = anchor_population(num_anchors, positive_fraction)
    true_p = torch.where(targets > 0, torch.sigmoid(logits), torch.sigmoid(-logits))
    bins = np.linspace(0, 1, 41)
    population_ax.hist(true_p[targets == 0].numpy(), bins=bins, color="tab:red", alpha=0.6,
                       label=f"{int((targets == 0).sum()):,} negatives")
    population_ax.hist(true_p[targets > 0].numpy(), bins=bins, color="tab:green", alpha=0.8,
                       label=f"{int(targets.sum()):,} positives")
    population_ax.axvspan(EASY_P_T, 1, color="grey", alpha=0.15)
    population_ax.set(yscale="log", xlim=(0, 1), xlabel="p_t", ylabel="anchors",
                      title=f"an image's {num_anchors:,} anchors, mid-training")
    population_ax.legend(fontsize=8, loc="upper left")

    shares = {"ce": loss_shares(logits, targets, -1.0, 0.0), "focal": loss_shares(logits, targets, alpha, gamma)}
    rows = {"cross-entropy": shares["ce"], f"focal\nγ={gamma:g}, α={alpha:g}": shares["focal"]}
    colours = {"positives": "tab:green", "hard_negatives": "tab:orange", "easy_negatives": "tab:grey"}
    for row, (name, parts) in enumerate(rows.items()):
        left = 0.0
        for part, share in parts.items():
            share_ax.barh(row, share, left=left, color=colours[part],
                          label=part.replace("_", " ") if row == 0 else None)
            if share > 0.07:
                share_ax.text(left + share / 2, row, f"{100 * share:.0f}%", ha="center", va="center",
                              color="white", fontweight="bold", fontsize=9)
            left += share
    share_ax.set_yticks(range(len(rows)), list(rows), fontsize=9)
    share_ax.invert_yaxis()
    share_ax.set(xlim=(0, 1), xlabel="share of the image's total loss", title="where the loss comes from")
    share_ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    fig.tight_layout()
    return {**shares, "weight_positive": alpha * 0.5**gamma, "weight_easy_negative": (1 - alpha) * 0.01**gamma}


def focal_loss_explorer() -> widgets.interactive:
    """Sliders for the focal loss's γ and α, driving :func:`draw_focal_loss`."""
    return explore(
        draw_focal_loss,
        gamma=widgets.FloatSlider(value=2.0, min=0.0, max=5.0, step=0.5, description="γ (focus)"),
        alpha=widgets.FloatSlider(value=0.25, min=0.05, max=0.95, step=0.05, description="α (balance)"),
    )
