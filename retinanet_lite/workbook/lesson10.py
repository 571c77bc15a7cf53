"""Lesson 10's exercises: the classical pipeline, one stage at a time.

Gaussian kernel → blur → Laplacian → zero crossings (binarize) → erosion → closing → connected
components, then the end-of-lesson exercises (the box of a mask, scoring by area). Images are float
``[C, H, W]``, masks bool ``[H, W]``, boxes xyxy pixels with ``x2``/``y2`` one past the last pixel.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from .. import classical
from ..data import ShapesDataset
from .core import Mistake, declare, exercise
from .diagnose import as_tensor, close, diagnose, expect_shape

SIGMAS = (0.7, 1.0, 2.5)


def random_image(channels: int, height: int, width: int, seed: int) -> torch.Tensor:
    """A random float image ``[channels, height, width]`` in [0, 1]."""
    return torch.rand(channels, height, width, generator=torch.Generator().manual_seed(seed))


def shapes_image(index: int = 0) -> torch.Tensor:
    """Image ``index`` of the shapes training data: ``[3, 128, 128]``."""
    return ShapesDataset(index + 1, 128, seed=0)[index][0]


# ------------------------------------------------------------------------------------ 1. Gaussian kernel
def _kernel(sigma: float, radius: int, two: float = 2.0, square: bool = True, normalise: str = "sum") -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-x**2 / (two * (sigma**2 if square else sigma)))
    if normalise == "sum":
        return kernel / kernel.sum()
    if normalise == "analytic":
        return kernel / (sigma * math.sqrt(2 * math.pi))
    return kernel


@exercise("gaussian_kernel", "10", fallback=classical.gaussian_kernel)
def check_gaussian_kernel(kernel_of: Callable[[float], torch.Tensor]) -> None:
    """``my_gaussian_kernel(sigma)`` → ``[2r + 1]``, r = ceil(3σ), the sampled Gaussian summing to 1."""
    for sigma in (*SIGMAS, 0.4):
        r = math.ceil(3 * sigma)
        got = as_tensor(kernel_of(sigma), f"my_gaussian_kernel({sigma})")
        if got.dim() != 1:
            raise Mistake(f"my_gaussian_kernel({sigma}) should be one-dimensional [2r + 1], got shape {list(got.shape)}")
        if len(got) != 2 * r + 1:
            hint = ("torch.arange(-r, r) stops before r: use torch.arange(-r, r + 1)" if len(got) == 2 * r else
                    f"the radius is r = ceil(3σ) = {r} (math.ceil, not int() or round())")
            raise Mistake(f"my_gaussian_kernel({sigma}) should have 2r + 1 = {2 * r + 1} values, got {len(got)}: {hint}")
        diagnose(got, _kernel(sigma, r), {
            "the kernel does not sum to 1: divide the samples by their sum, so that a flat region keeps its value":
                lambda: _kernel(sigma, r, normalise="none"),
            "the kernel is normalised with 1/(σ√(2π)), the continuous Gaussian's factor: the sampled, cut-off "
            "values then do not sum exactly to 1 — divide by their own sum": lambda: _kernel(sigma, r, normalise="analytic"),
            "the exponent is −x²/σ²: the Gaussian is exp(−x² / (2σ²))": lambda: _kernel(sigma, r, two=1.0),
            "the exponent is −x²/(2σ): σ must be squared, exp(−x² / (2σ²))": lambda: _kernel(sigma, r, square=False),
            "the kernel is upside down (largest at the ends): the exponent needs its minus sign":
                lambda: (lambda k: k / k.sum())(torch.exp(torch.arange(-r, r + 1.0, dtype=torch.float64) ** 2 / (2 * sigma**2))),
        }, f"my_gaussian_kernel({sigma}) differs from exp(−x²/2σ²) sampled at −{r}…{r} and divided by its sum",
            atol=1e-6)


# ------------------------------------------------------------------------------------ 2. blur
def _blur(image: torch.Tensor, sigma: float, mode: str = "replicate", axes: str = "xy", scale: float = 1.0) -> torch.Tensor:
    kernel = classical.gaussian_kernel(sigma).double() * scale
    r = len(kernel) // 2
    x = image.double()[:, None]
    if mode == "replicate":
        x = F.pad(x, (r, r, r, r), mode="replicate")
    else:
        x = F.pad(x, (r, r, r, r))
    x = F.conv2d(x, kernel.view(1, 1, 1, -1)) if "x" in axes else x[..., r:-r]
    x = F.conv2d(x, kernel.view(1, 1, -1, 1)) if "y" in axes else x[..., r:-r, :]
    return x[:, 0]


def _expect_same_shape(got: torch.Tensor, shape: tuple[int, int, int], sigma: float) -> None:
    r = math.ceil(3 * sigma)
    if tuple(got.shape) == (shape[0], shape[1] - 2 * r, shape[2] - 2 * r):
        raise Mistake(f"my_blur returns {list(got.shape)} for a {list(shape)} image: pad the image by r = {r} on every "
                      "side before the convolutions, so that the blur keeps the shape")
    expect_shape(got, shape, f"my_blur(image {list(shape)}, {sigma})")


@exercise("gaussian_blur", "10", fallback=classical.gaussian_blur, forbidden=(TF.gaussian_blur,))
def check_gaussian_blur(blur: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """``my_blur(image [C, H, W], sigma)`` → ``[C, H, W]``: separable Gaussian blur, border pixels repeated."""
    impulse = torch.zeros(1, 21, 21)
    impulse[0, 10, 10] = 1.0
    got = as_tensor(blur(impulse, 1.5), "my_blur")
    _expect_same_shape(got, (1, 21, 21), 1.5)
    kernel = classical.gaussian_kernel(1.5).double()
    if abs(float(got.sum()) - 1) > 1e-4:
        if close(got / got.sum(), _blur(impulse, 1.5), atol=1e-6):
            raise Mistake(f"the blur of a single bright pixel sums to {float(got.sum()):.4f}, not 1: the kernel does "
                          "not sum to 1 (divide it by its sum), so the blur changes the brightness")
    diagnose(got[0, 5:16, 5:16], torch.outer(kernel, kernel), {
        "the blur runs along x only: convolve with the kernel along x, then along y (view(1, 1, 1, -1), then "
        "view(1, 1, -1, 1))": lambda: _blur(impulse, 1.5, axes="x")[0, 5:16, 5:16],
        "the blur runs along y only: convolve with the kernel along x, then along y":
            lambda: _blur(impulse, 1.5, axes="y")[0, 5:16, 5:16],
    }, "a single bright pixel must blur into the 2-D kernel (the outer product of the 1-D kernel with itself)", atol=1e-6)
    for channels, sigma, seed in ((3, 1.0, 0), (1, 2.5, 1), (3, 0.7, 2)):
        image = random_image(channels, 24, 31, seed)
        got = as_tensor(blur(image, sigma), "my_blur")
        r = math.ceil(3 * sigma)
        _expect_same_shape(got, (channels, 24, 31), sigma)
        inside = (slice(None), slice(r, -r), slice(r, -r))
        theirs = TF.gaussian_blur(image, kernel_size=2 * r + 1, sigma=sigma).double()
        if not close(got[inside], theirs[inside], atol=1e-5):
            raise Mistake(f"σ = {sigma}: away from the border my_blur disagrees with torchvision's gaussian_blur")
        diagnose(got, _blur(image, sigma), {
            "the border gets darker: F.conv2d's padding (or F.pad's default) adds zeros; repeat the border pixels "
            "with F.pad(…, mode=\"replicate\") instead": lambda: _blur(image, sigma, mode="zeros"),
        }, f"σ = {sigma}: my_blur agrees with torchvision inside the image but not at its border: repeat the "
           "border pixels (F.pad(…, mode=\"replicate\")) by r on every side", atol=1e-5)


# ------------------------------------------------------------------------------------ 3. Laplacian
FOUR_NEIGHBOURS = classical.LAPLACIAN_KERNEL.double()
EIGHT_NEIGHBOURS = torch.tensor([[1.0, 1.0, 1.0], [1.0, -8.0, 1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)


def _laplacian(image: torch.Tensor, kernel: torch.Tensor = FOUR_NEIGHBOURS, mode: str = "replicate") -> torch.Tensor:
    x = image.double()[:, None]
    x = F.pad(x, (1, 1, 1, 1), mode="replicate") if mode == "replicate" else F.pad(x, (1, 1, 1, 1))
    return F.conv2d(x, kernel.view(1, 1, 3, 3))[:, 0]


@exercise("laplacian", "10", fallback=classical.laplacian, forbidden=(classical.laplacian_of_gaussian,))
def check_laplacian(laplacian: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``my_laplacian(image [C, H, W])`` → ``[C, H, W]``: the 5-point Laplacian, border pixels repeated."""
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(25.0), indexing="ij")
    quadratic = (0.5 * xs**2 + 2.0 * ys**2 + 3.0 * xs * ys - xs + 7)[None]  # ∇² = 2·0.5 + 2·2 = 5
    got = as_tensor(laplacian(quadratic), "my_laplacian")
    expect_shape(got, (1, 20, 25), "my_laplacian(image [1, 20, 25])")
    inner = got[:, 1:-1, 1:-1]
    if close(inner, torch.full_like(inner, -5.0)):
        raise Mistake("the sign is flipped: the centre weight is −4 and the four neighbours +1, so the Laplacian of "
                      "0.5x² + 2y² + … is +5 (and positive on the dark side of an edge)")
    if close(inner, torch.full_like(inner, 1.0)) or close(inner, torch.full_like(inner, 4.0)):
        raise Mistake("the Laplacian of 0.5x² + 2y² + 3xy + … should be 2·0.5 + 2·2 = 5 everywhere; yours takes the "
                      "second difference along one axis only: add f(x−1) − 2f(x) + f(x+1) along x AND along y")
    for channels, seed in ((3, 0), (1, 1)):
        image = random_image(channels, 17, 23, seed)
        got = as_tensor(laplacian(image), "my_laplacian")
        expect_shape(got, (channels, 17, 23), f"my_laplacian(image [{channels}, 17, 23])")
        diagnose(got, _laplacian(image), {
            "the sign is flipped: the centre weight is −4 and the four neighbours +1": lambda: -_laplacian(image),
            "all 8 neighbours are used (centre −8): the lesson's Laplacian is the 5-point one — only the 4 "
            "horizontal and vertical neighbours, centre −4": lambda: _laplacian(image, EIGHT_NEIGHBOURS),
            "the 8-neighbour kernel with a flipped sign: use the 5-point kernel [[0, 1, 0], [1, −4, 1], [0, 1, 0]]":
                lambda: -_laplacian(image, EIGHT_NEIGHBOURS),
            "the border looks like an edge: zero padding (F.conv2d's padding=1) adds dark pixels; repeat the border "
            "pixels with F.pad(…, (1, 1, 1, 1), mode=\"replicate\")": lambda: _laplacian(image, mode="zeros"),
        }, "my_laplacian disagrees with the 5-point Laplacian [[0, 1, 0], [1, −4, 1], [0, 1, 0]] (border pixels "
           "repeated)")


