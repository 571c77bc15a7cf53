"""Lesson 06's exercises: p_t and α_t, the stable binary cross-entropy and focal loss, and the end-of-lesson ones."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision

from .. import losses as L
from .answers import prediction
from .core import Mistake, declare, exercise
from .diagnose import as_tensor, close, diagnose, expect_shape

FocalLoss = Callable[..., torch.Tensor]
#: (α, γ) pairs the check compares in values and gradients: α = 0.5 hides a swapped α, γ = 0 the factor.
PAIRS = [(alpha, gamma) for alpha in (0.25, 0.5, 0.75) for gamma in (0.0, 0.5, 1.0, 2.0, 5.0)]
#: Logits a confident detector reaches, in float32, with both targets: sigmoid rounds to exactly 0 or 1.
EXTREME_LOGITS = torch.tensor([100.0, -100.0, 200.0, -200.0, 100.0, -100.0, 200.0, -200.0])
EXTREME_TARGETS = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])


def logits_and_targets(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 logits of moderate size (σ = 4) and 0/1 targets (20 % positive) of ``shape``."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 4
    targets = (torch.rand(shape, generator=g) < 0.2).double()
    return logits, targets


def _formula(alpha_t: torch.Tensor, factor: torch.Tensor, log_p_t: torch.Tensor) -> torch.Tensor:
    """−α_t · factor · log p_t, element-wise."""
    return -alpha_t * factor * log_p_t


def _wrong_focal_losses(x: torch.Tensor, y: torch.Tensor, alpha: float, gamma: float) -> dict[str, Callable]:
    """The usual wrong focal losses for logits ``x`` and targets ``y`` (float64), as message → function."""
    p = torch.sigmoid(x)
    p_t = torch.where(y > 0, p, 1 - p)
    log_p_t = F.logsigmoid(torch.where(y > 0, x, -x))
    alpha_t = torch.where(y > 0, alpha, 1 - alpha)
    factor = (1 - p_t) ** gamma
    right = L.focal_loss(x, y, alpha, gamma)
    return {
        "α is applied to the negatives and 1 − α to the positives: α_t = α for a positive (target 1) and "
        "1 − α for a negative (target 0)": lambda: _formula(torch.where(y > 0, 1 - alpha, alpha), factor, log_p_t),
        "every element is weighted by α: α_t = α for a positive but 1 − α for a negative":
            lambda: _formula(torch.full_like(x, alpha), factor, log_p_t),
        "α_t is missing: multiply by α for a positive and by 1 − α for a negative":
            lambda: _formula(torch.ones_like(x), factor, log_p_t),
        "γ is applied as (p_t)^γ: the factor is (1 − p_t)^γ, small for the examples already classified well":
            lambda: _formula(alpha_t, p_t ** gamma, log_p_t),
        "the factor uses p instead of p_t: (1 − p_t)^γ, where p_t = p for a positive and 1 − p for a negative":
            lambda: _formula(alpha_t, (1 - p) ** gamma, log_p_t),
        "the modulating factor (1 − p_t)^γ is missing: this is α-balanced cross-entropy":
            lambda: _formula(alpha_t, torch.ones_like(x), log_p_t),
        "log p is used for every element: a negative's cross-entropy is −log(1 − p), i.e. −log p_t":
            lambda: _formula(alpha_t, factor, F.logsigmoid(x)),
        "x_t has the wrong sign: x_t = x for a positive and −x for a negative, so that p_t = σ(x_t)":
            lambda: _formula(alpha_t, p_t ** gamma, F.logsigmoid(torch.where(y > 0, -x, x))),
        "the loss is negative: FL = −α_t (1 − p_t)^γ log p_t, and log p_t < 0": lambda: -right,
    }


def _diagnose_values(got: torch.Tensor, x: torch.Tensor, y: torch.Tensor, alpha: float, gamma: float,
                     atol: float) -> None:
    """A Mistake naming what is wrong with the values ``got`` of the focal loss of ``x``, ``y``."""
    expected = L.focal_loss(x, y, alpha, gamma)
    moderate = x.abs() < 8
    if not close(got, expected, atol=atol) and close(got[moderate], expected[moderate], atol=atol):
        raise Mistake(f"α = {alpha}, γ = {gamma}: right for small logits but wrong for large ones (|x| ≥ 8): "
                      "clamping or rounding the probability changes the loss of confident examples — compute "
                      "log p_t as F.logsigmoid(x_t), never through p")
    diagnose(got, expected, _wrong_focal_losses(x, y, alpha, gamma),
             f"α = {alpha}, γ = {gamma}: the values disagree with torchvision.ops.sigmoid_focal_loss", atol=atol)


def _values_and_gradient(loss_fn: FocalLoss, logits: torch.Tensor, targets: torch.Tensor, alpha: float,
                         gamma: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The element-wise loss and its gradient with respect to the logits (None if there is none)."""
    logits = logits.clone().requires_grad_()
    loss = loss_fn(logits, targets, alpha, gamma)
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        return as_tensor(loss, "my_focal_loss"), None
    (grad,) = torch.autograd.grad(loss.sum(), logits, allow_unused=True)
    return loss.detach(), grad


