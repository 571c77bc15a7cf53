"""Real photographs: tree crowns in NEON airborne RGB images, as annotated for DeepForest.

**The data.** The ``deepforest`` package (MIT licence; Weinstein et al. 2019, 2020) ships four
annotated images in its wheel, at 10 cm per pixel (see ``data/README.md`` for the licence of the
images and how to credit them):

=========================================  ===========  ======  ==========================
image                                      size (W×H)   crowns  site
=========================================  ===========  ======  ==========================
``2019_YELL_2_541000_4977000_image_crop``  1249 × 1035  279     Yellowstone (train + val)
``2019_YELL_2_528000_4978000_image_crop2`` 2299 × 2472  574     Yellowstone (train + val)
``OSBS_029``                               400 × 400    61      Florida (test)
``SOAP_061``                               400 × 400    37      California (test)
=========================================  ===========  ======  ==========================

:func:`deepforest_data` gets them with one code path: an extracted copy in the cache folder if it
is there, else the wheel in the cache folder, else ``pip download --no-deps`` of the one pinned
wheel :data:`DEEPFOREST_WHEEL` from the package registry; only the images and their XML files are
extracted. ``deepforest`` is never installed or imported (its ``__init__`` pulls heavy dependencies).

**The splits** (:class:`TreeCrowns`), fixed so that no crown is used twice:

* ``"train"``: the two Yellowstone images *left* of a vertical split line at three quarters of their
  width, cut into square crops of :data:`TRAIN_TILE` px that overlap by :data:`TRAIN_OVERLAP` px
  (so that every crown, ≤ 108 px, is whole in some crop). A crown cut by a crop edge follows
  :func:`~retinanet_lite.data.tiling.crop_target`'s rule: kept (clipped) if at least half of it is
  inside the crop. No crop reaches across the split line.
* ``"val"``: the right quarter of the same two images, cut into tiles of at most :data:`VAL_TILE` px
  that do not overlap (each crown is scored once), for model selection.
* ``"test"``: ``OSBS_029`` and ``SOAP_061``, whole: other sites, other forests, never used for
  training or model selection.

A crown cut by the split line (5 in the first Yellowstone image, 16 in the second: 21 of 853)
belongs to neither side: it is dropped from both. Its pixels are still there, so the training crops
next to the line show a part of an unlabelled crown, which the loss treats as background, and a
detection of its right part in a val tile counts as a false positive. That cost is small (at most a
part of one crown in a few of the crops next to the line), and the alternative — pulling the line
back to avoid these crowns — would cut other crowns instead: in a dense forest every straight line
cuts some. The model has no "ignore this region" input that would remove the cost entirely.

The class is "tree" for every crown (``SOAP_061`` labels them "Alive" / "Dead"; both are trees).
``OSBS_029``'s XML names a ``.tif``; the ``.png`` shipped next to it is the same picture and is used.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .coco import write_coco
from .targets import Target
from .tiling import Window, crop_image, crop_target, split_windows, tile_windows
from .voc import read_voc

#: The one pinned source of the images: this wheel, from the package registry (never installed).
DEEPFOREST_WHEEL = "deepforest==2.1.0"
#: Environment variable naming the cache folder (default: ``data/deepforest`` in the repository).
CACHE_ENV = "RETINANET_LITE_DEEPFOREST"
#: Images for training (left three quarters) and validation (right quarter).
TRAIN_VAL_IMAGES = ("2019_YELL_2_541000_4977000_image_crop", "2019_YELL_2_528000_4978000_image_crop2")
#: Images of other sites, for the test split only.
TEST_IMAGES = ("OSBS_029", "SOAP_061")
#: The validation split is this fraction of each train/val image's width, on its right.
VAL_FRACTION = 0.25
TRAIN_TILE, TRAIN_OVERLAP = 192, 96
VAL_TILE = 256
TREE_CLASS_NAMES = ["tree"]
#: What each name in the XML files means: every annotated crown is a tree.
TREE_CLASS_MAP = {"Tree": "tree", "Alive": "tree", "Dead": "tree"}
SPLITS = ("train", "val", "test")


def default_cache() -> Path:
    """``data/deepforest`` in the repository (git-ignored), or ``~/.cache/retinanet_lite/deepforest``
    when the package is installed outside a checkout."""
    repository = Path(__file__).resolve().parents[2]
    if (repository / "pyproject.toml").is_file():
        return repository / "data" / "deepforest"
    return Path.home() / ".cache" / "retinanet_lite" / "deepforest"


def deepforest_data(cache: str | Path | None = None) -> Path:
    """The folder holding the four images (``NAME.png``) and their VOC files (``NAME.xml``), fetched if needed.

    ``cache`` defaults to ``$RETINANET_LITE_DEEPFOREST``, else :func:`default_cache`. In order: reuse
    ``cache/deepforest-VERSION/`` if it holds all eight files; else extract them from the
    ``deepforest-VERSION-*.whl`` in ``cache``; else first download that wheel (and nothing else) with
    ``python -m pip download --no-deps``. A failed download raises a ``RuntimeError`` with pip's output.
    """
    cache = Path(cache or os.environ.get(CACHE_ENV) or default_cache())
    version = DEEPFOREST_WHEEL.split("==")[1]
    folder = cache / f"deepforest-{version}"
    wanted = [f"{name}{suffix}" for name in TRAIN_VAL_IMAGES + TEST_IMAGES for suffix in (".png", ".xml")]
    if all((folder / name).is_file() for name in wanted):
        return folder
    wheels = sorted(cache.glob(f"deepforest-{version}-*.whl"))
    wheel = wheels[0] if wheels else _download(cache)
    _extract(wheel, folder, wanted)
    return folder


def _download(cache: Path) -> Path:
    """``pip download --no-deps`` the pinned wheel into ``cache``; its path."""
    cache.mkdir(parents=True, exist_ok=True)
    print(f"downloading the {DEEPFOREST_WHEEL} wheel (about 20 MB, for its example images) into {cache}")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", DEEPFOREST_WHEEL,
               "-d", str(cache)]
    result = subprocess.run(command, capture_output=True, text=True)
    version = DEEPFOREST_WHEEL.split("==")[1]
    wheels = sorted(cache.glob(f"deepforest-{version}-*.whl"))
    if result.returncode != 0 or not wheels:
        raise RuntimeError(f"could not download {DEEPFOREST_WHEEL} with `{' '.join(command)}` "
                           f"(exit code {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return wheels[0]


def _extract(wheel: Path, folder: Path, wanted: list[str]) -> None:
    """Copy ``deepforest/data/NAME`` for each of ``wanted`` (and the licence) from ``wheel`` into ``folder``."""
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = set(archive.namelist())
            licences = sorted(m for m in members if m.endswith(".dist-info/licenses/LICENSE"))
            for name, member in [(n, f"deepforest/data/{n}") for n in wanted] + [("LICENSE", m) for m in licences[:1]]:
                if member not in members:
                    raise ValueError(f"{wheel} has no {member}: is it the {DEEPFOREST_WHEEL} wheel?")
                (partial / name).write_bytes(archive.read(member))
    except zipfile.BadZipFile:
        shutil.rmtree(partial)
        raise ValueError(f"{wheel} is not a valid wheel (zip) file: delete it and run again") from None
    except BaseException:
        shutil.rmtree(partial)
        raise
    if all((folder / name).is_file() for name in wanted):  # another process finished first: keep its copy
        shutil.rmtree(partial)
        return
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete copy from an interrupted run
    try:
        partial.rename(folder)
    except OSError:  # another process finished in the meantime
        shutil.rmtree(partial)


@lru_cache(maxsize=None)
def _read_image(folder: Path, name: str) -> tuple[Tensor, Target]:
    """Image ``name`` as uint8 ``[3, H, W]`` and its whole-image target; decoded once, kept in memory."""
    annotation = read_voc(folder / f"{name}.xml", TREE_CLASS_MAP)
    with Image.open(folder / f"{name}.png") as file:
        pixels = np.array(file.convert("RGB"))
    if pixels.shape[:2] != annotation.size:
        raise ValueError(f"{folder / name}.png is {pixels.shape[1]}×{pixels.shape[0]} but its XML says "
                         f"{annotation.size[1]}×{annotation.size[0]}")
    labels = torch.tensor([TREE_CLASS_NAMES.index(n) for n in annotation.names], dtype=torch.int64)
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous(), {"boxes": annotation.boxes, "labels": labels}


def load_tree_image(name: str, cache: str | Path | None = None) -> tuple[Tensor, Target]:
    """One of the four whole images as ``(image [3, H, W] float in [0, 1], target)`` (all its crowns)."""
    if name not in TRAIN_VAL_IMAGES + TEST_IMAGES:
        raise ValueError(f"unknown image {name!r}; choose one of {list(TRAIN_VAL_IMAGES + TEST_IMAGES)}")
    pixels, target = _read_image(deepforest_data(cache), name)
    return pixels.float() / 255, {k: v.clone() for k, v in target.items()}


def split_line(width: int) -> int:
    """The x (pixels) of the train/val split line of an image ``width`` px wide: train is left of it."""
    return round(width * (1 - VAL_FRACTION))


class TreeCrowns(Dataset):
    """The tree-crown splits (see the module docstring): ``ds[i]`` → ``(image [3, h, w] in [0, 1], target)``.

    ``split`` is ``"train"``, ``"val"`` or ``"test"``. ``tile_size`` (default :data:`TRAIN_TILE` for
    train, :data:`VAL_TILE` for val), ``overlap`` (train only; default :data:`TRAIN_OVERLAP`) and
    ``min_visible`` (the cut-box rule) change how the Yellowstone images are cut; the test images
    are always whole. ``tiles[i]`` says where item ``i`` comes from: ``(image name, window)`` with
    the window ``(x1, y1, x2, y2)`` in that image's pixels. Decoded images are kept in memory.
    """

    class_names = TREE_CLASS_NAMES
    num_classes = 1

    def __init__(self, split: str, tile_size: int | None = None, overlap: int | None = None,
                 min_visible: float = 0.5, cache: str | Path | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
        if split == "test" and (tile_size is not None or overlap is not None):
            raise ValueError("the test split is the two other-site images whole: tile_size and overlap do not apply")
        if split == "val" and overlap is not None:
            raise ValueError("val tiles never overlap (each crown is scored once): overlap does not apply")
        self.split = split
        folder = deepforest_data(cache)
        self._images = {name: _read_image(folder, name)[0] for name in
                        (TEST_IMAGES if split == "test" else TRAIN_VAL_IMAGES)}
        self.tiles: list[tuple[str, Window]] = []
        self.targets: list[Target] = []
        for name, pixels in self._images.items():
            target = _read_image(folder, name)[1]
            height, width = pixels.shape[1:]
            if split == "test":
                self.tiles.append((name, (0, 0, width, height)))
                self.targets.append({k: v.clone() for k, v in target.items()})
                continue
            line = split_line(width)
            side = target["boxes"][:, 2] <= line if split == "train" else target["boxes"][:, 0] >= line
            crowns = {k: v[side] for k, v in target.items()}  # crowns cut by the line are on neither side
            if split == "train":
                windows = tile_windows(height, line, TRAIN_TILE if tile_size is None else tile_size,
                                       TRAIN_OVERLAP if overlap is None else overlap)
            else:
                windows = [(x1 + line, y1, x2 + line, y2)
                           for x1, y1, x2, y2 in split_windows(height, width - line, VAL_TILE if tile_size is None else tile_size)]
            for window in windows:
                self.tiles.append((name, window))
                self.targets.append(crop_target(crowns, window, min_visible))

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        name, window = self.tiles[index]
        image = crop_image(self._images[name], window).float() / 255
        return image, {k: v.clone() for k, v in self.targets[index].items()}


def write_tree_splits(out: str | Path, cache: str | Path | None = None) -> dict[str, Path]:
    """Write the three splits as COCO folders ``out/{train,val,test}/`` (images + ``annotations.json``).

    Fetches the images first if needed (see :func:`deepforest_data`). Returns each split's JSON path.
    """
    return {split: write_coco(TreeCrowns(split, cache=cache), Path(out) / split, TREE_CLASS_NAMES)
            for split in SPLITS}
