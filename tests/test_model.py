"""The model: shapes of every stage, the paper's details, both calling conventions, bad input."""
import math

import pytest
import torch

from retinanet_lite.anchors import anchors_per_level
from retinanet_lite.backbone import build_backbone
from retinanet_lite.config import PRESETS, RetinaNetConfig, preset_config
from retinanet_lite.fpn import PyramidFeatures
from retinanet_lite.heads import classification_head, flatten_level, prior_bias
from retinanet_lite import model as model_module
from retinanet_lite.losses import focal_loss
from retinanet_lite.model import ANCHOR_CACHE_SIZE, RetinaNet, padded_size, resize_factor


def tiny(**overrides) -> RetinaNet:
    torch.manual_seed(0)
    return RetinaNet.from_preset("shapes-cpu", **overrides)


def target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}


@pytest.mark.parametrize("size", [(128, 128), (100, 150), (97, 61), (33, 200)])
def test_backbone_and_fpn_work_for_any_size(size):
    backbone = build_backbone("tiny")
    fpn = PyramidFeatures(backbone.channels, 32)
    features = fpn(backbone(torch.zeros(2, 3, *size)))
    assert [f.shape[-2:] for f in features] == [
        (math.ceil(size[0] / 2**l), math.ceil(size[1] / 2**l)) for l in range(3, 8)]
    assert all(f.shape[:2] == (2, 32) for f in features)


def test_resnet50_backbone_channels_and_strides():
    c3, c4, c5 = build_backbone("resnet50")(torch.zeros(1, 3, 64, 64))
    assert (c3.shape[1:], c4.shape[1:], c5.shape[1:]) == ((512, 8, 8), (1024, 4, 4), (2048, 2, 2))


def test_fpn_p7_is_relu_then_conv_on_p6():
    fpn = PyramidFeatures((8, 8, 8), 8)
    c = [torch.randn(1, 8, 16, 16), torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4)]
    p3, p4, p5, p6, p7 = fpn(c)
    torch.testing.assert_close(p6, fpn.p6(c[2]))
    torch.testing.assert_close(p7, fpn.p7(torch.relu(p6)))
    top5 = fpn.lateral5(c[2])
    torch.testing.assert_close(p5, fpn.smooth5(top5))
    top4 = fpn.lateral4(c[1]) + top5.repeat_interleave(2, -1).repeat_interleave(2, -2)
    torch.testing.assert_close(p4, fpn.smooth4(top4))


def test_prior_probability_bias():
    assert prior_bias(0.01) == pytest.approx(-math.log(99))
    head = classification_head(16, 9, 3, num_convs=1, prior=0.01)
    logits = head([torch.randn(1, 16, 4, 4)])
    torch.testing.assert_close(torch.sigmoid(logits).mean(), torch.tensor(0.01), atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="prior"):
        prior_bias(1.0)


def test_flatten_level_puts_anchor_rows_in_anchor_order():
    # channel a·C + c at (y, x) must land in row (y·W + x)·A + a, column c
    A, C, H, W = 3, 2, 2, 4
    x = torch.arange(A * C * H * W, dtype=torch.float32).view(1, A * C, H, W)
    flat = flatten_level(x, C)
    for y in range(H):
        for xx in range(W):
            for a in range(A):
                for c in range(C):
                    assert flat[0, (y * W + xx) * A + a, c] == x[0, a * C + c, y, xx]


@pytest.mark.parametrize("ratios, scales", [((1.0,), (1.0,)), ((0.5, 1.0, 2.0), (1.0, 1.5)), ((0.25, 0.5, 1.0, 2.0, 4.0), (1.0,))])
def test_number_of_anchors_comes_from_the_config(ratios, scales):
    model = tiny(anchor_ratios=ratios, anchor_scales=scales)
    model.eval()
    batch, _ = model.prepare_batch([torch.rand(3, 64, 64)])
    cls, box = model.head_outputs(batch)
    assert cls.shape[1] == box.shape[1] == len(model.anchors((64, 64), batch.device))
    model.train()
    losses = model([torch.rand(3, 64, 64)], [target([[5, 5, 30, 40]], [1])])
    assert all(torch.isfinite(v) for v in losses.values())


def test_training_returns_loss_dict_and_gradients_flow():
    model = tiny()
    model.train()
    losses = model([torch.rand(3, 128, 128), torch.rand(3, 128, 128)],
                   [target([[10, 10, 50, 60], [70, 20, 100, 40]], [0, 2]), target([[5, 5, 20, 20]], [1])])
    assert set(losses) == {"classification", "regression"}
    sum(losses.values()).backward()
    assert model.classification.predict.weight.grad.abs().sum() > 0
    assert model.regression.predict.weight.grad.abs().sum() > 0


def test_initial_classification_loss_matches_the_prior():
    # With the last conv's weights zeroed, every logit is the prior bias (p = 0.01): with no objects
    # (num_pos clamped to 1) the loss is the sum of the closed-form negative loss over anchors × classes.
    model = tiny()
    torch.nn.init.zeros_(model.classification.predict.weight)
    model.train()
    losses = model([torch.zeros(3, 128, 128)], [target([], [])])
    assert losses["regression"].item() == 0.0
    num_anchors = len(model.anchors((128, 128), torch.device("cpu")))
    negative_loss = 0.75 * 0.01**2 * -math.log(0.99)
    assert losses["classification"].item() == pytest.approx(num_anchors * 3 * negative_loss, rel=1e-4)


