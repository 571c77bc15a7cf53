"""Lesson 03's exercises: the FPN's top-down pathway, the whole FPN (P3–P7), and the FLOPs of a convolution."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from ..fpn import PyramidFeatures
from .core import Mistake, declare, exercise
from .diagnose import as_tensor, close, diagnose

#: Spatial sizes (h, w) of C3, C4, C5 for the checks' inputs: 128×128 (multiples of 32), then 200×300 and
#: 97×131, where C5 doubled is one row or column larger than C4.
INPUT_SIZES = [(128, 128), (200, 300), (97, 131)]


def c_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """(h, w) of C3, C4, C5 for a height × width input: ceil(H / 2^l) × ceil(W / 2^l)."""
    return [(math.ceil(height / 2 ** level), math.ceil(width / 2 ** level)) for level in (3, 4, 5)]


def top_down_pathway(laterals: list[Tensor]) -> list[Tensor]:
    """``[L3, L4, L5]`` (the lateral 1×1 convs' outputs, each ``[B, d, h_l, w_l]``) → ``[T3, T4, T5]``:
    ``T5 = L5``, ``T_l = L_l + up(T_{l+1})`` with nearest-neighbour upsampling to ``L_l``'s exact size."""
    l3, l4, l5 = laterals
    t4 = l4 + F.interpolate(l5, size=l4.shape[-2:], mode="nearest")
    t3 = l3 + F.interpolate(t4, size=l3.shape[-2:], mode="nearest")
    return [t3, t4, l5]


def _up(x: Tensor, like: Tensor, mode: str) -> Tensor:
    if mode == "nearest":
        return F.interpolate(x, size=like.shape[-2:], mode="nearest")
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def _top_down(laterals: list[Tensor], *, mode: str = "nearest", carry: bool = True, lateral: bool = True,
              top_down: bool = True) -> list[Tensor]:
    """The top-down pathway, right (the defaults) or with one of the usual mistakes."""
    l3, l4, l5 = laterals
    if not top_down:
        return [l3, l4, l5]
    if not lateral:
        t4 = _up(l5, l4, mode)
        return [_up(t4, l3, mode), t4, l5]
    t4 = l4 + _up(l5, l4, mode)
    return [l3 + _up(t4 if carry else l4, l3, mode), t4, l5]


def _random_laterals(height: int, width: int, channels: int, seed: int) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, channels, h, w, generator=g) for h, w in c_sizes(height, width)]


def _size_mistake(what: str, height: int, width: int, error: Exception | None = None) -> Mistake:
    (h3, w3), (h4, w4), (h5, w5) = c_sizes(height, width)
    crashed = f" (it crashed: {error})" if error is not None else ""
    return Mistake(f"{what} works on a 128×128 input but not on {height}×{width}{crashed}: upsampling is to the "
                   f"wrong size — here C5 is {h5}×{w5}, C4 {h4}×{w4} and C3 {h3}×{w3}, so doubling does not fit; "
                   "upsample to the size of the lateral map you add it to: F.interpolate(x, size=lateral.shape[-2:], "
                   "mode=\"nearest\")")


