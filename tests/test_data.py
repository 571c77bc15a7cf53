"""Data: the shapes dataset is reproducible and its boxes are exact; COCO files round-trip; bad files are named."""
import json

import numpy as np
import pytest
import torch

from retinanet_lite.__main__ import main
from retinanet_lite.data import (CLASS_NAMES, CocoDetection, ShapesDataset, check_image, check_target,
                                 coco_ground_truth, collate, write_coco)
from retinanet_lite.metrics import to_coco_ground_truth


def test_same_arguments_same_images_in_any_order():
    a, b = ShapesDataset(6, 96, seed=5), ShapesDataset(6, 96, seed=5)
    for i in reversed(range(6)):
        (image_a, target_a), (image_b, target_b) = a[i], b[i]
        assert torch.equal(image_a, image_b)
        assert torch.equal(target_a["boxes"], target_b["boxes"]) and torch.equal(target_a["labels"], target_b["labels"])
    assert not torch.equal(ShapesDataset(1, 96, seed=6)[0][0], a[0][0])


def test_images_and_targets_follow_the_conventions():
    dataset = ShapesDataset(300, 128, seed=0)
    counts, sides, empty = np.zeros(3, int), [], 0
    for image, target in (dataset[i] for i in range(len(dataset))):
        check_image(image)
        check_target(target, 3)
        assert image.shape == (3, 128, 128) and image.dtype == torch.float32
        boxes = target["boxes"]
        assert len(boxes) <= 6 and ((boxes >= 0) & (boxes <= 128)).all()
        counts += np.bincount(target["labels"].numpy(), minlength=3)
        sides += (boxes[:, 2:] - boxes[:, :2]).flatten().tolist()
        empty += len(boxes) == 0
    assert counts.min() > 200, f"every class is common: {counts}"
    assert 5 <= empty <= 60, f"some images (not most) have no objects: {empty}"
    longest = [max(w, h) for w, h in zip(sides[::2], sides[1::2])]
    assert 9 <= min(longest) and max(longest) <= 62 and np.median(longest) > 25
    assert dataset.num_classes == 3 and dataset.class_names == CLASS_NAMES


def test_boxes_are_the_tight_boxes_of_the_drawn_shapes():
    # Noise-free single-shape images: the shape is the commonest exact colour that occurs only inside
    # the box; the pixels of that colour must span exactly the box.
    dataset = ShapesDataset(40, 96, seed=2, max_objects=1, empty_fraction=0.0, noise=0.0)
    for image, target in (dataset[i] for i in range(len(dataset))):
        x1, y1, x2, y2 = target["boxes"][0].int().tolist()
        pixels = image.permute(1, 2, 0).reshape(-1, 3)
        in_box = torch.zeros(96, 96, dtype=torch.bool)
        in_box[y1:y2, x1:x2] = True
        colours, which, counts = pixels.unique(dim=0, return_inverse=True, return_counts=True)
        outside = torch.zeros(len(colours), dtype=torch.bool).index_fill_(0, which[~in_box.flatten()], True)
        shape = torch.where(outside, 0, counts).argmax()
        rows, cols = np.nonzero((which == shape).view(96, 96).numpy())
        assert [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1] == [x1, y1, x2, y2]


def test_shapes_overlap_only_a_little():
    dataset = ShapesDataset(100, 128, seed=1)
    for i in range(len(dataset)):
        boxes = dataset[i][1]["boxes"]
        if len(boxes) > 1:
            lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
            rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
            inter = (rb - lt).clamp(min=0).prod(-1).fill_diagonal_(0)
            area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
            assert (inter / torch.minimum(area[:, None], area[None, :])).max() <= 0.15 + 1e-6


def test_collate_keeps_lists():
    images, targets = collate([ShapesDataset(3, 64)[i] for i in range(3)])
    assert len(images) == len(targets) == 3 and isinstance(images, list)


def test_coco_round_trip(tmp_path):
    dataset = ShapesDataset(5, 80, seed=3)
    path = write_coco(dataset, tmp_path, CLASS_NAMES)
    read = CocoDetection(path)
    assert len(read) == 5 and read.class_names == CLASS_NAMES and read.category_ids == [1, 2, 3]
    for i in range(5):
        (image, target), (original, expected) = read[i], dataset[i]
        assert (image - original).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit PNG
        torch.testing.assert_close(target["boxes"], expected["boxes"])
        assert torch.equal(target["labels"], expected["labels"])


def test_one_function_builds_the_coco_dict(tmp_path):
    targets = [{"boxes": torch.tensor([[1.0, 2.0, 5.0, 9.0], [0.0, 0.0, 3.0, 3.0]]), "labels": torch.tensor([2, 0])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    coco = coco_ground_truth(targets, ("a", "b", "c"), [{"file_name": "x.png"}, {"file_name": "y.png"}])
    assert coco["images"] == [{"id": 1, "file_name": "x.png"}, {"id": 2, "file_name": "y.png"}]
    assert coco["annotations"] == [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [1.0, 2.0, 4.0, 7.0], "area": 28.0, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 3.0, 3.0], "area": 9.0, "iscrowd": 0}]
    assert coco["categories"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    assert to_coco_ground_truth(targets, 3)["annotations"] == coco["annotations"]
    dataset = ShapesDataset(3, 64, seed=2)
    written = json.loads(write_coco(dataset, tmp_path, CLASS_NAMES).read_text())
    assert written == coco_ground_truth([dataset[i][1] for i in range(3)], CLASS_NAMES,
                                        [{"file_name": f"{i:06d}.png", "height": 64, "width": 64} for i in range(3)])
    with pytest.raises(ValueError, match="2 targets but 1 image entries"):
        coco_ground_truth(targets, ("a", "b", "c"), [{}])


def coco_file(tmp_path, annotations, categories=({"id": 7, "name": "cat"}, {"id": 3, "name": "dog"})):
    (tmp_path / "images").mkdir(exist_ok=True)
    from PIL import Image
    Image.new("RGB", (20, 10)).save(tmp_path / "images" / "a.png")
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 10}],
                                "annotations": list(annotations), "categories": list(categories)}))
    return path