def test_channels_last_layout_is_used_and_changes_nothing_but_rounding():
    fast, plain = tiny(), tiny(channels_last=False)
    plain.load_state_dict(fast.state_dict())
    images = [torch.rand(3, 128, 128), torch.rand(3, 96, 112)]
    assert fast.prepare_batch(images)[0].is_contiguous(memory_format=torch.channels_last)
    assert fast.classification.predict.weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.prepare_batch(images)[0].is_contiguous()
    targets = [target([[10, 10, 50, 60], [70, 20, 100, 40]], [0, 2]), target([[5, 5, 20, 20]], [1])]
    for model in (fast, plain):
        model.train()
        sum(model(images, targets).values()).backward()
    # Rounding only: up to ~2e-3 of a gradient's scale with one CPU thread (the stem's channels-last batch
    # norm then sums in another order, and backpropagation amplifies it); a layout mistake would be O(1).
    for (name, a), b in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-2, atol=1e-2 * b.grad.abs().max().item(), msg=f"gradient of {name}")
    fast.eval(), plain.eval()
    with torch.no_grad():
        fast_logits, plain_logits = fast.head_outputs(fast.prepare_batch(images)[0]), plain.head_outputs(plain.prepare_batch(images)[0])
    for a, b in zip(fast_logits, plain_logits):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_image_without_objects_trains():
    model = tiny()
    model.train()
    losses = model([torch.rand(3, 96, 96)], [target([], [])])
    assert torch.isfinite(losses["classification"]) and losses["regression"].item() == 0.0
    sum(losses.values()).backward()


def test_eval_batch_of_different_sizes_returns_one_result_per_image():
    model = tiny(score_thresh=0.0)
    model.eval()
    images = [torch.rand(3, 128, 128), torch.rand(3, 70, 190), torch.rand(3, 45, 33)]
    with torch.no_grad():
        outputs = model(images)
        alone = [model([image])[0] for image in images]
    assert len(outputs) == 3
    for out, single, image in zip(outputs, alone, images):
        assert set(out) == {"boxes", "scores", "labels"}
        assert out["boxes"].shape[1] == 4 and len(out["boxes"]) == len(out["scores"]) == len(out["labels"])
        assert len(out["boxes"]) <= model.config.max_detections
        h, w = image.shape[-2:]
        assert (out["boxes"][:, 0::2] <= w).all() and (out["boxes"][:, 1::2] <= h).all()
        assert (out["scores"][:-1] >= out["scores"][1:]).all()
    # the smallest image does not depend on which other images share its batch (zero padding aside)
    assert len(alone[2]["boxes"]) > 0


def test_resizing_maps_boxes_back_to_the_original_image():
    model = tiny(min_size=256, max_size=512, score_thresh=0.0)
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 100)])[0]
    assert (out["boxes"][:, 2] <= 100).all() and (out["boxes"][:, 3] <= 64).all()
    model.train()
    losses = model([torch.rand(3, 64, 100)], [target([[10, 10, 40, 40]], [0])])
    assert torch.isfinite(sum(losses.values()))


def test_postprocess_keeps_the_best_box_and_suppresses_duplicates():
    model = tiny(score_thresh=0.5)
    model.eval()
    anchors = model.anchors((128, 128), torch.device("cpu"))
    n = len(anchors)
    logits = torch.full((1, n, 3), -10.0)
    deltas = torch.zeros(1, n, 4)
    best = 10  # a P3 anchor; make its neighbour (same location, next scale) a near-duplicate
    logits[0, best, 1], logits[0, best + 1, 1], logits[0, best + 1, 2] = 5.0, 4.0, 3.0
    per_level = anchors_per_level((128, 128), model.config.strides, model.config.num_anchors)
    out = model.nms(model.select_candidates(logits, deltas, anchors, per_level, [(128, 128)], [1.0])[0])
    assert out["labels"].tolist() == [1, 2]  # class 1's duplicate is suppressed, class 2's box stays
    torch.testing.assert_close(out["boxes"][0], anchors[best].clamp(0, 128))


def test_presets_build_and_paper_preset_matches_the_paper():
    paper = PRESETS["paper"].model
    assert (paper.backbone, paper.fpn_channels, paper.head_convs, paper.num_anchors) == ("resnet50", 256, 4, 9)
    assert paper.anchor_sizes == (32, 64, 128, 256, 512) and paper.strides == (8, 16, 32, 64, 128)
    assert (paper.focal_alpha, paper.focal_gamma, paper.pos_iou, paper.neg_iou) == (0.25, 2.0, 0.5, 0.4)
    model = RetinaNet.from_preset("paper")
    assert model.classification.predict.out_channels == 9 * 80 and model.regression.predict.out_channels == 36