@exercise("fpn_top_down", "03", fallback=top_down_pathway, forbidden=(PyramidFeatures, FeaturePyramidNetwork))
def check_top_down(top_down: Callable[[list[Tensor]], list[Tensor]]) -> None:
    """``top_down([L3, L4, L5])`` → ``[T3, T4, T5]``, each the size of its lateral map."""
    for number, (height, width) in enumerate(INPUT_SIZES):
        laterals = _random_laterals(height, width, channels=4, seed=number)
        try:
            got = top_down([x.clone() for x in laterals])
        except RuntimeError as error:
            if number:
                raise _size_mistake("top_down", height, width, error) from None
            raise
        if not isinstance(got, (list, tuple)) or len(got) != 3:
            raise Mistake(f"top_down should return a list of three maps [T3, T4, T5], got "
                          f"{len(got) if isinstance(got, (list, tuple)) else type(got).__name__}")
        got = [as_tensor(t, "top_down") for t in got]
        shapes = [tuple(t.shape) for t in got]
        expected_shapes = [tuple(x.shape) for x in laterals]
        if shapes == expected_shapes[::-1]:
            raise Mistake("top_down returns [T5, T4, T3]: return the finest map first, [T3, T4, T5]")
        if shapes != expected_shapes:
            if number:
                raise _size_mistake("top_down", height, width)
            raise Mistake(f"top_down([L3, L4, L5]) should return maps of the laterals' shapes {expected_shapes}, "
                          f"got {shapes}")
        for level, index in ((5, 2), (4, 1), (3, 0)):
            diagnose(got[index], _top_down(laterals)[index], {
                f"T{level} is just L{level}: nothing comes down from the coarser levels — T_l = L_l + up(T_(l+1))":
                    lambda: _top_down(laterals, top_down=False)[index],
                f"T{level} has no lateral connection: add L{level} (C{level} through its 1×1 conv) to the "
                f"upsampled coarser map": lambda: _top_down(laterals, lateral=False)[index],
                "T3 adds the upsampled L4, not T4: carry the running sum down (T4 already holds C5's features), "
                "T3 = L3 + up(T4)": lambda: _top_down(laterals, carry=False)[index],
                "the upsampling is bilinear: the FPN uses nearest-neighbour upsampling (mode=\"nearest\")":
                    lambda: _top_down(laterals, mode="bilinear")[index],
            }, f"T{level} for a {height}×{width} input disagrees with L{level} + up(T{level + 1}) "
               "(nearest-neighbour upsampling to L's size)")


# --- the whole FPN -----------------------------------------------------------------------------------

NAMES = ("lateral3", "lateral4", "lateral5", "smooth3", "smooth4", "smooth5", "p6", "p7")


def _reference(in_channels: tuple[int, int, int], channels: int, seed: int) -> PyramidFeatures:
    """The package's FPN with random weights *and biases* (its biases start at 0, which hides mistakes)."""
    torch.manual_seed(seed)
    reference = PyramidFeatures(in_channels, channels).eval()
    with torch.no_grad():
        for conv in reference.modules():
            if isinstance(conv, nn.Conv2d):
                conv.bias.uniform_(-0.5, 0.5)
    return reference


def _pyramid(ref: PyramidFeatures, features: list[Tensor], *, p6_from: str = "c5", relu: str = "before_p7",
             smooth: bool = True, lateral: bool = True, carry: str = "sum", mode: str = "nearest") -> list[Tensor]:
    """P3–P7 computed with ``ref``'s weights, right (the defaults) or with one of the usual mistakes."""
    c3, c4, c5 = features
    l3, l4, l5 = (ref.lateral3(c3), ref.lateral4(c4), ref.lateral5(c5)) if lateral else (c3, c4, c5)
    if carry == "smoothed":  # the top-down path carries P (after the 3×3 conv) instead of T
        p5 = ref.smooth5(l5)
        p4 = ref.smooth4(l4 + _up(p5, l4, mode))
        p3 = ref.smooth3(l3 + _up(p4, l3, mode))
    else:
        t3, t4, t5 = _top_down([l3, l4, l5], mode=mode)
        p3, p4, p5 = (ref.smooth3(t3), ref.smooth4(t4), ref.smooth5(t5)) if smooth else (t3, t4, t5)
    p6 = ref.p6({"c5": c5, "p5": p5}[p6_from])
    p7 = ref.p7({"before_p7": F.relu(p6), "none": p6}.get(relu, F.relu(p6)))
    if relu == "after_p6":  # P6 itself returned after the ReLU
        p6 = F.relu(p6)
    return [p3, p4, p5, p6, p7]


