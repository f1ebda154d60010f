"""The oracle's view of one input: expected values in float64, the mask, the magnitudes, and
the tolerance bounds per dtype. Cached by a fingerprint of the arguments, so every
implementation checked on the same input shares one (costly) exact evaluation."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relpos.equivalence import tolerance
from relpos.equivalence.dtypes import largest_finite

__all__ = [
    "Approximate",
    "Expected",
    "approximate",
    "expected",
    "expected_gradients",
    "fingerprint",
    "overflow_note",
]

_CACHE: OrderedDict[bytes, Expected] = OrderedDict()
_CACHE_SIZE = 256


@dataclass
class Expected:
    """What a correct implementation returns for one input, and how far it may be off."""

    encoding: str
    scores: np.ndarray
    probs: np.ndarray
    out: np.ndarray
    mask: np.ndarray
    magnitude_scores: np.ndarray
    magnitude_out: np.ndarray
    #: How far each expected value may be from the exact one (the oracle's radius).
    radius: tolerance.Bounds | None = None
    #: The largest |logit| over every pair, masked ones included, and the scale it carries.
    peak_logit: float = 0.0
    scale: float = 1.0
    #: The largest |logit| of each query row (batch, head, query), masked pairs included.
    row_peaks: np.ndarray | None = None
    #: sum_j |V_ij| over the visible keys of each output element (E3's underflow term: a
    #: probability flushed to zero loses up to the smallest normal times |V_ij|, however
    #: small the probability was).
    abs_values_sum: np.ndarray | None = None
    #: The part of magnitude_scores that rounding a phase adds (RoPE), or None.
    magnitude_phase: np.ndarray | None = None
    _bounds: dict[str, tolerance.Bounds] = field(default_factory=dict)

    def bounds(self, dtype: str) -> tolerance.Bounds:
        if dtype not in self._bounds:
            self._bounds[dtype] = tolerance.bounds(
                dtype,
                probs=self.probs,
                mask=self.mask,
                magnitude_scores=self.magnitude_scores,
                magnitude_out=self.magnitude_out,
                abs_values_sum=self.abs_values_sum,
                oracle_radius=self.radius,
                magnitude_phase=self.magnitude_phase,
            )
        return self._bounds[dtype]


def fingerprint(encoding: str, args: Mapping[str, Any]) -> bytes:
    """A digest of every argument: names, shapes, dtypes, bytes, option values."""
    h = hashlib.sha256(encoding.encode())
    for name in sorted(args):
        value = args[name]
        h.update(name.encode())
        if isinstance(value, np.ndarray):
            h.update(f"{value.dtype}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(repr(value).encode())
    return h.digest()


def expected(encoding: str, args: Mapping[str, Any]) -> Expected:
    """The oracle's expected values for ``args`` (numpy arrays and options)."""
    from relpos.spec import evaluate, pair_values

    key = fingerprint(encoding, args)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    result = evaluate(encoding, **args)
    mags, radius = tolerance.scaling(encoding, args, result)
    value = Expected(
        encoding,
        result.as_float64("scores"),
        result.as_float64("probs"),
        result.as_float64("out"),
        result.mask,
        mags["scores"],
        mags["out"],
        radius=radius,
        peak_logit=_peak(result.as_float64("logits")),
        scale=result.scale,
        row_peaks=_row_peaks(result.as_float64("logits")),
        abs_values_sum=np.einsum(
            "bhij,bhijd->bhid", result.mask, np.abs(pair_values(encoding, **args))
        ),
        magnitude_phase=mags.get("scores_phase"),
    )
    _CACHE[key] = value
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def _peak(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size else 0.0


def _row_peaks(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), np.abs(values), 0.0).max(axis=-1, initial=0.0)


def overflow_note(want: Expected, dtype: str, row: tuple[int, ...] | None = None) -> str:
    """Why ``dtype`` code may give inf or NaN where the oracle is finite, when one of these
    passes ``dtype``'s largest finite value: the logits; the logits before their scale (a
    product scaled afterwards); or the magnitude of the products a logit sums (terms formed
    separately, such as content and position, can overflow in opposite directions though
    their sum fits). With ``row`` (batch, head, query), only that query's logits count: an
    overflow there also explains finite wrong weights (an infinite logit beside finite ones
    takes or loses the whole row). Empty when none passes."""
    largest = largest_finite(dtype)
    peak, where = want.peak_logit, ""
    magnitude = want.magnitude_scores
    if row is not None:
        if want.row_peaks is None:
            return ""
        peak, where = float(want.row_peaks[row]), f" in query row {list(row)}"
        magnitude = magnitude[row]
    beyond = f"beyond {dtype}'s largest finite {largest:.6g}"
    if peak > largest:
        return f"the logits{where} reach {peak:.3g}, {beyond}"
    unscaled = peak / want.scale if want.scale else 0.0
    if unscaled > largest:
        return (
            f"|logit| / scale{where} reaches {unscaled:.3g} at scale {want.scale:.3g}, "
            f"{beyond}, so a product scaled only afterwards overflows"
        )
    widest = _peak(np.asarray(magnitude)) * max(1.0, 1.0 / want.scale if want.scale else 1.0)
    if widest > largest:
        return (
            f"the products the logits{where} sum reach {widest:.3g} in magnitude before the "
            f"scale, {beyond}, so terms formed in {dtype} may overflow though their sum fits"
        )
    return ""


@dataclass
class Approximate:
    """Bounds for inputs too large for the exact oracle: the spec's formulas in float64 give
    the probabilities, mask and magnitudes the tolerance model needs (no expected values)."""

    probs: np.ndarray
    mask: np.ndarray
    magnitude_scores: np.ndarray
    magnitude_out: np.ndarray
    magnitude_phase: np.ndarray | None = None

    def bounds(self, dtype: str) -> tolerance.Bounds:
        return tolerance.bounds(
            dtype,
            probs=self.probs,
            mask=self.mask,
            magnitude_scores=self.magnitude_scores,
            magnitude_out=self.magnitude_out,
            magnitude_phase=self.magnitude_phase,
        )


def approximate(encoding: str, args: Mapping[str, Any]) -> Approximate:
    from relpos.spec import approximate as spec_approximate

    a = spec_approximate(encoding, **args)
    return Approximate(a["probs"], a["mask"], a["scores"], a["out"], a.get("scores_phase"))


_Arrays = dict[str, np.ndarray]
_GRADIENTS: OrderedDict[bytes, tuple[_Arrays, _Arrays, _Arrays]] = OrderedDict()


def expected_gradients(
    encoding: str, args: Mapping[str, Any], weights: np.ndarray
) -> tuple[_Arrays, _Arrays, _Arrays]:
    """The oracle's gradients of sum(weights * out) (float64), their magnitudes and their
    underflow sensitivities (:func:`relpos.spec.underflow_sensitivities`), cached."""
    from relpos.spec import gradient_magnitudes, gradients, underflow_sensitivities

    key = fingerprint(encoding, {**args, "__weights": np.asarray(weights)})
    if key not in _GRADIENTS:
        to_float = np.vectorize(float, otypes=[np.float64])
        exact = {n: to_float(g) for n, g in gradients(encoding, weights, **args).items()}
        _GRADIENTS[key] = (
            exact,
            gradient_magnitudes(encoding, weights, **args),
            underflow_sensitivities(encoding, weights, **args),
        )
        if len(_GRADIENTS) > _CACHE_SIZE:
            _GRADIENTS.popitem(last=False)
    return _GRADIENTS[key]
