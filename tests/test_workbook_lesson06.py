"""Lesson 06's exercise checks name the usual mistakes, pass other correct answers, and refuse the package's."""
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

from retinanet_lite import losses as L  # noqa: E402
from retinanet_lite import workbook  # noqa: E402
from retinanet_lite.widgets import anchor_population, loss_shares  # noqa: E402
from retinanet_lite.workbook import run_checker  # noqa: E402
from workbook_checks import failed_with, passes

LESSON = Path(__file__).resolve().parent.parent / "notebooks" / "06_focal_loss.ipynb"



# --- p_t_and_alpha_t ------------------------------------------------------------------------------------------

def lesson_p_t_and_alpha_t(logits, targets, alpha=0.25):
    """The lesson's own solution."""
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    p = torch.sigmoid(logits)
    is_positive = targets > 0
    p_t = torch.where(is_positive, p, 1 - p)
    alpha_t = torch.where(is_positive, alpha, 1 - alpha).to(p.dtype)
    return p_t, alpha_t


def other_p_t_and_alpha_t(logits, targets, alpha=0.25):
    """A correct answer written with arithmetic instead of torch.where: p_t = σ(x_t), α_t as a blend."""
    if logits.shape != targets.shape or not 0 <= alpha <= 1:
        raise ValueError("shapes differ or alpha outside [0, 1]")
    y = targets.to(logits.dtype)
    return torch.sigmoid(logits * (2 * y - 1)), alpha * y + (1 - alpha) * (1 - y)


def p_t_variant(p_t="right", alpha_t="right", order=True, validate=True):
    """The lesson's solution with one mistake chosen by the arguments."""
    def answer(logits, targets, alpha=0.25):
        if validate:
            lesson_p_t_and_alpha_t(logits, targets, alpha)  # raises the ValueErrors
        p = torch.sigmoid(logits)
        pos = targets > 0
        pt = {"right": torch.where(pos, p, 1 - p), "p": p, "swapped": torch.where(pos, 1 - p, p)}[p_t]
        at = {"right": torch.where(pos, alpha, 1 - alpha), "alpha": torch.full_like(logits, alpha),
              "swapped": torch.where(pos, 1 - alpha, alpha), "number": alpha}[alpha_t]
        return (pt, at) if order else (at, pt)
    return answer


def test_p_t_and_alpha_t_passes_correct_answers():
    passes("p_t_and_alpha_t", lesson_p_t_and_alpha_t)
    passes("p_t_and_alpha_t", other_p_t_and_alpha_t)


@pytest.mark.parametrize("wrong, words", [
    (p_t_variant(p_t="p"), "p_t = p for the negatives too"),
    (p_t_variant(p_t="swapped"), "p_t is swapped"),
    (p_t_variant(alpha_t="alpha"), "α_t = α for the negatives too"),
    (p_t_variant(alpha_t="swapped"), "α is applied to the negatives"),
    (p_t_variant(alpha_t="number"), "α_t does not use the targets"),
    (p_t_variant(order=False), "wrong order"),
    (lambda x, y, alpha=0.25: torch.sigmoid(x), "return two tensors"),
    (p_t_variant(validate=False), "broadcast silently"),
], ids=["p_t-is-p", "p_t-swapped", "alpha-everywhere", "alpha-swapped", "alpha-number", "order", "one-tensor",
        "no-validation"])
def test_p_t_and_alpha_t_names_the_mistakes(wrong, words):
    failed_with("p_t_and_alpha_t", wrong, words)


def test_p_t_and_alpha_t_names_a_missing_alpha_check():
    def no_alpha_check(logits, targets, alpha=0.25):
        if logits.shape != targets.shape:
            raise ValueError("shapes differ")
        return p_t_variant(validate=False)(logits, targets, alpha)
    failed_with("p_t_and_alpha_t", no_alpha_check, "0 ≤ α ≤ 1")


def test_p_t_and_alpha_t_refuses_the_package_version():
    from retinanet_lite.workbook.lesson06 import p_t_and_alpha_t
    failed_with("p_t_and_alpha_t", p_t_and_alpha_t, "ready-made")
    failed_with("p_t_and_alpha_t", lambda x, y, a=0.25: p_t_and_alpha_t(x, y, a), "ready-made")


