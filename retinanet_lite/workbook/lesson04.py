"""Lesson 04's exercises: one row per anchor, the subnets, the prior-probability bias, the loss at start."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torchvision.models.detection.retinanet import RetinaNetClassificationHead, RetinaNetRegressionHead

from .. import heads as H
from ..losses import focal_loss
from .core import Mistake, declare, exercise
from .diagnose import as_tensor, close, diagnose, expect_shape


def _flatten_variants(x: torch.Tensor, outputs: int) -> dict[str, Callable[[], torch.Tensor]]:
    """The usual wrong ways to turn ``x`` [B, A·C, H, W] into rows, each as message → function."""
    batch, _, height, width = x.shape
    return {
        "it reshapes without permuting the channels last: x.reshape(B, −1, C) reads the numbers in memory "
        "order (channel by channel, each over the whole grid), so a row mixes different anchors and cells and the "
        "anchors are scrambled — view the channels as [A, C], permute to (B, H, W, A, C), then reshape":
            lambda: x.reshape(batch, -1, outputs),
        "the channels are read as [C, A] (class-major), but the convolution keeps each anchor's C outputs "
        "together (channels a·C … a·C + C − 1): view them as [B, A, C, H, W]":
            lambda: x.view(batch, outputs, -1, height, width).permute(0, 3, 4, 2, 1).reshape(batch, -1, outputs),
        "the rows are anchor-major (a, then y, then x), but make_anchors goes cell by cell with the A anchors of "
        "a cell next to each other: permute to (B, H, W, A, C), not (B, A, H, W, C)":
            lambda: x.view(batch, -1, outputs, height, width).permute(0, 1, 3, 4, 2).reshape(batch, -1, outputs),
        "x and y are swapped: the rows go column by column, but make_anchors is row-major (row y, then column x) "
        "— permute to (B, H, W, A, C), not (B, W, H, A, C)":
            lambda: x.view(batch, -1, outputs, height, width).permute(0, 4, 3, 1, 2).reshape(batch, -1, outputs),
    }


@exercise("flatten_level", "04", fallback=H.flatten_level)
def check_flatten_level(flatten_level: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """``flatten_level(x [B, A·C, H, W], C)`` → ``[B, H·W·A, C]``; row ``(y·W + x)·A + a`` = anchor a of
    cell (y, x)."""
    g = torch.Generator().manual_seed(0)
    for batch, anchors, outputs, height, width in [(2, 9, 3, 5, 7), (1, 3, 4, 4, 6), (2, 9, 4, 1, 2)]:
        x = torch.randn(batch, anchors * outputs, height, width, generator=g)
        what = f"my_flatten_level(x [{batch}, {anchors * outputs}, {height}, {width}], {outputs})"
        got = as_tensor(flatten_level(x, outputs), what)
        if tuple(got.shape) == (batch, height, width, anchors, outputs):
            raise Mistake(f"{what} returns [B, H, W, A, C]: reshape it to [B, H·W·A, C], one row per anchor")
        expect_shape(got, (batch, height * width * anchors, outputs), what)
        diagnose(got, H.flatten_level(x, outputs), _flatten_variants(x, outputs),
                 f"{what}: row (y·W + x)·A + a must hold the C outputs of anchor a at cell (y, x), and yours do not")


def _subnet_layers_mistake(subnet: nn.Module, channels: int, num_anchors: int, outputs: int, num_convs: int) -> None:
    """A Mistake naming what is wrong with the layers of ``subnet`` (attributes ``tower`` and ``predict``)."""
    tower, predict = getattr(subnet, "tower", None), getattr(subnet, "predict", None)
    if not isinstance(tower, nn.Sequential):
        raise Mistake("MySubnet needs an attribute tower, an nn.Sequential(conv, ReLU, conv, ReLU, …): the package's "
                      "weights are copied in by name")
    if not isinstance(predict, nn.Conv2d):
        raise Mistake("MySubnet needs an attribute predict, the last nn.Conv2d (the package's weights are copied in "
                      "by name)")
    layers = list(tower)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    relus = [m for m in layers if isinstance(m, nn.ReLU)]
    if len(convs) != num_convs:
        raise Mistake(f"MySubnet(…, num_convs={num_convs}) has {len(convs)} convolutions in its tower: it needs "
                      f"num_convs (the paper's default is 4) conv 3×3 + ReLU pairs before predict")
    if not relus:
        raise Mistake("the tower has no ReLU: put an nn.ReLU() after each convolution (without them the tower's "
                      "convolutions collapse into one linear map)")
    if len(layers) != 2 * num_convs or any(not isinstance(m, nn.Conv2d if i % 2 == 0 else nn.ReLU)
                                           for i, m in enumerate(layers)):
        raise Mistake(f"the tower's layers are {[type(m).__name__ for m in layers]}: they must alternate conv, ReLU, "
                      f"conv, ReLU, … ({num_convs} of each, nothing else)")
    for conv in convs:
        if (conv.in_channels, conv.out_channels) != (channels, channels):
            raise Mistake(f"a tower convolution maps {conv.in_channels} → {conv.out_channels} channels: every tower "
                          f"convolution keeps the d = {channels} channels of the pyramid")
    for conv, what in [*((c, "a tower convolution") for c in convs), (predict, "the last convolution (predict)")]:
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1):
            raise Mistake(f"{what} has kernel {conv.kernel_size}, padding {conv.padding}, stride {conv.stride}: the "
                          f"subnets use 3×3 convolutions with padding=1 (and stride 1), so every cell keeps its place")
    if predict.in_channels != channels:
        raise Mistake(f"the last convolution takes {predict.in_channels} channels: it reads the tower's d = {channels}")
    if predict.out_channels == outputs:
        raise Mistake(f"the last convolution has {outputs} channels, one set of outputs for the whole cell: a cell "
                      "holds num_anchors anchors, so it needs num_anchors · outputs channels (K·A, or 4·A for "
                      "boxes)")
    if predict.out_channels != num_anchors * outputs:
        raise Mistake(f"the last convolution has {predict.out_channels} channels; it needs num_anchors · outputs = "
                      f"{num_anchors * outputs}")


def _reference_subnet(channels: int, num_anchors: int, outputs: int, num_convs: int, seed: int) -> H.Subnet:
    """The package's subnet with weights large enough that every layer matters (std ≈ He, biases ±0.1)."""
    reference = H.Subnet(channels, num_anchors, outputs, num_convs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) * math.sqrt(2 / (9 * channels)))
                module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.1)
    return reference


