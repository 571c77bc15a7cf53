"""Which anchors the classification loss counts (matching.sample_anchors): a hand-worked OHEM example, the
1:3 ratio, the random sampler's counts and seed, images without objects, bad settings, and the model's loss."""
import pytest
import torch
import torchvision

from retinanet_lite.config import RetinaNetConfig
from retinanet_lite.data import ShapesDataset
from retinanet_lite.matching import BACKGROUND, IGNORE, match_anchors_batch, sample_anchors
from retinanet_lite.model import RetinaNet, pad_targets

# Seven anchors in a row, 10 px squares (xyxy). Anchor 1 is anchor 0 shifted by 1 px: IoU 90 / 110 = 0.82.
ANCHORS = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10],
                        [80, 0, 90, 10], [100, 0, 110, 10]], dtype=torch.float)
MATCHES = torch.tensor([[0, BACKGROUND, BACKGROUND, 0, BACKGROUND, BACKGROUND, IGNORE]])  # positives: 0 and 3
LOSS = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 9.0]])  # the ignored anchor 6 has the highest loss


def kept(mask: torch.Tensor) -> list[int]:
    return mask[0].nonzero().flatten().tolist()


def test_ohem_by_hand():
    # NMS at 0.5 by loss: 0 (5.0) suppresses 1 (4.0, IoU 0.82); then 2, 3, 4, 5; 6 is ignored, never counted.
    assert kept(sample_anchors(MATCHES, LOSS, ANCHORS, "ohem", batch_size=3, nms_iou=0.5)) == [0, 2, 3]
    assert kept(sample_anchors(MATCHES, LOSS, ANCHORS, "ohem", batch_size=4, nms_iou=0.5)) == [0, 2, 3, 4]
    # a looser NMS (0.9 > 0.82) lets the overlapping anchor 1 in
    assert kept(sample_anchors(MATCHES, LOSS, ANCHORS, "ohem", batch_size=3, nms_iou=0.9)) == [0, 1, 2]


def test_ohem_1_3_caps_the_positives_at_a_quarter():
    # batch 4: at most 1 positive (the higher-loss one, 0), then the highest-loss surviving negatives 2, 4, 5
    assert kept(sample_anchors(MATCHES, LOSS, ANCHORS, "ohem_1:3", batch_size=4, nms_iou=0.5)) == [0, 2, 4, 5]
    # batch 8: room for 2 positives and 6 negatives; only 3 negatives survive the NMS
    assert kept(sample_anchors(MATCHES, LOSS, ANCHORS, "ohem_1:3", batch_size=8, nms_iou=0.5)) == [0, 2, 3, 4, 5]
    # one positive (anchor 0), batch 8: three negatives (2, 3, 4 by loss), not seven — the ratio is enforced
    one_positive = MATCHES.where(torch.arange(7) != 3, BACKGROUND)
    assert kept(sample_anchors(one_positive, LOSS, ANCHORS, "ohem_1:3", batch_size=8, nms_iou=0.5)) == [0, 2, 3, 4]
    assert kept(sample_anchors(one_positive, LOSS, ANCHORS, "ohem", batch_size=8, nms_iou=0.5)) == [0, 2, 3, 4, 5]


def test_all_counts_every_non_ignored_anchor():
    assert kept(sample_anchors(MATCHES, LOSS, ANCHORS, "all")) == [0, 1, 2, 3, 4, 5]


def shapes_batch(count: int = 8):
    anchors = RetinaNet.from_preset("shapes-cpu").anchors((128, 128), torch.device("cpu"))
    boxes, _, valid = pad_targets([ShapesDataset(count, 128, seed=3)[i][1] for i in range(count)], torch.device("cpu"))
    return anchors, match_anchors_batch(anchors, boxes, valid)


