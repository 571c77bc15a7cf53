"""Lesson 07 (training): the learning-rate schedule, warm-up then cosine decay."""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt

from ..config import preset_recipe
from ..train import lr_factor
from .explore import explore

#: The training recipe of the lessons' model; the schedule explorer starts from its schedule.
SHAPES_CPU_RECIPE = preset_recipe("shapes-cpu")


def draw_schedule(peak_lr: float = SHAPES_CPU_RECIPE.lr, warmup_steps: int = SHAPES_CPU_RECIPE.warmup_steps,
                  steps: int = SHAPES_CPU_RECIPE.steps) -> dict[str, float]:
    """Plot the learning rate of every step: linear warm-up to ``peak_lr``, then cosine decay to 0.

    Returns ``{"lr_at_warmup_end", "lr_at_half", "mean_lr"}`` — the last is what the whole run
    "spends": lowering it trains less far, raising it risks the instability warm-up is there to avoid.
    """
    lrs = [peak_lr * lr_factor(step, warmup_steps, steps) for step in range(steps)]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(range(steps), lrs, color="tab:blue")
    ax.axvspan(0, min(warmup_steps, steps), color="tab:orange", alpha=0.15, label="warm-up")
    ax.set(xlabel="step", ylabel="learning rate", title=f"peak {peak_lr:.1e}, warm-up {warmup_steps}, {steps} steps")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return {"lr_at_warmup_end": lrs[min(warmup_steps, steps - 1)], "lr_at_half": lrs[steps // 2],
            "mean_lr": sum(lrs) / steps}


def schedule_explorer() -> widgets.interactive:
    """Sliders for the peak learning rate, the warm-up length and the number of steps."""
    return explore(
        draw_schedule,
        peak_lr=widgets.FloatLogSlider(value=SHAPES_CPU_RECIPE.lr, base=10, min=-5, max=-1, step=0.1,
                                       description="peak lr", readout_format=".1e"),
        warmup_steps=widgets.IntSlider(value=SHAPES_CPU_RECIPE.warmup_steps, min=0, max=1000, step=10,
                                       description="warm-up"),
        steps=widgets.IntSlider(value=SHAPES_CPU_RECIPE.steps, min=100, max=5000, step=100, description="steps"),
    )