@exercise("subnet", "04", fallback=H.Subnet,
          forbidden=(H.classification_head, H.regression_head, H._tower, RetinaNetClassificationHead,
                     RetinaNetRegressionHead))
def check_subnet(subnet_class: type) -> None:
    """``MySubnet(channels, num_anchors, outputs, num_convs=4)``: ``tower`` + ``predict``; forward(list of
    [B, d, H, W]) → [B, Σ H·W·A, outputs]."""
    ready_made = (H.Subnet, RetinaNetClassificationHead, RetinaNetRegressionHead)
    if isinstance(subnet_class, type) and issubclass(subnet_class, ready_made):
        base = next(c for c in ready_made if issubclass(subnet_class, c))
        raise Mistake(f"MySubnet subclasses {base.__module__}.{base.__qualname__}, a ready-made version of this "
                      f"exercise; write it yourself (subclass nn.Module)")
    channels, num_anchors, outputs = 16, 3, 5
    with torch.random.fork_rng():  # building the subnets draws random weights: leave the lesson's generator alone
        _subnet_layers_mistake(subnet_class(channels, num_anchors, outputs), channels, num_anchors, outputs, 4)
        mine = subnet_class(channels, num_anchors, outputs, num_convs=2)
        reference = _reference_subnet(channels, num_anchors, outputs, 2, seed=0)
    _subnet_layers_mistake(mine, channels, num_anchors, outputs, 2)
    try:
        mine.load_state_dict(reference.state_dict())
    except RuntimeError as error:
        raise Mistake("the package's weights do not fit MySubnet (keep the layers tower = nn.Sequential(conv, ReLU, "
                      f"…) and predict, and no other parameters): {str(error).splitlines()[0]}") from None
    g = torch.Generator().manual_seed(1)
    features = [torch.randn(2, channels, h, w, generator=g) for h, w in [(5, 7), (3, 4), (1, 2)]]
    rows = sum(h * w for h, w in [(5, 7), (3, 4), (1, 2)]) * num_anchors
    with torch.no_grad():
        try:
            got = as_tensor(mine(features), "MySubnet(features)")
        except NotImplementedError:
            raise
        except RuntimeError as error:
            raise Mistake(f"MySubnet(features) crashes on three levels of different sizes ({error}): run tower and "
                          "predict on each level, flatten each to [B, H·W·A, outputs] and concatenate them along "
                          "dim=1 (the rows), not dim=0 (the images)") from None
        expected = reference(features)
        if tuple(got.shape) == (2 * 3, 5 * 7 * num_anchors, outputs) or got.shape[0] != 2:
            raise Mistake(f"MySubnet(features) has shape {list(got.shape)}: concatenate the levels' rows along dim=1 "
                          f"(the anchors), not dim=0 (the images) — expected [2, {rows}, {outputs}]")
        expect_shape(got, (2, rows, outputs), "MySubnet(3 levels of [2, 16, H, W]) with 3 anchors and 5 outputs")
        diagnose(got, expected, {
            "there is a ReLU after the last convolution: logits and box offsets must be able to be negative — only "
            "the tower's convolutions are followed by a ReLU": lambda: expected.clamp(min=0),
            "the levels come out in reverse order: P3's rows come first (the order of make_anchors), so "
            "concatenate the levels in the order of the list": lambda: torch.cat(
                [H.flatten_level(reference.predict(reference.tower(f)), outputs) for f in features[::-1]], dim=1),
            "the tower is skipped: predict must run on tower(feature), not on the feature itself": lambda: torch.cat(
                [H.flatten_level(reference.predict(f), outputs) for f in features], dim=1),
        }, "MySubnet with the package's weights disagrees with retinanet_lite.heads.Subnet on three levels", atol=1e-4)


