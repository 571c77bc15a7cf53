"""The classical pipeline, stage by stage, against independent references and hand-made examples."""
import math
from collections import deque

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from retinanet_lite import classical as C
from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset
from retinanet_lite.metrics import evaluate


# ------------------------------------------------------------------------------------ blur
@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.3])
def test_gaussian_kernel_is_a_normalised_sampled_gaussian(sigma):
    kernel = C.gaussian_kernel(sigma)
    radius = math.ceil(3 * sigma)
    assert kernel.shape == (2 * radius + 1,)
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
    x = np.arange(-radius, radius + 1)
    expected = np.exp(-x**2 / (2 * sigma**2))
    np.testing.assert_allclose(kernel.numpy(), expected / expected.sum(), rtol=1e-6)


def test_blur_of_an_impulse_is_the_2d_gaussian_kernel():
    image = torch.zeros(21, 21)
    image[10, 10] = 1.0
    blurred = C.gaussian_blur(image, 1.5)
    k = C.gaussian_kernel(1.5)  # radius 5
    torch.testing.assert_close(blurred[5:16, 5:16], torch.outer(k, k))
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_blur_matches_torchvision_away_from_the_border():
    image = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(0))
    ours = C.gaussian_blur(image, 2.0)
    theirs = TF.gaussian_blur(image, kernel_size=13, sigma=2.0)  # radius ceil(3σ) = 6
    torch.testing.assert_close(ours[:, 6:-6, 6:-6], theirs[:, 6:-6, 6:-6])
    assert ours.shape == image.shape


def test_blur_keeps_a_flat_image_flat_up_to_its_border():
    image = torch.full((3, 16, 16), 0.3)
    torch.testing.assert_close(C.gaussian_blur(image, 3.0), image)


# ------------------------------------------------------------------------------------ Laplacian
def test_laplacian_of_a_quadratic_is_constant_and_of_a_linear_ramp_zero():
    y, x = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    quadratic = 0.5 * x**2 + 2.0 * y**2 + 3.0 * x * y - x + 7  # ∇² = 2·0.5 + 2·2 = 5
    torch.testing.assert_close(C.laplacian(quadratic)[1:-1, 1:-1], torch.full((18, 28), 5.0))
    ramp = 0.2 * x - 0.1 * y + 1
    torch.testing.assert_close(C.laplacian(ramp)[1:-1, 1:-1], torch.zeros(18, 28), atol=1e-5, rtol=0)