# --- binary_cross_entropy -------------------------------------------------------------------------------------

def lesson_binary_cross_entropy(logits, targets):
    """The lesson's own solution."""
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    targets = targets.to(logits.dtype)
    positive_part = logits.clamp(min=0)
    cross_term = logits * targets
    log_term = torch.log1p(torch.exp(-logits.abs()))
    return positive_part - cross_term + log_term


def other_binary_cross_entropy(logits, targets):
    """A correct answer written from log-sigmoids: −[y log σ(x) + (1 − y) log σ(−x)]."""
    if logits.shape != targets.shape:
        raise ValueError("shapes differ")
    y = targets.to(logits.dtype)
    return -(y * F.logsigmoid(logits) + (1 - y) * F.logsigmoid(-logits))


def bce_variant(formula, validate=True, convert=True):
    """A cross-entropy with the given ``formula(x, y)``, optionally without the shape check or the conversion."""
    def answer(logits, targets):
        if validate and logits.shape != targets.shape:
            raise ValueError("shapes differ")
        return formula(logits, targets.to(logits.dtype) if convert else targets)
    return answer


def stable_terms(x, y):
    return x.clamp(min=0), x * y, torch.log1p(torch.exp(-x.abs()))


def test_binary_cross_entropy_passes_correct_answers():
    passes("binary_cross_entropy", lesson_binary_cross_entropy)
    passes("binary_cross_entropy", other_binary_cross_entropy)


@pytest.mark.parametrize("wrong, words", [
    (bce_variant(lambda x, y: -(y * torch.log(torch.sigmoid(x)) + (1 - y) * torch.log(1 - torch.sigmoid(x)))),
     "computed naively"),
    (bce_variant(lambda x, y: -(y * torch.log(torch.sigmoid(x).clamp(1e-7, 1 - 1e-7))
                                + (1 - y) * torch.log(1 - torch.sigmoid(x).clamp(1e-7, 1 - 1e-7)))),
     "clamping or rounding the probability"),
    (bce_variant(lambda x, y: stable_terms(x, y)[0] + stable_terms(x, y)[1] + stable_terms(x, y)[2]),
     "sign of x·y is flipped"),
    (bce_variant(lambda x, y: -lesson_binary_cross_entropy(x, y)), "the loss is negative"),
    (bce_variant(lambda x, y: lesson_binary_cross_entropy(x, 1 - y)), "targets are swapped"),
    (bce_variant(lambda x, y: x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x))), "absolute value is missing"),
    (bce_variant(lambda x, y: lesson_binary_cross_entropy(x, y).mean()), "averaged (or summed) instead of per element"),
    (bce_variant(lambda x, y: torch.where(y > 0, F.softplus(-x), F.softplus(x))), "used as 0/1 flags"),
    (bce_variant(lambda x, y: x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x.abs())) * (1 - y + y), convert=False),
     "not used as floats"),
    (bce_variant(lambda x, y: sum(stable_terms(x, y)) - 2 * stable_terms(x, y)[1], validate=False),
     "broadcast silently"),
], ids=["naive", "clamped", "sign", "negative", "swapped", "no-abs", "mean", "flags", "not-floats", "no-validation"])
def test_binary_cross_entropy_names_the_mistakes(wrong, words):
    failed_with("binary_cross_entropy", wrong, words)


def test_binary_cross_entropy_refuses_the_ready_made_versions():
    from retinanet_lite.workbook.lesson06 import binary_cross_entropy
    failed_with("binary_cross_entropy", binary_cross_entropy, "ready-made")
    failed_with("binary_cross_entropy", lambda x, y: F.binary_cross_entropy_with_logits(x, y.to(x.dtype), reduction="none")
                if x.shape == y.shape else binary_cross_entropy(x, y), "ready-made")
    failed_with("binary_cross_entropy", lambda x, y: L.focal_loss(x, y, alpha=-1, gamma=0.0), "ready-made")


# --- focal_loss -----------------------------------------------------------------------------------------------

