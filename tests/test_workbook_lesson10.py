"""Lesson 10's exercise checks name the usual mistakes, pass other correct answers, and refuse the package's."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from retinanet_lite import classical
from retinanet_lite.workbook import lesson_exercises
from workbook_checks import failed_with, notebook_check, passes

LESSON = "10_classical_baseline.ipynb"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"



# --- the instructor's solutions (as in the notebook) -----------------------------------------------------------

def my_gaussian_kernel(sigma):
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-x**2 / (2 * sigma**2))
    return kernel / kernel.sum()


def my_blur(image, sigma):
    kernel = my_gaussian_kernel(sigma)
    r = len(kernel) // 2
    x = F.pad(image[:, None], (r, r, r, r), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x[:, 0]


def my_laplacian(image):
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    x = F.pad(image[:, None], (1, 1, 1, 1), mode="replicate")
    return F.conv2d(x, kernel.view(1, 1, 3, 3))[:, 0]


def my_zero_crossings(response, threshold):
    positive = response > 0
    edges = torch.zeros_like(positive)
    across = (positive[:, :, 1:] != positive[:, :, :-1]) & ((response[:, :, 1:] - response[:, :, :-1]).abs() > threshold)
    edges[:, :, 1:] |= across
    edges[:, :, :-1] |= across
    down = (positive[:, 1:] != positive[:, :-1]) & ((response[:, 1:] - response[:, :-1]).abs() > threshold)
    edges[:, 1:] |= down
    edges[:, :-1] |= down
    return edges.any(dim=0)


def my_dilate(mask, k):
    return F.max_pool2d(mask[None, None].float(), k, stride=1, padding=k // 2)[0, 0] > 0.5


def my_erode(mask, k):
    background = F.max_pool2d((~mask)[None, None].float(), k, stride=1, padding=k // 2)[0, 0] > 0.5
    return ~background


def my_closing(mask, k):
    r = k // 2
    padded = F.pad(mask, (r, r, r, r))
    return my_erode(my_dilate(padded, k), k)[r:-r or None, r:-r or None]


def my_connected_components(mask):
    height, width = mask.shape
    on = mask.float()
    labels = torch.arange(1, height * width + 1, dtype=torch.float32).view(height, width) * on
    while True:
        spread = F.max_pool2d(labels[None, None], 3, stride=1, padding=1)[0, 0] * on
        if torch.equal(spread, labels):
            return labels
        labels = spread


SOLUTIONS = {"gaussian_kernel": my_gaussian_kernel, "gaussian_blur": my_blur, "laplacian": my_laplacian,
             "zero_crossings": my_zero_crossings, "erode": my_erode, "closing": my_closing,
             "connected_components": my_connected_components}


@pytest.mark.parametrize("name", SOLUTIONS)
def test_the_lessons_solutions_pass(name):
    passes(name, SOLUTIONS[name])


def test_exercises_are_registered_in_the_lessons_order():
    assert [e.name for e in lesson_exercises("10")] == [
        "gaussian_kernel", "gaussian_blur", "laplacian", "zero_crossings", "erode", "closing",
        "connected_components", "box_from_mask", "score_by_area"]


@pytest.mark.parametrize("name, package", [
    ("gaussian_kernel", classical.gaussian_kernel), ("gaussian_blur", classical.gaussian_blur),
    ("laplacian", classical.laplacian), ("zero_crossings", classical.zero_crossings), ("erode", classical.erode),
    ("closing", classical.closing), ("connected_components", classical.connected_components)])
def test_the_packages_version_is_refused(name, package):
    failed_with(name, package, "ready-made")
    failed_with(name, lambda *args: package(*args), "ready-made")


# --- other correct answers ---------------------------------------------------------------------------------------

def test_other_correct_answers_pass():
    def kernel_from_linspace(sigma):
        r = math.ceil(3 * sigma)
        k = torch.exp(-0.5 * (torch.linspace(-r, r, 2 * r + 1) / sigma) ** 2)
        return k / k.sum()
    passes("gaussian_kernel", kernel_from_linspace)

    def blur_2d(image, sigma):  # one 2-D convolution instead of two 1-D ones
        k = my_gaussian_kernel(sigma)
        r = len(k) // 2
        x = F.pad(image.unsqueeze(1), [r] * 4, mode="replicate")
        return F.conv2d(x, torch.outer(k, k)[None, None]).squeeze(1)
    passes("gaussian_blur", blur_2d)

    def laplacian_by_slicing(image):
        p = F.pad(image[None], (1, 1, 1, 1), mode="replicate")[0]
        return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4 * image
    passes("laplacian", laplacian_by_slicing)

    def crossings_with_rolls(response, threshold):
        out = torch.zeros(response.shape[1:], dtype=torch.bool)
        for c in response:
            for dim in (0, 1):
                a, b = c.narrow(dim, 0, c.shape[dim] - 1), c.narrow(dim, 1, c.shape[dim] - 1)
                hit = ((a > 0) ^ (b > 0)) & ((a - b).abs() > threshold)
                out.narrow(dim, 0, c.shape[dim] - 1).logical_or_(hit)
                out.narrow(dim, 1, c.shape[dim] - 1).logical_or_(hit)
        return out
    passes("zero_crossings", crossings_with_rolls)

    def erode_by_min_pool(mask, k):
        return -F.max_pool2d(-mask[None, None].float(), k, stride=1, padding=k // 2)[0, 0] > 0.5
    passes("erode", erode_by_min_pool)

    def closing_by_negation(mask, k):  # erosion = ~dilate(~m) with outside on: pad with off, crop after
        r = k // 2
        closed = ~my_dilate(~my_dilate(F.pad(mask, (r, r, r, r)), k), k)
        return closed[r:r + mask.shape[0], r:r + mask.shape[1]]
    passes("closing", closing_by_negation)

    def components_by_flood_fill(mask):
        labels = torch.zeros(mask.shape, dtype=torch.int64)
        count = 0
        for y, x in mask.nonzero().tolist():
            if labels[y, x]:
                continue
            count += 1
            stack = [(y, x)]
            labels[y, x] = count
            while stack:
                cy, cx = stack.pop()
                for ny in range(max(cy - 1, 0), min(cy + 2, mask.shape[0])):
                    for nx in range(max(cx - 1, 0), min(cx + 2, mask.shape[1])):
                        if mask[ny, nx] and not labels[ny, nx]:
                            labels[ny, nx] = count
                            stack.append((ny, nx))
        return labels
    passes("connected_components", components_by_flood_fill)


# --- the named mistakes ------------------------------------------------------------------------------------------

def kernel(sigma, *, radius=None, normalise=True, two=2.0, square=True, end=1):
    r = math.ceil(3 * sigma) if radius is None else radius
    x = torch.arange(-r, r + end, dtype=torch.float32)
    k = torch.exp(-x**2 / (two * (sigma**2 if square else sigma)))
    return k / k.sum() if normalise else k


def test_gaussian_kernel_mistakes():
    failed_with("gaussian_kernel", lambda s: kernel(s, normalise=False), "does not sum to 1")
    failed_with("gaussian_kernel", lambda s: kernel(s, normalise=False) / (s * math.sqrt(2 * math.pi)), "1/(σ√(2π))")
    failed_with("gaussian_kernel", lambda s: kernel(s, two=1.0), "−x²/σ²")
    failed_with("gaussian_kernel", lambda s: kernel(s, square=False), "σ must be squared")
    failed_with("gaussian_kernel", lambda s: kernel(s, radius=int(3 * s)), "ceil(3σ)")
    failed_with("gaussian_kernel", lambda s: kernel(s, end=0), "arange(-r, r + 1)")


def blur_with(sigma_kernel=my_gaussian_kernel, pad="replicate", axes="xy", valid=False):
    def blur(image, sigma):
        k = sigma_kernel(sigma)
        r = len(k) // 2
        x = image[:, None]
        if not valid:
            x = F.pad(x, (r, r, r, r), mode=pad) if pad == "replicate" else F.pad(x, (r, r, r, r))
        if "x" in axes:
            x = F.conv2d(x, k.view(1, 1, 1, -1))
        elif not valid:
            x = x[..., r:-r]
        if "y" in axes:
            x = F.conv2d(x, k.view(1, 1, -1, 1))
        elif not valid:
            x = x[..., r:-r, :]
        return x[:, 0]
    return blur


def test_gaussian_blur_mistakes():
    failed_with("gaussian_blur", blur_with(lambda s: kernel(s, normalise=False)), "does not sum to 1")
    failed_with("gaussian_blur", blur_with(pad="zeros"), "replicate")
    failed_with("gaussian_blur", blur_with(axes="x"), "along x only")
    failed_with("gaussian_blur", blur_with(axes="y"), "along y only")
    failed_with("gaussian_blur", blur_with(valid=True), "keeps the shape")


def laplacian_with(kernel_rows, pad="replicate"):
    def laplacian(image):
        x = image[:, None]
        x = F.pad(x, (1, 1, 1, 1), mode="replicate") if pad == "replicate" else F.pad(x, (1, 1, 1, 1))
        return F.conv2d(x, torch.tensor(kernel_rows).view(1, 1, 3, 3))[:, 0]
    return laplacian


def test_laplacian_mistakes():
    failed_with("laplacian", laplacian_with([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]]), "sign is flipped")
    failed_with("laplacian", laplacian_with([[1.0, 1, 1], [1, -8, 1], [1, 1, 1]]), "8 neighbours")
    failed_with("laplacian", laplacian_with([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]], pad="zeros"), "zero padding")
    failed_with("laplacian", laplacian_with([[0.0, 0, 0], [1, -2, 1], [0, 0, 0]]), "one axis only")


def crossings_with(dims=(1, 2), both=True, combine="any", use_threshold=True, band=False):
    def crossings(response, threshold):
        if band:
            return (response.abs() > threshold).any(0)
        edges = torch.zeros_like(response, dtype=torch.bool)
        for dim in dims:
            n = response.shape[dim] - 1
            a, b = response.narrow(dim, 0, n), response.narrow(dim, 1, n)
            hit = (a > 0) != (b > 0)
            if use_threshold:
                hit = hit & ((a - b).abs() > threshold)
            edges.narrow(dim, 0, n).logical_or_(hit)
            if both:
                edges.narrow(dim, 1, n).logical_or_(hit)
        return {"any": edges.any(0), "all": edges.all(0), "first": edges[0], "none": edges}[combine]
    return crossings


def test_zero_crossings_mistakes():
    failed_with("zero_crossings", crossings_with(band=True), "thick bands")
    failed_with("zero_crossings", crossings_with(dims=(2,)), "horizontal neighbours")
    failed_with("zero_crossings", crossings_with(dims=(1,)), "vertical neighbours")
    failed_with("zero_crossings", crossings_with(both=False), "mark both pixels")
    failed_with("zero_crossings", crossings_with(use_threshold=False), "threshold is ignored")
    failed_with("zero_crossings", crossings_with(combine="first"), "first channel")
    failed_with("zero_crossings", crossings_with(combine="all"), "all()")
    failed_with("zero_crossings", crossings_with(combine="none"), "any(dim=0)")


def test_erode_mistakes():
    failed_with("erode", my_dilate, "this is a dilation")
    failed_with("erode", lambda m, k: my_dilate(~m, k), "negate it once more")

    def outside_off(mask, k):
        r = k // 2
        padded = F.pad(mask[None, None].float(), (r, r, r, r))
        return -F.max_pool2d(-padded, k, stride=1)[0, 0] > 0.5
    failed_with("erode", outside_off, "outside the image count as off")


def test_closing_mistakes():
    def opening(mask, k):
        r = k // 2
        return my_dilate(my_erode(F.pad(mask, (r, r, r, r)), k), k)[r:r + mask.shape[0], r:r + mask.shape[1]]
    failed_with("closing", opening, "that is an opening")
    failed_with("closing", lambda m, k: my_dilate(my_erode(m, k), k), "opening")
    failed_with("closing", lambda m, k: my_erode(my_dilate(m, k), k), "pad the mask")
    failed_with("closing", my_dilate, "only dilated")


def components_with(kernel_size=3, masked=True, steps=None, cross=False):
    def components(mask):
        on = mask.float()
        labels = torch.arange(1, mask.numel() + 1, dtype=torch.float32).view(mask.shape) * on
        step = 0
        while steps is None or step < steps:
            step += 1
            if cross:
                p = F.pad(labels, (1, 1, 1, 1))
                spread = torch.stack([labels, p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]]).amax(0)
            else:
                spread = F.max_pool2d(labels[None, None], kernel_size, stride=1, padding=kernel_size // 2)[0, 0]
            spread = spread * on if masked else spread
            if torch.equal(spread, labels):
                break
            labels = spread
        return labels
    return components


def test_connected_components_mistakes():
    failed_with("connected_components", components_with(masked=False), "multiply by the mask")
    failed_with("connected_components", components_with(cross=True), "4-connectivity")
    failed_with("connected_components", components_with(steps=3), "stopped too early")


# --- the end-of-lesson exercises: the notebook's own asserts --------------------------------------------------------

def box_from_mask(mask):
    rows, cols = torch.nonzero(mask, as_tuple=True)
    return torch.stack([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]).float()


def box_namespace():
    edges = classical.zero_crossings(classical.laplacian_of_gaussian(classical_image(), 1.0), 0.1)
    return {"torch": torch, "classical": classical, "edges": edges}


def classical_image():
    from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset
    return ShapesDataset(1, 128, seed=VAL_SEED_OFFSET)[0][0]


def test_box_from_mask_check():
    check = notebook_check(LESSON, "box_from_mask")
    check({**box_namespace(), "box_from_mask": box_from_mask})
    last_pixel = lambda m: box_from_mask(m) - torch.tensor([0.0, 0, 1, 1])  # noqa: E731
    with pytest.raises(AssertionError, match="one past"):
        check({**box_namespace(), "box_from_mask": last_pixel})
    swapped = lambda m: box_from_mask(m)[[1, 0, 3, 2]]  # noqa: E731
    with pytest.raises(AssertionError, match="rows and columns"):
        check({**box_namespace(), "box_from_mask": swapped})
    with pytest.raises(AssertionError, match="float32"):
        check({**box_namespace(), "box_from_mask": lambda m: box_from_mask(m).long()})