def test_laplacian_matches_second_differences_per_channel():
    image = torch.rand(3, 12, 15, generator=torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(image[None], (1, 1, 1, 1), mode="replicate")[0]
    expected = torch.diff(padded, n=2, dim=2)[:, 1:-1, :] + torch.diff(padded, n=2, dim=1)[:, :, 1:-1]
    torch.testing.assert_close(C.laplacian(image), expected)


def test_scale_normalised_log_peak_does_not_depend_on_sigma():
    step = torch.zeros(64, 64)
    step[:, 32:] = 1.0
    peaks = [C.laplacian_of_gaussian(step, sigma).abs().max().item() for sigma in (1.5, 2.0, 3.0)]
    assert max(peaks) - min(peaks) < 0.02 and peaks[0] == pytest.approx(0.242, abs=0.02)  # 1/√(2πe)


# ------------------------------------------------------------------------------------ binarize
def test_zero_crossings_mark_the_two_pixels_beside_a_step_edge():
    image = torch.zeros(3, 20, 20)
    image[1, :, 8:] = 0.8  # the edge between columns 7 and 8, in the green channel only
    edges = C.zero_crossings(C.laplacian_of_gaussian(image, 1.0), threshold=0.1)
    expected = torch.zeros(20, 20, dtype=torch.bool)
    expected[:, 7:9] = True
    assert torch.equal(edges, expected)
    assert not C.zero_crossings(C.laplacian_of_gaussian(image, 1.0), threshold=0.5).any()  # jump ≈ 0.25
    assert not C.zero_crossings(torch.zeros(3, 20, 20), threshold=0.0).any()


# ------------------------------------------------------------------------------------ morphology
def _dilate_reference(mask: np.ndarray, k: int) -> np.ndarray:
    """Dilation by looping over pixels (outside the image is off)."""
    r, (h, w) = k // 2, mask.shape
    return np.array([[mask[max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].any() for j in range(w)]
                     for i in range(h)])


def _erode_reference(mask: np.ndarray, k: int) -> np.ndarray:
    """Erosion by looping over pixels (outside the image is on)."""
    r, (h, w) = k // 2, mask.shape
    return np.array([[mask[max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].all() for j in range(w)]
                     for i in range(h)])


@pytest.mark.parametrize("k", [1, 3, 5])
def test_dilate_and_erode_match_a_pixel_loop(k):
    mask = torch.rand(17, 23, generator=torch.Generator().manual_seed(k)) > 0.7
    np.testing.assert_array_equal(C.dilate(mask, k).numpy(), _dilate_reference(mask.numpy(), k))
    np.testing.assert_array_equal(C.erode(~mask, k).numpy(), _erode_reference(~mask.numpy(), k))


def test_closing_fills_a_small_gap_but_not_a_wide_one():
    line = torch.zeros(9, 20, dtype=torch.bool)
    line[4, 2:18] = True
    line[4, 9] = False  # a one-pixel gap
    assert C.closing(line, 3)[4, 9] and not C.closing(line, 1)[4, 9]
    line[4, 8:12] = False  # a four-pixel gap
    assert not C.closing(line, 3)[4, 8:12].any()
    assert C.closing(line, 5)[4, 8:12].all()


def test_closing_is_extensive_idempotent_and_stays_inside_the_box():
    mask = torch.rand(30, 30, generator=torch.Generator().manual_seed(3)) > 0.8
    mask[:, :4] = mask[:, -4:] = False
    closed = C.closing(mask, 3)
    assert (closed | ~mask).all(), "closing must keep every pixel of the mask"
    assert torch.equal(C.closing(closed, 3), closed)
    border = torch.zeros(10, 10, dtype=torch.bool)
    border[0, 2:5] = border[2, 2:5] = True  # a blob touching the top edge
    closed = C.closing(border, 5)
    assert not closed[:, :2].any() and not closed[:, 5:].any() and not closed[3:].any()


# ------------------------------------------------------------------------------------ components
def _components_reference(mask: np.ndarray) -> list[set]:
    """The 8-connected blobs of ``mask`` as sets of (row, col), by breadth-first flood fill."""
    seen, blobs = set(), []
    for start in zip(*np.nonzero(mask)):
        if start in seen:
            continue
        blob, queue = {start}, deque([start])
        while queue:
            i, j = queue.popleft()
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    n = (i + di, j + dj)
                    if 0 <= n[0] < mask.shape[0] and 0 <= n[1] < mask.shape[1] and mask[n] and n not in blob:
                        blob.add(n)
                        queue.append(n)
        seen |= blob
        blobs.append(blob)
    return blobs


def _blobs(labels: torch.Tensor) -> list[set]:
    return [set(zip(*np.nonzero(labels.numpy() == n))) for n in range(1, int(labels.max()) + 1)]


def test_components_of_a_hand_made_mask():
    mask = torch.tensor([[1, 1, 0, 0, 0, 1],
                         [0, 1, 0, 0, 0, 1],
                         [0, 0, 1, 0, 0, 0],  # touches the first blob diagonally: the same blob
                         [0, 0, 0, 0, 1, 1],
                         [1, 0, 0, 0, 1, 0]], dtype=torch.bool)
    expected = torch.tensor([[2, 2, 0, 0, 0, 1],  # numbered in reading order of each blob's last pixel
                             [0, 2, 0, 0, 0, 1],
                             [0, 0, 2, 0, 0, 0],
                             [0, 0, 0, 0, 4, 4],
                             [3, 0, 0, 0, 4, 0]])
    assert torch.equal(C.connected_components(mask), expected)
    assert not C.connected_components(torch.zeros(4, 4, dtype=torch.bool)).any()


def test_the_neighbourhood_maximum_is_a_3x3_max_pool():
    values = torch.rand(13, 17, generator=torch.Generator().manual_seed(0)) * (torch.rand(13, 17) > 0.5)
    pooled = torch.nn.functional.max_pool2d(values[None, None], 3, stride=1, padding=1)[0, 0]
    assert torch.equal(C._max_3x3(values), pooled)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_components_match_a_flood_fill(seed):
    mask = torch.rand(40, 50, generator=torch.Generator().manual_seed(seed)) > 0.55
    labels = C.connected_components(mask)
    assert sorted(map(sorted, _blobs(labels))) == sorted(map(sorted, _components_reference(mask.numpy())))


def test_components_of_a_long_spiral_are_one_blob():
    mask = np.zeros((41, 41), dtype=bool)
    top, left, bottom, right = 0, 0, 40, 40
    while top <= bottom and left <= right:  # a one-pixel path, walls two pixels apart
        mask[top, left:right + 1] = mask[top:bottom + 1, right] = True
        if top + 2 <= bottom:
            mask[bottom, left:right + 1] = True
        if left + 2 <= right:
            mask[top + 2:bottom + 1, left] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
        if top <= bottom:
            mask[top - 1, left] = False  # no shortcut: cut where the next ring starts
    labels = C.connected_components(torch.from_numpy(mask))
    assert len(_components_reference(mask)) == int(labels.max())


# ------------------------------------------------------------------------------------ boxes
def test_boxes_of_synthetic_rectangles_are_exact():
    labels = torch.zeros(30, 40, dtype=torch.int64)
    labels[2:7, 3:10] = 1  # rows 2–6, columns 3–9
    labels[10:25, 20:40] = 2
    labels[29, 0] = 3
    boxes, areas = C.component_boxes(labels)
    torch.testing.assert_close(boxes, torch.tensor([[3.0, 2, 10, 7], [20, 10, 40, 25], [0, 29, 1, 30]]))
    torch.testing.assert_close(areas, torch.tensor([35.0, 300, 1]))
    boxes, areas = C.component_boxes(torch.zeros(5, 5, dtype=torch.int64))
    assert boxes.shape == (0, 4) and areas.shape == (0,)


def test_detect_finds_rectangles_exactly():
    image = torch.full((3, 64, 64), 0.5)
    image[:, 10:20, 5:30] = torch.tensor([0.9, 0.1, 0.2])[:, None, None]  # rows 10–19, columns 5–29
    image[:, 40:60, 35:50] = 0.0
    result = C.detect(image, sigma=1.0, threshold=0.05, kernel_size=3)
    order = result["boxes"][:, 0].argsort()
    torch.testing.assert_close(result["boxes"][order], torch.tensor([[5.0, 10, 30, 20], [35, 40, 50, 60]]))
    assert result["labels"].tolist() == [0, 0] and (result["scores"] > 0).all()
    empty = C.detect(torch.full((3, 32, 32), 0.5))
    assert empty["boxes"].shape == (0, 4) and empty["scores"].shape == (0,) and empty["labels"].shape == (0,)


def test_detect_finds_most_shapes_class_agnostically():
    dataset = ShapesDataset(30, 128, seed=VAL_SEED_OFFSET)
    predictions, targets = [], []
    for image, target in (dataset[i] for i in range(len(dataset))):
        predictions.append(C.detect(image))
        targets.append({"boxes": target["boxes"], "labels": torch.zeros_like(target["labels"])})
    result = evaluate(predictions, targets, num_classes=1)
    assert result["map_50"] > 0.45, result


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, message", [
    (lambda: C.gaussian_blur(torch.zeros(3, 8, 8, dtype=torch.uint8), 1.0), "float"),
    (lambda: C.gaussian_blur(torch.zeros(1, 3, 8, 8), 1.0), r"\[H, W\] or \[C, H, W\]"),
    (lambda: C.gaussian_blur(np.zeros((8, 8)), 1.0), "torch.Tensor"),
    (lambda: C.gaussian_kernel(0.0), "sigma"),
    (lambda: C.laplacian(torch.zeros(3, 0, 8)), "empty"),
    (lambda: C.zero_crossings(torch.zeros(8, 8), -1.0), "threshold"),
    (lambda: C.dilate(torch.zeros(8, 8), 3), "bool"),
    (lambda: C.erode(torch.zeros(8, 8, dtype=torch.bool), 4), "odd"),
    (lambda: C.closing(torch.zeros(8, 8, dtype=torch.bool), 0), "odd"),
    (lambda: C.connected_components(torch.zeros(3, 8, 8, dtype=torch.bool)), r"\[H, W\]"),
    (lambda: C.component_boxes(torch.zeros(8, 8)), "integer"),
])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