def lesson_focal_loss(logits, targets, alpha=0.25, gamma=2.0):
    """The lesson's own solution."""
    x_t = torch.where(targets > 0, logits, -logits)
    log_p_t = F.logsigmoid(x_t)
    modulating = torch.exp(gamma * F.logsigmoid(-x_t))
    alpha_t = torch.where(targets > 0, alpha, 1 - alpha)
    return -alpha_t * modulating * log_p_t


def other_focal_loss(logits, targets, alpha=0.25, gamma=2.0):
    """A correct focal loss written differently: cross-entropy from BCE-with-logits, the factor from softplus."""
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # −log p_t
    x_t = logits * (2 * targets - 1)
    log_one_minus_p_t = -F.softplus(x_t)  # log σ(−x_t)
    weight = alpha * targets + (1 - alpha) * (1 - targets)
    return weight * torch.exp(gamma * log_one_minus_p_t) * ce


def through_probabilities(alpha_pos=None, alpha_neg=None, factor="1-p_t", reduce=None, sign=1.0):
    """The textbook formula through probabilities, with one mistake chosen by the arguments."""
    def loss(logits, targets, alpha=0.25, gamma=2.0):
        p = torch.sigmoid(logits)
        p_t = torch.where(targets > 0, p, 1 - p)
        a_pos = alpha if alpha_pos is None else alpha_pos(alpha)
        a_neg = 1 - alpha if alpha_neg is None else alpha_neg(alpha)
        alpha_t = torch.where(targets > 0, a_pos, a_neg)
        modulating = {"1-p_t": 1 - p_t, "p_t": p_t, "1-p": 1 - p}[factor] ** gamma
        out = -sign * alpha_t * modulating * torch.log(p_t)
        return out if reduce is None else getattr(out, reduce)()
    return loss


def stable(alpha_pos=None, alpha_neg=None, factor="1-p_t", detach=False):
    """The stable formula with one mistake chosen by the arguments (so the extreme logits do not hide it)."""
    def loss(logits, targets, alpha=0.25, gamma=2.0):
        x_t = torch.where(targets > 0, logits, -logits)
        a_pos = alpha if alpha_pos is None else alpha_pos(alpha)
        a_neg = 1 - alpha if alpha_neg is None else alpha_neg(alpha)
        alpha_t = torch.where(targets > 0, a_pos, a_neg)
        log_factor = {"1-p_t": F.logsigmoid(-x_t), "p_t": F.logsigmoid(x_t)}[factor]
        modulating = torch.exp(gamma * log_factor)
        if detach:
            modulating = modulating.detach()
        return -alpha_t * modulating * F.logsigmoid(x_t)
    return loss


def test_focal_loss_passes_correct_answers():
    passes("focal_loss", lesson_focal_loss)
    passes("focal_loss", other_focal_loss)


def test_focal_loss_names_the_mistakes():
    failed_with("focal_loss", stable(alpha_pos=lambda a: 1 - a, alpha_neg=lambda a: a), "α is applied to the negatives")
    failed_with("focal_loss", stable(alpha_neg=lambda a: a), "every element is weighted by α")
    failed_with("focal_loss", stable(alpha_pos=lambda a: 1.0, alpha_neg=lambda a: 1.0), "α_t is missing")
    failed_with("focal_loss", stable(factor="p_t"), "(p_t)^γ")
    failed_with("focal_loss", through_probabilities(factor="1-p"), "uses p instead of p_t")
    failed_with("focal_loss", through_probabilities(), "log of the sigmoid is computed naively")
    failed_with("focal_loss", through_probabilities(), "not finite")
    failed_with("focal_loss", through_probabilities(reduce="sum"), "summed (or averaged) instead of per element")
    failed_with("focal_loss", through_probabilities(reduce="mean"), "instead of per element")
    failed_with("focal_loss", through_probabilities(sign=-1.0), "the loss is negative")
    failed_with("focal_loss", stable(detach=True), "cut off from autograd")

    def p_t_is_p(logits, targets, alpha=0.25, gamma=2.0):  # right for positives only
        p = torch.sigmoid(logits)
        return -torch.where(targets > 0, alpha, 1 - alpha) * (1 - p) ** gamma * torch.log(p)
    failed_with("focal_loss", p_t_is_p, "disagree with torchvision")