def test_category_ids_are_remapped_and_crowds_skipped(tmp_path):
    path = coco_file(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4]},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0, 0, 5, 5]},
        {"id": 3, "image_id": 1, "category_id": 3, "bbox": [0, 0, 9, 9], "iscrowd": 1},
    ])
    dataset = CocoDetection(path)
    image, target = dataset[0]
    assert image.shape == (3, 10, 20)
    assert dataset.category_ids == [3, 7] and dataset.class_names == ("dog", "cat")
    assert target["labels"].tolist() == [1, 0]
    assert target["boxes"].tolist() == [[1, 2, 4, 6], [0, 0, 5, 5]]


@pytest.mark.parametrize("annotation, message", [
    ({"id": 5, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3]}, r"annotation 5: field 'bbox'"),
    ({"id": 5, "image_id": 1, "category_id": 7}, r"annotation 5: field 'bbox'"),
    ({"id": 5, "image_id": 1, "category_id": 7, "bbox": [1, 2, "3", 4]}, r"annotation 5: field 'bbox'"),
    ({"id": 5, "image_id": 1, "category_id": 7, "bbox": [1, 2, -3, 4]}, r"annotation 5: .*negative"),
    ({"id": 5, "image_id": 1, "category_id": 9, "bbox": [1, 2, 3, 4]}, r"annotation 5: field 'category_id' = 9"),
    ({"id": 5, "image_id": 4, "category_id": 7, "bbox": [1, 2, 3, 4]}, r"annotation 5: field 'image_id' = 4"),
    ({"image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4]}, r"annotation: field 'id'"),
    ({"id": 5, "image_id": 1, "category_id": 7, "bbox": [1, 2, 0, 4]}, r"annotation 5: .*zero width"),
])
def test_malformed_annotations_are_named(tmp_path, annotation, message):
    with pytest.raises(ValueError, match=message):
        CocoDetection(coco_file(tmp_path, [annotation]))


def test_degenerate_boxes_can_be_dropped_with_a_warning(tmp_path):
    path = coco_file(tmp_path, [{"id": 5, "image_id": 1, "category_id": 7, "bbox": [1, 2, 0, 4]},
                                {"id": 6, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4]}])
    with pytest.warns(UserWarning, match="annotation 5"):
        dataset = CocoDetection(path, drop_degenerate=True)
    assert len(dataset[0][1]["boxes"]) == 1


def test_malformed_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        CocoDetection(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        CocoDetection(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="'annotations'"):
        CocoDetection(tmp_path / "partial.json")
    path = coco_file(tmp_path, [])
    (tmp_path / "images" / "a.png").unlink()
    with pytest.raises(ValueError, match=r"image 1: file .*a.png does not exist"):
        CocoDetection(path)


@pytest.mark.parametrize("image, message", [
    (torch.rand(1, 8, 8), r"\[3, H, W\]"),
    (torch.rand(2, 3, 8, 8), r"\[3, H, W\]"),
    ((torch.rand(3, 8, 8) * 255).byte(), "float"),
    (torch.rand(3, 8, 8) * 255, r"\[0, 1\]"),
    (torch.rand(3, 0, 8), "empty"),
    (np.zeros((3, 8, 8)), "torch.Tensor"),
])
def test_bad_images_are_named(image, message):
    with pytest.raises(ValueError, match=message):
        check_image(image)


@pytest.mark.parametrize("target, message", [
    ({"boxes": torch.zeros(1, 4)}, "'labels'"),
    ({"boxes": torch.zeros(1, 5), "labels": torch.zeros(1, dtype=torch.long)}, r"\[N, 4\]"),
    ({"boxes": torch.tensor([[5.0, 0, 1, 1]]), "labels": torch.zeros(1, dtype=torch.long)}, "x2 < x1"),
    ({"boxes": torch.zeros(2, 4), "labels": torch.zeros(1, dtype=torch.long)}, "2 boxes but 1 labels"),
    ({"boxes": torch.zeros(1, 4), "labels": torch.tensor([3])}, r"contains 3, outside 0..2"),
    ({"boxes": torch.zeros(1, 4), "labels": torch.tensor([-1])}, r"contains -1"),
    ({"boxes": torch.zeros(1, 4), "labels": torch.tensor([0.0])}, "integer"),
])
def test_bad_targets_are_named(target, message):
    with pytest.raises(ValueError, match=message):
        check_target(target, num_classes=3)


def test_empty_target_is_valid():
    check_target({"boxes": torch.zeros(0, 4), "labels": torch.tensor([])}, 3)


def test_data_command_writes_coco_splits(tmp_path, capsys):
    main(["data", "shapes", "--out", str(tmp_path), "--num-train", "4", "--num-val", "3", "--image-size", "64"])
    train, val = CocoDetection(tmp_path / "train" / "annotations.json"), CocoDetection(tmp_path / "val" / "annotations.json")
    assert (len(train), len(val)) == (4, 3)
    assert not torch.equal(train[0][0], val[0][0])  # validation uses a different seed
    assert "wrote 4 training and 3 validation images" in capsys.readouterr().out
