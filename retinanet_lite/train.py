"""Training: a plain PyTorch loop you can read top to bottom.

``train(preset="shapes-cpu")`` builds the preset's model and data, then repeats: take a batch,
(maybe) flip or rotate it, ``loss = sum(model(images, targets).values())``, backward, clip gradients, AdamW
step, learning-rate schedule step. It evaluates mAP on the validation set at the end (and every
``eval_every`` steps), and returns ``(model, history)``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from filelock import FileLock
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from .boxes import hflip_boxes, rot90_boxes
from .config import RetinaNetConfig, TrainConfig, get_preset, preset_config, preset_recipe
from .data import ShapesDataset, Target, TreeCrowns, VAL_SEED_OFFSET, collate
from .metrics import evaluate
from .model import RetinaNet


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
            image, target = image.flip(-1), {**target, "boxes": hflip_boxes(target["boxes"], image.shape[-1])}
        out_images.append(image)
        out_targets.append(target)
    return out_images, out_targets


def rot90(images: list[Tensor], targets: list[Target], probability: float, generator: torch.Generator
          ) -> tuple[list[Tensor], list[Target]]:
    """Rotate each image (and its boxes) by 90°, 180° or 270° counter-clockwise with the given probability.

    Aerial images have no "up", so every rotation is as real as the original. With probability 0
    nothing is drawn from ``generator`` (a recipe without rotations repeats exactly as before).
    """
    if probability == 0:
        return images, targets
    turns = torch.where(torch.rand(len(images), generator=generator) < probability,
                        torch.randint(1, 4, (len(images),), generator=generator), 0)
    out_images, out_targets = [], []
    for image, target, k in zip(images, targets, turns.tolist()):
        boxes = target["boxes"]
        for _ in range(k):
            boxes = rot90_boxes(boxes, image.shape[-1])
            image = image.rot90(1, dims=(-2, -1))
        out_images.append(image)
        out_targets.append({**target, "boxes": boxes})
    return out_images, out_targets


def color_jitter(images: list[Tensor], targets: list[Target], strength: float, generator: torch.Generator
                 ) -> tuple[list[Tensor], list[Target]]:
    """Change each image's brightness, contrast and saturation (images ``[3, H, W]`` in [0, 1]; boxes unchanged).

    Each of the three gets its own factor, drawn uniformly from ``[1 - strength, 1 + strength]``, and is
    applied in that order by torchvision's ``adjust_brightness`` / ``adjust_contrast`` /
    ``adjust_saturation``. Another site, season or time of day changes a photograph's colours this way.
    With strength 0 nothing is drawn from ``generator``.
    """
    if strength == 0:
        return images, targets
    factors = 1 + strength * (2 * torch.rand(len(images), 3, generator=generator) - 1)
    out = []
    for image, (brightness, contrast, saturation) in zip(images, factors.tolist()):
        image = TF.adjust_brightness(image, brightness)
        image = TF.adjust_contrast(image, contrast)
        out.append(TF.adjust_saturation(image, saturation))
    return out, targets


def zoom(images: list[Tensor], targets: list[Target], amount: float, generator: torch.Generator
         ) -> tuple[list[Tensor], list[Target]]:
    """Resize each image ``[3, H, W]`` and its boxes (xyxy) by a factor drawn log-uniformly from
    ``[1 / (1 + amount), 1 + amount]``: the same objects a little larger or smaller, as at another site or
    flying height. With amount 0 nothing is drawn from ``generator``."""
    if amount == 0:
        return images, targets
    factors = torch.exp(math.log1p(amount) * (2 * torch.rand(len(images), generator=generator) - 1))
    out_images, out_targets = [], []
    for image, target, factor in zip(images, targets, factors.tolist()):
        size = [max(1, round(side * factor)) for side in image.shape[-2:]]
        scale = torch.tensor([size[1] / image.shape[-1], size[0] / image.shape[-2]] * 2)
        out_images.append(F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0])
        out_targets.append({**target, "boxes": target["boxes"] * scale})
    return out_images, out_targets


def augment(images: list[Tensor], targets: list[Target], recipe: TrainConfig, generator: torch.Generator
            ) -> tuple[list[Tensor], list[Target]]:
    """The recipe's augmentations, in order: horizontal flip, rotation by quarter turns, colour jitter, zoom."""
    images, targets = hflip(images, targets, recipe.hflip, generator)
    images, targets = rot90(images, targets, recipe.rot90, generator)
    images, targets = color_jitter(images, targets, recipe.color_jitter, generator)
    return zoom(images, targets, recipe.zoom, generator)