def test_focal_loss_names_a_factor_from_probabilities_and_clamped_probabilities():
    def factor_from_p(logits, targets, alpha=0.25, gamma=2.0):  # right log, but (1 − p_t)^γ from p_t
        x_t = torch.where(targets > 0, logits, -logits)
        alpha_t = torch.where(targets > 0, alpha, 1 - alpha)
        return -alpha_t * (1 - torch.sigmoid(x_t)) ** gamma * F.logsigmoid(x_t)

    def clamped(logits, targets, alpha=0.25, gamma=2.0):
        p = torch.sigmoid(logits).clamp(1e-6, 1 - 1e-6)
        p_t = torch.where(targets > 0, p, 1 - p)
        return -torch.where(targets > 0, alpha, 1 - alpha) * (1 - p_t) ** gamma * torch.log(p_t)

    failed_with("focal_loss", factor_from_p, "gradient is not finite")
    failed_with("focal_loss", clamped, "clamping or rounding the probability")


def test_focal_loss_refuses_the_ready_made_versions():
    failed_with("focal_loss", L.focal_loss, "ready-made")
    failed_with("focal_loss", lambda x, y, a=0.25, g=2.0: L.focal_loss(x, y, a, g), "ready-made")
    failed_with("focal_loss", lambda x, y, a=0.25, g=2.0: torchvision.ops.sigmoid_focal_loss(x, y, a, g), "ready-made")


def test_focal_loss_stub_is_unsolved():
    def stub(logits, targets, alpha=0.25, gamma=2.0):
        raise NotImplementedError()
    assert run_checker("focal_loss", stub).state == "unsolved"


def test_lesson_06_exercises_in_order():
    from retinanet_lite.workbook import lesson_exercises
    assert [e.name for e in lesson_exercises("06")] == ["p_t_and_alpha_t", "predict_easy_weight", "predict_easy_share",
                                                         "binary_cross_entropy", "focal_loss",
                                                         "loss_reduction", "smallest_gamma", "focal_loss_star"]
    metadata = nbformat.read(LESSON, as_version=4).metadata["workbook"]
    assert [e["name"] for e in metadata["exercises"]] == [e.name for e in lesson_exercises("06")]


# --- the end-of-lesson exercises: their asserts live in the notebook's check cells ----------------------------

@pytest.fixture(scope="module")
def population():
    return anchor_population(100_000, 0.001)


def run_check_cell(name, population, **answers):
    """Run exercise ``name``'s check cell of the lesson (strict, as the grader does) with ``answers`` defined."""
    cell = next(c for c in nbformat.read(LESSON, as_version=4).cells
                if "exercise-check" in c.metadata.get("tags", []) and c.metadata.get("exercise") == name)
    population_logits, population_targets = population
    exec(cell.source, {"workbook": workbook, "torch": torch, "F": F, "math": math, "plt": plt,
                       "focal_loss": L.focal_loss, "my_focal_loss": L.focal_loss, "loss_shares": loss_shares,
                       "population_logits": population_logits, "population_targets": population_targets,
                       "gamma_grid": [0.5 * i for i in range(11)], **answers})


@pytest.mark.parametrize("wrong, words", [
    (lambda p_t, gamma: (1 - p_t) ** gamma, "FL / CE, the factor itself"),
    (lambda p_t, gamma: 1 / p_t ** gamma, "uses p_t^γ"),
], ids=["inverse", "p_t"])
def test_loss_reduction_check_names_the_mistake(monkeypatch, population, wrong, words):
    monkeypatch.setenv("RETINANET_WORKBOOK", "strict")
    run_check_cell("loss_reduction", population, loss_reduction=lambda p_t, gamma: 1 / (1 - p_t) ** gamma)
    run_check_cell("loss_reduction", population, loss_reduction=lambda p_t, gamma: math.exp(-gamma * math.log1p(-p_t)))
    with pytest.raises(workbook.ExerciseFailed, match=re.escape(words)):
        run_check_cell("loss_reduction", population, loss_reduction=wrong)


def lesson_smallest_gamma(logits, targets, alpha, gamma_grid):
    return next(g for g in gamma_grid if loss_shares(logits, targets, alpha, g)["positives"] > 0.5)