@exercise("prior_bias", "04", fallback=H.prior_bias)
def check_prior_bias(prior_bias: Callable[[float], float]) -> None:
    """``my_prior_bias(π)`` → the float b with sigmoid(b) = π, i.e. b = −log((1 − π)/π)."""
    for prior in (0.01, 0.1, 1e-4, 0.5, 0.9):
        got = prior_bias(prior)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise Mistake(f"my_prior_bias({prior}) should return a number, got {type(got).__name__}") from None
        diagnose(got, -math.log((1 - prior) / prior), {
            "the sign is flipped: b = −log((1 − π)/π) ≈ −4.6 for π = 0.01; with +4.6 every probability "
            "starts at 0.99 instead of 0.01": lambda: math.log((1 - prior) / prior),
            "b = log(π) only: that is the log of the probability, not the logit (σ(log 0.01) ≈ 0.0099 only by "
            "luck, and σ(log 0.5) = 0.38) — b = −log((1 − π)/π)": lambda: math.log(prior),
            "b = −log(π): that is minus the log of the probability, not the logit — b = −log((1 − π)/π)":
                lambda: -math.log(prior),
            "the log is base 10: the sigmoid uses e, so take the natural log (math.log)":
                lambda: -math.log10((1 - prior) / prior),
        }, f"sigmoid(my_prior_bias({prior})) = {1 / (1 + math.exp(-got)) if abs(got) < 700 else float('nan'):.6g}, "
           f"not {prior}: b must solve σ(b) = π")


def make_heads(channels: int, num_anchors: int, num_classes: int, num_convs: int = 4,
               prior: float = 0.01) -> tuple[H.Subnet, H.Subnet]:
    """The package's (classification, regression) subnets: weights N(0, 0.01²), biases 0, the class
    subnet's last bias ``prior_bias(prior)`` (the lesson's ``make_heads``, as the package builds them)."""
    return (H.classification_head(channels, num_anchors, num_classes, num_convs, prior=prior),
            H.regression_head(channels, num_anchors, num_convs))


def _convs(subnet: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(name, m) for name, m in subnet.named_modules() if isinstance(m, nn.Conv2d)]


@exercise("make_heads", "04", fallback=make_heads,
          forbidden=(H.classification_head, H.regression_head, RetinaNetClassificationHead, RetinaNetRegressionHead))