class InMemory(Dataset):
    """A dataset's items computed once and kept in memory (procedural images are cheap to cache)."""

    def __init__(self, dataset: Dataset) -> None:
        self.items = [dataset[i] for i in range(len(dataset))]
        self.class_names = getattr(dataset, "class_names", None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        return self.items[index]


def endless_batches(dataset: Dataset, batch_size: int, seed: int, start_step: int = 0, rank: int = 0,
                    world_size: int = 1, num_workers: int = 0) -> Iterator[tuple[list, list]]:
    """Shuffled batches ``(images, targets)`` forever, epoch after epoch, starting at batch ``start_step``.

    The order depends only on ``seed`` and the epoch (so a resumed run sees the same batches as an
    uninterrupted one). With ``world_size`` processes, each epoch's shuffled indices are dealt out
    so that process ``rank`` gets its own share: together they see every image once per epoch.
    """
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    per_epoch = len(sampler) // batch_size
    if per_epoch == 0:
        raise ValueError(f"{len(dataset)} training images are too few for a batch of {batch_size * world_size}")
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        sampler.set_epoch(epoch)
        order = list(sampler)[skip * batch_size: per_epoch * batch_size]
        yield from DataLoader(dataset, batch_size=batch_size, sampler=order, collate_fn=collate,
                              num_workers=num_workers)
        epoch, skip = epoch + 1, 0


@torch.no_grad()
def run_inference(model: RetinaNet, dataset: Dataset, batch_size: int = 32) -> tuple[list[Target], list[Target]]:
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
    predictions, targets = run_inference(model, dataset, batch_size)
    return evaluate(predictions, targets, num_classes=model.config.num_classes,
                    class_names=getattr(dataset, "class_names", None))


def shapes_datasets(recipe: TrainConfig, seed: int) -> tuple[Dataset, Dataset]:
    """The preset's training and validation shapes data, cached in memory."""
    train_set = ShapesDataset(recipe.num_train_images, recipe.image_size, seed=seed)
    val_set = ShapesDataset(recipe.num_val_images, recipe.image_size, seed=seed + VAL_SEED_OFFSET)
    return InMemory(train_set), InMemory(val_set)


def trees_datasets() -> tuple[Dataset, Dataset]:
    """The tree crowns' train and val splits (fetched on first use; see :class:`~retinanet_lite.data.TreeCrowns`)."""
    return TreeCrowns("train"), TreeCrowns("val")


def train(
    preset: str = "shapes-cpu", seed: int = 0, out: str | Path | None = None, device: torch.device | str | None = None,
    train_set: Dataset | None = None, val_set: Dataset | None = None, progress: bool = True,
    resume: str | Path | None = None, pretrained_backbone: str | Path | None = None,
    init_from: str | Path | None = None, callback: Callable[[dict[str, list]], None] | None = None, **overrides: Any,
) -> tuple[RetinaNet, dict[str, list]]:
    """Train the preset's model with its recipe; ``overrides`` change any TrainConfig/RetinaNetConfig field.

    Returns ``(model, history)`` where ``history`` has per-step ``"step"``, ``"loss"``,
    ``"classification"``, ``"regression"``, ``"lr"`` lists and ``"eval"``, a list of
    ``{"step", "map", "map_50", "map_75", …}``. With ``out``, the checkpoint is saved to
    ``out/model.pt``. ``resume`` continues a checkpoint's run (same step, optimizer, schedule and
    data order). ``pretrained_backbone`` loads a local torchvision ResNet state-dict file into the
    backbone. ``init_from`` starts from another checkpoint's weights wherever a layer's name and shape
    match (:func:`load_matching_weights`; e.g. the shapes model's for the tree crowns). ``callback(history)``
    is called after every step (e.g. to redraw a live loss plot).
    Without ``train_set`` the preset's own data is used (``Preset.data``: shapes or tree crowns); a dataset's
    ``class_names`` / ``category_ids`` travel with the model. Run under ``torchrun`` it trains with
    DistributedDataParallel. Stops with ``FloatingPointError`` if a loss becomes NaN or infinite.
    """
    train_overrides, model_overrides = split_overrides(overrides)
    chosen = get_preset(preset)
    state = read_checkpoint(resume) if resume is not None else None
    if state is not None and "optimizer" not in state:
        raise ValueError(f"{resume} holds a model but not its training state (optimizer, schedule): it cannot be "
                         "resumed; start a new run from it with pretrained weights instead")
    recipe = (TrainConfig.from_dict(state["train_config"]) if state else chosen.train).replace(**train_overrides)
    config = (RetinaNetConfig.from_dict(state["config"]) if state else chosen.model).replace(**model_overrides)
    seed_everything(seed)
    device = start_distributed(torch.device(device) if device is not None else pick_device())
    if train_set is None:
        train_set, default_val = trees_datasets() if chosen.data == "trees" else shapes_datasets(recipe, seed)
        val_set = default_val if val_set is None else val_set
    model = RetinaNet(config)
    model.class_names = getattr(train_set, "class_names", None)
    model.category_ids = getattr(train_set, "category_ids", None)
    if pretrained_backbone is not None:
        model.backbone.load_pretrained(pretrained_backbone)
    if init_from is not None:
        loaded = load_matching_weights(model, init_from)
        if progress:
            print(f"started from {init_from}: {len(loaded)} of {len(model.state_dict())} tensors")
    if state:
        model.load_state_dict(state["model"])
    model.to(device)
    try:
        history = fit(model, train_set, val_set, recipe, seed, progress, out=out, state=state, callback=callback)
    finally:
        stop_distributed()
    return model, history


def load_matching_weights(model: RetinaNet, path: str | Path) -> list[str]:
    """Copy into ``model`` every tensor of checkpoint ``path`` whose name and shape match; the names copied.

    The rest keeps its fresh initialisation: e.g. from a 3-class shapes model into a 1-class tree model,
    the classification subnet's last layer (3·A outputs, not 1·A) starts anew, and so does its prior
    bias. Raises ``ValueError`` if no weight matches (then it is not a checkpoint of a similar model).
    """
    saved = read_checkpoint(path)["model"]
    own = model.state_dict()
    matching = {name: tensor for name, tensor in saved.items()
                if name in own and own[name].shape == tensor.shape}
    if not set(matching) & {name for name, _ in model.named_parameters()}:  # counters like BatchNorm's always fit
        raise ValueError(f"no layer of {path} has the name and shape of a layer of this model")
    model.load_state_dict(matching, strict=False)
    return sorted(matching)


def fit(model: RetinaNet, train_set: Dataset, val_set: Dataset | None, recipe: TrainConfig, seed: int = 0,
        progress: bool = True, out: str | Path | None = None, state: dict[str, Any] | None = None,
        callback: Callable[[dict[str, list]], None] | None = None) -> dict[str, list]:
    """The loop itself: optimisation steps of ``model`` on ``train_set`` until ``recipe.steps``.

    ``state`` (a checkpoint read by :func:`read_checkpoint`) resumes the optimizer, schedule,
    flip generator, history and step count. With ``out``, the main process saves ``out/model.pt``
    every ``recipe.checkpoint_every`` steps and at the end. ``callback(history)`` runs after each step.
    """
    device = next(model.parameters()).device
    rank, world_size = distributed_rank_and_size()
    if recipe.batch_size % world_size:
        raise ValueError(f"batch_size {recipe.batch_size} does not split evenly over {world_size} processes")
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, recipe.warmup_steps, recipe.steps)
    )
    generator = torch.Generator().manual_seed(seed + rank)  # each process flips its own images
    history: dict[str, list] = {"step": [], "loss": [], "classification": [], "regression": [], "lr": [], "eval": [],
                                "train_seconds": []}
    if state:
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        history = state["history"]
    first_step = len(history["step"])
    use_amp = recipe.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    network = DistributedDataParallel(model) if world_size > 1 else model
    batches = endless_batches(train_set, recipe.batch_size // world_size, seed, first_step, rank, world_size,
                              recipe.num_workers)
    save = out is not None and rank == 0

    def training_state() -> dict[str, Any]:
        """What a checkpoint needs besides the model to resume exactly here."""
        return {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "generator": generator.get_state(), "train_config": recipe.to_dict()}

    model.train()
    started = time.perf_counter()
    bar = tqdm(range(first_step, recipe.steps), initial=first_step, total=recipe.steps, desc="training",
               disable=not progress or rank != 0)
    for step in bar:
        images, targets = augment(*next(batches), recipe, generator)
        with torch.autocast(device.type, enabled=use_amp):
            losses = network([i.to(device) for i in images],
                             [{k: v.to(device) for k, v in t.items()} for t in targets])
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss.item()} at step {step} ({ {k: v.item() for k, v in losses.items()} }); "
                "lower the learning rate or check the targets"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        record_step(history, step, loss, losses, optimizer.param_groups[0]["lr"])
        bar.set_postfix(loss=f"{loss.item():.3f}", cls=f"{losses['classification'].item():.3f}",
                        box=f"{losses['regression'].item():.3f}")
        out_of_time = recipe.max_seconds is not None and time_is_up(started, recipe.max_seconds, device)
        if rank == 0 and val_set is not None and recipe.eval_every and (step + 1) % recipe.eval_every == 0 \
                and not out_of_time:
            history["eval"].append({"step": step + 1, **evaluate_model(model, val_set, recipe.eval_batch_size)})
            model.train()
        if save and recipe.checkpoint_every and (step + 1) % recipe.checkpoint_every == 0:
            report(save_checkpoint(Path(out) / "model.pt", model, history, training_state()), progress)
        if callback is not None:
            callback(history)
        if out_of_time:
            break
    history["train_seconds"].append(time.perf_counter() - started)
    evaluated_last_step = bool(history["eval"]) and history["eval"][-1]["step"] == len(history["step"])
    if rank == 0 and val_set is not None and not evaluated_last_step:
        history["eval"].append({"step": len(history["step"]), **evaluate_model(model, val_set, recipe.eval_batch_size)})
    if save:
        report(save_checkpoint(Path(out) / "model.pt", model, history, training_state()), progress)
    model.eval()
    return history


