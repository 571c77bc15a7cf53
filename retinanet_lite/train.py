"""Training: a plain PyTorch loop you can read top to bottom.

``train(preset="shapes-cpu")`` builds the preset's model and data, then repeats: take a batch,
(maybe) flip it, ``loss = sum(model(images, targets).values())``, backward, clip gradients, AdamW
step, learning-rate schedule step. It evaluates mAP on the validation set at the end (and every
``eval_every`` steps), and returns ``(model, history)``.
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .config import RetinaNetConfig, preset_config
from .data import ShapesDataset, VAL_SEED_OFFSET, collate
from .metrics import evaluate
from .model import RetinaNet

Target = dict[str, Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """The recipe: data, schedule and evaluation. Each field is a knob the lessons discuss."""

    num_train_images: int = 2000  # shapes images generated (and cached in memory) for training
    num_val_images: int = 500  # held-out images, generated with seed + VAL_SEED_OFFSET
    image_size: int = 128
    batch_size: int = 16
    steps: int = 1000
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 1e-4
    warmup_steps: int = 100  # linear warm-up from lr/100, then cosine decay to 0
    grad_clip: float = 1.0  # max global gradient norm
    hflip: float = 0.5  # probability of a horizontal flip per image
    eval_every: int = 0  # evaluate every N steps as well as at the end (0: only at the end)
    eval_batch_size: int = 32
    max_seconds: float | None = None  # stop early after this much training time (benchmarks)


TRAIN_PRESETS: dict[str, TrainConfig] = {
    "shapes-cpu": TrainConfig(),
    "paper": TrainConfig(batch_size=16, steps=90_000, lr=1e-4, warmup_steps=500),
    "resnet18-512": TrainConfig(batch_size=16, steps=30_000, lr=2e-4, warmup_steps=500),
}


def pick_device() -> torch.device:
    """CUDA if there is a GPU, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so that a run can be repeated exactly on the CPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_overrides(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sort keyword overrides into (TrainConfig fields, RetinaNetConfig fields); unknown keys raise."""
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    model_keys = {f.name for f in dataclasses.fields(RetinaNetConfig)}
    unknown = sorted(set(overrides) - train_keys - model_keys)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}: not a TrainConfig or RetinaNetConfig field")
    return ({k: v for k, v in overrides.items() if k in train_keys},
            {k: v for k, v in overrides.items() if k in model_keys})


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up from 0.01 to 1, then cosine decay to 0."""
    if step < warmup_steps:
        return 0.01 + 0.99 * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def hflip(images: list[Tensor], targets: list[Target], probability: float, generator: torch.Generator
          ) -> tuple[list[Tensor], list[Target]]:
    """Mirror each image (and its boxes, xyxy) left-right with the given probability."""
    flips = torch.rand(len(images), generator=generator) < probability
    out_images, out_targets = [], []
    for image, target, flip in zip(images, targets, flips.tolist()):
        if flip:
            width = image.shape[-1]
            boxes = target["boxes"][:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([width, 0, width, 0])
            image, target = image.flip(-1), {**target, "boxes": boxes}
        out_images.append(image)
        out_targets.append(target)
    return out_images, out_targets


class InMemory(Dataset):
    """A dataset's items computed once and kept in memory (procedural images are cheap to cache)."""

    def __init__(self, dataset: Dataset) -> None:
        self.items = [dataset[i] for i in range(len(dataset))]
        self.class_names = getattr(dataset, "class_names", None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        return self.items[index]


def endless_batches(dataset: Dataset, batch_size: int, generator: torch.Generator) -> Iterator[tuple[list, list]]:
    """Shuffled batches ``(images, targets)`` forever, epoch after epoch, in a seeded order."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collate,
                        generator=generator)
    while True:
        yield from loader


@torch.no_grad()
def predict(model: RetinaNet, dataset: Dataset, batch_size: int = 32) -> tuple[list[Target], list[Target]]:
    """Run ``model`` in eval mode over ``dataset``: returns (predictions, targets), on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    predictions, targets = [], []
    for images, batch_targets in DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
        outputs = model([image.to(device) for image in images])
        predictions += [{k: v.cpu() for k, v in out.items()} for out in outputs]
        targets += batch_targets
    model.train(was_training)
    return predictions, targets


def evaluate_model(model: RetinaNet, dataset: Dataset, batch_size: int = 32) -> dict[str, Any]:
    """COCO-style mAP of ``model`` on ``dataset`` (see :func:`retinanet_lite.metrics.evaluate`)."""
    predictions, targets = predict(model, dataset, batch_size)
    return evaluate(predictions, targets, num_classes=model.config.num_classes,
                    class_names=getattr(dataset, "class_names", None))


def shapes_datasets(recipe: TrainConfig, seed: int) -> tuple[Dataset, Dataset]:
    """The preset's training and validation shapes data, cached in memory."""
    train_set = ShapesDataset(recipe.num_train_images, recipe.image_size, seed=seed)
    val_set = ShapesDataset(recipe.num_val_images, recipe.image_size, seed=seed + VAL_SEED_OFFSET)
    return InMemory(train_set), InMemory(val_set)


def train(
    preset: str = "shapes-cpu", seed: int = 0, out: str | Path | None = None, device: torch.device | str | None = None,
    train_set: Dataset | None = None, val_set: Dataset | None = None, progress: bool = True, **overrides: Any,
) -> tuple[RetinaNet, dict[str, list]]:
    """Train the preset's model with its recipe; ``overrides`` change any TrainConfig/RetinaNetConfig field.

    Returns ``(model, history)`` where ``history`` has per-step ``"step"``, ``"loss"``,
    ``"classification"``, ``"regression"``, ``"lr"`` lists and ``"eval"``, a list of
    ``{"step", "map", "map_50", "map_75", …}``. With ``out``, the final checkpoint is saved to
    ``out/model.pt``. Stops with ``FloatingPointError`` if a loss becomes NaN or infinite.
    """
    train_overrides, model_overrides = split_overrides(overrides)
    if preset not in TRAIN_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(TRAIN_PRESETS)}")
    recipe = dataclasses.replace(TRAIN_PRESETS[preset], **train_overrides)
    seed_everything(seed)
    device = torch.device(device) if device is not None else pick_device()
    if train_set is None:
        train_set, default_val = shapes_datasets(recipe, seed)
        val_set = default_val if val_set is None else val_set
    model = RetinaNet(preset_config(preset, **model_overrides)).to(device)
    history = fit(model, train_set, val_set, recipe, seed, progress)
    if out is not None:
        save_checkpoint(Path(out) / "model.pt", model, history)
    return model, history


def fit(model: RetinaNet, train_set: Dataset, val_set: Dataset | None, recipe: TrainConfig, seed: int = 0,
        progress: bool = True) -> dict[str, list]:
    """The loop itself: ``recipe.steps`` optimisation steps of ``model`` on ``train_set``."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, recipe.warmup_steps, recipe.steps)
    )
    history: dict[str, list] = {"step": [], "loss": [], "classification": [], "regression": [], "lr": [], "eval": []}
    batches = endless_batches(train_set, recipe.batch_size, generator)
    model.train()
    started = time.perf_counter()
    bar = tqdm(range(recipe.steps), desc="training", disable=not progress)
    for step in bar:
        images, targets = hflip(*next(batches), recipe.hflip, generator)
        losses = model([i.to(device) for i in images], [{k: v.to(device) for k, v in t.items()} for t in targets])
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss.item()} at step {step} ({ {k: v.item() for k, v in losses.items()} }); "
                "lower the learning rate or check the targets"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        schedule.step()
        record_step(history, step, loss, losses, optimizer.param_groups[0]["lr"])
        bar.set_postfix(loss=f"{loss.item():.3f}", cls=f"{losses['classification'].item():.3f}",
                        box=f"{losses['regression'].item():.3f}")
        out_of_time = recipe.max_seconds is not None and time.perf_counter() - started > recipe.max_seconds
        if val_set is not None and recipe.eval_every and (step + 1) % recipe.eval_every == 0 and not out_of_time:
            history["eval"].append({"step": step + 1, **evaluate_model(model, val_set, recipe.eval_batch_size)})
        if out_of_time:
            break
    history["train_seconds"] = [time.perf_counter() - started]
    if val_set is not None:
        history["eval"].append({"step": len(history["step"]), **evaluate_model(model, val_set, recipe.eval_batch_size)})
    model.eval()
    return history


def record_step(history: dict[str, list], step: int, loss: Tensor, losses: dict[str, Tensor], lr: float) -> None:
    """Append one step's losses and learning rate to ``history``."""
    history["step"].append(step)
    history["loss"].append(loss.item())
    history["classification"].append(losses["classification"].item())
    history["regression"].append(losses["regression"].item())
    history["lr"].append(lr)


def save_checkpoint(path: str | Path, model: RetinaNet, history: dict[str, list] | None = None) -> Path:
    """Save ``{"config", "model", "history"}`` (plain tensors and Python values) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": model.config.to_dict(), "model": model.state_dict(), "history": history or {}}, path)
    return path


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", expected: RetinaNetConfig | None = None
                    ) -> RetinaNet:
    """Rebuild the model saved at ``path`` (``weights_only=True``: no arbitrary code is unpickled).

    With ``expected``, a checkpoint made for another config raises a ``ValueError`` naming the
    fields that differ. The model is returned in eval mode.
    """
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    config = RetinaNetConfig.from_dict(checkpoint["config"])
    if expected is not None and config != expected:
        theirs, ours = config.to_dict(), expected.to_dict()
        differing = {k: (theirs[k], ours[k]) for k in ours if theirs[k] != ours[k]}
        raise ValueError(f"{path} was made for another config; differing fields (checkpoint, expected): {differing}")
    model = RetinaNet(config).to(device)
    model.load_state_dict(checkpoint["model"])
    return model.eval()


#: Where lesson 07 saves its trained model and later lessons look for it (relative to the notebooks).
LESSON_CHECKPOINT = Path("checkpoints/shapes-cpu.pt")


def load_or_train(path: str | Path = LESSON_CHECKPOINT, preset: str = "shapes-cpu", seed: int = 0,
                  progress: bool = True) -> RetinaNet:
    """The preset's trained model from ``path`` if it is there and matches the preset, else train and save it.

    Lets every lesson after the training lesson run on its own: the first one to need the model
    trains it (a couple of minutes on a CPU), the others load it.
    """
    path = Path(path)
    if path.exists():
        try:
            return load_checkpoint(path, expected=preset_config(preset))
        except ValueError as error:  # made for an older config: train a fresh one
            print(f"retraining: {error}")
    model, history = train(preset, seed=seed, progress=progress)
    save_checkpoint(path, model, history)
    return model.eval()