# ------------------------------------------------------------------------------------ 4. zero crossings
def _crossings(response: torch.Tensor, threshold: float, dims: tuple[int, ...] = (1, 2), both: bool = True,
               combine: str = "any", band: bool = False, use_threshold: bool = True) -> torch.Tensor:
    r = response.reshape(-1, *response.shape[-2:]).double()
    if band:
        return (r.abs() > threshold).any(dim=0)
    edges = torch.zeros_like(r, dtype=torch.bool)
    for dim in dims:
        n = r.shape[dim] - 1
        a, b = r.narrow(dim, 0, n), r.narrow(dim, 1, n)
        crossing = (a > 0) != (b > 0)
        if use_threshold:
            crossing &= (a - b).abs() > threshold
        edges.narrow(dim, 0, n).logical_or_(crossing)
        if both:
            edges.narrow(dim, 1, n).logical_or_(crossing)
    if combine == "first":
        return edges[0]
    return edges.any(dim=0) if combine == "any" else edges.all(dim=0)


def log_of_shapes(sigma: float = 1.0) -> torch.Tensor:
    """σ²·LoG ``[3, 128, 128]`` of a shapes training image."""
    return classical.laplacian_of_gaussian(shapes_image(3), sigma)


@exercise("zero_crossings", "10", fallback=classical.zero_crossings)
def check_zero_crossings(crossings: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """``my_zero_crossings(response [C, H, W], threshold)`` → ``[H, W]`` bool edge mask."""
    g = torch.Generator().manual_seed(0)
    cases = [(log_of_shapes(), 0.1), (log_of_shapes(2.0), 0.05),
             (torch.randn(3, 15, 19, generator=g) * 0.2, 0.15), (torch.randn(1, 12, 9, generator=g), 0.5)]
    for response, threshold in cases:
        shape = tuple(response.shape)
        got = crossings(response.clone(), threshold)
        if not isinstance(got, torch.Tensor):
            raise Mistake(f"my_zero_crossings should return a bool tensor [H, W], got {type(got).__name__}")
        if tuple(got.shape) == shape and shape[0] > 1:
            raise Mistake(f"my_zero_crossings returns one mask per channel {list(got.shape)}: a pixel is an edge pixel "
                          "if it is one in any channel — combine the channels with .any(dim=0) → [H, W]")
        expect_shape(got, shape[1:], f"my_zero_crossings(response {list(shape)}, {threshold})")
        got = got.bool()
        variants = {
            "marks |LoG| > threshold — the thick bands on both sides of every edge; mark instead the pairs of "
            "neighbours whose values have opposite signs": lambda: _crossings(response, threshold, band=True),
            "only pairs of horizontal neighbours (along x) are marked: compare each pixel with the one below it too":
                lambda: _crossings(response, threshold, dims=(2,)),
            "only pairs of vertical neighbours (along y) are marked: compare each pixel with the one to its right too":
                lambda: _crossings(response, threshold, dims=(1,)),
            "only one pixel of each pair is marked: mark both pixels of a crossing pair (the outline is two "
            "pixels thick, one on each side of the edge)": lambda: _crossings(response, threshold, both=False),
            "the threshold is ignored: a pair counts only if its two values differ by more than the threshold "
            "(that keeps the tiny sign flips of noise out)": lambda: _crossings(response, threshold, use_threshold=False),
            "only the first channel is used: a pixel is an edge pixel if it is one in ANY channel (.any(dim=0))":
                lambda: _crossings(response, threshold, combine="first"),
            "the channels are combined with all(): a pixel is an edge pixel if it is one in ANY channel":
                lambda: _crossings(response, threshold, combine="all"),
        }
        expected = _crossings(response, threshold)
        if torch.equal(got, expected):
            continue
        for message, wrong in variants.items():
            if torch.equal(got, wrong()) and not torch.equal(wrong(), expected):
                raise Mistake(message)
        raise Mistake(f"my_zero_crossings differs from the lesson's rule on {int((got != expected).sum())} pixels: "
                      "mark both pixels of every horizontal or vertical pair with opposite signs (> 0 counts as "
                      "positive) whose values differ by more than the threshold, in any channel")


# ------------------------------------------------------------------------------------ 5. erosion and closing
def test_masks() -> list[torch.Tensor]:
    """Masks for the morphology checks: random ones, a square touching the border, real edges."""
    g = torch.Generator().manual_seed(0)
    masks = [torch.rand(30, 40, generator=g) > p for p in (0.3, 0.6, 0.8)]
    corner = torch.zeros(12, 14, dtype=torch.bool)
    corner[:5, :6] = True
    gap = torch.zeros(15, 20, dtype=torch.bool)
    gap[4:11, 3:8] = gap[4:11, 9:15] = True  # two blocks one pixel apart
    return [*masks, corner, gap, classical.zero_crossings(log_of_shapes(), 0.1)]


def _dilate(mask: torch.Tensor, k: int) -> torch.Tensor:
    return F.max_pool2d(mask[None, None].float(), k, stride=1, padding=k // 2)[0, 0] > 0.5


def _erode_outside_off(mask: torch.Tensor, k: int) -> torch.Tensor:
    r = k // 2
    padded = F.pad(mask[None, None].float(), (r, r, r, r), value=0.0)
    return -F.max_pool2d(-padded, k, stride=1)[0, 0] > 0.5


def _as_mask(value: object, what: str, shape: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise Mistake(f"{what} should return a bool tensor [H, W], got {type(value).__name__}")
    expect_shape(value, shape, what)
    return value.bool() if value.dtype == torch.bool else value > 0.5


def _name_the_mistake(got: list[torch.Tensor], expected: list[torch.Tensor],
                      variants: dict[str, Callable[[int], torch.Tensor]], otherwise: Callable[[int], str]) -> None:
    """Pass if every mask in ``got`` equals ``expected``; else raise the message of the first variant that
    gives every one of them (``variants``: message → case index → wrong answer), or ``otherwise(first wrong case)``."""
    if all(torch.equal(a, b) for a, b in zip(got, expected)):
        return
    for message, wrong in variants.items():
        if all(torch.equal(a, wrong(i)) for i, a in enumerate(got)):
            raise Mistake(message)
    raise Mistake(otherwise(next(i for i, (a, b) in enumerate(zip(got, expected)) if not torch.equal(a, b))))


@exercise("erode", "10", fallback=classical.erode)
def check_erode(erode: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """``my_erode(mask [H, W] bool, k)`` → ``[H, W]`` bool: on where the whole k×k square is on."""
    cases = [(mask, k) for k in (3, 5, 1) for mask in test_masks()]
    got = [_as_mask(erode(m.clone(), k), f"my_erode(mask {list(m.shape)}, {k})", tuple(m.shape)) for m, k in cases]
    _name_the_mistake(got, [classical.erode(m, k) for m, k in cases], {
        "this is a dilation (the mask grows): erosion is the dilation of the background, ~dilate(~mask)":
            lambda i: _dilate(*cases[i]),
        "yours returns the dilated background; negate it once more: ~dilate(~mask)":
            lambda i: _dilate(~cases[i][0], cases[i][1]),
        "pixels outside the image count as off, so a blob touching the border is eaten away from there; outside "
        "must count as on (max_pool2d on ~mask pads with −∞, which never wins)": lambda i: _erode_outside_off(*cases[i]),
    }, lambda i: (f"k = {cases[i][1]}: my_erode differs from the erosion: a pixel stays on only if every pixel of "
                  "its k×k square is on (outside the image counts as on)"))


def _closing(mask: torch.Tensor, k: int, order: str = "dilate-erode", pad: bool = True) -> torch.Tensor:
    r = k // 2
    height, width = mask.shape
    x = F.pad(mask, (r, r, r, r)) if pad else mask
    first, second = (classical.dilate, classical.erode) if order == "dilate-erode" else (classical.erode, classical.dilate)
    out = second(first(x, k), k)
    return out[r:r + height, r:r + width] if pad else out


@exercise("closing", "10", fallback=classical.closing)
def check_closing(closing: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """``my_closing(mask [H, W] bool, k)`` → ``[H, W]`` bool: dilate, then erode, with the mask padded by k // 2."""
    cases = [(mask, k) for k in (3, 5) for mask in test_masks()]
    got = [_as_mask(closing(m.clone(), k), f"my_closing(mask {list(m.shape)}, {k})", tuple(m.shape)) for m, k in cases]
    _name_the_mistake(got, [classical.closing(m, k) for m, k in cases], {
        "erosion first, then dilation — that is an opening (it removes small specks); closing is dilation first, "
        "then erosion": lambda i: _closing(*cases[i], order="erode-dilate"),
        "erosion first, then dilation (and no padding) — that is an opening; closing is dilation first, then erosion":
            lambda i: _closing(*cases[i], order="erode-dilate", pad=False),
        "only dilated: closing is a dilation followed by an erosion with the same k": lambda i: _dilate(*cases[i]),
        "blobs touching the border grow there: the erosion counts outside as on, so pad the mask with k // 2 off "
        "pixels on every side (F.pad), close it, and crop the padding off again": lambda i: _closing(*cases[i], pad=False),
    }, lambda i: f"k = {cases[i][1]}: my_closing differs from dilate-then-erode (mask padded by k // 2, then cropped)")


# ------------------------------------------------------------------------------------ 6. connected components
def same_blobs(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Do two ``[H, W]`` labellings (0 = off) split the pixels into the same blobs?"""
    if not torch.equal(a > 0, b > 0):
        return False
    pairs = torch.unique(torch.stack([a.flatten().double(), b.flatten().double()]), dim=1)
    return pairs.shape[1] == len(torch.unique(a)) == len(torch.unique(b))


def refines(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Does every blob of labelling ``a`` lie inside one blob of ``b`` (same "on" pixels)?"""
    if not torch.equal(a > 0, b > 0):
        return False
    pairs = torch.unique(torch.stack([a.flatten().double(), b.flatten().double()]), dim=1)
    return pairs.shape[1] == len(torch.unique(a))


def four_connected(mask: torch.Tensor) -> torch.Tensor:
    """Label propagation with the 4 horizontal and vertical neighbours only (the wrong connectivity here)."""
    on = mask.double()
    labels = torch.arange(1, mask.numel() + 1, dtype=torch.float64).view(mask.shape) * on
    while True:
        padded = F.pad(labels, (1, 1, 1, 1))
        spread = torch.stack([labels, padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]).amax(0) * on
        if torch.equal(spread, labels):
            return labels
        labels = spread


def component_masks() -> list[torch.Tensor]:
    """Masks for the components check: diagonal neighbours, a long snake, real edges, random masks."""
    two_dots = torch.zeros(5, 5, dtype=torch.bool)
    two_dots[1, 1] = two_dots[2, 2] = True
    snake = torch.zeros(21, 21, dtype=torch.bool)
    snake[::4, 1:-1] = True
    for row in range(0, 17, 4):
        snake[row:row + 5, -2 if row % 8 == 0 else 1] = True
    separate = torch.zeros(9, 12, dtype=torch.bool)
    separate[1:4, 1:4] = separate[5:8, 6:11] = separate[1, 8:11] = True
    g = torch.Generator().manual_seed(1)
    return [two_dots, separate, snake, classical.zero_crossings(log_of_shapes(), 0.1),
            *(torch.rand(30, 40, generator=g) > p for p in (0.55, 0.7))]


@exercise("connected_components", "10", fallback=classical.connected_components)
def check_connected_components(components: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``my_connected_components(mask [H, W] bool)`` → ``[H, W]`` numbers: one per 8-connected blob, 0 off the mask."""
    for i, mask in enumerate(component_masks()):
        got = as_tensor(components(mask.clone()), "my_connected_components")
        expect_shape(got, tuple(mask.shape), f"my_connected_components(mask {list(mask.shape)})")
        expected = classical.connected_components(mask)
        if same_blobs(got, expected):
            continue
        if not torch.equal(got > 0, mask):
            raise Mistake("pixels off the mask got a number (or on pixels got 0): the numbers leak through the "
                          "background and merge separate blobs — multiply by the mask after every max-pool")
        if same_blobs(got, four_connected(mask)):
            raise Mistake("diagonal neighbours end up in different blobs: that is 4-connectivity; the lesson's blobs "
                          "are 8-connected — take the largest number over the whole 3×3 square")
        if refines(got, expected):
            raise Mistake(f"mask {i}: some blobs still carry several numbers — the propagation stopped too early; "
                          "repeat the max-pool until nothing changes")
        raise Mistake(f"mask {i}: your blobs differ from the 8-connected blobs of the mask")


declare("10", "box_from_mask", "score_by_area")
