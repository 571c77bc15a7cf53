"""Lesson 04's workbook checkers: each named mistake is caught, other correct answers and the lesson's pass."""
import math

import pytest
import torch
from torch import nn

from retinanet_lite import heads as H
from retinanet_lite import workbook
from retinanet_lite.losses import focal_loss
from retinanet_lite.workbook import lesson04
from workbook_checks import failed_with as assert_fails, passes as assert_passes


def state(name, answer):
    return workbook.run_checker(name, answer)



def test_lesson_04_exercises_are_registered_in_the_lessons_order():
    assert [e.name for e in workbook.lesson_exercises("04")] == [
        "flatten_level", "subnet", "prior_bias", "make_heads", "initial_loss", "head_parameters", "anchor_of_row"]


# --- flatten_level -----------------------------------------------------------------------------------

def lesson_flatten(x: torch.Tensor, outputs_per_anchor: int) -> torch.Tensor:  # the notebook's solution
    batch, _, height, width = x.shape
    x = x.view(batch, -1, outputs_per_anchor, height, width)  # [B, A, C, H, W]
    return x.permute(0, 3, 4, 1, 2).reshape(batch, -1, outputs_per_anchor)


def channels_last_flatten(x, c):  # another correct answer: channels last first, then split them per anchor
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, c)


def test_flatten_level_right_answers_pass():
    assert_passes("flatten_level", lesson_flatten)
    assert_passes("flatten_level", channels_last_flatten)


@pytest.mark.parametrize("wrong, fragment", [
    (lambda x, c: x.reshape(x.shape[0], -1, c), "without permuting the channels last"),
    (lambda x, c: x.view(x.shape[0], c, -1, *x.shape[2:]).permute(0, 3, 4, 2, 1).reshape(x.shape[0], -1, c),
     "[C, A] (class-major)"),
    (lambda x, c: x.view(x.shape[0], -1, c, *x.shape[2:]).permute(0, 1, 3, 4, 2).reshape(x.shape[0], -1, c),
     "anchor-major"),
    (lambda x, c: x.view(x.shape[0], -1, c, *x.shape[2:]).permute(0, 4, 3, 1, 2).reshape(x.shape[0], -1, c),
     "x and y are swapped"),
    (lambda x, c: x.view(x.shape[0], -1, c, *x.shape[2:]).permute(0, 3, 4, 1, 2), "returns [B, H, W, A, C]"),
    (lambda x, c: x.flatten(2), "should have shape"),
])
def test_flatten_level_names_the_mistake(wrong, fragment):
    assert_fails("flatten_level", wrong, fragment)


def test_flatten_level_package_version_is_refused():
    assert_fails("flatten_level", H.flatten_level, "ready-made version")
    assert_fails("flatten_level", lambda x, c: H.flatten_level(x, c), "ready-made version")


# --- subnet ------------------------------------------------------------------------------------------

class LessonSubnet(nn.Module):  # the notebook's solution
    def __init__(self, channels: int, num_anchors: int, outputs: int, num_convs: int = 4) -> None:
        super().__init__()
        self.outputs = outputs
        layers: list[nn.Module] = []
        for _ in range(num_convs):
            layers += [nn.Conv2d(channels, channels, kernel_size=3, padding=1), nn.ReLU()]
        self.tower = nn.Sequential(*layers)
        self.predict = nn.Conv2d(channels, num_anchors * outputs, kernel_size=3, padding=1)

    def forward(self, features):
        per_level = [lesson_flatten(self.predict(self.tower(f)), self.outputs) for f in features]
        return torch.cat(per_level, dim=1)


class OtherSubnet(nn.Module):  # another correct answer: in-place ReLUs, channels-last flattening, one list
    def __init__(self, channels, num_anchors, outputs, num_convs=4):
        super().__init__()
        self.c = outputs
        self.tower = nn.Sequential(*[m for _ in range(num_convs)
                                     for m in (nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(inplace=True))])
        self.predict = nn.Conv2d(channels, num_anchors * outputs, 3, 1, 1)

    def forward(self, features):
        rows = []
        for f in features:
            y = self.predict(self.tower(f))
            rows.append(y.permute(0, 2, 3, 1).reshape(y.shape[0], -1, self.c))
        return torch.cat(rows, 1)


