"""Lesson 03's workbook checks: each named mistake is caught with its message, right answers pass, and
the package's own FPN (or torchvision's, or FlopCounterMode) does not earn the exercise."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.ops import FeaturePyramidNetwork

from retinanet_lite import workbook
from retinanet_lite.fpn import PyramidFeatures
from retinanet_lite.workbook import lesson03
from workbook_checks import failed_with as assert_fails


def status(name, answer):
    return workbook.run_checker(name, answer)



# --- the instructor's solutions (as in notebooks/03_backbone_and_fpn.ipynb) ---------------------------

def top_down(laterals):
    l3, l4, l5 = laterals
    t5 = l5
    t4 = l4 + F.interpolate(t5, size=l4.shape[-2:], mode="nearest")
    t3 = l3 + F.interpolate(t4, size=l3.shape[-2:], mode="nearest")
    return [t3, t4, t5]


class MyPyramid(nn.Module):
    def __init__(self, in_channels, channels=256):
        super().__init__()
        c3, c4, c5 = in_channels
        self.lateral3 = nn.Conv2d(c3, channels, kernel_size=1)
        self.lateral4 = nn.Conv2d(c4, channels, kernel_size=1)
        self.lateral5 = nn.Conv2d(c5, channels, kernel_size=1)
        self.smooth3 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.smooth4 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.smooth5 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.p6 = nn.Conv2d(c5, channels, kernel_size=3, stride=2, padding=1)
        self.p7 = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)

    def forward(self, features):
        c3, c4, c5 = features
        t3, t4, t5 = top_down([self.lateral3(c3), self.lateral4(c4), self.lateral5(c5)])
        p6 = self.p6(c5)
        p7 = self.p7(F.relu(p6))
        return [self.smooth3(t3), self.smooth4(t4), self.smooth5(t5), p6, p7]


def conv_flops(conv, out_height, out_width):
    c_in_per_group = conv.in_channels // conv.groups
    k_h, k_w = conv.kernel_size
    return 2 * c_in_per_group * k_h * k_w * conv.out_channels * out_height * out_width


def test_the_instructors_solutions_pass():
    assert status("fpn_top_down", top_down).state == "passed"
    assert status("fpn", MyPyramid).state == "passed"
    assert status("conv_flops", conv_flops).state == "passed"


# --- right answers written differently --------------------------------------------------------------

def top_down_loop(laterals):
    out = [laterals[-1]]
    for lateral in reversed(laterals[:-1]):
        out.insert(0, lateral + F.interpolate(out[0], size=tuple(lateral.shape[2:])))  # nearest is the default
    return out


class PyramidWithDicts(nn.Module):
    """Same network, written with a loop and the doubling-then-cropping form of the upsampling."""

    def __init__(self, in_channels, channels=256):
        super().__init__()
        for level, c in zip((3, 4, 5), in_channels):
            setattr(self, f"lateral{level}", nn.Conv2d(c, channels, 1))
            setattr(self, f"smooth{level}", nn.Conv2d(channels, channels, 3, 1, 1))
        self.p6 = nn.Conv2d(in_channels[2], channels, 3, 2, 1)
        self.p7 = nn.Conv2d(channels, channels, 3, 2, 1)

    def forward(self, features):
        running, outputs = None, {}
        for level, c in zip((5, 4, 3), reversed(features)):
            lateral = getattr(self, f"lateral{level}")(c)
            if running is not None:
                doubled = running.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
                lateral = lateral + doubled[..., :lateral.shape[2], :lateral.shape[3]]
            running = lateral
            outputs[level] = getattr(self, f"smooth{level}")(running)
        p6 = self.p6(features[2])
        return [outputs[3], outputs[4], outputs[5], p6, self.p7(p6.clamp(min=0))]


def flops_from_weight(conv, out_height, out_width):
    return 2 * conv.weight.numel() * out_height * out_width


def test_right_answers_written_differently_pass():
    assert status("fpn_top_down", top_down_loop).state == "passed"
    assert status("fpn", PyramidWithDicts).state == "passed"
    assert status("conv_flops", flops_from_weight).state == "passed"


# --- top-down pathway -------------------------------------------------------------------------------

def top_down_with(up=lambda x, like: F.interpolate(x, size=like.shape[-2:], mode="nearest"), carry=True,
                  lateral=True, reverse=False):
    def wrong(laterals):
        l3, l4, l5 = laterals
        t4 = (l4 if lateral else 0) + up(l5, l4)
        t3 = (l3 if lateral else 0) + up(t4 if carry else l4, l3)
        return [l5, t4, t3] if reverse else [t3, t4, l5]
    return wrong


@pytest.mark.parametrize("wrong, message", [
    (top_down_with(up=lambda x, like: F.interpolate(x, scale_factor=2, mode="nearest")),
     "upsampling is to the wrong size"),
    (top_down_with(up=lambda x, like: F.interpolate(x, size=like.shape[-2:], mode="bilinear")), "bilinear"),
    (top_down_with(carry=False), "T3 adds the upsampled L4, not T4"),
    (top_down_with(lateral=False), "has no lateral connection"),
    (lambda laterals: list(laterals), "nothing comes down"),
    (top_down_with(reverse=True), "return the finest map first"),
    (lambda laterals: top_down(laterals)[:2], "a list of three maps"),
], ids=["scale-factor", "bilinear", "not-carried", "no-lateral", "no-top-down", "reversed", "two-maps"])
def test_top_down_mistakes_are_named(wrong, message):
    assert_fails("fpn_top_down", wrong, message)


# --- the whole FPN ----------------------------------------------------------------------------------

def pyramid_with(p6_from="c5", relu=True, relu_on_p6=False, smooth=True, lateral=True, carry_smoothed=False,
                 p6_in=None, mode="nearest", scale_factor=False, skip=()):
    class Wrong(nn.Module):
        def __init__(self, in_channels, channels=256):
            super().__init__()
            c3, c4, c5 = in_channels
            for name, module in [("lateral3", nn.Conv2d(c3, channels, 1)), ("lateral4", nn.Conv2d(c4, channels, 1)),
                                 ("lateral5", nn.Conv2d(c5, channels, 1)),
                                 ("smooth3", nn.Conv2d(channels, channels, 3, padding=1)),
                                 ("smooth4", nn.Conv2d(channels, channels, 3, padding=1)),
                                 ("smooth5", nn.Conv2d(channels, channels, 3, padding=1)),
                                 ("p6", nn.Conv2d(p6_in(in_channels, channels) if p6_in else c5, channels, 3, 2, 1)),
                                 ("p7", nn.Conv2d(channels, channels, 3, 2, 1))]:
                if name not in skip:
                    setattr(self, name, module)

        def up(self, x, like):
            if scale_factor:
                return F.interpolate(x, scale_factor=2, mode="nearest")
            return F.interpolate(x, size=like.shape[-2:], mode=mode)

        def forward(self, features):
            c3, c4, c5 = features
            if lateral:
                l3, l4, l5 = self.lateral3(c3), self.lateral4(c4), self.lateral5(c5)
            else:
                l3, l4, l5 = c3, c4, c5
            if carry_smoothed:
                p5 = self.smooth5(l5)
                p4 = self.smooth4(l4 + self.up(p5, l4))
                p3 = self.smooth3(l3 + self.up(p4, l3))
            else:
                t5 = l5
                t4 = l4 + self.up(t5, l4)
                t3 = l3 + self.up(t4, l3)
                p3, p4, p5 = (self.smooth3(t3), self.smooth4(t4), self.smooth5(t5)) if smooth else (t3, t4, t5)
            p6 = self.p6(c5 if p6_from == "c5" else p5)
            p7 = self.p7(F.relu(p6) if relu else p6)
            return [p3, p4, p5, F.relu(p6) if relu_on_p6 else p6, p7]
    return Wrong


@pytest.mark.parametrize("wrong, message", [
    (pyramid_with(p6_from="p5", p6_in=lambda c, d: d), "P6 comes from P5"),
    (pyramid_with(p6_from="p5"), "P6 is computed from P5"),
    (pyramid_with(relu=False), "the ReLU before P7 is missing"),
    (pyramid_with(relu_on_p6=True), "P6 is returned after the ReLU"),
    (pyramid_with(smooth=False), "the 3×3 smoothing is missing"),
    (pyramid_with(carry_smoothed=True), "carries the smoothed maps"),
    (pyramid_with(lateral=False), "the lateral 1×1 convs are missing"),
    (pyramid_with(lateral=False, skip=("lateral3", "lateral4", "lateral5")), "the lateral 1×1 conv from C3"),
    (pyramid_with(skip=("smooth4",)), "the 3×3 smoothing conv of P4"),
    (pyramid_with(mode="bilinear"), "bilinear"),
    (pyramid_with(scale_factor=True), "upsampling is to the wrong size"),
], ids=["p6-from-p5-structure", "p6-from-p5", "no-relu", "relu-on-p6", "no-smoothing", "carry-smoothed",
        "no-lateral", "no-lateral-modules", "no-smooth4", "bilinear", "scale-factor"])
def test_fpn_mistakes_are_named(wrong, message):
    assert_fails("fpn", wrong, message)


def test_fpn_structure_mistakes_are_named():
    class OneByOneSmooth(MyPyramid):
        def __init__(self, in_channels, channels=256):
            super().__init__(in_channels, channels)
            self.smooth3 = nn.Conv2d(channels, channels, 1)

    class NoPadding(MyPyramid):
        def __init__(self, in_channels, channels=256):
            super().__init__(in_channels, channels)
            self.smooth5 = nn.Conv2d(channels, channels, 3)

    class StrideOneP7(MyPyramid):
        def __init__(self, in_channels, channels=256):
            super().__init__(in_channels, channels)
            self.p7 = nn.Conv2d(channels, channels, 3, padding=1)

    class ExtraLayer(MyPyramid):
        def __init__(self, in_channels, channels=256):
            super().__init__(in_channels, channels)
            self.extra = nn.Conv2d(channels, channels, 1)

    assert_fails("fpn", OneByOneSmooth, "the smoothing convolutions are 3×3")
    assert_fails("fpn", NoPadding, "needs padding=1")
    assert_fails("fpn", StrideOneP7, "P7 halves the resolution")
    assert_fails("fpn", ExtraLayer, "parameters the paper's FPN does not have")


# --- conv_flops -------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrong, message", [
    (lambda conv, h, w: conv_flops(conv, h, w) // 2, "multiply-adds (MACs)"),
    (lambda conv, h, w: conv_flops(conv, h, w) + conv.out_channels * h * w, "the bias is counted"),
    (lambda conv, h, w: 2 * conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels * h * w,
     "the groups are ignored"),
    (lambda conv, h, w: 2 * conv.in_channels // conv.groups * conv.kernel_size[0] ** 2 * conv.out_channels * h * w,
     "the kernel is taken as square"),
    (lambda conv, h, w: conv_flops(conv, h, w) / (conv.stride[0] * conv.stride[1]), "the stride is counted twice"),
    (lambda conv, h, w: conv_flops(conv, h + 1, w), "FlopCounterMode counts"),
    (lambda conv, h, w: "many", "should return a number"),
], ids=["macs", "bias", "groups", "square-kernel", "stride", "other", "not-a-number"])
def test_conv_flops_mistakes_are_named(wrong, message):
    assert_fails("conv_flops", wrong, message)


# --- ready-made versions ----------------------------------------------------------------------------

def test_the_packages_versions_and_wrappers_do_not_pass():
    assert_fails("fpn_top_down", lesson03.top_down_pathway, "ready-made version")
    assert_fails("fpn_top_down", lambda laterals: lesson03.top_down_pathway(laterals), "ready-made version")
    assert_fails("fpn", PyramidFeatures, "ready-made version")

    class Wrapper(nn.Module):
        def __init__(self, in_channels, channels=256):
            super().__init__()
            self.inner = PyramidFeatures(in_channels, channels)

        def forward(self, features):
            return self.inner(features)

    class Subclass(PyramidFeatures):
        pass

    assert_fails("fpn", Wrapper, "ready-made version")
    assert_fails("fpn", Subclass, "ready-made version")


def test_torchvisions_fpn_and_the_flop_counter_do_not_pass():
    class Torchvision(nn.Module):
        def __init__(self, in_channels, channels=256):
            super().__init__()
            self.inner = FeaturePyramidNetwork(list(in_channels), channels)

        def forward(self, features):
            return list(self.inner({str(i): f for i, f in enumerate(features)}).values())

    def counted(conv, out_height, out_width):
        with FlopCounterMode(display=False) as counter:
            conv(torch.zeros(1, conv.in_channels, out_height * conv.stride[0], out_width * conv.stride[1]))
        return counter.get_total_flops()

    assert_fails("fpn", Torchvision, "ready-made version")
    assert_fails("conv_flops", counted, "ready-made version")


def test_the_lessons_exercises_are_registered_in_order():
    assert [e.name for e in workbook.lesson_exercises("03")] == [
        "fpn_top_down", "fpn", "conv_flops", "pyramid_shapes", "fpn_parameters"]


def test_the_conv_flops_fallback_does_not_pass():
    assert_fails("conv_flops", lesson03.conv_flops, "ready-made version")
    assert_fails("conv_flops", lambda conv, h, w: lesson03.conv_flops(conv, h, w), "ready-made version")


def test_an_fpn_without_biases_is_named():
    class NoBias(MyPyramid):
        def __init__(self, in_channels, channels=256):
            super().__init__(in_channels, channels)
            self.lateral4 = nn.Conv2d(in_channels[1], channels, 1, bias=False)

    assert_fails("fpn", NoBias, "lacks the parameters ['lateral4.bias']")