@pytest.mark.parametrize("wrong, words", [
    (lambda lg, tg, alpha, grid: [g for g in grid if loss_shares(lg, tg, alpha, g)["positives"] > 0.5][-1],
     "return the first γ"),
    (lambda lg, tg, alpha, grid: lesson_smallest_gamma(lg, tg, 0.25, grid), "with this alpha"),
    (lambda lg, tg, alpha, grid: 2.2, "is not in gamma_grid"),
], ids=["largest", "alpha-ignored", "not-in-grid"])
def test_smallest_gamma_check_names_the_mistake(monkeypatch, population, wrong, words):
    monkeypatch.setenv("RETINANET_WORKBOOK", "strict")
    run_check_cell("smallest_gamma", population, smallest_gamma=lesson_smallest_gamma)
    with pytest.raises(workbook.ExerciseFailed, match=re.escape(words)):
        run_check_cell("smallest_gamma", population, smallest_gamma=wrong)


def star(logits, targets, gamma=2.0, beta=1.0, divide=True, beta_sign=1.0, naive=False):
    x_t = torch.where(targets > 0, logits, -logits)
    z = gamma * x_t + beta_sign * beta
    loss = -torch.log(torch.sigmoid(z)) if naive else F.softplus(-z)
    return loss / gamma if divide else loss


@pytest.mark.parametrize("wrong, words", [
    (lambda x, y, gamma=2.0, beta=1.0: star(x, y, gamma, beta, divide=False), "divide by γ"),
    (lambda x, y, gamma=2.0, beta=1.0: star(x, y, gamma, beta, beta_sign=-1.0), "β has the wrong sign"),
    (lambda x, y, gamma=2.0, beta=1.0: star(x, y, gamma, beta, naive=True), "computed naively"),
    (lambda x, y, gamma=2.0, beta=1.0: star(x, 1 - y, gamma, beta), "must give cross-entropy"),
    (lambda x, y, gamma=2.0, beta=1.0: star(x, y, gamma, beta).sum(), "per element"),
], ids=["no-division", "beta-sign", "naive", "x_t-sign", "summed"])
def test_focal_loss_star_check_names_the_mistake(monkeypatch, population, wrong, words):
    monkeypatch.setenv("RETINANET_WORKBOOK", "strict")
    run_check_cell("focal_loss_star", population, focal_loss_star=star)
    with pytest.raises(workbook.ExerciseFailed, match=re.escape(words)):
        run_check_cell("focal_loss_star", population, focal_loss_star=wrong)


def test_new_stubs_are_unsolved():
    def stub(*args, **kwargs):
        raise NotImplementedError()
    assert run_checker("p_t_and_alpha_t", stub).state == "unsolved"
    assert run_checker("binary_cross_entropy", stub).state == "unsolved"


# --- the predict-first questions: the stored answers are what the focal-loss explorer shows --------------------

def test_predict_easy_weight_is_what_the_explorer_marks():
    from retinanet_lite.widgets import draw_focal_loss
    from workbook_checks import prediction_is
    weight = draw_focal_loss(gamma=3.0, alpha=0.25)["weight_easy_negative"]
    choices = {"a": 7.5e-3, "b": 2.5e-7, "c": 7.5e-5, "d": 7.5e-7}
    answer = next(letter for letter, value in choices.items() if math.isclose(weight, value, rel_tol=1e-9))
    prediction_is("06_focal_loss.ipynb", "predict_easy_weight", answer)


def test_predict_easy_share_is_what_the_explorer_shows():
    from workbook_checks import prediction_is
    logits, targets = anchor_population(100_000, 0.001)
    assert round(loss_shares(logits, targets, -1.0, 0.0)["easy_negatives"], 2) == 0.79  # stated in the question
    share = loss_shares(logits, targets, 0.25, 1.0)["easy_negatives"]
    answer = "a" if share > 0.6 else "b" if share > 0.4 else "c" if share > 0.2 else "d"
    prediction_is("06_focal_loss.ipynb", "predict_easy_share", answer)
    assert round(loss_shares(logits, targets, 0.25, 2.0)["easy_negatives"], 2) == 0.05  # the explanation's 5 %