def p_t_and_alpha_t(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's side of exercise ``p_t_and_alpha_t``: p_t (the probability of the true answer) and α_t
    (α for a positive, 1 − α for a negative), both of the shape of ``logits`` and 0/1 ``targets``."""
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    p = torch.sigmoid(logits)
    positive = targets > 0
    return torch.where(positive, p, 1 - p), torch.where(positive, alpha, 1 - alpha).to(p.dtype)


def _raises_value_error(call: Callable[[], object]) -> bool:
    try:
        call()
    except ValueError:
        return True
    except NotImplementedError:
        raise
    except Exception:  # noqa: BLE001 — any other error is not the ValueError asked for
        return False
    return False


@exercise("p_t_and_alpha_t", "06", fallback=p_t_and_alpha_t)
def check_p_t_and_alpha_t(my_p_t_and_alpha_t: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``my_p_t_and_alpha_t(logits, targets, alpha)`` → (p_t, α_t), each of the logits' shape."""
    x, y = logits_and_targets((30, 4), seed=2)
    p = torch.sigmoid(x)
    for alpha in (0.25, 0.75):
        answer = my_p_t_and_alpha_t(x, y, alpha)
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Mistake("return two tensors, p_t and alpha_t, as a tuple: `return p_t, alpha_t`")
        p_t = as_tensor(answer[0], "p_t")
        expect_shape(p_t, (30, 4), "p_t for logits [30, 4]")
        alpha_t = answer[1]
        if not isinstance(alpha_t, torch.Tensor) or alpha_t.shape != x.shape:
            raise Mistake(f"α = {alpha}: α_t does not use the targets (got {type(alpha_t).__name__} "
                          f"{tuple(getattr(alpha_t, 'shape', ()))}): it is a tensor of the logits' shape, α where "
                          "the target is 1 and 1 − α where it is 0 — torch.where(targets > 0, alpha, 1 - alpha)")
        expected_p_t, expected_alpha_t = torch.where(y > 0, p, 1 - p), torch.where(y > 0, alpha, 1 - alpha)
        if close(p_t, expected_alpha_t) and close(alpha_t, expected_p_t):
            raise Mistake("p_t and alpha_t come back in the wrong order: return p_t first, then alpha_t")
        diagnose(p_t, expected_p_t, {
            "p_t = p for the negatives too: p_t is the probability of the true answer, p for a positive but "
            "1 − p for a negative": lambda: p,
            "p_t is swapped: 1 − p for a positive and p for a negative — p_t = p where the target is 1":
                lambda: 1 - expected_p_t,
            "p_t = 1 − p for the positives too: a positive's true answer is \"yes\", whose probability is p":
                lambda: 1 - p,
        }, "p_t is wrong: p_t = σ(x) for a positive (target 1) and 1 − σ(x) for a negative (target 0)")
        diagnose(alpha_t.double(), expected_alpha_t, {
            f"α = {alpha}: α_t = α for the negatives too — a negative is weighted by 1 − α, a positive by α":
                lambda: torch.full_like(x, alpha),
            f"α = {alpha}: α is applied to the negatives and 1 − α to the positives — α_t = α where the target "
            "is 1": lambda: torch.where(y > 0, 1 - alpha, alpha),
            f"α = {alpha}: α_t does not use the targets — α where the target is 1, 1 − α where it is 0":
                lambda: torch.full_like(x, 1 - alpha),
        }, f"α = {alpha}: α_t is wrong: α for a positive (target 1), 1 − α for a negative (target 0)")
    if not _raises_value_error(lambda: my_p_t_and_alpha_t(torch.zeros(4), torch.zeros(4, 1), 0.25)):
        raise Mistake("logits [4] and targets [4, 1] broadcast silently to [4, 4]: raise a ValueError when the "
                      "two shapes differ")
    if not _raises_value_error(lambda: my_p_t_and_alpha_t(torch.zeros(4), torch.zeros(4), 1.5)):
        raise Mistake("α = 1.5 gives the negatives a negative weight 1 − α: raise a ValueError unless 0 ≤ α ≤ 1")


def binary_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The package's side of exercise ``binary_cross_entropy``: the per-element binary cross-entropy of
    ``logits`` and ``targets`` (any shape, the same for both; 0/1 labels of any dtype, or floats in [0, 1])."""
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")


def _wrong_cross_entropies(x: torch.Tensor, y: torch.Tensor) -> dict[str, Callable]:
    """The usual wrong stable cross-entropies of logits ``x`` and float targets ``y``, as message → function."""
    softplus = torch.log1p(torch.exp(-x.abs()))
    return {
        "the sign of x·y is flipped: the loss is max(x, 0) − x·y + log(1 + exp(−|x|))":
            lambda: x.clamp(min=0) + x * y + softplus,
        "the loss is negative: cross-entropy is −log p_t ≥ 0 — it is max(x, 0) − x·y + log(1 + exp(−|x|))":
            lambda: -binary_cross_entropy(x, y),
        "the targets are swapped (1 − y used for y): the loss of a positive is −log σ(x), small for a large x":
            lambda: binary_cross_entropy(x, 1 - y),
        "the absolute value is missing: log(1 + exp(−|x|)), not log(1 + exp(−x)) (which overflows for a very "
        "negative x)": lambda: x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x)),
        "max(x, 0) is missing: the loss is max(x, 0) − x·y + log(1 + exp(−|x|))": lambda: -x * y + softplus,
    }


prediction(
    "predict_easy_weight", "06", "c13a587afaf6",
    explanation="(d). A negative gets α_t = 1 − α = 0.75, and 1 − p_t = 0.01, so its weight is 0.75 × 0.01³ = "
                "7.5 × 10⁻⁷: each step of 1 in γ divides it by another 100 (7.5 × 10⁻⁵ at γ = 2). The explorer's "
                "top-right panel marks it at p_t = 0.99.",
    hint="for a negative α_t is 1 − α, not α; (1 − p_t)^γ is γ factors of 0.01")
prediction(
    "predict_easy_share", "06", "a9de24710f2f",
    explanation="(c): 32 %. With γ = 1 every example's cross-entropy is multiplied by α_t (1 − p_t): an easy "
                "negative (p_t > 0.9) by less than 0.75 × 0.1 = 0.075 — a typical background anchor (p_t ≈ 0.998) "
                "by 0.002 — while a typical positive (p_t ≈ 0.6) keeps 0.25 × 0.4 = 0.1. The easy negatives' share "
                "falls from 79 % to 32 %; γ = 2 squares the factor (1 − p_t) and takes it to 5 %.",
    hint="compare the weight α_t (1 − p_t) of an easy negative (p_t above 0.9, most near 0.998) with that of a "
         "positive (p_t around 0.6): by how much does the ratio of the two groups' losses change?")


@exercise("binary_cross_entropy", "06", fallback=binary_cross_entropy,
          forbidden=(F.binary_cross_entropy_with_logits, F.binary_cross_entropy, torch.nn.BCEWithLogitsLoss,
                     L.focal_loss, torchvision.ops.sigmoid_focal_loss))
def check_binary_cross_entropy(my_bce: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``my_bce(logits, targets)``: the per-element binary cross-entropy, stable for any logit."""
    x, y = logits_and_targets((40, 3), seed=3)
    got = as_tensor(my_bce(x, y), "binary_cross_entropy")
    if got.numel() == 1:
        raise Mistake("binary_cross_entropy returns one number: it is averaged (or summed) instead of per element "
                      "— return the loss of every element, with the logits' shape")
    expect_shape(got, (40, 3), "binary_cross_entropy(logits [40, 3], targets [40, 3])")
    diagnose(got, binary_cross_entropy(x, y), _wrong_cross_entropies(x, y),
             "the values disagree with −[y log σ(x) + (1 − y) log(1 − σ(x))]", atol=1e-9)

    soft = torch.tensor([0.1, 0.5, 0.9, 0.3], dtype=torch.float64)
    logits = torch.tensor([-2.0, 1.0, 3.0, 0.0], dtype=torch.float64)
    if not close(my_bce(logits, soft), binary_cross_entropy(logits, soft), atol=1e-9):
        raise Mistake("wrong for targets between 0 and 1 (0.1, 0.5, 0.9): the targets are used as 0/1 flags "
                      "(torch.where / > 0) — use them as numbers, max(x, 0) − x·y + …, so that soft labels work too")
    for dtype in (torch.int64, torch.bool):
        labels = torch.tensor([1, 0, 1, 0]).to(dtype)
        try:
            values = my_bce(logits.float(), labels)
        except (RuntimeError, TypeError, NotImplementedError) as error:  # torch: "… with a bool tensor is not supported"
            raise Mistake(f"the targets are not used as floats: {dtype} 0/1 labels give "
                          f"{type(error).__name__}: {error} — convert them first, targets.to(logits.dtype)") from None
        if (not isinstance(values, torch.Tensor) or values.dtype != torch.float32
                or not close(values, binary_cross_entropy(logits.float(), labels))):
            raise Mistake(f"the targets are not used as floats: {dtype} 0/1 labels give {values!r} instead of "
                          "float32 losses — convert them first, targets.to(logits.dtype)")

    values = as_tensor(my_bce(EXTREME_LOGITS, EXTREME_TARGETS), "binary_cross_entropy")
    if not torch.isfinite(values).all():
        raise Mistake(f"not finite for logits of ±100 and ±200 in float32 (got {values.tolist()}): log(sigmoid(x)) "
                      "is computed naively — σ(x) rounds to exactly 0 or 1 and log gives −inf (and 0 · inf = NaN); "
                      "use max(x, 0) − x·y + log(1 + exp(−|x|))")
    if not close(values, binary_cross_entropy(EXTREME_LOGITS, EXTREME_TARGETS), rtol=1e-5):
        raise Mistake(f"wrong for logits of ±100 and ±200 in float32 (got {values.tolist()}): clamping or rounding "
                      "the probability changes the loss of a confident mistake — use max(x, 0) − x·y + "
                      "log(1 + exp(−|x|)), never σ(x)")
    if not _raises_value_error(lambda: my_bce(torch.zeros(4), torch.zeros(4, 1))):
        raise Mistake("logits [4] and targets [4, 1] broadcast silently to [4, 4]: raise a ValueError when the "
                      "two shapes differ")


@exercise("focal_loss", "06", fallback=L.focal_loss, forbidden=(torchvision.ops.sigmoid_focal_loss,))
def check_focal_loss(my_focal_loss: FocalLoss) -> None:
    """``my_focal_loss(logits, targets, alpha, gamma)``: element-wise, any shape, 0/1 targets."""
    x, y = logits_and_targets((40, 3), seed=0)
    got = as_tensor(my_focal_loss(x, y, 0.25, 2.0), "my_focal_loss")
    if got.numel() == 1:
        raise Mistake("my_focal_loss returns one number: it is summed (or averaged) instead of per element — "
                      "return the loss of every element, with the logits' shape; lesson 07 does the sum")
    expect_shape(got, (40, 3), "my_focal_loss(logits [40, 3], targets [40, 3])")
    _diagnose_values(got, x, y, 0.25, 2.0, atol=1e-5)

    x, y = logits_and_targets((500,), seed=1)
    for alpha, gamma in PAIRS:
        values, grad = _values_and_gradient(my_focal_loss, x, y, alpha, gamma)
        _, expected_grad = _values_and_gradient(L.focal_loss, x, y, alpha, gamma)
        _diagnose_values(values, x, y, alpha, gamma, atol=1e-9)
        if grad is None or not close(grad, expected_grad, atol=1e-9):
            raise Mistake(f"α = {alpha}, γ = {gamma}: the values are right but the gradient is not — part of the "
                          "loss is cut off from autograd (.detach(), .item(), torch.no_grad or a Python float)")

    for alpha, gamma in ((0.25, 2.0), (0.25, 0.5), (0.75, 5.0)):
        values, grad = _values_and_gradient(my_focal_loss, EXTREME_LOGITS, EXTREME_TARGETS, alpha, gamma)
        if not torch.isfinite(values).all():
            raise Mistake(f"not finite for logits of ±100 and ±200 in float32 (α = {alpha}, γ = {gamma}, got "
                          f"{values.tolist()}): the log of the sigmoid is computed naively — σ(x) rounds to "
                          "exactly 0 or 1 and log gives −inf; compute log p_t as F.logsigmoid(x_t) (or with "
                          "F.binary_cross_entropy_with_logits)")
        if not close(values, L.focal_loss(EXTREME_LOGITS, EXTREME_TARGETS, alpha, gamma), rtol=1e-5):
            raise Mistake(f"wrong for logits of ±100 and ±200 in float32 (α = {alpha}, γ = {gamma}): clamping or "
                          "rounding the probability changes the loss of a confident mistake — compute log p_t "
                          "as F.logsigmoid(x_t), never through p")
        if grad is None or not torch.isfinite(grad).all():
            raise Mistake(f"the gradient is not finite for logits of ±100 and ±200 (α = {alpha}, γ = {gamma}): "
                          "(1 − p_t)^γ computed from a probability has an infinite slope where 1 − p_t rounds "
                          "to 0 — compute it as exp(γ · F.logsigmoid(−x_t))")


declare("06", "loss_reduction", "smallest_gamma", "focal_loss_star")
