"""Comparisons that explain themselves.

A comparison checks every element of an implementation's result against the oracle within the
per-element bound of the tolerance model and, on failure, says what was compared, where the
worst element is, by how much it is off, the allowed bound, and how to reproduce it::

    out of torch-shaw-fast in float32 = 0.51234 at [0, 1, 2, 3], but should be 0.51301
    (oracle) within 2.1e-06: error 6.7e-04 is 320.5x the bound
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Verdict", "compare", "error_ratio"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one comparison. ``worst_ratio`` is the largest error as a fraction of its
    bound (<= 1 passes); ``message`` is empty when it passes."""

    ok: bool
    worst_ratio: float
    index: tuple[int, ...]
    message: str
    #: What went wrong, for telling failures apart: "nan", "inf", "shape" or "bound" ("" when
    #: it passed, or for a verdict not made by :func:`compare`).
    kind: str = ""


def compare(
    what: str,
    actual: np.ndarray,
    expected: np.ndarray,
    bound: np.ndarray,
    *,
    who: str,
    against: str = "oracle",
    repro: str = "",
) -> Verdict:
    """Compare ``actual`` with ``expected`` element by element within ``bound``.

    -inf must match -inf exactly (masked scores), NaN never passes, shapes must agree.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        msg = f"{what} of {who} has shape {actual.shape}, but should have {expected.shape}"
        return Verdict(False, float("inf"), (), _with_repro(msg, repro), "shape")
    nan = np.isnan(actual)
    if nan.any():
        index = tuple(int(i) for i in np.argwhere(nan)[0])
        should = (
            f"{against} is nan there too, and NaN never passes"
            if np.isnan(expected[index])
            else f"should be {expected[index]:.17g} ({against})"
        )
        msg = f"{what} of {who} = nan at {list(index)}, but {should}; {int(nan.sum())} NaN in all"
        return Verdict(False, float("inf"), index, _with_repro(msg, repro), "nan")
    inf_mismatch = np.isinf(actual) != np.isinf(expected)
    inf_mismatch |= np.isinf(actual) & np.isinf(expected) & (np.sign(actual) != np.sign(expected))
    if inf_mismatch.any():
        index = tuple(int(i) for i in np.argwhere(inf_mismatch)[0])
        msg = (
            f"{what} of {who} = {actual[index]:.17g} at {list(index)}, but should be "
            f"{expected[index]:.17g} ({against})"
        )
        return Verdict(False, float("inf"), index, _with_repro(msg, repro), "inf")
    error, ratio = _errors(actual, expected, bound)
    if ratio.size == 0:
        return Verdict(True, 0.0, (), "")
    flat = int(np.argmax(ratio))
    index = tuple(int(i) for i in np.unravel_index(flat, ratio.shape))
    worst = float(ratio[index])
    if worst <= 1.0:
        return Verdict(True, worst, index, "")
    msg = (
        f"{what} of {who} = {actual[index]:.17g} at {list(index)}, but should be "
        f"{expected[index]:.17g} ({against}) within {bound[index]:.3g}: error "
        f"{error[index]:.3g} is {worst:.4g}x the bound"
    )
    return Verdict(False, worst, index, _with_repro(msg, repro), "bound")


def _errors(
    actual: np.ndarray, expected: np.ndarray, bound: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """|actual - expected| where the expected value is finite (0 elsewhere), and that error
    as a fraction of ``bound`` (inf where the bound is 0 and the error is not)."""
    finite = np.isfinite(expected)
    error = np.where(finite, np.abs(actual - np.where(finite, expected, 0.0)), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / np.where(bound > 0, bound, 0.0))
    return error, np.where(np.isnan(ratio), np.inf, ratio)


def error_ratio(actual: np.ndarray, expected: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Every element's error as a fraction of its bound, as :func:`compare` judges it: inf
    for NaN and for an infinity the oracle does not hold (or holds with the other sign), 0
    where both hold the same infinity. Shapes must agree."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shape {actual.shape} is not the oracle's {expected.shape}")
    wrong = np.isnan(actual) | (np.isinf(actual) != np.isinf(expected))
    wrong |= np.isinf(actual) & np.isinf(expected) & (np.sign(actual) != np.sign(expected))
    with np.errstate(invalid="ignore"):
        ratio = _errors(np.where(wrong, 0.0, actual), expected, np.asarray(bound))[1]
    return np.where(wrong, np.inf, ratio)


def _with_repro(message: str, repro: str) -> str:
    return f"{message}\nrepro:\n{repro}" if repro else message
