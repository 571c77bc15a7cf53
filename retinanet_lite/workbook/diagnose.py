"""Small tools the checkers share: compare an answer with the right one and with known wrong ones."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .core import Mistake


def as_tensor(value: Any, what: str) -> torch.Tensor:
    """``value`` as a float64 tensor, or a Mistake saying what ``what`` returned instead."""
    if isinstance(value, torch.Tensor):
        return value.detach().double()
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise Mistake(f"{what} should return a tensor (or numbers), got {type(value).__name__}") from None


def expect_shape(value: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
    """A Mistake naming ``what`` unless ``value.shape == shape``."""
    if tuple(value.shape) != tuple(shape):
        raise Mistake(f"{what} should have shape {list(shape)}, got {list(value.shape)}")


def close(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-5) -> bool:
    """Same shape and all values within tolerance (NaNs count as wrong)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.isfinite(a).all()) and torch.allclose(a, b, atol=atol, rtol=rtol)


def diagnose(got: Any, expected: Any, wrong: dict[str, Callable[[], Any]], otherwise: str,
             atol: float = 1e-5) -> None:
    """Pass if ``got`` matches ``expected``; else raise a Mistake with the message of the first known
    wrong answer (``wrong``: message → function computing that wrong answer) that ``got`` matches,
    or ``otherwise``."""
    if close(got, expected, atol=atol):
        return
    for message, wrong_answer in wrong.items():
        if close(got, wrong_answer(), atol=atol):
            raise Mistake(message)
    raise Mistake(otherwise)