def _check_structure(model: nn.Module, in_channels: tuple[int, int, int], channels: int) -> None:
    """The eight convolutions, with the names and shapes the package uses (so its weights can be copied)."""
    c3, c4, c5 = in_channels
    expected = {"lateral3": (c3, channels, 1, 1), "lateral4": (c4, channels, 1, 1), "lateral5": (c5, channels, 1, 1),
                "smooth3": (channels, channels, 3, 1), "smooth4": (channels, channels, 3, 1),
                "smooth5": (channels, channels, 3, 1), "p6": (c5, channels, 3, 2), "p7": (channels, channels, 3, 2)}
    for name, (c_in, c_out, kernel, stride) in expected.items():
        conv = getattr(model, name, None)
        level = name[-1]
        if conv is None:
            role = {"lateral": f"the lateral 1×1 conv from C{level}", "smooth": f"the 3×3 smoothing conv of P{level}",
                    "p": f"the 3×3 stride-2 conv that makes P{level}"}[name.rstrip("34567")]
            raise Mistake(f"MyPyramid has no attribute {name!r}: it should be {role} (the check copies the "
                          "package's weights by these names)")
        if not isinstance(conv, nn.Conv2d):
            raise Mistake(f"{name} should be an nn.Conv2d, got {type(conv).__name__}")
        if name == "p6" and conv.in_channels == channels and c5 != channels:
            raise Mistake(f"p6 takes {channels} input channels, so P6 comes from P5: in the RetinaNet paper P6 "
                          f"comes from C5 ({c5} channels) — nn.Conv2d(c5, channels, 3, stride=2, padding=1)")
        if name.startswith("lateral") and conv.kernel_size != (1, 1):
            raise Mistake(f"{name} has kernel size {conv.kernel_size}: the lateral connections are 1×1 convolutions")
        if name.startswith("smooth") and conv.kernel_size != (3, 3):
            raise Mistake(f"{name} has kernel size {conv.kernel_size}: the smoothing convolutions are 3×3")
        if (conv.in_channels, conv.out_channels) != (c_in, c_out):
            raise Mistake(f"{name} maps {conv.in_channels} → {conv.out_channels} channels; with in_channels "
                          f"{in_channels} and channels={channels} it should map {c_in} → {c_out}")
        if conv.kernel_size == (3, 3) and conv.padding != (1, 1):
            raise Mistake(f"{name} has padding {conv.padding}: a 3×3 conv needs padding=1 to keep (or exactly halve, "
                          "with stride 2) the map's size")
        if conv.stride != (stride, stride):
            raise Mistake(f"{name} has stride {conv.stride}: " + (
                f"{name.upper()} halves the resolution of its input, stride=2" if stride == 2 else
                "lateral and smoothing convs keep the size, stride=1"))


def _run(model: nn.Module, features: list[Tensor], height: int, width: int) -> list[Tensor]:
    try:
        with torch.no_grad():
            got = model([x.clone() for x in features])
    except RuntimeError as error:
        if "size" in str(error) and (height, width) != INPUT_SIZES[0]:
            raise _size_mistake("MyPyramid", height, width, error) from None
        raise Mistake(f"MyPyramid crashed on a {height}×{width} input: {error} — do C3, C4 and C5 each go through "
                      "their lateral 1×1 conv before they are added?") from None
    if not isinstance(got, (list, tuple)) or len(got) != 5:
        raise Mistake("MyPyramid should return a list of five maps [P3, P4, P5, P6, P7], got "
                      f"{len(got) if isinstance(got, (list, tuple)) else type(got).__name__}")
    return [as_tensor(p, "MyPyramid") for p in got]


