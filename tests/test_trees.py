"""The NEON tree crowns: fetched from the one pinned wheel, split honestly, written as COCO, trained on.

Tests that need the real images use the session-scoped ``tree_data`` fixture (conftest.py): the
wheel is downloaded at most once per run into ``data/deepforest`` and reused afterwards.
"""
import subprocess
import zipfile

import pytest
import torch

import retinanet_lite.data.trees as trees
from retinanet_lite.__main__ import main
from retinanet_lite.config import PRESETS, Preset, get_preset, preset_config, preset_recipe
from retinanet_lite.data import (CocoDetection, DEEPFOREST_WHEEL, TreeCrowns, check_image, check_target,
                                 deepforest_data, load_tree_image, read_voc)
from retinanet_lite.data.trees import TEST_IMAGES, TRAIN_VAL_IMAGES, split_line
from retinanet_lite.model import RetinaNet, resize_factor
from retinanet_lite.train import color_jitter, load_matching_weights, rot90, save_checkpoint, train, zoom

NAMES = [f"{name}{suffix}" for name in TRAIN_VAL_IMAGES + TEST_IMAGES for suffix in (".png", ".xml")]
VERSION = DEEPFOREST_WHEEL.split("==")[1]


# ------------------------------------------------------------------------- getting the data
def fake_wheel(folder, names=NAMES):
    """A zip laid out like the wheel, each file holding its own name."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"deepforest-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(f"deepforest/data/{name}", name)
        archive.writestr("deepforest/data/SOAP_031.png", "not wanted")
        archive.writestr(f"deepforest-{VERSION}.dist-info/licenses/LICENSE", "MIT License")
    return path


def test_the_images_come_from_the_wheel_in_the_cache_then_from_the_extracted_copy(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("nothing should be downloaded: the wheel is in the cache")
    monkeypatch.setattr(subprocess, "run", no_download)
    wheel = fake_wheel(tmp_path)
    folder = deepforest_data(tmp_path)
    assert folder == tmp_path / f"deepforest-{VERSION}"
    assert sorted(p.name for p in folder.iterdir()) == sorted(NAMES + ["LICENSE"]), "only the four images + XML"
    assert all((folder / name).read_text() == name for name in NAMES)
    wheel.unlink()
    assert deepforest_data(tmp_path) == folder, "the extracted copy is reused"
    monkeypatch.setenv(trees.CACHE_ENV, str(tmp_path))
    assert deepforest_data() == folder, "the environment variable names the cache"


def test_without_a_wheel_pip_downloads_the_pinned_one(tmp_path, monkeypatch):
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        fake_wheel(tmp_path / "cache")
        return subprocess.CompletedProcess(command, 0, "", "")
    monkeypatch.setattr(subprocess, "run", fake_pip)
    assert (deepforest_data(tmp_path / "cache") / "OSBS_029.xml").is_file()
    [command] = calls
    assert command[1:] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:", DEEPFOREST_WHEEL,
                           "-d", str(tmp_path / "cache")]


def test_a_failed_download_or_a_bad_wheel_says_what_happened(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(
        command, 1, "", "ERROR: No matching distribution found"))
    with pytest.raises(RuntimeError, match=r"could not download deepforest==.*\(exit code 1\):\n(.|\n)*No matching distribution"):
        deepforest_data(tmp_path / "a")
    fake_wheel(tmp_path / "b", NAMES[:-1])
    with pytest.raises(ValueError, match=r"has no deepforest/data/SOAP_061\.xml"):
        deepforest_data(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / f"deepforest-{VERSION}-py3-none-any.whl").write_text("not a zip")
    with pytest.raises(ValueError, match="is not a valid wheel"):
        deepforest_data(tmp_path / "c")
    assert not list((tmp_path / "c").glob("deepforest-*.partial-*")), "no half-extracted folder is left"


# ------------------------------------------------------------------------- the real files
def test_the_real_voc_files_are_one_based_and_inside_their_images(tree_data):
    counts = {}
    for name in TRAIN_VAL_IMAGES + TEST_IMAGES:
        annotation = read_voc(tree_data / f"{name}.xml")
        height, width = annotation.size
        boxes = annotation.boxes
        assert boxes[:, :2].min() >= 0 and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
        counts[name] = len(boxes)
    assert counts == {TRAIN_VAL_IMAGES[0]: 279, TRAIN_VAL_IMAGES[1]: 574, "OSBS_029": 61, "SOAP_061": 37}
    assert read_voc(tree_data / "OSBS_029.xml").file_name == "OSBS_029.tif"  # we use the shipped .png
    assert set(read_voc(tree_data / "SOAP_061.xml").names) == {"Alive", "Dead"}


# ------------------------------------------------------------------------- the splits
@pytest.fixture(scope="module")
def splits(tree_data):
    return {split: TreeCrowns(split) for split in ("train", "val", "test")}


def test_items_follow_the_conventions(splits):
    for split, dataset in splits.items():
        assert dataset.class_names == ["tree"] and dataset.num_classes == 1
        for index in range(len(dataset)):
            image, target = dataset[index]
            check_image(image)
            check_target(target, 1)
            assert image.dtype == torch.float32 and (target["labels"] == 0).all()
            _, (x1, y1, x2, y2) = dataset.tiles[index]
            assert image.shape == (3, y2 - y1, x2 - x1)
            if split == "train":
                assert image.shape == (3, 192, 192)
            elif split == "val":
                assert max(image.shape) <= 256
    assert len(splits["test"]) == 2 and [t[0] for t in splits["test"].tiles] == list(TEST_IMAGES)
    assert [len(t["boxes"]) for t in splits["test"].targets] == [61, 37], "test images whole, every crown"
    assert len(splits["train"]) == 515 and len(splits["val"]) == 40


def test_no_val_or_test_crown_is_in_train_and_crowns_cut_by_the_line_are_in_neither(splits, tree_data):
    assert {name for name, _ in splits["train"].tiles} == {name for name, _ in splits["val"].tiles} \
        == set(TRAIN_VAL_IMAGES)
    for name in TRAIN_VAL_IMAGES:
        image, target = load_tree_image(name)
        line = split_line(image.shape[-1])
        boxes = target["boxes"]
        left, right = boxes[boxes[:, 2] <= line], boxes[boxes[:, 0] >= line]
        assert len(left) + len(right) < len(boxes), "some crowns are cut by the line"
        for split, side in (("train", left), ("val", right)):
            found = set()
            for (tile_name, (x1, y1, x2, y2)), tile_target in zip(splits[split].tiles, splits[split].targets):
                if tile_name != name:
                    continue
                if split == "train":
                    assert x2 <= line, "no training crop reaches across the split line"
                else:
                    assert x1 >= line
                for box in (tile_target["boxes"] + torch.tensor([x1, y1, x1, y1])).tolist():
                    # each box is one crown of its own side, maybe clipped by the tile
                    inside = ((side[:, :2] <= torch.tensor(box[:2]) + 1e-4).all(1)
                              & (side[:, 2:] >= torch.tensor(box[2:]) - 1e-4).all(1))
                    assert inside.any(), f"{split} box {box} of {name} is not a crown of the {split} side"
                    found.add(int(inside.nonzero()[0]))
            assert len(found) >= 0.95 * len(side), f"most {split} crowns appear in some {split} tile"


def test_bad_split_arguments_are_refused(tree_data):
    with pytest.raises(ValueError, match=r"unknown split 'validation'; choose one of \['train', 'val', 'test'\]"):
        TreeCrowns("validation")
    with pytest.raises(ValueError, match="test split is the two other-site images whole"):
        TreeCrowns("test", tile_size=128)
    with pytest.raises(ValueError, match="val tiles never overlap"):
        TreeCrowns("val", overlap=32)
    with pytest.raises(ValueError, match="unknown image"):
        load_tree_image("YELL")
    assert TreeCrowns("train", tile_size=256, overlap=128)[0][0].shape == (3, 256, 256)


def test_the_command_writes_coco_splits_that_read_back(splits, tmp_path, capsys):
    main(["data", "trees", "--out", str(tmp_path)])
    assert "wrote the test split" in capsys.readouterr().out
    for split, dataset in splits.items():
        read = CocoDetection(tmp_path / split / "annotations.json")
        assert len(read) == len(dataset) and read.class_names == ("tree",)
        for index in [0, len(dataset) - 1]:
            (image, target), (expected_image, expected) = read[index], dataset[index]
            assert torch.allclose(image, expected_image) and torch.allclose(target["boxes"], expected["boxes"])


# ------------------------------------------------------------------------- training
def test_quarter_turns_move_boxes_with_their_pixels():
    image = torch.zeros(3, 40, 60)
    image[:, 5:15, 10:30] = 1  # box [10, 5, 30, 15]
    target = {"boxes": torch.tensor([[10., 5, 30, 15]]), "labels": torch.tensor([0])}
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(30):
        [turned], [moved] = rot90([image], [target], 1.0, generator)
        rows, cols = turned[0].nonzero(as_tuple=True)
        tight = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        assert moved["boxes"].tolist() == [[float(v) for v in tight]]
        seen.add(tuple(turned.shape))
    assert seen == {(3, 40, 60), (3, 60, 40)}
    state = generator.get_state()
    assert rot90([image], [target], 0.0, generator)[0][0] is image and torch.equal(generator.get_state(), state)


def test_the_trees_preset_trains_on_the_tree_crowns(tree_data):
    preset = get_preset("trees-cpu")
    assert preset.data == "trees" and preset.model.num_classes == 1 and PRESETS["shapes-cpu"].data == "shapes"
    with pytest.raises(ValueError, match="data must be one of"):
        Preset(preset.model, preset.train, "x", data="birds")
    # one view for the evaluation: the preset's sixteen on a model two steps old cost ~20 s and test nothing more here
    model, history = train("trees-cpu", steps=2, device="cpu", progress=False, batch_size=2, tta_views=1,
                           tta_scales=(1.0,))
    assert model.class_names == ["tree"] and len(history["step"]) == 2
    assert {"map", "map_50"} <= set(history["eval"][-1]), "evaluated on the val tiles"


def test_colour_jitter_changes_colours_within_its_strength_and_leaves_the_boxes():
    images = [torch.rand(3, 20, 30) for _ in range(64)]
    targets = [{"boxes": torch.tensor([[1.0, 2, 10, 12]]), "labels": torch.tensor([0])} for _ in images]
    state = torch.Generator().manual_seed(3).get_state()
    jittered, same_targets = color_jitter(images, targets, 0.4, torch.Generator().manual_seed(3))
    assert same_targets is targets and all(j.shape == i.shape for j, i in zip(jittered, images))
    assert all(float(j.min()) >= 0 and float(j.max()) <= 1 for j in jittered)
    # the three factors, drawn as the function draws them, applied by hand in the documented order
    factors = 1 + 0.4 * (2 * torch.rand(len(images), 3, generator=torch.Generator().set_state(state)) - 1)
    assert float(factors.min()) >= 0.6 and float(factors.max()) <= 1.4 and float(factors.std()) > 0.15
    grey = torch.tensor([0.2989, 0.587, 0.114]).view(3, 1, 1)  # ITU-R 601 luma weights, as torchvision rounds them
    for image, out, (b, c, s) in zip(images, jittered, factors.tolist()):
        step = (image * b).clamp(0, 1)
        step = (c * step + (1 - c) * (step * grey).sum(0).mean()).clamp(0, 1)
        step = (s * step + (1 - s) * (step * grey).sum(0, keepdim=True)).clamp(0, 1)
        assert torch.allclose(out, step, atol=1e-5)
    generator = torch.Generator().manual_seed(0)
    before = generator.get_state()
    assert color_jitter(images, targets, 0.0, generator)[0] is images and torch.equal(generator.get_state(), before)
    with pytest.raises(ValueError, match="color_jitter must be in"):
        preset_recipe("trees-cpu", color_jitter=1.5)


def test_a_fixed_image_scale_resizes_every_image_by_that_factor():
    config = preset_config("trees-cpu", image_scale=2.0)
    assert resize_factor(config, (100, 37)) == resize_factor(config, (400, 400)) == 2.0
    model = RetinaNet(config).eval()
    batch, scales = model.prepare_batch([torch.rand(3, 50, 40), torch.rand(3, 30, 60)])
    assert scales == [2.0, 2.0] and tuple(batch.shape[-2:]) == (100, 120)
    with torch.no_grad():
        found = model([torch.rand(3, 50, 40)])[0]["boxes"]
    assert len(found) == 0 or (float(found[:, 2].max()) <= 40 and float(found[:, 3].max()) <= 50), \
        "boxes come back in the original image's pixels"
    with pytest.raises(ValueError, match="image_scale and min_size exclude each other"):
        preset_config("trees-cpu", image_scale=2.0, min_size=400)
    with pytest.raises(ValueError, match="image_scale must be > 0"):
        preset_config("trees-cpu", image_scale=0.0)


def test_starting_from_another_models_weights_copies_the_layers_that_fit(tmp_path):
    shapes = RetinaNet(preset_config("shapes-cpu"))
    save_checkpoint(tmp_path / "shapes.pt", shapes)
    trees = RetinaNet(preset_config("trees-cpu"))
    untouched = {k: v.clone() for k, v in trees.state_dict().items()}
    copied = load_matching_weights(trees, tmp_path / "shapes.pt")
    state, source = trees.state_dict(), shapes.state_dict()
    left = sorted(set(state) - set(copied))
    # only the two prediction layers: 3 classes × 9 anchors and 4 × 9 offsets there, 1 × 3 and 4 × 3 here
    assert left == [f"{head}.predict.{p}" for head in ("classification", "regression") for p in ("bias", "weight")]
    assert all(state[name].shape != source[name].shape for name in left)
    assert all(torch.equal(state[name], source[name]) for name in copied)
    assert all(torch.equal(state[name], untouched[name]) for name in left)
    assert len(copied) > 0.9 * len(state)
    other = RetinaNet(preset_config("shapes-cpu", fpn_channels=32, backbone_widths=(8, 8, 8, 8), head_convs=1))
    save_checkpoint(tmp_path / "other.pt", other)
    with pytest.raises(ValueError, match="no layer of"):
        load_matching_weights(RetinaNet(preset_config("trees-cpu", backbone="resnet18", anchor_scales=(1.0,))),
                              tmp_path / "other.pt")


def test_zoom_resizes_each_image_and_its_boxes_by_one_factor_within_its_range():
    image = torch.zeros(3, 100, 80)
    image[:, 10:30, 20:60] = 1  # box [20, 10, 60, 30]
    target = {"boxes": torch.tensor([[20.0, 10, 60, 30]]), "labels": torch.tensor([0])}
    generator = torch.Generator().manual_seed(0)
    factors = []
    for _ in range(40):
        [zoomed], [moved] = zoom([image], [target], 0.3, generator)
        height, width = zoomed.shape[-2:]
        factors.append(height / 100)
        assert abs(width / 80 - height / 100) < 0.02, "one factor for both sides"
        rows, cols = (zoomed[0] > 0.5).nonzero(as_tuple=True)
        tight = torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=torch.float32)
        assert torch.allclose(moved["boxes"][0], tight, atol=1.0), "the box follows its pixels"
    assert 1 / 1.3 - 0.01 <= min(factors) < 0.85 and 1.2 < max(factors) <= 1.3 + 0.01
    state = generator.get_state()
    assert zoom([image], [target], 0.0, generator)[0][0] is image and torch.equal(generator.get_state(), state)
    with pytest.raises(ValueError, match="zoom must be ≥ 0"):
        preset_recipe("trees-cpu", zoom=-0.1)