@pytest.mark.parametrize("call, message", [
    (lambda m: m([], []), "non-empty list"),
    (lambda m: m([torch.rand(1, 64, 64)], [target([], [])]), r"images\[0\]"),
    (lambda m: m([torch.rand(64, 64, 3)], [target([], [])]), r"images\[0\]"),
    (lambda m: m([torch.rand(3, 64, 64)], [target([[10, 10, 5, 20]], [0])]), "x2 < x1"),
    (lambda m: m([torch.rand(3, 64, 64)], [target([[10, 10, 20, 20]], [3])]), "label"),
    (lambda m: m([torch.rand(3, 64, 64)], [target([[10, 10, 20, 20]], [0])] * 2), "2 targets"),
    (lambda m: m([torch.rand(3, 64, 64)]), "needs targets"),
])
def test_bad_input_raises_clear_errors(call, message):
    model = tiny()
    model.train()
    with pytest.raises(ValueError, match=message):
        call(model)


def test_unknown_preset_and_config_key():
    with pytest.raises(ValueError, match="unknown preset"):
        RetinaNet.from_preset("resnet-9000")
    with pytest.raises(ValueError, match="unknown RetinaNetConfig key"):
        preset_config("shapes-cpu", fpn_width=3)
    with pytest.raises(ValueError, match="box_loss"):
        RetinaNetConfig(box_loss="mse")


def test_config_round_trips_through_a_dict():
    config = PRESETS["shapes-cpu"].model
    assert RetinaNetConfig.from_dict(config.to_dict()) == config


# ------------------------------------------------------------------ defects found by the engineering review
def test_training_without_targets_is_rejected_before_the_forward_pass(monkeypatch):
    model = tiny()
    model.train()

    def must_not_run(batch):
        raise AssertionError("the network ran before the missing targets were noticed")

    monkeypatch.setattr(model, "head_outputs", must_not_run)
    with pytest.raises(ValueError, match="needs targets"):
        model([torch.rand(3, 64, 64)])


def test_anchor_cache_is_bounded_on_images_of_many_sizes():
    model = tiny()
    model.eval()
    for side in range(32, 32 + 3 * ANCHOR_CACHE_SIZE):
        model([torch.rand(3, side, 48)])
    assert len(model._anchor_cache) == ANCHOR_CACHE_SIZE
    newest = model.anchors((32 + 3 * ANCHOR_CACHE_SIZE - 1, 48), torch.device("cpu"))
    assert newest is model.anchors((32 + 3 * ANCHOR_CACHE_SIZE - 1, 48), torch.device("cpu")), "recent sizes stay cached"


def test_loss_builds_no_int64_one_hot_and_skips_the_target_check(monkeypatch):
    """The model's classification target is made in the logits' dtype (no int64 one-hot, the largest
    temporary on the paper preset) and focal_loss's 0/1 check (a device sync per step) is skipped."""
    model = tiny()
    model.train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    targets = [target([[4, 4, 30, 40]], [2]), target([], [])]
    seen = []
    real_focal_loss = model_module.focal_loss

    def spy(logits, targets, *args, **kwargs):
        seen.append((targets.dtype, kwargs.get("validate", True)))
        return real_focal_loss(logits, targets, *args, **kwargs)

    monkeypatch.setattr(model_module, "focal_loss", spy)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        losses = model(images, targets)
    assert torch.isfinite(sum(losses.values()))
    assert seen == [(torch.float32, False)]
    ops = {event.key for event in profile.key_averages()}
    assert "aten::one_hot" not in ops, "the classification target should be built without F.one_hot"


def test_focal_loss_still_checks_the_targets_of_other_callers():
    with pytest.raises(ValueError, match="0 or 1"):
        focal_loss(torch.zeros(3), torch.tensor([0.0, 0.5, 1.0]))


def test_resize_and_padding_helpers_match_prepare_batch():
    config = preset_config("paper")
    model = RetinaNet(config.replace(backbone="tiny", fpn_channels=16, head_convs=1, num_classes=2))
    for sizes in ([(480, 640)], [(100, 1000), (333, 500)], [(37, 41)]):
        batch, scales = model.prepare_batch([torch.rand(3, h, w) for h, w in sizes])
        assert tuple(batch.shape[-2:]) == padded_size(config, sizes)
        assert scales == [resize_factor(config, size) for size in sizes]
    assert resize_factor(preset_config("shapes-cpu"), (37, 1000)) == 1.0  # min_size None: no resizing
    assert resize_factor(config, (480, 640)) == pytest.approx(800 / 480)
    assert resize_factor(config, (100, 1000)) == pytest.approx(1333 / 1000)  # the long side caps it


def test_candidates_before_nms_contain_the_detections():
    torch.manual_seed(0)
    model = tiny(score_thresh=0.0)
    model.eval()
    image = torch.rand(3, 64, 80)
    found = model.candidates([image])[0]
    detections = model([image])[0]
    assert (found["scores"][:-1] >= found["scores"][1:]).all(), "candidates come best first"
    assert len(detections["boxes"]) <= min(len(found["boxes"]), model.config.max_detections)
    torch.testing.assert_close(model.nms(found), detections)