def subnet_variant(**change):
    """LessonSubnet with one thing changed (a layer list, the last conv's channels, the forward)."""
    class Variant(LessonSubnet):
        pass

    def init(self, channels, num_anchors, outputs, num_convs=4):
        nn.Module.__init__(self)
        self.outputs = outputs
        layers = []
        for _ in range(change.get("convs", num_convs)):
            layers.append(nn.Conv2d(channels, channels, change.get("kernel", 3), padding=change.get("padding", 1)))
            if change.get("relu", True):
                layers.append(nn.ReLU())
        self.tower = nn.Sequential(*layers)
        out = outputs if change.get("one_set") else num_anchors * outputs
        self.predict = nn.Conv2d(channels, out, kernel_size=3, padding=1)

    Variant.__init__ = init
    if "forward" in change:
        Variant.forward = change["forward"]
    return Variant


def forward_relu_last(self, features):
    return torch.cat([lesson_flatten(torch.relu(self.predict(self.tower(f))), self.outputs) for f in features], 1)


def forward_reversed(self, features):
    return torch.cat([lesson_flatten(self.predict(self.tower(f)), self.outputs) for f in features[::-1]], 1)


def forward_no_tower(self, features):
    return torch.cat([lesson_flatten(self.predict(f), self.outputs) for f in features], 1)


def forward_batch_dim(self, features):
    return torch.cat([lesson_flatten(self.predict(self.tower(f)), self.outputs) for f in features], 0)


def test_subnet_right_answers_pass():
    assert_passes("subnet", LessonSubnet)
    assert_passes("subnet", OtherSubnet)


@pytest.mark.parametrize("change, fragment", [
    ({"relu": False}, "the tower has no ReLU"),
    ({"convs": 3}, "convolutions in its tower"),
    ({"one_set": True}, "one set of outputs for the whole cell"),
    ({"kernel": 1, "padding": 0}, "3×3 convolutions with padding=1"),
    ({"forward": forward_relu_last}, "ReLU after the last convolution"),
    ({"forward": forward_reversed}, "reverse order"),
    ({"forward": forward_no_tower}, "the tower is skipped"),
    ({"forward": forward_batch_dim}, "not dim=0"),
])
def test_subnet_names_the_mistake(change, fragment):
    assert_fails("subnet", subnet_variant(**change), fragment)


def test_subnet_package_version_is_refused():
    assert_fails("subnet", H.Subnet, "ready-made version")

    class Subclass(H.Subnet):
        pass

    assert_fails("subnet", Subclass, "ready-made version")

    class Wrapper(nn.Module):
        def __init__(self, channels, num_anchors, outputs, num_convs=4):
            super().__init__()
            inner = H.regression_head(channels, num_anchors, num_convs)
            self.tower, self.predict, self.outputs = inner.tower, inner.predict, outputs

        forward = LessonSubnet.forward

    assert_fails("subnet", Wrapper, "ready-made version")


# --- prior_bias --------------------------------------------------------------------------------------

def lesson_prior_bias(prior: float) -> float:  # the notebook's solution
    return -math.log((1 - prior) / prior)


def test_prior_bias_right_answers_pass():
    assert_passes("prior_bias", lesson_prior_bias)
    assert_passes("prior_bias", lambda p: math.log(p) - math.log1p(-p))
    assert_passes("prior_bias", lambda p: torch.logit(torch.tensor(p, dtype=torch.float64)).item())


@pytest.mark.parametrize("wrong, fragment", [
    (lambda p: math.log((1 - p) / p), "the sign is flipped"),
    (lambda p: math.log(p), "b = log(π) only"),
    (lambda p: -math.log(p), "b = −log(π)"),
    (lambda p: -math.log10((1 - p) / p), "base 10"),
    (lambda p: p, "b must solve σ(b) = π"),
    (lambda p: "b", "should return a number"),
])
def test_prior_bias_names_the_mistake(wrong, fragment):
    assert_fails("prior_bias", wrong, fragment)


