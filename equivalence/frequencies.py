"""The inverse frequencies and attention factor of a RoPE implementation against the spec's
exact values (:mod:`relpos.spec.rope_scaling`).

A library computes theta'_t in its own precision (float32 in most). The bound on each one is
derived from how such code computes it, each step rounded once (unit roundoff u of the
dtype):

- the exponent 2t/r is rounded: base^(e (1 + d)) = base^e (1 + e ln(base) d + ...), a relative
  error of |e ln base| u, with the effective base (``dynamic`` grows it);
- the power, the reciprocal and the divisions by factors are at most C_STEPS roundings of
  2u each (a power within one ulp, at most 2u relative);
- a blend (1 - w) theta / s + w theta (``yarn``'s ramp, ``llama3``'s smooth band) whose weight
  w is off by C_WEIGHT u in absolute terms moves the result by |theta - theta / s| C_WEIGHT u,
  relative to a result >= theta / min(s, 1): a factor max(s, 1 / s).

The attention factor is a scalar that such code computes in float64 (Python's math) or in the
frequencies' dtype: its bound is C_FACTOR roundings of the coarser. Everything is doubled
(:data:`~relpos.equivalence.tolerance.SAFETY`). A bug in these formulas (a band left unscaled,
a factor squared, short and long factors swapped, a base that does not grow) moves a value by
far more than any of these bounds.

Three checks of a target, each a Hypothesis search in a worker process, behind a command:

- :func:`check_frequencies` (``relpos frequencies``): theta'_t and the attention factor per
  ``rope_type``, on :func:`scalings` and the switch points of :func:`boundaries`;
- :func:`check_rotations` (``relpos rotations``): the cos and sin of each pair for position ids
  of several axes, M-RoPE's (:func:`mrope_draws`, :func:`compare_rotations`) and 2D axial
  RoPE's (:func:`axial_draws`, :func:`compare_axial`);
- :func:`check_position_ids` (``relpos position-ids``): the M-RoPE position ids a multimodal
  model gives a prompt of text, images and videos and the tokens it generates
  (:func:`multimodal_prompts`, :func:`compare_position_ids`); integers, so exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp
from hypothesis import strategies as st

from relpos.equivalence.tolerance import DTYPES, SAFETY
from relpos.spec.rope_scaling import VARIANTS, RopeFrequencies, frequencies

__all__ = [
    "BUNDLED",
    "C_FACTOR",
    "C_STEPS",
    "C_WEIGHT",
    "EXAMPLES",
    "ROTATION_LAYOUTS",
    "FrequencyResult",
    "FrequencyVerdict",
    "RotationResult",
    "axial_draws",
    "boundaries",
    "check_frequencies",
    "check_position_ids",
    "check_rotations",
    "compare_axial",
    "compare_frequencies",
    "compare_position_ids",
    "compare_rotations",
    "frequency_bounds",
    "mrope_draws",
    "mrope_reference",
    "multimodal_prompts",
    "scalings",
]

#: Roundings along the power, reciprocal and divisions of one frequency.
C_STEPS = 6
#: Absolute error of a blend's weight, in units of u.
C_WEIGHT = 8
#: Roundings along an attention factor (logarithms, square roots, ratios).
C_FACTOR = 8


@dataclass(frozen=True)
class FrequencyVerdict:
    """Whether a library's frequencies and attention factor are the spec's: the worst error as
    a fraction of its bound, where it is, and a message that says both."""

    passed: bool
    worst_ratio: float
    message: str


def _unit(dtype: str) -> float:
    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype].u


def _blended(expected: RopeFrequencies) -> bool:
    return expected.rope_type in ("yarn", "llama3")


def frequency_bounds(expected: RopeFrequencies, *, dtype: str = "float32") -> np.ndarray:
    """Relative bounds per pair: SAFETY u (|e_t ln base| + 2 C_STEPS + C_WEIGHT max(s, 1/s)
    for a blend), with e_t = 2t / r and ``base`` the effective base."""
    u = _unit(dtype)
    base, scale = float(sp.N(expected.base, 20)), float(sp.N(expected.scale, 20))
    n = len(expected.inverse)
    exponent = np.arange(n) * 2.0 / (2 * n)
    blend = C_WEIGHT * max(scale, 1.0 / scale) if _blended(expected) else 0.0
    return SAFETY * u * (np.abs(exponent * np.log(base)) + 2 * C_STEPS + blend)


def compare_frequencies(
    inverse: Sequence[float] | np.ndarray,
    attention_factor: float,
    expected: RopeFrequencies,
    *,
    dtype: str = "float32",
    factor_dtype: str = "float64",
) -> FrequencyVerdict:
    """``inverse`` (r/2 values) and ``attention_factor`` of an implementation against
    ``expected``; ``dtype`` is that of the frequencies and ``factor_dtype`` that of the
    attention factor."""
    got = np.asarray(inverse, dtype=np.float64).reshape(-1)
    want, want_factor = expected.floats()
    if got.shape != (len(want),):
        return FrequencyVerdict(
            False,
            float("inf"),
            f"{got.size} inverse frequencies, the spec has r/2 = {len(want)}",
        )
    want_arr = np.asarray(want)
    bounds = frequency_bounds(expected, dtype=dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(want_arr != 0, np.abs(got - want_arr) / np.abs(want_arr), np.inf)
    relative = np.where(np.isfinite(got), relative, np.inf)
    ratios = relative / bounds
    factor_bound = SAFETY * C_FACTOR * max(_unit(factor_dtype), _unit("float64"))
    factor_error = abs(float(attention_factor) - want_factor) / abs(want_factor)
    factor_ratio = factor_error / factor_bound if np.isfinite(attention_factor) else float("inf")
    t = int(np.argmax(ratios))
    worst = max(float(ratios[t]), factor_ratio)
    lines = []
    if ratios[t] > 1:
        lines.append(
            f"inverse frequency theta'_{t} = {got[t]!r}, the spec's "
            f"{sp.N(expected.inverse[t], 17)} ({expected.inverse[t]}): relative error "
            f"{relative[t]:.3g} > bound {bounds[t]:.3g}"
        )
    if factor_ratio > 1:
        lines.append(
            f"attention factor {float(attention_factor)!r}, the spec's "
            f"{sp.N(expected.attention_factor, 17)} ({expected.attention_factor}): relative "
            f"error {factor_error:.3g} > bound {factor_bound:.3g}"
        )
    passed = not lines
    message = (
        f"{expected.rope_type}: every inverse frequency and the attention factor within bounds "
        f"(worst {worst:.3g} of its bound)"
        if passed
        else f"{expected.rope_type}: " + "; ".join(lines)
    )
    return FrequencyVerdict(passed, worst, message)


def scalings(
    rope_types: Sequence[str] | None = None, *, max_rotary_dim: int = 128
) -> st.SearchStrategy[dict[str, Any]]:
    """Calls of :func:`relpos.spec.rope_scaling.frequencies` (rope_type, rotary_dim, base,
    seq_len and the variant's parameters) where the variants' bugs show: rotary widths up to
    ``max_rotary_dim``, bases of shipped models, factors below and above 1, sequence lengths
    on both sides of L0 (L0 - 1, L0, L0 + 1) and up to 2^17, yarn with and without truncation,
    with an mscale pair, mscale alone and an explicit attention factor. Shrinks towards
    default RoPE of width 2."""
    chosen = tuple(rope_types or VARIANTS)
    unknown = [t for t in chosen if t not in VARIANTS]
    if unknown:
        raise ValueError(f"rope_types {unknown} must be among {', '.join(VARIANTS)}")
    return st.sampled_from(chosen).flatmap(lambda t: _scaling(t, max_rotary_dim))


#: The variants whose draws and switch-point calls take a ``factor`` (proportional draws its
#: own, longrope's comes from its lengths).
_DRAWN_FACTOR = ("linear", "dynamic", "yarn", "llama3")
#: The variants that take the original length L0.
_LENGTH_SWITCHED = ("dynamic", "yarn", "llama3", "longrope")


@st.composite
def _scaling(draw: Any, rope_type: str, max_rotary_dim: int) -> dict[str, Any]:
    low = 4 if rope_type == "dynamic" else 2
    r = draw(st.integers(low // 2, max_rotary_dim // 2)) * 2
    base = draw(st.sampled_from([10000.0, 500000.0, 1000000.0, 10.0, 2.5]))
    L0 = draw(st.sampled_from([2048, 4096, 8192, 256]))
    seq_len = draw(
        st.one_of(
            st.none(),
            st.just(L0),
            st.sampled_from([L0 - 1, L0 + 1]),
            st.integers(1, 2**17),
        )
    )
    factor = draw(st.sampled_from([2.0, 4.0, 8.0, 1.5, 40.0, 1.0, 0.5]))
    params: dict[str, Any] = {}
    if rope_type in _DRAWN_FACTOR:
        params["factor"] = factor
    if rope_type in _LENGTH_SWITCHED:
        params["original_max_position_embeddings"] = L0
    if rope_type == "yarn":
        params["beta_fast"] = draw(st.sampled_from([32.0, 16.0, 64.0]))
        params["beta_slow"] = draw(st.sampled_from([1.0, 2.0]))
        params["truncate"] = draw(st.booleans())
        extra = draw(st.sampled_from(["none", "pair", "explicit", "mscale"]))
        if extra == "pair":
            params["mscale"] = params["mscale_all_dim"] = draw(st.sampled_from([0.707, 1.0]))
        elif extra == "mscale":
            params["mscale"] = draw(st.sampled_from([0.707, 2.0]))
        elif extra == "explicit":
            params["attention_factor"] = draw(st.sampled_from([1.0, 0.8, 1.25]))
    if rope_type == "llama3":
        params["low_freq_factor"] = draw(st.sampled_from([1.0, 2.0]))
        params["high_freq_factor"] = draw(st.sampled_from([4.0, 8.0]))
    if rope_type == "longrope":
        short = draw(st.lists(st.sampled_from([1.0, 1.25, 2.0]), min_size=r // 2, max_size=r // 2))
        long = draw(st.lists(st.sampled_from([1.5, 4.0, 16.0]), min_size=r // 2, max_size=r // 2))
        params.update(short_factor=short, long_factor=long)
        params["max_position_embeddings"] = L0 * draw(st.sampled_from([2, 16, 32]))
    if rope_type == "proportional":
        params["head_dim"] = r * draw(st.sampled_from([1, 2, 4]))
        params["factor"] = draw(st.sampled_from([1.0, 2.0]))
    return {"rope_type": rope_type, "rotary_dim": r, "base": base, "seq_len": seq_len, **params}


def boundaries(rope_type: str) -> list[dict[str, Any]]:
    """Calls of ``rope_type`` at the lengths where variants switch (L0 - 1, L0, L0 + 1 and no
    seq_len), run before every search. A search's draws are correlated within a run, and a
    run can draw no length at L0 itself: these calls make the switch point certain."""
    L0, r = 4096, 64
    params: dict[str, Any] = {}
    if rope_type in _DRAWN_FACTOR:
        params["factor"] = 8.0
    if rope_type in _LENGTH_SWITCHED:
        params["original_max_position_embeddings"] = L0
    if rope_type == "yarn":
        params.update(
            beta_fast=32.0, beta_slow=1.0, truncate=True, mscale=0.707, mscale_all_dim=0.707
        )
    if rope_type == "llama3":
        params.update(low_freq_factor=1.0, high_freq_factor=4.0)
    if rope_type == "longrope":
        short = [1.0 + (t % 3) / 4 for t in range(r // 2)]
        long = [1.5 + t for t in range(r // 2)]
        params.update(short_factor=short, long_factor=long, max_position_embeddings=16 * L0)
    if rope_type == "proportional":
        params.update(head_dim=2 * r, factor=2.0)
    return [
        {"rope_type": rope_type, "rotary_dim": r, "base": 10000.0, "seq_len": n, **params}
        for n in (L0 - 1, L0, L0 + 1, None)
    ]


def _pair_reference(
    ids: np.ndarray, axes: Sequence[int], inverse: Sequence[sp.Expr]
) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (L, n) of pos[axes[t]] theta_t for position ids (A, L), evaluated at 50
    digits from the exact frequencies and rounded once to float64."""
    import mpmath

    with mpmath.workdps(50):
        thetas = [mpmath.mpf(str(sp.N(x, 60))) for x in inverse]
        angles = [
            [int(ids[a, i]) * th for a, th in zip(axes, thetas, strict=True)]
            for i in range(ids.shape[1])
        ]
        cos = np.array([[float(mpmath.cos(x)) for x in row] for row in angles])
        sin = np.array([[float(mpmath.sin(x)) for x in row] for row in angles])
    return cos.reshape(ids.shape[1], len(axes)), sin.reshape(ids.shape[1], len(axes))


def mrope_reference(
    positions: np.ndarray, expected: RopeFrequencies, section: Sequence[int], layout: str
) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (L, r/2) of the spec's M-RoPE angles for position ids (3, L), evaluated at
    50 digits from the exact frequencies and rounded once to float64."""
    from relpos.spec.rope_scaling import mrope_axes

    axes = mrope_axes(2 * len(expected.inverse), section, layout)
    return _pair_reference(np.asarray(positions, dtype=np.int64), axes, expected.inverse)


def _compare_pairs(
    cos: Any,
    sin: Any,
    ids: np.ndarray,
    axes: Sequence[int],
    inverse: Sequence[sp.Expr],
    relative: np.ndarray,
    label: str,
    names: str,
    dtype: str,
) -> FrequencyVerdict:
    """A library's cos and sin (L, n) against pos[axes[t]] theta_t. The bound follows from
    float32 code: the angle p theta_t is off by |p theta_t| times the frequency's relative
    bound ``relative`` (without the safety factor) plus one rounding u; cos and sin move by
    at most that, and are themselves within C_STEPS u; all doubled."""
    want_cos, want_sin = _pair_reference(ids, axes, inverse)
    axis = np.asarray(axes, dtype=np.int64)
    theta = np.asarray([float(sp.N(x, 30)) for x in inverse])
    angle = np.abs(ids[axis, :].T * theta[None, :])  # (L, n)
    u = _unit(dtype)
    bound = SAFETY * (angle * (relative[None, :] + u) + C_STEPS * u)
    got = {"cos": np.asarray(cos, dtype=np.float64), "sin": np.asarray(sin, dtype=np.float64)}
    if got["cos"].shape != want_cos.shape or got["sin"].shape != want_sin.shape:
        return FrequencyVerdict(
            False,
            float("inf"),
            f"{label}: cos and sin of shape {got['cos'].shape}, the spec's {want_cos.shape}",
        )
    worst, where = 0.0, ""
    for name, want in (("cos", want_cos), ("sin", want_sin)):
        ratio = np.abs(got[name] - want) / bound
        ratio = np.where(np.isfinite(got[name]), ratio, np.inf)
        i, t = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        if ratio[i, t] > worst:
            worst = float(ratio[i, t])
            where = (
                f"{name} of pair {t} at token {i} (ids {ids[:, i].tolist()}, axis "
                f"{names[axis[t]]}) = {got[name][i, t]!r}, the spec's {want[i, t]!r}, off by "
                f"{abs(got[name][i, t] - want[i, t]):.3g} > bound {bound[i, t]:.3g}"
            )
    passed = worst <= 1
    message = (
        f"{label}: every cos and sin within bounds (worst {worst:.3g} of its bound)"
        if passed
        else f"{label}: {where}"
    )
    return FrequencyVerdict(passed, worst, message)


def compare_rotations(
    cos: np.ndarray,
    sin: np.ndarray,
    positions: np.ndarray,
    expected: RopeFrequencies,
    section: Sequence[int],
    layout: str,
    *,
    dtype: str = "float32",
) -> FrequencyVerdict:
    """A library's cos and sin (L, r/2) for position ids (3, L) against the spec's M-RoPE
    (the bound of :func:`_compare_pairs`, with the frequencies' own bounds)."""
    from relpos.spec.rope_scaling import mrope_axes

    return _compare_pairs(
        cos,
        sin,
        np.asarray(positions, dtype=np.int64),
        mrope_axes(2 * len(expected.inverse), section, layout),
        expected.inverse,
        frequency_bounds(expected, dtype=dtype) / SAFETY,
        f"M-RoPE ({layout}, section {list(section)})",
        "THW",
        dtype,
    )


def compare_axial(
    cos: np.ndarray,
    sin: np.ndarray,
    positions: np.ndarray,
    *,
    rotary_dim: int,
    base: Any = 10000,
    layout: str = "split",
    dtype: str = "float32",
) -> FrequencyVerdict:
    """A library's cos and sin (L, r/2) for patch positions (2, L), rows and columns, against
    the spec's 2D axial RoPE (:func:`relpos.spec.rope_scaling.axial_pairs`). Each frequency
    base^(-e_t) gets the bound of a default one, u (|e_t ln base| + 2 C_STEPS), with e_t its
    own exponent (4j/r in ``split``, 2j/r in ``alternating``)."""
    from relpos.spec.rope_scaling import axial_pairs

    pairs = axial_pairs(rotary_dim, base, layout)
    quarter = rotary_dim // 4
    j = np.arange(2 * quarter) % quarter
    exponent = 4.0 * j / rotary_dim
    if layout == "alternating":
        exponent = (2.0 * j + np.repeat([0, 1], quarter)) * 2 / rotary_dim
    u = _unit(dtype)
    relative = u * (np.abs(exponent * np.log(float(base))) + 2 * C_STEPS)
    return _compare_pairs(
        cos,
        sin,
        np.asarray(positions, dtype=np.int64),
        [a for a, _ in pairs],
        [theta for _, theta in pairs],
        relative,
        f"2D axial RoPE ({layout}, r = {rotary_dim})",
        "RC",
        dtype,
    )


@st.composite
def axial_draws(draw: Any, *, max_rotary_dim: int = 64, max_len: int = 32) -> dict[str, Any]:
    """2D axial RoPE inputs: a layout, a rotary width (a multiple of 4), a base, and patch
    positions (2, L): the raster of a whole grid, patches at the far corners of a grid of up
    to 2^10 per side, or random rows and columns up to 2^12. Shrinks towards one patch of a
    width-4 rotation."""
    layout = draw(st.sampled_from(("split", "alternating")))
    r = 4 * draw(st.integers(1, max_rotary_dim // 4))
    base = draw(st.sampled_from([10000.0, 100.0, 1000000.0, 10.0]))
    length = draw(st.integers(1, max_len))
    kind = draw(st.sampled_from(("grid", "corners", "random")))
    if kind == "grid":
        width = draw(st.integers(1, length))
        cells = np.arange(length)
        ids = np.stack([cells // width, cells % width])
    else:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        if kind == "corners":  # rows and columns at the grid's edges
            side = draw(st.integers(1, 2**10))
            ids = rng.choice(np.unique([0, 1, max(side - 2, 0), side - 1]), size=(2, length))
        else:
            ids = rng.integers(0, 2**12, size=(2, length))
    return {"rotary_dim": r, "base": base, "layout": layout, "positions": ids.astype(np.int64)}


@st.composite
def mrope_draws(draw: Any, *, max_rotary_dim: int = 64, max_len: int = 32) -> dict[str, Any]:
    """M-RoPE inputs: a rotary width, a base, a section (s_T, s_H, s_W) summing to r/2 that
    fits the layout, and position ids (3, L) of text tokens (all three ids equal, from an
    offset up to 2^17), of an image grid (one temporal id, rows and columns), or random ids up
    to 2^17 on each axis. Shrinks towards a short text of width 2."""
    layout = draw(st.sampled_from(("sectioned", "interleaved")))
    r = 2 * draw(st.integers(1, max_rotary_dim // 2))
    n = r // 2
    s_h = draw(st.integers(0, min(n, (n + 1) // 3) if layout == "interleaved" else n))
    rest = n - s_h
    s_w = draw(st.integers(0, min(rest, n // 3) if layout == "interleaved" else rest))
    section = (n - s_h - s_w, s_h, s_w)
    base = draw(st.sampled_from([10000.0, 1000000.0, 500000.0, 10.0]))
    length = draw(st.integers(1, max_len))
    kind = draw(st.sampled_from(("text", "grid", "random")))
    if kind == "text":
        start = draw(st.integers(0, 2**17 - length))
        ids = np.tile(np.arange(start, start + length), (3, 1))
    elif kind == "grid":
        width = draw(st.integers(1, length))
        t0 = draw(st.integers(0, 2**17 - length))
        cells = np.arange(length)
        ids = np.stack([np.full(length, t0), t0 + cells // width, t0 + cells % width])
    else:
        seed = draw(st.integers(0, 2**32 - 1))
        ids = np.random.default_rng(seed).integers(0, 2**17, size=(3, length))
    return {
        "rotary_dim": r,
        "base": base,
        "section": section,
        "layout": layout,
        "positions": ids.astype(np.int64),
    }


# -- checking a target ----------------------------------------------------------------------


@dataclass
class FrequencyResult:
    """One rope_type's outcome: ``status`` is pass, fail, error (the target raised), timeout
    or crash (its worker died), or skip (the target raised NotImplementedError: it ships no
    such variant)."""

    rope_type: str
    status: str
    examples: int = 0
    worst_ratio: float = 0.0
    message: str = ""
    #: The smallest failing call Hypothesis found (keyword arguments of the target).
    call: dict[str, Any] | None = None


#: Examples per rope_type in each budget. A call costs milliseconds (a few vectors, no
#: attention), so these are larger than the attention properties' budgets.
EXAMPLES = {"dev": 100, "ci": 200, "thorough": 2000}


class _Failed(AssertionError):
    pass


class _TargetRaised(Exception):
    """The target's own exception, kept apart from the checker's: an exception of the oracle
    or of the comparison is never reported as the target's."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")


#: The bundled implementations, per backend: ``relpos frequencies`` without ``--target``
#: checks each whose backend is installed, in float32 and float64 (their ``precision``).
BUNDLED = {
    "torch": "relpos.impls.torch.rope_scaling:inverse_frequencies",
    "jax": "relpos.impls.jax.rope_scaling:inverse_frequencies",
}

_LOADED: dict[str, Any] = {}


def _load(path: str) -> Any:
    """The target's function; the bundled JAX one with 64-bit types enabled, as the
    checker's JAX backend runs it."""
    from relpos.equivalence.targets import load_callable

    if path == BUNDLED["jax"]:
        from relpos.equivalence.backends import JaxBackend

        JaxBackend().jax  # noqa: B018 (enables jax_enable_x64)
    return load_callable(path)


def _invoke(fn: Any, call: dict[str, Any], positional: str | None, results: int) -> Any:
    """``fn(**call)``, or ``fn(call[positional], **rest)``; its ``results`` results (two, or
    one array) as host arrays."""
    if positional is None:
        returned = fn(**call)
    else:
        returned = fn(call[positional], **{k: v for k, v in call.items() if k != positional})
    return _host((returned,) if results == 1 else returned)


def _call_in_worker(
    path: str,
    path_entries: list[str],
    call: dict[str, Any],
    positional: str | None,
    results: int,
) -> Any:
    import sys

    if path not in _LOADED:
        sys.path[:] = path_entries
        _LOADED[path] = _load(path)
    return _invoke(_LOADED[path], call, positional, results)


def _caller(target: str, isolate: bool, positional: str | None = None, results: int = 2) -> Any:
    import sys

    from relpos.equivalence.isolation import LOAD_TIMEOUT, pool, timeout
    from relpos.equivalence.targets import load_callable

    if not isolate:
        fn = _load(target)
        return lambda call: _invoke(fn, call, positional, results)
    load_callable(target)  # a bad path is refused here, with the argument named
    worker = pool("frequencies")

    def call(kw: dict[str, Any]) -> Any:
        limit = max(LOAD_TIMEOUT, timeout()) if target not in _STARTED else timeout()
        _STARTED.add(target)
        entries = list(sys.path)
        return worker.call(
            target, _call_in_worker, target, entries, kw, positional, results, limit=limit
        )

    return call


_STARTED: set[str] = set()


def _host(value: Any) -> tuple[np.ndarray, ...]:
    """A target's two results (frequencies and factor, or cos and sin) as float64 numpy
    arrays, whatever array type they came in."""
    out = []
    for part in value:
        if hasattr(part, "detach"):  # a torch tensor
            part = part.detach().cpu().double().numpy()
        out.append(np.asarray(part, dtype=np.float64))
    return tuple(out)


def _budget_settings(budget: str | None) -> Any:
    """The budget's Hypothesis settings (the run's profile where none is named) with
    :data:`EXAMPLES` draws and no example database."""
    from hypothesis import settings

    from relpos.equivalence.profiles import active_profile, load_profile

    name = budget or active_profile()
    return settings(load_profile(name), database=None, max_examples=EXAMPLES[name])


def check_frequencies(
    target: str,
    rope_types: Sequence[str] | None = None,
    *,
    dtype: str = "float32",
    budget: str | None = None,
    isolate: bool = True,
    precision: bool = False,
) -> list[FrequencyResult]:
    """Check ``target`` (``package.module:function``, called as ``function(rope_type=...,
    rotary_dim=..., base=..., seq_len=..., **parameters)`` and returning (inverse
    frequencies, attention factor)) on every rope_type, with :data:`EXAMPLES` draws of
    :func:`scalings` per rope_type under the budget's Hypothesis settings and the run's
    seed. The target runs in a worker process (``isolate``), so that a hang or a crash is a
    finding. With ``precision``, each call also gets ``precision=dtype`` (the bundled
    implementations compute in the precision they are asked for)."""
    call_target = _caller(target, isolate)
    if precision:
        plain = call_target

        def call_target(call: dict[str, Any]) -> Any:
            return plain({**call, "precision": dtype})

    chosen = _budget_settings(budget)
    return [
        _check_one(rope_type, target, call_target, chosen, dtype)
        for rope_type in rope_types or VARIANTS
    ]


def _check_one(
    rope_type: str, target: str, call_target: Any, chosen: Any, dtype: str
) -> FrequencyResult:
    def verdict(call: dict[str, Any], returned: Any) -> FrequencyVerdict:
        inverse, factor = returned
        return compare_frequencies(inverse, factor, frequencies(**call), dtype=dtype)

    result = FrequencyResult(rope_type, "pass")
    searched = _search(scalings([rope_type]), boundaries(rope_type), call_target, verdict, chosen)
    _record(result, searched, f"{target} ships no {rope_type}", target)
    return result


@dataclass
class _Searched:
    status: str = "pass"
    examples: int = 0
    worst_ratio: float = 0.0
    message: str = ""
    call: dict[str, Any] | None = None


def _search(
    calls: st.SearchStrategy[dict[str, Any]],
    first: Sequence[dict[str, Any]],
    call_target: Any,
    verdict_of: Any,
    chosen: Any,
) -> _Searched:
    """Search ``calls`` (after the fixed calls ``first``) for one whose ``verdict_of(call,
    what the target returned)`` fails, under the settings ``chosen`` and the run's seed.
    Only the target's own exceptions are its errors: the oracle's propagate."""
    from hypothesis import example, given, seed, settings

    from relpos.equivalence.isolation import TargetDied
    from relpos.equivalence.profiles import run_seed

    out = _Searched()
    last: list[dict[str, Any]] = []

    @given(call=calls)
    def holds(call: dict[str, Any]) -> None:
        out.examples += 1
        last[:] = [call]  # after shrinking, Hypothesis replays the smallest failure last
        try:
            returned = call_target(call)
        except (TargetDied, NotImplementedError):
            raise
        except Exception as exc:
            raise _TargetRaised(exc) from exc
        verdict = verdict_of(call, returned)
        out.worst_ratio = max(out.worst_ratio, verdict.worst_ratio)
        if not verdict.passed:
            raise _Failed(verdict.message)

    for call in first:
        holds = example(call=call)(holds)
    # one failure, the smallest: a target with two bugs is reported on one of them
    chosen = settings(chosen, report_multiple_bugs=False)
    run = settings(chosen)(holds if chosen.derandomize else seed(run_seed())(holds))
    try:
        run()
    except _Failed as failed:
        out.status, out.message = "fail", str(failed)
    except TargetDied as died:
        out.status, out.message = died.status, died.message
    except NotImplementedError as missing:
        out.status, out.message = "skip", str(missing)
    except _TargetRaised as raised:  # reported with the call that did it
        out.status, out.message = "error", f"raised {raised}"
    if out.status != "pass" and last:
        out.call = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in last[0].items()}
    return out


def _record(result: Any, searched: _Searched, missing: str, target: str) -> None:
    result.status, result.examples = searched.status, searched.examples
    result.worst_ratio, result.call = searched.worst_ratio, searched.call
    result.message = {
        "skip": f"{missing}: {searched.message}",
        "error": f"{target} {searched.message}",
    }.get(searched.status, searched.message)


# -- rotations of several position ids: M-RoPE and 2D axial RoPE -----------------------------

#: The layouts ``relpos rotations`` checks: M-RoPE's (position ids (3, L)) and 2D axial
#: RoPE's (patch positions (2, L)).
ROTATION_LAYOUTS = ("sectioned", "interleaved", "split", "alternating")


@dataclass
class RotationResult:
    """One layout's outcome, with the statuses of :class:`FrequencyResult`."""

    layout: str
    status: str
    examples: int = 0
    worst_ratio: float = 0.0
    message: str = ""
    call: dict[str, Any] | None = None


def _fixed(draws: st.SearchStrategy[dict[str, Any]], layout: str) -> Any:
    return draws.filter(lambda d: d["layout"] == layout)


def check_rotations(
    target: str,
    layouts: Sequence[str] | None = None,
    *,
    dtype: str = "float32",
    budget: str | None = None,
    isolate: bool = True,
) -> list[RotationResult]:
    """Check ``target``'s cos and sin for each layout, :data:`EXAMPLES` draws per layout. The
    target is called as ``function(positions, *, rotary_dim, base, section, layout)`` for
    M-RoPE (``sectioned``, ``interleaved``; positions (3, L) of temporal, height and width
    ids) and as ``function(positions, *, rotary_dim, base, layout)`` for 2D axial RoPE
    (``split``, ``alternating``; positions (2, L) of rows and columns), and returns cos and
    sin (L, r/2), pair t in column t. NotImplementedError skips a layout the target does
    not ship. It runs in a worker process (``isolate``)."""
    chosen_layouts = list(layouts or ROTATION_LAYOUTS)
    unknown = [x for x in chosen_layouts if x not in ROTATION_LAYOUTS]
    if unknown:
        raise ValueError(f"layouts {unknown} must be among {', '.join(ROTATION_LAYOUTS)}")
    call_target = _caller(target, isolate, positional="positions")
    chosen = _budget_settings(budget)
    results = []
    for layout in chosen_layouts:
        if layout in ("split", "alternating"):
            draws = _fixed(axial_draws(), layout)

            def verdict(call: dict[str, Any], returned: Any) -> FrequencyVerdict:
                cos, sin = returned
                kw = {k: v for k, v in call.items() if k != "positions"}
                return compare_axial(cos, sin, call["positions"], **kw, dtype=dtype)

        else:
            draws = _fixed(mrope_draws(), layout)

            def verdict(call: dict[str, Any], returned: Any) -> FrequencyVerdict:
                cos, sin = returned
                expected = frequencies("default", rotary_dim=call["rotary_dim"], base=call["base"])
                return compare_rotations(
                    cos,
                    sin,
                    call["positions"],
                    expected,
                    call["section"],
                    call["layout"],
                    dtype=dtype,
                )

        result = RotationResult(layout, "pass")
        searched = _search(draws, (), call_target, verdict, chosen)
        _record(result, searched, f"{target} ships no {layout} layout", target)
        results.append(result)
    return results


# -- multimodal position ids: a prompt of text, images and videos, then generation -----------


#: Temporal intervals of shipped video pipelines: tokens_per_second x temporal_patch_size /
#: fps (Qwen2.5-VL: 2 tokens per second, 2 frames per temporal patch) at 2, 1, 4, 8, 24, 25
#: and 30 frames per second.
SHIPPED_INTERVALS = tuple(Fraction(4, fps) for fps in (2, 1, 4, 8, 24, 25, 30))


def temporal_intervals() -> st.SearchStrategy[Fraction]:
    """Temporal ids per temporal step of a video (``temporal_interval`` of
    :func:`relpos.spec.rope_scaling.mrope_position_ids`), exact: the shipped ones
    (:data:`SHIPPED_INTERVALS`) or fractions from 1/8 to 8 with denominators up to 16;
    shrinks towards 2 (2 frames per second)."""
    return st.one_of(
        st.sampled_from(SHIPPED_INTERVALS),
        st.fractions(Fraction(1, 8), Fraction(8), max_denominator=16).filter(bool),
    )


@st.composite
def multimodal_prompts(
    draw: Any, *, max_segments: int = 4, timed: bool = False, frames: bool = False
) -> dict[str, Any]:
    """Calls ``(segments, generated=n)`` of :func:`relpos.spec.rope_scaling.mrope_position_ids`:
    1 to ``max_segments`` segments of text (1 to 6 tokens), images (merged grids up to 6 x 6)
    and videos (up to 8 temporal steps of up to 4 x 4, so that a video's temporal extent can
    exceed its height and width, and the other way round), with a text token between two
    vision inputs of one kind, followed by 0 to 4 generated tokens; ``timed`` adds a
    ``temporal_interval`` (:func:`temporal_intervals`), and with ``frames`` a video comes one
    frame at a time (t = 1), each after text, as models that put a timestamp before each
    frame take it (Qwen3-VL). Shrinks towards one text token."""
    text = st.tuples(st.just("text"), st.integers(1, 6))
    image = st.tuples(st.just("image"), st.tuples(st.just(1), st.integers(1, 6), st.integers(1, 6)))
    steps = st.just(1) if frames else st.integers(1, 8)
    video = st.tuples(st.just("video"), st.tuples(steps, st.integers(1, 4), st.integers(1, 4)))
    drawn = draw(st.lists(st.one_of(text, image, video), min_size=1, max_size=max_segments))
    # Two vision inputs of one kind side by side are one run of that kind's tokens to a model
    # that finds them by token type; processors put text (vision start and end tokens)
    # between them, and so do the draws.
    segments = drawn[:1]
    for segment in drawn[1:]:
        if segment[0] != "text" and segment[0] == segments[-1][0]:
            segments.append(("text", 1))
        segments.append(segment)
    call = {"segments": segments, "generated": draw(st.integers(0, 4))}
    if timed:
        call["temporal_interval"] = draw(temporal_intervals())
    return call


def _segment_of(segments: Sequence[Any], token: int) -> str:
    for index, (kind, size) in enumerate(segments):
        count = size if kind == "text" else size[0] * size[1] * size[2]
        if token < count:
            return f"segment {index} ({kind} {size}), its token {token}"
        token -= count
    return f"generated token {token}"


def compare_position_ids(
    got: Any, segments: Sequence[Any], *, generated: int = 0, temporal_interval: Any = 1
) -> FrequencyVerdict:
    """A library's M-RoPE position ids (3, L + generated) against the spec's
    (:func:`relpos.spec.rope_scaling.mrope_position_ids`): integers, so equal or wrong; the
    message names the first token that differs, its segment and both ids."""
    from relpos.spec.rope_scaling import mrope_position_ids

    want = np.asarray(
        mrope_position_ids(segments, generated=generated, temporal_interval=temporal_interval)
    )
    ids = np.asarray(got)
    if ids.dtype.kind == "f" and np.isfinite(ids).all() and (ids == np.round(ids)).all():
        ids = ids.astype(np.int64)  # integers that crossed the process boundary as floats
    label = f"M-RoPE position ids of {list(segments)} and {generated} generated"
    if temporal_interval != 1:
        label += f", temporal interval {temporal_interval}"
    if ids.shape != want.shape:
        return FrequencyVerdict(
            False, float("inf"), f"{label}: ids of shape {ids.shape}, the spec's {want.shape}"
        )
    wrong = np.flatnonzero((ids != want).any(axis=0))
    if not wrong.size:
        return FrequencyVerdict(True, 0.0, f"{label}: every id is the spec's")
    i = int(wrong[0])
    return FrequencyVerdict(
        False,
        float("inf"),
        f"{label}: token {i} ({_segment_of(segments, i)}) has ids (T, H, W) = "
        f"{ids[:, i].tolist()}, the spec's {want[:, i].tolist()} ({wrong.size} of "
        f"{want.shape[1]} tokens differ)",
    )


def check_position_ids(
    target: str,
    *,
    budget: str | None = None,
    isolate: bool = True,
    timed: bool = False,
    frames: bool = False,
) -> RotationResult:
    """Check ``target``, called as ``function(segments, *, generated)`` (``timed``: also
    ``temporal_interval``, an exact Fraction) and returning the position ids (3, L +
    generated) of a multimodal prompt and of the tokens generated after it, on
    :data:`EXAMPLES` draws of :func:`multimodal_prompts` (``frames``: videos one frame at a
    time), in a worker process. The result's ``layout`` is ``"position ids"``, or ``"timed
    position ids"``."""
    call_target = _caller(target, isolate, positional="segments", results=1)
    chosen = _budget_settings(budget)

    def verdict(call: dict[str, Any], returned: Any) -> FrequencyVerdict:
        return compare_position_ids(
            returned[0],
            call["segments"],
            generated=call["generated"],
            temporal_interval=call.get("temporal_interval", 1),
        )

    result = RotationResult("timed position ids" if timed else "position ids", "pass")
    prompts = multimodal_prompts(timed=timed, frames=frames)
    searched = _search(prompts, (), call_target, verdict, chosen)
    _record(result, searched, f"{target} computes no position ids", target)
    return result