def check_make_heads(make: Callable[..., tuple[nn.Module, nn.Module]]) -> None:
    """``make_heads(channels, num_anchors, num_classes, num_convs, prior)`` → (classification, regression)."""
    channels, num_anchors, num_classes, prior = 32, 3, 5, 0.01
    b = -math.log((1 - prior) / prior)
    with torch.random.fork_rng():
        result = make(channels, num_anchors, num_classes, 2, prior)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise Mistake("make_heads should return a tuple (classification subnet, regression subnet)")
    classification, regression = result
    for subnet, outputs, what in [(classification, num_classes, "classification"), (regression, 4, "regression")]:
        if not isinstance(subnet, nn.Module) or not isinstance(getattr(subnet, "predict", None), nn.Conv2d):
            raise Mistake(f"the {what} subnet should be a MySubnet (an nn.Module with a last convolution predict)")
        if subnet.predict.out_channels != num_anchors * outputs:
            swapped = subnet.predict.out_channels == num_anchors * (4 if outputs == num_classes else num_classes)
            raise Mistake(f"the {what} subnet's last convolution has {subnet.predict.out_channels} channels, not "
                          f"A·{'K' if outputs == num_classes else '4'} = {num_anchors * outputs}"
                          + (": the two subnets are swapped (classification first, with K outputs per anchor)"
                             if swapped else ""))
    class_bias, box_bias = classification.predict.bias.detach(), regression.predict.bias.detach()
    if close(box_bias, torch.full_like(box_bias, b)) and not close(class_bias, torch.full_like(class_bias, b)):
        raise Mistake("the prior bias is set on the regression head: it belongs in the classification subnet's last "
                      "convolution (it makes the class probabilities start at π); the box biases stay 0")
    if close(class_bias, torch.full_like(class_bias, -b)):
        raise Mistake(f"the class bias is +{b:.2f}: the sign is flipped, every probability starts at 0.99 — "
                      f"b = −log((1 − π)/π) ≈ {b:.2f}")
    if close(class_bias, torch.zeros_like(class_bias)):
        raise Mistake("the classification subnet's last bias is 0, so every class probability starts at 0.5: set it "
                      "to my_prior_bias(prior) (nn.init.constant_)")
    if not close(class_bias, torch.full_like(class_bias, b), atol=1e-4):
        raise Mistake(f"the classification subnet's last bias should be my_prior_bias({prior}) = {b:.4f} everywhere, "
                      f"got values from {class_bias.min():.4f} to {class_bias.max():.4f}")
    if close(box_bias, torch.full_like(box_bias, b)):
        raise Mistake("the regression subnet's last bias is the prior bias too: only the classification subnet "
                      "gets it; the box biases stay 0 so that predicted boxes start on their anchors")
    for subnet, what in [(classification, "classification"), (regression, "regression")]:
        for name, conv in _convs(subnet):
            weight = conv.weight.detach()
            if not 0.008 < float(weight.std()) < 0.012 or abs(float(weight.mean())) > 0.002:
                raise Mistake(f"the {what} subnet's convolution {name} has weights with std {float(weight.std()):.4f}: "
                              "draw every weight from N(0, 0.01²) — nn.init.normal_(conv.weight, std=0.01) — "
                              "instead of PyTorch's default initialisation")
            if conv is classification.predict or conv.bias is None:
                continue
            if close(conv.bias.detach(), torch.full_like(conv.bias.detach(), b)):
                raise Mistake(f"the {what} subnet's {name} bias is the prior bias too: only the classification "
                              "subnet's last convolution gets it, the others start at 0")
            if not close(conv.bias.detach(), torch.zeros_like(conv.bias.detach())):
                raise Mistake(f"the {what} subnet's convolution {name} keeps PyTorch's random bias: set every bias "
                              "to 0 (nn.init.zeros_) except the class subnet's last one")
    features = [torch.randn(2, channels, 6, 6, generator=torch.Generator().manual_seed(2))]
    with torch.no_grad():
        mean = float(torch.sigmoid(classification(features)).mean())
    if abs(mean - prior) > 0.2 * prior:
        raise Mistake(f"the untrained classification subnet's probabilities average {mean:.4f}, not π = {prior}")


def initial_loss(prior: float, num_anchors: int, num_classes: int, num_positives: int,
                 alpha: float = -1.0, gamma: float = 0.0) -> tuple[float, float]:
    """(loss from positives, loss from background) / P when every probability is ``prior``, from the
    package's ``focal_loss`` on one positive and one negative output (the lesson's ``initial_loss``)."""
    logits = torch.full((2,), H.prior_bias(prior), dtype=torch.float64)
    per_output = focal_loss(logits, torch.tensor([1.0, 0.0], dtype=torch.float64), alpha, gamma)
    negatives = num_anchors * num_classes - num_positives
    return float(per_output[0]), float(per_output[1]) * negatives / num_positives