def test_prior_bias_package_version_is_refused():
    assert_fails("prior_bias", H.prior_bias, "ready-made version")
    assert_fails("prior_bias", lambda p: H.prior_bias(p), "ready-made version")


# --- make_heads --------------------------------------------------------------------------------------

def lesson_make_heads(channels, num_anchors, num_classes, num_convs=4, prior=0.01):  # the notebook's solution
    classification = LessonSubnet(channels, num_anchors, num_classes, num_convs)
    regression = LessonSubnet(channels, num_anchors, 4, num_convs)
    for subnet in (classification, regression):
        for module in subnet.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
    nn.init.constant_(classification.predict.bias, lesson_prior_bias(prior))
    return classification, regression


def other_make_heads(channels, num_anchors, num_classes, num_convs=4, prior=0.01):
    """Another correct answer: initialise through the parameters, with torch.no_grad and fill_."""
    made = []
    for outputs in (num_classes, 4):
        subnet = OtherSubnet(channels, num_anchors, outputs, num_convs)
        with torch.no_grad():
            for name, parameter in subnet.named_parameters():
                parameter.normal_(0, 0.01) if name.endswith("weight") else parameter.zero_()
        made.append(subnet)
    with torch.no_grad():
        made[0].predict.bias.fill_(math.log(prior / (1 - prior)))
    return tuple(made)


def make_heads_variant(bias_on="classification", value=None, init=True, tower_bias=False, swap=False):
    def make(channels, num_anchors, num_classes, num_convs=4, prior=0.01):
        classification = LessonSubnet(channels, num_anchors, num_classes, num_convs)
        regression = LessonSubnet(channels, num_anchors, 4, num_convs)
        b = lesson_prior_bias(prior) if value is None else value
        for subnet in (classification, regression):
            for module in subnet.modules():
                if isinstance(module, nn.Conv2d) and init:
                    nn.init.normal_(module.weight, std=0.01)
                    nn.init.constant_(module.bias, b if tower_bias and subnet is classification else 0.0)
        targets = {"classification": [classification], "regression": [regression],
                   "both": [classification, regression], "none": []}[bias_on]
        for subnet in targets:
            nn.init.constant_(subnet.predict.bias, b)
        return (regression, classification) if swap else (classification, regression)
    return make


@pytest.mark.parametrize("wrong, fragment", [
    (make_heads_variant(bias_on="regression"), "the prior bias is set on the regression head"),
    (make_heads_variant(bias_on="both"), "the regression subnet's last bias is the prior bias too"),
    (make_heads_variant(bias_on="none"), "every class probability starts at 0.5"),
    (make_heads_variant(value=4.59511985013459), "the sign is flipped"),
    (make_heads_variant(init=False), "N(0, 0.01²)"),
    (make_heads_variant(tower_bias=True), "only the classification subnet's last convolution gets it"),
    (make_heads_variant(swap=True), "the two subnets are swapped"),
])
def test_make_heads_names_the_mistake(wrong, fragment):
    assert_fails("make_heads", wrong, fragment)


def test_make_heads_right_answers_pass():
    assert_passes("make_heads", lesson_make_heads)
    assert_passes("make_heads", other_make_heads)


def test_make_heads_package_version_is_refused():
    assert_fails("make_heads", lesson04.make_heads, "ready-made version")
    assert_fails("make_heads", lambda c, a, k, n=4, prior=0.01: (H.classification_head(c, a, k, n, prior=prior),
                                                                  H.regression_head(c, a, n)), "ready-made version")


def test_make_heads_fallback_matches_the_package():
    torch.manual_seed(0)
    classification, regression = lesson04.make_heads(8, 3, 2, 1, prior=0.1)
    assert torch.allclose(classification.predict.bias, torch.full((6,), H.prior_bias(0.1)))
    assert torch.equal(regression.predict.bias, torch.zeros(12))


# --- initial_loss ------------------------------------------------------------------------------------