@pytest.mark.parametrize("sampling", ["ohem", "ohem_1:3"])
@pytest.mark.parametrize("batch_size", [16, 128, 5000])
def test_ohem_agrees_with_torchvision_nms(sampling, batch_size):
    """The shortcut (NMS over the highest-loss anchors only) keeps exactly what one NMS over all of them keeps."""
    anchors, matches = shapes_batch()
    generator = torch.Generator().manual_seed(batch_size)
    for positive_scale in (10.0, 1.0, 0.01):  # positives harder than, like, and easier than the negatives
        loss = torch.rand(matches.shape, generator=generator)
        loss[matches >= 0] *= positive_scale
        chosen = sample_anchors(matches, loss, anchors, sampling, batch_size, nms_iou=0.5)
        for image in range(len(matches)):
            candidates = (matches[image] != IGNORE).nonzero().flatten()
            order = candidates[torchvision.ops.nms(anchors[candidates], loss[image, candidates], 0.5)]
            positive = matches[image, order] >= 0
            if sampling == "ohem":
                expected = order[:batch_size]
            else:
                positives = order[positive][: batch_size // 4]
                expected = torch.cat([positives, order[~positive][: 3 * len(positives)]])
            assert set(chosen[image].nonzero().flatten().tolist()) == set(expected.tolist())


def test_random_sampling_counts_and_seed():
    anchors, matches = shapes_batch()
    loss = torch.zeros(matches.shape)
    first = sample_anchors(matches, loss, anchors, "random", 128, generator=torch.Generator().manual_seed(1))
    again = sample_anchors(matches, loss, anchors, "random", 128, generator=torch.Generator().manual_seed(1))
    other = sample_anchors(matches, loss, anchors, "random", 128, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.equal(first, other)
    for image_matches, chosen in zip(matches, first):
        positives = int((image_matches >= 0).sum())
        assert int(chosen[image_matches >= 0].sum()) == min(positives, 32)
        assert int(chosen[image_matches == BACKGROUND].sum()) == 3 * min(positives, 32)  # 1:3
        assert not chosen[image_matches == IGNORE].any()
    many = torch.zeros(1, 200, dtype=torch.long)  # 200 positives, batch 16: exactly 4 positives and no negative
    assert int(sample_anchors(many, torch.zeros(1, 200), torch.zeros(200, 4), "random", 16).sum()) == 4


@pytest.mark.parametrize("sampling, count", [("random", 0), ("ohem", 64), ("ohem_1:3", 0)])
def test_an_image_without_objects_gets_a_minibatch_of_negatives_only_from_ohem(sampling, count):
    """OHEM fills the minibatch with negatives; the 1:3 rules keep three negatives per positive, so none at all."""
    anchors, _ = shapes_batch(1)
    matches = torch.full((1, len(anchors)), BACKGROUND)
    loss = torch.rand(1, len(anchors), generator=torch.Generator().manual_seed(0))
    assert int(sample_anchors(matches, loss, anchors, sampling, 64).sum()) == count


@pytest.mark.parametrize("change, field", [({"cls_sampling": "hard"}, "cls_sampling"),
                                           ({"cls_sampling_batch": 0}, "cls_sampling_batch"),
                                           ({"ohem_nms_iou": 0.0}, "ohem_nms_iou"),
                                           ({"ohem_nms_iou": 1.5}, "ohem_nms_iou")])
def test_bad_sampling_settings_name_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        RetinaNetConfig(**change)
    with pytest.raises(ValueError, match="sampling must be one of"):
        sample_anchors(MATCHES, LOSS, ANCHORS, "hard")


def test_ohem_without_nms_and_with_room_for_everything_is_the_full_loss():
    """NMS at IoU 1 suppresses nothing and a minibatch larger than the image keeps every anchor: then OHEM's
    loss is exactly RetinaNet's; with the default minibatch it is smaller and still has a gradient."""
    torch.manual_seed(0)
    dataset = ShapesDataset(4, 128, seed=5)
    images, targets = map(list, zip(*(dataset[i] for i in range(4))))
    model = RetinaNet.from_preset("shapes-cpu", focal_gamma=0.0, focal_alpha=0.5).train()
    full = model(images, targets)["classification"]
    model.config = model.config.replace(cls_sampling="ohem", ohem_nms_iou=1.0, cls_sampling_batch=100_000)
    torch.testing.assert_close(model(images, targets)["classification"], full)
    model.config = model.config.replace(cls_sampling_batch=128, ohem_nms_iou=0.5)
    mined = model(images, targets)["classification"]
    assert 0 < mined < full
    mined.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.classification.parameters())