def _compare(got: list[Tensor], ref: PyramidFeatures, features: list[Tensor], height: int, width: int,
             same_channels: bool) -> None:
    with torch.no_grad():
        right = _pyramid(ref, features)
        variants = {
            "the ReLU before P7 is missing: P7 = conv3×3/2(ReLU(P6))": dict(relu="none"),
            "P6 is returned after the ReLU: the ReLU only goes into P7's input; P6 itself stays as the conv gives "
            "it": dict(relu="after_p6"),
            "the 3×3 smoothing is missing: P_l = smooth_l(T_l), the 3×3 conv on the top-down sum": dict(smooth=False),
            "the top-down path carries the smoothed maps: T_l = L_l + up(T_(l+1)) adds the *unsmoothed* sum; "
            "smooth each T_l only for the output": dict(carry="smoothed"),
            "the upsampling is bilinear: the FPN uses nearest-neighbour upsampling (mode=\"nearest\")":
                dict(mode="bilinear"),
        }
        if same_channels:  # these mistakes only run when C3–C5 have as many channels as the FPN
            variants["P6 is computed from P5: in the RetinaNet paper P6 = conv3×3/2(C5), from C5, not from "
                     "P5"] = dict(p6_from="p5")
            variants["the lateral 1×1 convs are missing: C_l goes through lateral_l before it is added "
                     "(T5 = lateral5(C5), T4 = lateral4(C4) + up(T5), …)"] = dict(lateral=False)
        wrong = {message: _pyramid(ref, features, **switches) for message, switches in variants.items()}
    shapes = [tuple(p.shape) for p in got]
    expected_shapes = [tuple(p.shape) for p in right]
    if shapes == expected_shapes[::-1]:
        raise Mistake("MyPyramid returns [P7, …, P3]: return the finest level first, [P3, P4, P5, P6, P7]")
    if shapes != expected_shapes:
        if (height, width) != INPUT_SIZES[0] and [s[:2] for s in shapes] == [s[:2] for s in expected_shapes]:
            raise _size_mistake("MyPyramid", height, width)
        raise Mistake(f"MyPyramid's outputs for a {height}×{width} input have shapes {shapes}, expected "
                      f"{expected_shapes} (P_l: [B, channels, ceil(H / 2^l), ceil(W / 2^l)])")
    for level, (mine, expected) in enumerate(zip(got, right), start=3):
        if close(mine, expected, atol=1e-4):
            continue
        for message, outputs in wrong.items():
            if all(close(a, b, atol=1e-4) for a, b in zip(got, outputs)):
                raise Mistake(message)
        raise Mistake(f"P{level} for a {height}×{width} input differs from retinanet_lite's PyramidFeatures (same "
                      f"weights) by up to {float((mine - expected.double()).abs().max()):.3g}")


@exercise("fpn", "03", fallback=PyramidFeatures, forbidden=(FeaturePyramidNetwork, LastLevelP6P7))
def check_fpn(pyramid_class: type[nn.Module]) -> None:
    """``MyPyramid(in_channels, channels)``: the package's weights copied in by name, then P3–P7 compared."""
    if isinstance(pyramid_class, type) and issubclass(pyramid_class, (PyramidFeatures, FeaturePyramidNetwork)):
        raise Mistake(f"MyPyramid subclasses {pyramid_class.__mro__[1].__qualname__}, a ready-made version of this "
                      "exercise; write it yourself (subclass nn.Module)")
    # C3–C5 first as wide as the FPN (so that a forward without lateral convs, or with P6 from P5, still runs
    # and its mistake can be named), then of other widths
    configurations = [((8, 8, 8), 8), ((6, 10, 12), 8)]
    models = [pyramid_class(in_channels, channels) for in_channels, channels in configurations]
    for model, (in_channels, channels) in zip(models, configurations):
        if not isinstance(model, nn.Module):
            raise Mistake(f"MyPyramid should be an nn.Module, got {type(model).__name__}")
        _check_structure(model, in_channels, channels)
    for number, (model, (in_channels, channels)) in enumerate(zip(models, configurations)):
        ref = _reference(in_channels, channels, seed=number)
        extra, lacking = model.load_state_dict(ref.state_dict(), strict=False)  # (missing, unexpected) keys
        if extra:
            raise Mistake(f"MyPyramid has parameters the paper's FPN does not have: {extra} — it needs "
                          f"exactly the eight convs {', '.join(NAMES)}")
        if lacking:
            raise Mistake(f"MyPyramid lacks the parameters {lacking}: every conv of the FPN has a bias "
                          "(leave bias=True)")
        model.eval()
        for seed, (height, width) in enumerate(INPUT_SIZES):
            g = torch.Generator().manual_seed(seed)
            features = [torch.randn(1, c, h, w, generator=g) for c, (h, w) in zip(in_channels, c_sizes(height, width))]
            _compare(_run(model, features, height, width), ref, features, height, width, same_channels=number == 0)