def lesson_initial_loss(prior, num_anchors, num_classes, num_positives, alpha=-1.0, gamma=0.0):  # the notebook's
    p = prior
    alpha_pos, alpha_neg = (alpha, 1 - alpha) if alpha >= 0 else (1.0, 1.0)
    positive = -alpha_pos * (1 - p) ** gamma * math.log(p)
    per_negative = -alpha_neg * p**gamma * math.log(1 - p)
    negatives = num_anchors * num_classes - num_positives
    return positive, per_negative * negatives / num_positives


def other_initial_loss(prior, num_anchors, num_classes, num_positives, alpha=-1.0, gamma=0.0):
    """Another correct answer: sums over the outputs first, then divides by P."""
    weight = {True: alpha if alpha >= 0 else 1.0, False: 1 - alpha if alpha >= 0 else 1.0}
    total_positive = num_positives * weight[True] * (1 - prior) ** gamma * -math.log(prior)
    total_negative = (num_anchors * num_classes - num_positives) * weight[False] * prior**gamma * -math.log1p(-prior)
    return total_positive / num_positives, total_negative / num_positives


def initial_loss_variant(**change):
    def wrong(prior, n, k, p, alpha=-1.0, gamma=0.0):
        a_pos, a_neg = (alpha, 1 - alpha) if alpha >= 0 else (1.0, 1.0)
        if change.get("alpha") == "none":
            a_pos = a_neg = 1.0
        if change.get("alpha") == "both":
            a_neg = a_pos
        if change.get("alpha") == "raw":
            a_pos, a_neg = alpha, 1 - alpha
        f_pos, f_neg = (1 - prior) ** gamma, prior**gamma
        if change.get("focus") == "swapped":
            f_pos, f_neg = f_neg, f_pos
        if change.get("focus") == "none":
            f_pos = f_neg = 1.0
        log = math.log10 if change.get("log10") else math.log
        negatives = n * k if change.get("all_negatives") else n * k - p
        divide = {"P": p, "1": 1, "NK": n * k}[change.get("divide", "P")]
        result = (-a_pos * f_pos * log(prior) * p / divide, -a_neg * f_neg * log(1 - prior) * negatives / divide)
        return result[::-1] if change.get("order") else result
    return wrong


@pytest.mark.parametrize("change, fragment", [
    ({"divide": "1"}, "not divided by the number of positives"),
    ({"divide": "NK"}, "divided by all N·K outputs"),
    ({"all_negatives": True}, "N·K − P negatives"),
    ({"alpha": "none"}, "the α-weighting is missing"),
    ({"alpha": "both"}, "the negatives are weighted by α"),
    ({"alpha": "raw"}, "alpha < 0 means no α-weighting"),
    ({"focus": "swapped"}, "the focusing factors are swapped"),
    ({"focus": "none"}, "the focusing factor is missing"),
    ({"log10": True}, "base 10"),
    ({"order": True}, "wrong order"),
])
def test_initial_loss_names_the_mistake(change, fragment):
    assert_fails("initial_loss", initial_loss_variant(**change), fragment)


def test_initial_loss_right_answers_pass():
    assert_passes("initial_loss", lesson_initial_loss)
    assert_passes("initial_loss", other_initial_loss)


def test_initial_loss_package_version_is_refused():
    assert_fails("initial_loss", lesson04.initial_loss, "ready-made version")

    def with_focal_loss(prior, n, k, p, alpha=-1.0, gamma=0.0):
        logits = torch.full((2,), math.log(prior / (1 - prior)))
        loss = focal_loss(logits, torch.tensor([1.0, 0.0]), alpha, gamma)
        return float(loss[0]), float(loss[1]) * (n * k - p) / p

    assert_fails("initial_loss", with_focal_loss, "ready-made version")


def test_initial_loss_fallback_is_the_lessons_formula():
    for case in lesson04.INITIAL_LOSS_CASES:
        assert lesson04.initial_loss(*case) == pytest.approx(lesson_initial_loss(*case), rel=1e-9)


def test_unsolved_stub_is_reported_as_unsolved():
    def stub(x, c):
        raise NotImplementedError()

    assert state("flatten_level", stub).state == "unsolved"
