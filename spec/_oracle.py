"""The oracle: evaluates an encoding's spec on concrete inputs, exactly or in high precision.

Pipeline, the same for every encoding:

1. validate the arguments (:meth:`Encoding.validate`, shapes and options only);
2. convert every float input to exact rationals (a float is a dyadic rational);
3. logits e[b, h, i, j] from the encoding's formulas (exact rationals where the formula is
   rational, mpmath at :data:`~spec._arith.DPS` digits where it is not, e.g. the sinusoid or
   an irrational scale);
4. the full mask: the ``mask`` argument broadcast to (bsz, n_head, qlen, klen), AND the
   encoding's own structural mask (XLNet's ``uni``);
5. probabilities alpha_ij = exp(e_ij) / sum_k exp(e_ik) over the visible keys, in mpmath; a
   row with no visible key has alpha = 0 and output 0 (never NaN);
6. outputs o_i = sum_j alpha_ij V_ij with the encoding's per-pair values V.

:func:`gradients` runs the same pipeline on :class:`~spec._arith.Dual` numbers (forward-mode
differentiation over the oracle's own arithmetic) for the loss sum(w * out).
:func:`magnitudes` runs it with absolute values, giving the per-element magnitudes the
tolerance model scales (|e| bounds and sum_j alpha_ij |V_ij|).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import flint
import mpmath
import numpy as np
import sympy as sp

from relpos.spec import _arith, _balls
from relpos.spec._arith import DPS, Mode
from relpos.spec._encoding import Encoding
from relpos.spec._signature import ArgumentError, Problem

__all__ = [
    "Evaluation",
    "approximate",
    "evaluate",
    "float_logits",
    "gradient_magnitudes",
    "gradients",
    "magnitudes",
    "pair_values",
    "underflow_sensitivities",
]


@dataclass(frozen=True)
class Evaluation:
    """The oracle's result. Arrays are object arrays of mpf (``scores`` is -inf where masked).

    ``logits`` are the unmasked logits as the oracle computed them (Fractions where exact).
    """

    problem: Problem
    logits: np.ndarray
    scores: np.ndarray
    probs: np.ndarray
    out: np.ndarray
    mask: np.ndarray
    #: "exact" (Fractions and mpf) or "ball" (python-flint arb enclosures).
    method: str = "exact"

    def as_float64(self, name: str) -> np.ndarray:
        """One of scores, probs, out rounded to float64 (-inf kept; a ball's midpoint)."""
        arr = getattr(self, name)
        if self.method == "ball":
            return _balls.midpoints(arr)
        return _to_float64(arr)

    @property
    def scale(self) -> float:
        """The scale the logits were computed with (the ``scale`` option, else the encoding's
        default), as a float."""
        enc = _encoding(self.problem.encoding)
        given = self.problem.options.get("scale")
        return float(given if given is not None else enc.default_scale(self.problem))

    def radius(self, name: str) -> np.ndarray:
        """How far the exact value may be from :meth:`as_float64`'s, per element: the ball's
        certified radius plus the rounding to float64 (half an ulp). The exact path reports
        only that rounding, its 60 working digits being far below it."""
        mid = self.as_float64(name)
        rounding = np.where(np.isfinite(mid), np.spacing(np.abs(mid)) / 2, 0.0)
        if self.method != "ball":
            return rounding
        return rounding + np.where(np.isfinite(mid), _balls.radii(getattr(self, name)), 0.0)


def _encoding(encoding: str | Encoding) -> Encoding:
    if isinstance(encoding, Encoding):
        return encoding
    from relpos.spec.encodings import get

    return get(encoding)


def _scale(enc: Encoding, problem: Problem, mode: Mode) -> Any:
    given = problem.options.get("scale")
    if given is not None:
        return _arith.constant(Fraction(given), mode)
    return _arith.constant(sp.nsimplify(enc.default_scale(problem)), mode)


def full_mask(enc: Encoding, problem: Problem) -> np.ndarray:
    """The visible (b, h, i, j) pairs: the mask argument AND the structural mask."""
    d = problem.dims
    shape = (d["bsz"], d["n_head"], d["qlen"], d["klen"])
    given = problem.tensors.get("mask")
    mask = np.ones(shape, dtype=bool)
    if given is not None:
        mask &= np.broadcast_to(np.asarray(given, dtype=bool), shape)
    structural = enc.structural_mask(problem)
    if structural is not None:
        mask &= structural[:, None]  # (B, qlen, klen): per batch row, shared by the heads
    return mask


def _inputs(
    enc: Encoding, problem: Problem, mode: Mode, dual: type[_arith.Dual] = _arith.Dual
) -> dict[str, Any]:
    x: dict[str, Any] = {}
    for t in enc.tensors:
        value = problem.tensors.get(t.name)
        if value is None:
            x[t.name] = None
        elif t.kind == "float":
            x[t.name] = _arith.lift(t.name, value, mode, dual)
        else:
            x[t.name] = np.asarray(value)
    return x


def _softmax_float(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked softmax in float64 (float modes only: magnitudes, never expected values)."""
    scores = np.where(mask, logits, -np.inf)
    top = scores.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.where(mask, np.exp(scores - top), 0.0)
    total = weights.sum(axis=-1, keepdims=True)
    return weights / np.where(total > 0, total, 1.0)


def _run(
    enc: Encoding, problem: Problem, mode: Mode, dual: type[_arith.Dual] = _arith.Dual
) -> tuple[np.ndarray, ...]:
    x = _inputs(enc, problem, mode, dual)
    logits = enc.logits(problem, x, _scale(enc, problem, mode), mode)
    mask = full_mask(enc, problem)
    if mode in _arith.FLOAT_MODES:
        probs = _softmax_float(logits, mask)
        out = (probs[..., None] * enc.values(problem, x, mode)).sum(axis=-2)
        return logits, probs, out, mask
    zero = mpmath.mpf(0)
    probs = np.full(logits.shape, zero, dtype=object)
    for index in np.ndindex(*logits.shape[:-1]):
        visible = mask[index]
        if not visible.any():
            continue
        row = logits[index][visible]
        weights = [_arith.exp(e) for e in row]
        total = weights[0]
        for w in weights[1:]:
            total = total + w
        probs[(*index, visible)] = np.array([w / total for w in weights], dtype=object)
    values = enc.values(problem, x, mode)
    out = (probs[..., None] * values).sum(axis=-2)
    return logits, probs, out, mask


#: ``method="auto"`` evaluates exactly up to this many (b, h, i, j) pairs, in balls beyond.
EXACT_PAIRS = 256

METHODS = ("auto", "exact", "ball")


def choose_method(problem: Problem, method: str = "auto") -> str:
    """The evaluation path ``method`` stands for on this problem: "exact" or "ball"."""
    if method not in METHODS:
        raise ArgumentError("method", repr(method), f"must be one of {', '.join(METHODS)}")
    if method != "auto":
        return method
    d = problem.dims
    pairs = d["bsz"] * d["n_head"] * d["qlen"] * d["klen"]
    return "exact" if pairs <= EXACT_PAIRS else "ball"


def evaluate(encoding: str | Encoding, /, *, method: str = "auto", **args: Any) -> Evaluation:
    """Evaluate the spec: scores, probabilities and outputs to :data:`DPS` digits.

    Arguments are the encoding's (``relpos spec show NAME`` lists them); tensors may be numpy
    arrays of any float dtype (converted exactly), or object arrays of Fractions or decimal
    strings. ``method``: "exact" (rationals where the formula is rational, mpmath at
    :data:`DPS` digits elsewhere), "ball" (certified enclosures in python-flint's arb at
    :data:`~relpos.spec._balls.PRECISION` bits, with their radii; Fractions that are not
    floats enter as balls around their exact value), or
    "auto": exact up to :data:`EXACT_PAIRS` pairs, balls beyond.
    """
    enc = _encoding(encoding)
    problem = enc.validate(args, check_dtypes=False)
    chosen = choose_method(problem, method)
    if chosen == "ball":
        return _evaluate_balls(enc, problem)
    with mpmath.workdps(DPS):
        logits, probs, out, mask = _run(enc, problem, "exact")
        scores = np.empty(logits.shape, dtype=object)
        for index in np.ndindex(*logits.shape):
            scores[index] = _arith.to_mpf(logits[index]) if mask[index] else mpmath.ninf
        probs = np.vectorize(_arith.to_mpf, otypes=[object])(probs)
        out = np.vectorize(_arith.to_mpf, otypes=[object])(out)
    return Evaluation(problem, logits, scores, probs, out, mask)


_EXP = _balls.ELEMENTWISE["exp"]


def _softmax_balls(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The masked softmax in balls; a row with no visible key is all zeros."""
    zero: Any = _balls.arb(0)
    mask = np.broadcast_to(mask, logits.shape)
    if mask.all():
        weights = _EXP(logits)
    else:
        weights = np.full(logits.shape, zero, dtype=object)
        weights[mask] = _EXP(logits[mask])
    total = weights.sum(axis=-1, keepdims=True)
    empty = ~mask.any(axis=-1, keepdims=True)
    one: Any = _balls.arb(1)
    # One reciprocal per row; an empty row's weights are all zero already.
    return weights * _RECIPROCAL(np.where(empty, one, total))


_RECIPROCAL = np.frompyfunc(lambda x: 1 / x, 1, 1)


def _evaluate_balls(enc: Encoding, problem: Problem) -> Evaluation:
    """The same pipeline in ball arithmetic: logits term by term from the formula (one
    ``arb_mat`` product per bilinear term), a certified softmax, outputs as products of the
    weights (summed per table row) with the value tables."""
    with flint.ctx.workprec(_balls.PRECISION):
        x = _inputs(enc, problem, "ball")
        logits = enc.logits(problem, x, _scale(enc, problem, "ball"), "ball")
        mask = full_mask(enc, problem)
        probs = _softmax_balls(logits, mask)
        out = enc.weighted_values(problem, x, probs)
    scores = np.where(mask, logits, mpmath.ninf)
    return Evaluation(problem, logits, scores, probs, out, mask, method="ball")


def magnitudes(
    encoding: str | Encoding, /, precision: str = "exact", **args: Any
) -> dict[str, np.ndarray]:
    """Per-element magnitudes of the computation, for error bounds (float64 arrays).

    ``scores``: the logit formula evaluated on absolute values of every input and constant
    (for Shaw, scale * |q_i| . (|k_j| + |a_c|)), an upper bound on the magnitude of every
    product a floating-point evaluation sums; ``scores_phase`` (RoPE only): the part of
    ``scores`` that rounding the angles adds; ``out``: sum_j alpha_ij |V|_ij, which bounds the
    terms the output sums. ``precision="float64"`` evaluates the same formulas in float64
    numpy arrays: fast enough for long sequences, and far more accurate than the constants of
    any bound built on it.
    """
    enc = _encoding(encoding)
    problem = enc.validate(args, check_dtypes=False)
    if precision not in ("exact", "float64"):
        raise ArgumentError("precision", repr(precision), "must be 'exact' or 'float64'")
    value_mode: Mode = "exact" if precision == "exact" else "float"
    abs_mode: Mode = "abs" if precision == "exact" else "abs_float"
    with mpmath.workdps(DPS):
        abs_inputs = _inputs(enc, problem, abs_mode)
        abs_scale = _scale(enc, problem, abs_mode)
        abs_logits = enc.logits(problem, abs_inputs, abs_scale, abs_mode)
        phase = enc.phase_magnitude(problem, abs_inputs, abs_scale, abs_mode)
        _, probs, _, _ = _run(enc, problem, value_mode)
        abs_out = (probs[..., None] * enc.values(problem, abs_inputs, abs_mode)).sum(axis=-2)
    out = {"scores": _to_float64(abs_logits), "out": _to_float64(abs_out)}
    if phase is not None:
        out["scores_phase"] = np.maximum(_to_float64(phase), 0.0)
    return out


def _to_float64(arr: np.ndarray) -> np.ndarray:
    """An array of exact, mpf or dual values rounded to float64; a float array as it is."""
    if arr.dtype != object:
        return np.asarray(arr, dtype=np.float64)
    return np.vectorize(lambda v: float(_arith.value_of(v)), otypes=[np.float64])(arr)


def gradients(
    encoding: str | Encoding, /, weights: Any, *, method: str = "auto", **args: Any
) -> dict[str, np.ndarray]:
    """d/dx of sum(weights * out) for every float input x, as object arrays.

    "exact": forward mode, every input element a dual seeded with derivative 1, through the
    oracle's own pipeline (the same code as :func:`evaluate`): mpf values, exact up to the
    working precision; costly, for small shapes. "ball": the analytic backward of attention in
    ball arithmetic over the same lowered formula (each bilinear term sends its upstream,
    summed per pair of table rows, to both tables; tables derived from inputs carry it back
    through their own pullbacks): ``arb`` enclosures. "auto" chooses as :func:`evaluate` does.
    """
    enc = _encoding(encoding)
    problem = enc.validate(args, check_dtypes=False)
    _check_weights(problem, weights)
    if choose_method(problem, method) == "ball":
        return _gradients_balls(enc, problem, weights)
    return _gradients(enc, weights, args, _arith.Dual)


def _check_weights(problem: Problem, weights: Any) -> None:
    d = problem.dims
    out_shape = (d["bsz"], d["n_head"], d["qlen"], d["d_head"])
    w = np.asarray(weights)
    if w.shape != out_shape:
        raise ArgumentError(
            "weights", f"weights.shape={w.shape}", f"must have the shape of the output {out_shape}"
        )


def _gradients_balls(enc: Encoding, problem: Problem, weights: Any) -> dict[str, np.ndarray]:
    d = problem.dims
    pairs = (d["bsz"], d["n_head"], d["qlen"], d["klen"])
    with flint.ctx.workprec(_balls.PRECISION):
        x = _inputs(enc, problem, "ball")
        formula, operands = enc.logit_operands(problem, x, _scale(enc, problem, "ball"), "ball")
        logits = formula.balls(pairs, *operands)
        probs = _softmax_balls(logits, full_mask(enc, problem))
        value_formula, value_operands = enc.value_operands(problem, x, "ball")
        upstream = _balls.lift(weights)
        d_probs, value_tables = value_formula.value_gradients(
            pairs, probs, upstream, value_operands
        )
        weighted = probs * d_probs  # softmax backward; masked pairs have probs 0
        d_logits = weighted - probs * weighted.sum(axis=-1, keepdims=True)
        logit_tables = formula.logit_gradients(pairs, d_logits, operands)
        grads: dict[str, np.ndarray] = {}
        for name in enc.float_inputs:
            value = problem.tensors.get(name)
            if value is not None:
                grads[name] = np.full(np.shape(value), _balls.arb(0), dtype=object)
        for operand, table_gradient in (*value_tables.values(), *logit_tables.values()):
            for name, g in operand.pullback(table_gradient).items():
                grads[name] = grads[name] + g
    return grads


def gradient_magnitudes(
    encoding: str | Encoding, /, weights: Any, **args: Any
) -> dict[str, np.ndarray]:
    """For every float input x: the sum over all computational paths from x to
    sum(|weights| * out) of the absolute values of the chain-rule products (float64 arrays).

    A floating-point gradient sums exactly these products (in forward or reverse order), so
    its rounding error is bounded by a multiple of this magnitude
    (``relpos.equivalence.tolerance``).
    """
    grads = _gradients(encoding, np.abs(np.asarray(weights)), args, _arith.AbsDual)
    to_float = np.vectorize(lambda x: float(x), otypes=[np.float64])
    return {name: to_float(g) for name, g in grads.items()}


def underflow_sensitivities(
    encoding: str | Encoding, /, weights: Any, **args: Any
) -> dict[str, np.ndarray]:
    """For every float input x: how far the gradient of sum(weights * out) with respect to x
    may move, per unit of absolute error, when a floating-point evaluation flushes to zero the
    intermediates that fall below its smallest normal (float64 arrays; multiply by that
    smallest normal).

    A backend that flushes subnormals (XLA on CPU does) replaces a probability alpha_ij below
    the smallest normal by 0, and so do the products of the backward pass through it. Each
    such flush is an absolute error of at most one smallest normal in one intermediate, which
    the rest of its path then multiplies; the gradient magnitudes of
    :func:`gradient_magnitudes` cannot bound it, since they carry the tiny alpha_ij itself.
    With dP_ij = weights_i . V_ij and D_ij = sum_d |weights_id| |V_ijd|, the softmax backward
    dS_ij = alpha_ij (dP_ij - sum_k alpha_ik dP_ik) moves by at most 3 + D_ij + 2 sum_k D_ik
    per unit flush in its row (alpha_ij itself, the product with the bracket, and the row sum
    through every alpha_ik <= 1). That reaches x through the logits, and a flushed alpha_ij
    or alpha_ij weights_i reaches x through the values; hence, over the visible pairs,

        S_x = sum_ij (3 + D_ij + 2 sum_k D_ik) |d e_ij / d x|'
              + sum_ijd (1 + |weights_id|) |d V_ijd / d x|

    where |d . / d x| is the sum of absolute chain-rule products of
    :class:`~spec._arith.AbsDual`, and ' marks logits formed with the scale raised to at least 1
    (a backward pass may flush the upstream times the scale before multiplying by the other
    operand).
    """
    enc = _encoding(encoding)
    problem = enc.validate(args, check_dtypes=False)
    _check_weights(problem, weights)
    w = np.abs(np.asarray(weights, dtype=np.float64))
    mask = full_mask(enc, problem)
    with mpmath.workdps(DPS):
        x = _inputs(enc, problem, "dual", _arith.AbsDual)
        scale = _scale(enc, problem, "dual")
        raised = scale if abs(scale) >= 1 else _arith.constant(1, "dual")
        logits = enc.logits(problem, x, raised, "dual")
        values = enc.values(problem, x, "dual")
        v = _to_float64(values)  # (bsz, n_head, qlen, klen, d_head)
        d_per_pair = np.where(mask, (w[:, :, :, None, :] * np.abs(v)).sum(axis=-1), 0.0)
        row = d_per_pair.sum(axis=-1, keepdims=True)
        through_logits = np.where(mask, 3 + d_per_pair + 2 * row, 0.0)
        loss: Any = mpmath.mpf(0)
        for index in zip(*np.nonzero(mask), strict=True):
            loss = loss + logits[index] * mpmath.mpf(float(through_logits[index]))
            b, h, i, _ = index
            for n, value in enumerate(values[index]):
                loss = loss + value * mpmath.mpf(1 + float(w[b, h, i, n]))
        tangent = loss.tangent if isinstance(loss, _arith.Dual) else {}
    out = {
        name: np.zeros(np.shape(problem.tensors[name]))
        for name in enc.float_inputs
        if problem.tensors.get(name) is not None
    }
    for (name, n), dv in tangent.items():
        out[name].reshape(-1)[n] = float(_arith.to_mpf(dv))
    return out


def _gradients(
    encoding: str | Encoding, weights: Any, args: dict[str, Any], dual: type[_arith.Dual]
) -> dict[str, np.ndarray]:
    enc = _encoding(encoding)
    problem = enc.validate(args, check_dtypes=False)
    _check_weights(problem, weights)
    w = np.asarray(weights)
    with mpmath.workdps(DPS):
        _, _, out, _ = _run(enc, problem, "dual", dual)
        w_exact = _arith.to_fraction_array(w)
        loss: Any = mpmath.mpf(0)
        for o, wv in zip(out.ravel(), w_exact.ravel(), strict=True):
            if wv != 0:
                loss = loss + o * wv
        tangent = loss.tangent if isinstance(loss, _arith.Dual) else {}
        grads: dict[str, np.ndarray] = {}
        for name in enc.float_inputs:
            value = problem.tensors.get(name)
            if value is not None:
                grads[name] = np.full(np.shape(value), mpmath.mpf(0), dtype=object)
        for (name, n), dv in tangent.items():
            grads[name].reshape(-1)[n] = _arith.to_mpf(dv)
    return grads


def pair_values(encoding: str | Encoding, /, **args: Any) -> np.ndarray:
    """V[b, h, i, j, :], the value pair (i, j) contributes to output i, in float64 and
    broadcast to (bsz, n_head, qlen, klen, d_head): what a row of uniform probabilities
    averages (libraries whose fully masked rows are uniform)."""
    enc = _encoding(encoding)
    problem = enc.validate(args, check_dtypes=False)
    d = problem.dims
    with mpmath.workdps(DPS):
        values = enc.values(problem, _inputs(enc, problem, "float"), "float")
    shape = (d["bsz"], d["n_head"], d["qlen"], d["klen"], d["d_head"])
    return np.broadcast_to(np.asarray(values, dtype=np.float64), shape)


def float_logits(encoding: str | Encoding, /, **args: Any) -> np.ndarray:
    """The logits e[b, h, i, j] (masked pairs included) of the spec's formulas in float64
    numpy arrays: for sizing inputs (how large the logits of a draw are), never an expected
    value."""
    enc = _encoding(encoding)
    problem = enc.validate(args, check_dtypes=False)
    with mpmath.workdps(DPS):
        x = _inputs(enc, problem, "float")
        logits = enc.logits(problem, x, _scale(enc, problem, "float"), "float")
    return np.asarray(logits, dtype=np.float64)


def approximate(encoding: str | Encoding, /, **args: Any) -> dict[str, np.ndarray]:
    """The spec's formulas evaluated in float64 numpy arrays: probabilities, the full mask and
    the magnitudes of :func:`magnitudes`. For error bounds on inputs too large for the exact
    oracle; never an expected value."""
    enc = _encoding(encoding)
    problem = enc.validate(args, check_dtypes=False)
    with mpmath.workdps(DPS):
        _, probs, _, mask = _run(enc, problem, "float")
        abs_inputs = _inputs(enc, problem, "abs_float")
        abs_scale = _scale(enc, problem, "abs_float")
        abs_logits = enc.logits(problem, abs_inputs, abs_scale, "abs_float")
        phase = enc.phase_magnitude(problem, abs_inputs, abs_scale, "abs_float")
        abs_out = (probs[..., None] * enc.values(problem, abs_inputs, "abs_float")).sum(axis=-2)
    out = {
        "probs": probs,
        "mask": mask,
        "scores": np.asarray(abs_logits, dtype=np.float64),
        "out": np.asarray(abs_out, dtype=np.float64),
    }
    if phase is not None:
        out["scores_phase"] = np.maximum(np.asarray(phase, dtype=np.float64), 0.0)
    return out