# --- FLOPs of a convolution -------------------------------------------------------------------------

def conv_flops(conv: nn.Conv2d, out_height: int, out_width: int) -> int:
    """FLOPs of ``conv`` on one image whose output is out_height × out_width: 2 per multiply-add, the bias left
    out (as ``torch.utils.flop_counter.FlopCounterMode`` counts them)."""
    k_h, k_w = conv.kernel_size
    return 2 * (conv.in_channels // conv.groups) * k_h * k_w * conv.out_channels * out_height * out_width


#: (conv, output size) of conv_flops's checks, with the FLOPs PyTorch's counter gives each.
FLOP_CASES = [(nn.Conv2d(64, 64, 3, padding=1), (16, 16)), (nn.Conv2d(3, 8, 3, stride=2, padding=1), (6, 7)),
              (nn.Conv2d(96, 64, 1), (4, 5)), (nn.Conv2d(3, 16, 7, stride=2, padding=3), (64, 64)),
              (nn.Conv2d(32, 32, 3, padding=1, groups=32), (8, 8)), (nn.Conv2d(8, 12, (1, 3), padding=(0, 1)), (5, 9)),
              (nn.Conv2d(16, 24, 3, padding=1, groups=4, bias=False), (7, 7))]


def _counted(conv: nn.Conv2d, out_height: int, out_width: int) -> int:
    """FLOPs that FlopCounterMode counts for ``conv`` with an output of out_height × out_width."""
    k_h, k_w = conv.kernel_size
    (s_h, s_w), (p_h, p_w) = conv.stride, conv.padding
    inputs = torch.zeros(1, conv.in_channels, (out_height - 1) * s_h + k_h - 2 * p_h,
                         (out_width - 1) * s_w + k_w - 2 * p_w)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = conv(inputs)
    assert tuple(out.shape[-2:]) == (out_height, out_width)
    return counter.get_total_flops()


@exercise("conv_flops", "03", fallback=conv_flops, forbidden=(FlopCounterMode,))
def check_conv_flops(yours: Callable[[nn.Conv2d, int, int], int]) -> None:
    """``conv_flops(conv, out_height, out_width)`` → FLOPs on one image, 2 per multiply-add, bias ignored."""
    for conv, (height, width) in FLOP_CASES:
        expected = _counted(conv, height, width)
        got = yours(conv, height, width)
        if not isinstance(got, (int, float)) and not (isinstance(got, Tensor) and got.numel() == 1):
            raise Mistake(f"conv_flops should return a number, got {type(got).__name__}")
        got = float(got)
        c_in, c_out, (k_h, k_w) = conv.in_channels, conv.out_channels, conv.kernel_size
        pixels = height * width
        what = f"{conv} with a {height}×{width} output"
        diagnose(got, expected, {
            "you count multiply-adds (MACs), not FLOPs: a multiply-add is 2 FLOPs, so multiply by 2":
                lambda: expected / 2,
            "the bias is counted: FlopCounterMode (and the formula of the lesson) leaves the bias out":
                lambda: expected + c_out * pixels,
            "the bias is counted: FlopCounterMode (and the formula of the lesson) leaves the bias out; and a "
            "multiply-add is 2 FLOPs": lambda: expected / 2 + c_out * pixels,
            "the groups are ignored: in a grouped conv each output sees only in_channels / groups input channels":
                lambda: 2 * c_in * k_h * k_w * c_out * pixels,
            "the kernel is taken as square: use both sides of conv.kernel_size, k_h · k_w":
                lambda: 2 * c_in // conv.groups * k_h * k_h * c_out * pixels,
            "the stride is counted twice: out_height × out_width already is the strided output size, do not "
            "divide by the stride": lambda: expected / (conv.stride[0] * conv.stride[1]),
        }, f"{what}: yours gives {got:,.0f} FLOPs, FlopCounterMode counts {expected:,} — "
           "2 · (c_in / groups) · k_h · k_w · c_out · h_out · w_out", atol=0.5)


declare("03", "pyramid_shapes", "fpn_parameters")