def time_is_up(started: float, max_seconds: float, device: torch.device) -> bool:
    """Whether ``max_seconds`` have passed since ``started`` — by the main process's clock.

    Under torchrun every process must leave the loop at the same step (a process still training
    would wait forever for the others in the gradient all-reduce), so rank 0 decides and the
    others receive its decision.
    """
    up = time.perf_counter() - started > max_seconds
    if not dist.is_initialized():
        return up
    decision = torch.tensor([int(up)], device=device if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(decision, src=0)
    return bool(decision.item())


def report(path: Path, progress: bool) -> None:
    """Say where a checkpoint went (through tqdm, so a progress bar is not broken)."""
    if progress:
        tqdm.write(f"saved checkpoint {path}")


def record_step(history: dict[str, list], step: int, loss: Tensor, losses: dict[str, Tensor], lr: float) -> None:
    """Append one step's losses and learning rate to ``history``."""
    history["step"].append(step)
    history["loss"].append(loss.item())
    history["classification"].append(losses["classification"].item())
    history["regression"].append(losses["regression"].item())
    history["lr"].append(lr)


def save_checkpoint(path: str | Path, model: RetinaNet, history: dict[str, list] | None = None,
                    training_state: dict[str, Any] | None = None) -> Path:
    """Save ``{"config", "model", "history", "classes", …}`` (plain tensors and Python values) to ``path``.

    ``training_state`` (optimizer, schedule, generator, recipe) makes the file resumable. The file is
    written to a temporary name first and then renamed, so a crash never leaves half a checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    classes = {"names": list(model.class_names) if model.class_names else None,
               "category_ids": list(model.category_ids) if model.category_ids else None}
    payload = {"config": model.config.to_dict(), "model": model.state_dict(), "history": history or {},
               "classes": classes, **(training_state or {})}
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save(payload, partial)
    partial.replace(path)
    return path


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The checkpoint's contents, loaded with ``weights_only=True``: no arbitrary code is unpickled.

    A missing file, a file that is not a PyTorch save, or one without a model config and weights
    raises a one-line ``ValueError`` naming the file.
    """
    if not Path(path).is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch.load raises many kinds (pickle, zip, EOF, weights-only refusals)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is not a checkpoint of this course (torch.load failed: {reason})") from None
    if not isinstance(checkpoint, dict) or not {"config", "model"} <= set(checkpoint):
        raise ValueError(f"{path} is not a checkpoint of this course: it has no model config and weights "
                         "(save models with retinanet_lite.train.save_checkpoint)")
    return checkpoint


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", expected: RetinaNetConfig | None = None
                    ) -> RetinaNet:
    """Rebuild the model saved at ``path`` (see :func:`read_checkpoint`), in eval mode.

    With ``expected``, a checkpoint made for another config raises a ``ValueError`` naming the
    fields that differ.
    """
    return model_from_checkpoint(read_checkpoint(path, device), path, device, expected)