def _initial_loss_variants(prior: float, n: int, k: int, p: int, alpha: float, gamma: float) -> dict:
    """The usual wrong formulas for (positive, background) / P, each as message → function."""
    def formula(a_pos, a_neg, f_pos, f_neg, negatives, divide_by, log=math.log):
        return (-a_pos * f_pos * log(prior) * p / divide_by, -a_neg * f_neg * log(1 - prior) * negatives / divide_by)

    a_pos, a_neg = (alpha, 1 - alpha) if alpha >= 0 else (1.0, 1.0)
    f_pos, f_neg = (1 - prior) ** gamma, prior**gamma
    right = dict(a_pos=a_pos, a_neg=a_neg, f_pos=f_pos, f_neg=f_neg, negatives=n * k - p, divide_by=p)
    return {
        "the losses are not divided by the number of positives P: RetinaNet sums the loss over all outputs and "
        "divides by P": lambda: formula(**{**right, "divide_by": 1}),
        "the losses are divided by all N·K outputs, not by the number of positives P (that normalisation is what "
        "makes the background look harmless)": lambda: formula(**{**right, "divide_by": n * k}),
        "there are N·K − P negatives, not N·K: P of the N·K outputs are positive": lambda: formula(
            **{**right, "negatives": n * k}),
        "the α-weighting is missing: a positive is weighted by α, a negative by 1 − α": lambda: formula(
            **{**right, "a_pos": 1.0, "a_neg": 1.0}),
        "the negatives are weighted by α: they get 1 − α (positives get α)": lambda: formula(
            **{**right, "a_neg": a_pos}),
        "alpha < 0 means no α-weighting (α_t = 1 for both kinds); alpha = −1, gamma = 0 is plain cross-entropy":
            lambda: formula(**{**right, "a_pos": alpha, "a_neg": 1 - alpha}),
        "the focusing factors are swapped: a positive is weighted by (1 − p)^γ (it is easy when p is near 1), a "
        "negative by p^γ": lambda: formula(**{**right, "f_pos": f_neg, "f_neg": f_pos}),
        "the focusing factor is missing: a positive is weighted by (1 − p)^γ, a negative by p^γ": lambda: formula(
            **{**right, "f_pos": 1.0, "f_neg": 1.0}),
        "the log is base 10: cross-entropy uses the natural log (math.log)": lambda: formula(**right, log=math.log10),
        "the two numbers are returned in the wrong order: (loss from positives, loss from background)":
            lambda: formula(**right)[::-1],
    }


#: (prior, N, K, P, alpha, gamma): small N·K so that N·K − P differs from N·K, and the lesson's settings.
INITIAL_LOSS_CASES = [(0.01, 50, 3, 10, -1.0, 0.0), (0.5, 50, 3, 10, -1.0, 0.0), (0.01, 50, 3, 10, 0.25, 2.0),
                      (0.5, 50, 3, 10, 0.25, 2.0), (0.2, 1000, 80, 7, 0.25, 1.5), (0.01, 120087, 80, 100, 0.25, 2.0)]


@exercise("initial_loss", "04", fallback=initial_loss, forbidden=(focal_loss,))
def check_initial_loss(initial: Callable[..., tuple[float, float]]) -> None:
    """``initial_loss(prior, num_anchors, num_classes, num_positives, alpha, gamma)`` → (positive, background)."""
    for prior, n, k, p, alpha, gamma in INITIAL_LOSS_CASES:
        what = f"initial_loss({prior}, {n}, {k}, {p}, alpha={alpha}, gamma={gamma})"
        got = initial(prior, n, k, p, alpha, gamma)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise Mistake(f"{what} should return two numbers: (loss from positives, loss from background)")
        got = as_tensor([float(v) for v in got], what)
        expected = torch.tensor(initial_loss(prior, n, k, p, alpha, gamma), dtype=torch.float64)
        diagnose(got, expected, {m: (lambda f=f: torch.tensor(f(), dtype=torch.float64))
                                 for m, f in _initial_loss_variants(prior, n, k, p, alpha, gamma).items()},
                 f"{what} = ({got[0]:.6g}, {got[1]:.6g}), but focal_loss on the full tensor gives "
                 f"({expected[0]:.6g}, {expected[1]:.6g})")


declare("04", "head_parameters", "anchor_of_row")