def model_from_checkpoint(checkpoint: dict[str, Any], source: str | Path, device: torch.device | str = "cpu",
                          expected: RetinaNetConfig | None = None) -> RetinaNet:
    """The model of a checkpoint already read from ``source`` (see :func:`load_checkpoint`)."""
    config = RetinaNetConfig.from_dict(checkpoint["config"])
    if expected is not None and config != expected:
        theirs, ours = config.to_dict(), expected.to_dict()
        differing = {k: (theirs[k], ours[k]) for k in ours if theirs[k] != ours[k]}
        raise ValueError(f"{source} was made for another config; differing fields (checkpoint, expected): {differing}")
    model = RetinaNet(config).to(device)
    model.load_state_dict(checkpoint["model"])
    classes = checkpoint.get("classes", {})
    model.class_names = tuple(classes["names"]) if classes.get("names") else None
    model.category_ids = tuple(classes["category_ids"]) if classes.get("category_ids") else None
    return model.eval()


# ------------------------------------------------------------------------------------ distributed
def start_distributed(device: torch.device) -> torch.device:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1); returns this process's device.

    CUDA processes use NCCL and GPU ``LOCAL_RANK``; CPU processes use the gloo backend.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop_distributed() -> None:
    """Leave the process group (if any)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def distributed_rank_and_size() -> tuple[int, int]:
    """(this process's rank, number of processes): (0, 1) outside ``torchrun``."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


#: Where lesson 07 saves its trained model and later lessons look for it (relative to the notebooks).
LESSON_CHECKPOINT = Path("checkpoints/shapes-cpu.pt")
#: Where lesson 11 saves (and reuses) its tree-crown model, relative to the notebooks' folder.
TREES_CHECKPOINT = Path("checkpoints/trees-cpu.pt")


def training_summary(history: dict[str, list]) -> str:
    """How long a model was trained and its last held-out AP (if it was evaluated), in a few words."""
    evaluations = history.get("eval", [])
    quality = f", AP@[.5:.95] {evaluations[-1]['map']:.3f} on held-out images" if evaluations else ""
    return f"trained for {len(history.get('step', []))} steps{quality}"


def load_or_train(path: str | Path = LESSON_CHECKPOINT, preset: str = "shapes-cpu", seed: int = 0,
                  progress: bool = True) -> RetinaNet:
    """The preset's trained model from ``path`` if it is there and matches the preset, else train and save it.

    Lets every lesson after the training lesson run on its own: the first one to need the model
    trains it (a couple of minutes on a CPU), the others load it.
    """
    path = Path(path)
    with checkpoint_lock(path):
        if path.exists():
            checkpoint = read_checkpoint(path)
            try:
                model = model_from_checkpoint(checkpoint, path, expected=preset_config(preset))
            except ValueError as error:  # made for an older config: train a fresh one
                print(f"retraining: {error}")
            else:
                print(f"loaded {path}: {training_summary(checkpoint['history'])}")
                return model
        model, history = train(preset, seed=seed, progress=progress, out=None)
        save_checkpoint(path, model, history)
    return model.eval()


def checkpoint_lock(path: Path) -> FileLock:
    """The lock ``<path>.lock`` that :func:`load_or_train` and :func:`train_or_reuse` hold while they look
    for, train and save ``path``: a second process that needs the same checkpoint (another open lesson, a
    worker of the test suite) waits for the first and then reuses its file instead of training it again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(f"{path}.lock")


def train_or_reuse(path: str | Path, preset: str = "shapes-cpu", seed: int = 0, retrain: bool = False,
                   device: torch.device | str | None = None, progress: bool = True,
                   callback: Callable[[dict[str, list]], None] | None = None, **overrides: Any
                   ) -> tuple[RetinaNet, dict[str, list]]:
    """``train(preset, seed=seed, **overrides)``, saved to ``path`` — or, unless ``retrain``, the model
    and history already at ``path`` if that file was made by exactly this call.

    "Exactly" means the same model config, TrainConfig and seed: this function saves them in the
    file (under ``"recipe"``) and compares them before reusing it (a config field added since then
    counts with its default). Prints one line saying which it did. Lesson 07 trains with it, so that
    a model already trained by its recipe (by an earlier run, or by the test suite) is not trained a
    second time.
    """
    path = Path(path)
    train_overrides, model_overrides = split_overrides(overrides)
    config, recipe = preset_config(preset, **model_overrides), preset_recipe(preset, **train_overrides)
    device = torch.device(device) if device is not None else pick_device()
    with checkpoint_lock(path):
        if not retrain and path.is_file():
            checkpoint = read_checkpoint(path)
            saved = checkpoint.get("recipe") or {}
            try:
                same = (saved.get("seed") == seed and TrainConfig.from_dict(saved["train_config"]) == recipe
                        and RetinaNetConfig.from_dict(checkpoint["config"]) == config)
            except (KeyError, ValueError):  # no recipe saved, or a field that no longer exists
                same = False
            if same:
                print(f"reusing {path}, made by this same recipe: {training_summary(checkpoint['history'])} "
                      "(retrain=True trains again)")
                return model_from_checkpoint(checkpoint, path, device), checkpoint["history"]
        model, history = train(preset, seed=seed, device=device, progress=progress, callback=callback, **overrides)
        save_checkpoint(path, model, history, {"recipe": {"seed": seed, "train_config": recipe.to_dict()}})
    print(f"saved {path}: {training_summary(history)}")
    return model, history
