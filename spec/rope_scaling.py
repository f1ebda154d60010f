"""RoPE as it is shipped: the inverse frequencies and the attention factor of each scaling
variant, exactly (SymPy).

A scaled RoPE rotates pair t of query i by pos_i * theta'_t, with theta'_t the variant's
inverse frequency, and multiplies cos and sin by the variant's attention factor m (so the
logit of q and k, both rotated, carries m^2). :func:`frequencies` gives theta'_0 .. theta'_{r/2-1}
and m as exact SymPy numbers: rationals, logarithms, pi and powers, never a rounded float. A
float parameter (a base of 10000.0, a factor of 1.5) is the exact rational that the float
denotes.

Variants (``rope_type``), each from its source:

- ``default``: theta_t = base^(-2t/r) (Su et al. 2021, arXiv:2104.09864).
- ``linear``: position interpolation, theta_t / factor: positions divided by the factor
  (Chen et al. 2023, arXiv:2306.15595).
- ``dynamic``: dynamic NTK-aware scaling. Past the original length L0, the base grows with the
  current length L: base' = base * (factor * L / L0 - (factor - 1))^(r / (r - 2)), with
  L = max(seq_len, L0); at or below L0 it is ``default`` (the formula as Hugging Face
  transformers codes it, after bloc97 and emozilla's 2023 posts).
- ``yarn``: YaRN (Peng et al. 2023, arXiv:2309.00071). The correction dimensions of beta_fast
  and beta_slow, d(beta) = r ln(L0 / (2 pi beta)) / (2 ln base), floored and ceiled with
  ``truncate``, clipped to [0, r - 1], bound a linear ramp gamma_t = clip((t - low) /
  (high - low), 0, 1) over the pair index (high = low + 1/1000 where they meet); theta'_t =
  theta_t / factor * gamma_t + theta_t * (1 - gamma_t). The attention factor is the given
  ``attention_factor``, else mscale(factor, mscale) / mscale(factor, mscale_all_dim) with
  mscale(s, m) = 1 for s <= 1 and 0.1 m ln s + 1 otherwise (mscale 1, mscale_all_dim 0 by
  default: the paper's 0.1 ln s + 1, and DeepSeek-V2's ratio when both are given).
- ``longrope``: LongRoPE (Ding et al. 2024, arXiv:2402.13753): theta'_t = theta_t /
  ext_t, with ext the ``long_factor`` list when seq_len > L0 and the ``short_factor`` list
  otherwise; attention factor the given one, else sqrt(1 + ln(factor) / ln L0) for factor > 1
  and 1 otherwise (factor: the given one, else max_position_embeddings / L0).
- ``llama3``: Llama 3.1 (Grattafiori et al. 2024, arXiv:2407.21783). With wavelength
  lambda_t = 2 pi / theta_t, bounds lambda_low = L0 / low_freq_factor and lambda_high = L0 /
  high_freq_factor: theta_t where lambda_t < lambda_high, theta_t / factor where lambda_t >
  lambda_low, and between them (1 - s) theta_t / factor + s theta_t with s = (L0 / lambda_t -
  low_freq_factor) / (high_freq_factor - low_freq_factor).
- ``proportional``: partial-frequency rotary (Gemma style): the first r/2 pairs of a head of
  width head_dim rotate with theta_t = base^(-2t / head_dim), the exponent's denominator being
  head_dim rather than r, divided by ``factor``; the other pairs do not rotate.

Every variant but ``proportional`` takes its exponent denominator from r = rotary_dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy as sp

from relpos.spec._signature import ArgumentError

__all__ = [
    "AXIAL_LAYOUTS",
    "MROPE_LAYOUTS",
    "VARIANTS",
    "RopeFrequencies",
    "Variant",
    "axial_angles",
    "axial_pairs",
    "checked",
    "exact",
    "frequencies",
    "mrope_angles",
    "mrope_axes",
    "mrope_position_ids",
]


def exact(value: Any) -> sp.Expr:
    """The exact SymPy number a Python int, float or Fraction denotes (a float is a dyadic
    rational); SymPy numbers pass through."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is a bool, not a number")
    if isinstance(value, int):
        return sp.Integer(value)
    if isinstance(value, float | Fraction):
        return sp.Rational(Fraction(value))
    raise TypeError(f"{value!r} is not a number")


@dataclass(frozen=True)
class Parameter:
    """One parameter of a variant: its name, default (``REQUIRED`` when it has none), what it
    means, and a check returning what is allowed when the value is refused."""

    name: str
    default: Any
    doc: str
    check: Callable[[Any], str | None]


REQUIRED = object()


@dataclass(frozen=True)
class Variant:
    """A RoPE scaling variant: its name, formula summary, citation and parameters."""

    name: str
    summary: str
    citation: str
    parameters: tuple[Parameter, ...] = ()


@dataclass(frozen=True)
class RopeFrequencies:
    """The exact inverse frequencies theta'_t (t = 0 .. r/2 - 1) and attention factor m."""

    rope_type: str
    inverse: tuple[sp.Expr, ...]
    attention_factor: sp.Expr
    #: The base the exponents apply to (``dynamic``: the grown one).
    base: sp.Expr
    #: The variant's factor s (1 where it has none).
    scale: sp.Expr

    def floats(self, digits: int = 30) -> tuple[list[float], float]:
        """Both as float64 (rounded from ``digits`` significant digits)."""
        return (
            [float(sp.N(x, digits)) for x in self.inverse],
            float(sp.N(self.attention_factor, digits)),
        )


def _number(
    minimum: float | None = None, above: float | None = None
) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int | float | Fraction) and not isinstance(value, bool)
        ok = ok and math.isfinite(float(value))
        if ok and (minimum is None or value >= minimum) and (above is None or value > above):
            return None
        if above is not None:
            return f"must be a finite number > {above}"
        return (
            f"must be a finite number >= {minimum}"
            if minimum is not None
            else "must be a finite number"
        )

    return check


def _optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def optional(value: Any) -> str | None:
        problem = None if value is None else check(value)
        return None if problem is None else f"must be None or {problem.removeprefix('must be ')}"

    return optional


def _length(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "must be an integer >= 1"


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def _factors(value: Any) -> str | None:
    if isinstance(value, list | tuple) and all(_number(above=0)(v) is None for v in value):
        return None
    return "must be a list of finite numbers > 0, one per rotated pair"


_FACTOR = Parameter(
    "factor", REQUIRED, "the scaling factor s (the context's stretch)", _number(above=0)
)
_L0 = Parameter(
    "original_max_position_embeddings",
    REQUIRED,
    "L0, the length the model was trained at",
    _length,
)

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "default",
            "theta_t = base^(-2t/r)",
            "Su et al. (2021), RoFormer, arXiv:2104.09864",
        ),
        Variant(
            "linear",
            "theta_t / factor (positions / factor)",
            "Chen, Wong, Chen, Tian (2023), Extending Context Window of Large Language Models "
            "via Positional Interpolation, arXiv:2306.15595",
            (_FACTOR,),
        ),
        Variant(
            "dynamic",
            "base' = base (factor L / L0 - (factor - 1))^(r/(r-2)), L = max(seq_len, L0)",
            "dynamic NTK-aware scaling, bloc97 and emozilla (2023), as Hugging Face "
            "transformers codes it (modeling_rope_utils, _compute_dynamic_ntk_parameters)",
            (_FACTOR, _L0),
        ),
        Variant(
            "yarn",
            "theta_t / factor * gamma_t + theta_t (1 - gamma_t), gamma a linear ramp between "
            "the correction dimensions of beta_fast and beta_slow; attention factor "
            "mscale(factor, mscale) / mscale(factor, mscale_all_dim)",
            "Peng, Quesnelle, Fan, Shippole (2023), YaRN: Efficient Context Window Extension "
            "of Large Language Models, arXiv:2309.00071; mscale_all_dim: DeepSeek-AI (2024), "
            "DeepSeek-V2, arXiv:2405.04434",
            (
                _FACTOR,
                _L0,
                Parameter(
                    "beta_fast", 32, "rotations above which a pair extrapolates", _number(above=0)
                ),
                Parameter(
                    "beta_slow", 1, "rotations below which a pair interpolates", _number(above=0)
                ),
                Parameter("truncate", True, "floor and ceil the correction dimensions", _flag),
                Parameter("mscale", 1, "m in mscale(s, m) = 0.1 m ln s + 1 (numerator)", _number()),
                Parameter("mscale_all_dim", 0, "m of the denominator", _number()),
                Parameter(
                    "attention_factor",
                    None,
                    "an explicit attention factor (replaces the mscale ratio)",
                    _optional(_number(above=0)),
                ),
            ),
        ),
        Variant(
            "longrope",
            "theta_t / ext_t, ext = long_factor if seq_len > L0 else short_factor; attention "
            "factor sqrt(1 + ln(factor) / ln L0) for factor > 1",
            "Ding, Zhang, Zhang, Xu, Shang, Xu, Yang, Yang (2024), LongRoPE: Extending LLM "
            "Context Window Beyond 2 Million Tokens, arXiv:2402.13753",
            (
                _L0,
                Parameter("short_factor", REQUIRED, "ext_t for seq_len <= L0", _factors),
                Parameter("long_factor", REQUIRED, "ext_t for seq_len > L0", _factors),
                Parameter(
                    "factor",
                    None,
                    "s; None: max_position_embeddings / L0",
                    _optional(_number(above=0)),
                ),
                Parameter(
                    "max_position_embeddings",
                    None,
                    "the extended length (gives the factor when none is given)",
                    _optional(_length),
                ),
                Parameter(
                    "attention_factor",
                    None,
                    "an explicit attention factor",
                    _optional(_number(above=0)),
                ),
            ),
        ),
        Variant(
            "llama3",
            "theta_t for wavelengths below L0 / high_freq_factor, theta_t / factor above "
            "L0 / low_freq_factor, smooth interpolation between",
            "Grattafiori et al. (2024), The Llama 3 Herd of Models, arXiv:2407.21783; Meta "
            "llama-models, apply_scaling",
            (
                _FACTOR,
                _L0,
                Parameter("low_freq_factor", 1, "L0 / lambda_low", _number(above=0)),
                Parameter(
                    "high_freq_factor", 4, "L0 / lambda_high (> low_freq_factor)", _number(above=0)
                ),
            ),
        ),
        Variant(
            "proportional",
            "theta_t = base^(-2t/head_dim) / factor for the first r/2 pairs of a head of width "
            "head_dim (exponent denominator head_dim, not r)",
            "partial-frequency rotary as Gemma-family code applies it (Hugging Face "
            "transformers modeling_rope_utils, _compute_proportional_rope_parameters)",
            (
                Parameter(
                    "head_dim", REQUIRED, "the head width, the exponent's denominator", _length
                ),
                Parameter("factor", 1, "divides every frequency", _number(above=0)),
            ),
        ),
    )
}


def _parameters(rope_type: str, given: Mapping[str, Any]) -> dict[str, Any]:
    if rope_type not in VARIANTS:
        raise ArgumentError("rope_type", repr(rope_type), f"must be one of {', '.join(VARIANTS)}")
    variant = VARIANTS[rope_type]
    known = {p.name: p for p in variant.parameters}
    unknown = sorted(set(given) - set(known))
    if unknown:
        allowed = ", ".join(known) if known else "none"
        raise ArgumentError(
            unknown[0],
            f"{unknown[0]}={given[unknown[0]]!r}",
            f"is not a parameter of rope_type {rope_type!r} (its parameters: {allowed})",
        )
    out = {}
    for name, p in known.items():
        value = given.get(name, p.default)
        if value is REQUIRED:
            raise ArgumentError(name, "nothing", f"is required by rope_type {rope_type!r}: {p.doc}")
        problem = p.check(value)
        if problem is not None:
            raise ArgumentError(name, f"{name}={value!r}", problem)
        out[name] = value
    return out


def _default(base: sp.Expr, r: int, denominator: int | None = None) -> list[sp.Expr]:
    n = r if denominator is None else denominator
    return [base ** sp.Rational(-2 * t, n) for t in range(r // 2)]


def _mscale(s: sp.Expr, m: sp.Expr) -> sp.Expr:
    return sp.Integer(1) if s <= 1 else sp.Rational(1, 10) * m * sp.log(s) + 1


def _correction(beta: sp.Expr, r: int, base: sp.Expr, L0: int) -> sp.Expr:
    """The pair index at which a pair turns beta times over L0 positions."""
    return r * sp.log(sp.Integer(L0) / (beta * 2 * sp.pi)) / (2 * sp.log(base))


def checked(
    rope_type: str,
    *,
    rotary_dim: int,
    base: Any = 10000,
    seq_len: int | None = None,
    **parameters: Any,
) -> dict[str, Any]:
    """The variant's parameters of a call of :func:`frequencies`, every default filled in,
    after checking every argument (no formula is evaluated). Bad arguments raise
    :class:`ArgumentError` naming the argument, its value and what is allowed; the bundled
    implementations check their calls with this, so that they and the spec refuse alike."""
    params = _parameters(rope_type, parameters)
    ok = isinstance(rotary_dim, int) and not isinstance(rotary_dim, bool)
    if not ok or rotary_dim < 2 or rotary_dim % 2:
        raise ArgumentError(
            "rotary_dim", f"rotary_dim={rotary_dim!r}", "must be an even integer >= 2"
        )
    if _number(above=1)(base) is not None:
        raise ArgumentError("base", f"base={base!r}", "must be a finite number > 1")
    if seq_len is not None and _length(seq_len) is not None:
        raise ArgumentError("seq_len", f"seq_len={seq_len!r}", "must be None or an integer >= 1")
    r = rotary_dim
    if rope_type == "proportional" and r > params["head_dim"]:
        raise ArgumentError(
            "rotary_dim", f"rotary_dim={r}", f"must not exceed head_dim = {params['head_dim']}"
        )
    if rope_type == "dynamic" and r == 2:
        raise ArgumentError(
            "rotary_dim",
            "rotary_dim=2",
            "must be >= 4 for dynamic scaling (its exponent is r/(r-2))",
        )
    if rope_type == "longrope":
        for name in ("short_factor", "long_factor"):
            if len(params[name]) != r // 2:
                raise ArgumentError(
                    name,
                    f"{len(params[name])} factors",
                    f"must hold r/2 = {r // 2} factors, one per rotated pair",
                )
        given = (params[n] for n in ("attention_factor", "factor", "max_position_embeddings"))
        if all(value is None for value in given):
            raise ArgumentError(
                "factor",
                "factor=None",
                "must be given when neither attention_factor nor max_position_embeddings is",
            )
    if rope_type == "llama3" and not exact(params["high_freq_factor"]) > exact(
        params["low_freq_factor"]
    ):
        raise ArgumentError(
            "high_freq_factor",
            f"high_freq_factor={params['high_freq_factor']!r}",
            f"must exceed low_freq_factor = {params['low_freq_factor']!r}",
        )
    return params


def frequencies(
    rope_type: str,
    *,
    rotary_dim: int,
    base: Any = 10000,
    seq_len: int | None = None,
    **parameters: Any,
) -> RopeFrequencies:
    """The exact inverse frequencies and attention factor of ``rope_type`` for a rotary width
    of ``rotary_dim`` (r, even), a ``base`` and, where the variant depends on it, the current
    sequence length ``seq_len`` (the largest position + 1). Bad arguments raise
    :class:`ArgumentError` naming the argument, its value and what is allowed
    (:func:`checked`)."""
    params = checked(rope_type, rotary_dim=rotary_dim, base=base, seq_len=seq_len, **parameters)
    r, b = rotary_dim, exact(base)
    one = sp.Integer(1)
    if rope_type == "default":
        return RopeFrequencies(rope_type, tuple(_default(b, r)), one, b, one)
    if rope_type == "linear":
        f = exact(params["factor"])
        return RopeFrequencies(rope_type, tuple(x / f for x in _default(b, r)), one, b, f)
    if rope_type == "proportional":
        head_dim = params["head_dim"]
        f = exact(params["factor"])
        return RopeFrequencies(rope_type, tuple(x / f for x in _default(b, r, head_dim)), one, b, f)
    L0 = params["original_max_position_embeddings"]
    if rope_type == "dynamic":
        f = exact(params["factor"])
        L = max(seq_len or L0, L0)
        growth = f * sp.Integer(L) / L0 - (f - 1)
        if growth == 1:  # seq_len <= L0: the default frequencies, exactly
            return RopeFrequencies(rope_type, tuple(_default(b, r)), one, b, f)
        # grown^(-2t/r) = base^(-2t/r) growth^(-2t/(r-2)). The growth's powers stay
        # unevaluated: SymPy would otherwise look for perfect powers in integers with
        # hundreds of digits (long seq_len, wide r), and overflow doing it.
        inverse = tuple(
            x * sp.Pow(growth, sp.Rational(-2 * t, r - 2), evaluate=False)
            for t, x in enumerate(_default(b, r))
        )
        grown = b * sp.Pow(growth, sp.Rational(r, r - 2), evaluate=False)
        return RopeFrequencies(rope_type, inverse, one, grown, f)
    if rope_type == "yarn":
        return _yarn(r, b, L0, params)
    if rope_type == "longrope":
        return _longrope(r, b, L0, seq_len, params)
    return _llama3(r, b, L0, params)


def _sign(expr: sp.Expr) -> int:
    """The sign of a real constant, exactly: 50 digits decide unless it lies within 1e-40 of
    0, where SymPy decides symbolically."""
    value = sp.N(expr, 50)
    if abs(value) > sp.Float(10) ** -40:
        return 1 if value > 0 else -1
    exact_value = sp.simplify(expr)
    return 0 if exact_value == 0 else (1 if exact_value > 0 else -1)


def _ramp(t: int, low: sp.Expr, high: sp.Expr, at: tuple[sp.Float, sp.Float]) -> sp.Expr:
    """clip((t - low) / (high - low), 0, 1), exactly (high < low happens: the bounds are
    clipped to [0, r - 1] separately); ``at`` holds low and high to 50 digits, which decide
    the clipping unless the ramp lies within 1e-40 of 0 or 1."""
    value = (t - low) / (high - low)
    approximate = (t - at[0]) / (at[1] - at[0])
    tiny = sp.Float(10) ** -40

    def side(edge: int) -> int:
        gap = approximate - edge
        return (1 if gap > 0 else -1) if abs(gap) > tiny else _sign(value - edge)

    if side(0) <= 0:
        return sp.Integer(0)
    return sp.Integer(1) if side(1) >= 0 else value


def _yarn(r: int, b: sp.Expr, L0: int, params: Mapping[str, Any]) -> RopeFrequencies:
    f = exact(params["factor"])
    low = _correction(exact(params["beta_fast"]), r, b, L0)
    high = _correction(exact(params["beta_slow"]), r, b, L0)
    if params["truncate"]:
        low, high = sp.floor(low), sp.ceiling(high)
    low = low if _sign(low) > 0 else sp.Integer(0)
    high = high if _sign(high - (r - 1)) < 0 else sp.Integer(r - 1)
    if _sign(high - low) == 0:
        high = high + sp.Rational(1, 1000)  # where the bounds meet, as the reference code does
    at = (sp.N(low, 50), sp.N(high, 50))
    ramp = [_ramp(t, low, high, at) for t in range(r // 2)]
    inverse = tuple(
        theta / f * g + theta * (1 - g) for theta, g in zip(_default(b, r), ramp, strict=True)
    )
    given = params["attention_factor"]
    if given is not None:
        factor = exact(given)
    else:
        factor = _mscale(f, exact(params["mscale"])) / _mscale(f, exact(params["mscale_all_dim"]))
    return RopeFrequencies("yarn", inverse, factor, b, f)


def _longrope(
    r: int, b: sp.Expr, L0: int, seq_len: int | None, params: Mapping[str, Any]
) -> RopeFrequencies:
    chosen = (
        params["long_factor"] if seq_len is not None and seq_len > L0 else params["short_factor"]
    )
    inverse = tuple(theta / exact(e) for theta, e in zip(_default(b, r), chosen, strict=True))
    ext = max(exact(e) for e in chosen)
    if params["attention_factor"] is not None:
        return RopeFrequencies("longrope", inverse, exact(params["attention_factor"]), b, ext)
    if params["factor"] is not None:
        f = exact(params["factor"])
    else:  # checked(): max_position_embeddings is given
        f = sp.Rational(params["max_position_embeddings"], L0)
    factor = sp.Integer(1) if f <= 1 else sp.sqrt(1 + sp.log(f) / sp.log(L0))
    return RopeFrequencies("longrope", inverse, factor, b, ext)


def _llama3(r: int, b: sp.Expr, L0: int, params: Mapping[str, Any]) -> RopeFrequencies:
    f = exact(params["factor"])
    lo, hi = exact(params["low_freq_factor"]), exact(params["high_freq_factor"])
    low_wavelength, high_wavelength = L0 / lo, L0 / hi
    inverse = []
    for theta in _default(b, r):
        wavelength = 2 * sp.pi / theta
        if wavelength < high_wavelength:
            inverse.append(theta)
        elif wavelength > low_wavelength:
            inverse.append(theta / f)
        else:
            s = (L0 / wavelength - lo) / (hi - lo)
            inverse.append((1 - s) * theta / f + s * theta)
    return RopeFrequencies("llama3", tuple(inverse), sp.Integer(1), b, f)


def variant_lines() -> list[str]:
    """One block per variant for ``relpos spec show rope``: formula, parameters, citation."""
    lines = []
    for v in VARIANTS.values():
        lines.append(f"  {v.name}: {v.summary}")
        for p in v.parameters:
            default = "required" if p.default is REQUIRED else f"default {p.default!r}"
            lines.append(f"      {p.name} ({default}): {p.doc}")
        lines.append(f"      source: {v.citation}")
    lines += [
        "  M-RoPE (mrope_axes, mrope_angles): position ids (temporal, height, width) over "
        "mrope_section (s_T, s_H, s_W), layouts " + ", ".join(MROPE_LAYOUTS),
        "      source: Wang et al. (2024), Qwen2-VL, arXiv:2409.12191; Qwen3-VL (interleaved)",
        "  2D axial (axial_pairs, axial_angles): a patch's (row, column) over r/4 pairs each, "
        "layouts " + ", ".join(AXIAL_LAYOUTS),
        "      split: each axis 1D RoPE of width r/2; alternating: the row takes theta_0, "
        "theta_2, ... of width r, the column theta_1, theta_3, ...",
        "      source: Heo et al. (2024), arXiv:2403.13298 (split); Pixtral, Mistral AI "
        "(2024) (alternating)",
    ]
    return lines


def identity_checks() -> list[tuple[str, str, Callable[[], tuple[bool, str, str]]]]:
    """The identities that tie the variants together, as (name, statement, proof)."""
    from relpos.spec._proofs import exhaustive, symbolic_zero

    theta, g, f, p = sp.symbols("theta gamma s p", positive=True)
    widths = range(2, 66, 2)
    bases: Sequence[Any] = (10000, 500000, 10.0, 2.5)

    def zero(difference: sp.Expr) -> bool:
        # exact: the cheap forms first, SymPy's simplification only where they do not decide
        return sp.expand(difference) == 0 or sp.simplify(difference) == 0

    def same(a: RopeFrequencies, b: RopeFrequencies) -> str | None:
        for t, (x, y) in enumerate(zip(a.inverse, b.inverse, strict=True)):
            if not zero(x - y):
                return f"theta'_{t}: {x} != {y}"
        if not zero(a.attention_factor - b.attention_factor):
            return f"attention factor {a.attention_factor} != {b.attention_factor}"
        return None

    def yarn_one(r: int, base: Any) -> str | None:
        return same(
            frequencies(
                "yarn", rotary_dim=r, base=base, factor=1, original_max_position_embeddings=4096
            ),
            frequencies("default", rotary_dim=r, base=base),
        )

    def dynamic_short(r: int, base: Any, seq_len: int) -> str | None:
        return same(
            frequencies(
                "dynamic",
                rotary_dim=r,
                base=base,
                seq_len=seq_len,
                factor=4,
                original_max_position_embeddings=2048,
            ),
            frequencies("default", rotary_dim=r, base=base),
        )

    def llama3_bands(r: int, base: Any) -> str | None:
        L0, factor, lo, hi = 8192, 8, 1, 4
        got = frequencies(
            "llama3",
            rotary_dim=r,
            base=base,
            factor=factor,
            original_max_position_embeddings=L0,
            low_freq_factor=lo,
            high_freq_factor=hi,
        )
        for t, (x, theta) in enumerate(zip(got.inverse, _default(exact(base), r), strict=True)):
            wavelength = 2 * sp.pi / theta
            if wavelength < sp.Rational(L0, hi) and not zero(x - theta):
                return f"high-frequency pair {t} changed: {x} != {theta}"
            if wavelength > sp.Rational(L0, lo) and not zero(x - theta / factor):
                return f"low-frequency pair {t}: {x} != {theta} / {factor}"
        return None

    def yarn_general() -> tuple[bool, str, str]:
        # at s = 1 the two ends of the ramp coincide, whatever gamma
        return symbolic_zero(
            theta / 1 * g + theta * (1 - g) - theta, "theta/1 gamma + theta (1 - gamma) - theta"
        )

    def linear_positions() -> tuple[bool, str, str]:
        return symbolic_zero(p * (theta / f) - (p / f) * theta, "p (theta / s) - (p / s) theta")

    def llama3_edges() -> tuple[bool, str, str]:
        L0, lo, hi, s_ = sp.symbols("L0 l h s", positive=True)

        def smooth(wavelength: sp.Expr) -> sp.Expr:
            return (L0 / wavelength - lo) / (hi - lo)

        def blend(wavelength: sp.Expr) -> sp.Expr:
            return (1 - smooth(wavelength)) * theta / s_ + smooth(wavelength) * theta

        return symbolic_zero(
            sp.Matrix([blend(L0 / hi) - theta, blend(L0 / lo) - theta / s_]),
            "the smooth band meets theta at lambda_high and theta / s at lambda_low",
        )

    def mrope_is_1d(r: int, section: tuple[int, int, int], layout: str) -> str | None:
        inverse = _default(sp.Integer(10000), r)
        for p in (0, 1, 7, 2**17):
            got = mrope_angles(inverse, (p, p, p), section, layout)
            if got != tuple(p * theta for theta in inverse):
                return f"position {p}: {got} is not p theta_t"
        return None

    def sections() -> Any:
        for r in range(2, 34, 2):
            n = r // 2
            for s_t in range(n + 1):
                for s_h in range(n - s_t + 1):
                    section = (s_t, s_h, n - s_t - s_h)
                    yield r, section, "sectioned"
                    if 3 * section[1] <= n + 1 and 3 * section[2] <= n:
                        yield r, section, "interleaved"

    def axial_is_1d_per_axis(r: int, base: Any, layout: str) -> str | None:
        # each axis against 1D RoPE itself: width r/2 (split), or the even or odd pairs of
        # width r (alternating), at the row or the column alone
        width = r // 2 if layout == "split" else r
        inverse = frequencies("default", rotary_dim=width, base=base).inverse

        def one_d(p: int) -> list[sp.Expr]:
            return [p * x for x in inverse]

        for row, col in ((0, 0), (1, 0), (0, 1), (7, 3), (255, 2**10)):
            got = axial_angles(r, (row, col), base, layout)
            rows, cols = one_d(row), one_d(col)
            want = rows + cols if layout == "split" else rows[0::2] + cols[1::2]
            if list(got) != want:
                return f"patch ({row}, {col}): {got} != {want}"
        return None

    from relpos.spec._proofs import all_of

    return [
        (
            "yarn at factor 1 is default",
            "YaRN with factor 1 gives base^(-2t/r) and attention factor 1, for any ramp",
            lambda: all_of(
                yarn_general(),
                exhaustive(((r, b) for r in widths for b in bases), yarn_one, "r <= 64, 4 bases"),
            ),
        ),
        (
            "llama3 keeps high and divides low frequencies",
            "llama3 leaves pairs of wavelength < L0 / high_freq_factor unchanged, divides those "
            "of wavelength > L0 / low_freq_factor by the factor, and is continuous between",
            lambda: all_of(
                llama3_edges(),
                exhaustive(
                    ((r, b) for r in widths for b in bases), llama3_bands, "r <= 64, 4 bases"
                ),
            ),
        ),
        (
            "dynamic is default up to the original length",
            "dynamic NTK scaling equals default for every seq_len <= L0",
            lambda: exhaustive(
                ((r, b, n) for r in range(4, 66, 2) for b in bases for n in (None, 1, 2047, 2048)),
                dynamic_short,
                "r in 4..64, 4 bases, seq_len in {None, 1, L0 - 1, L0}",
            ),
        ),
        (
            "M-RoPE with equal position ids is 1D RoPE",
            "with temporal, height and width ids all p, every pair rotates by p theta_t, in "
            "both layouts and every section",
            lambda: exhaustive(sections(), mrope_is_1d, "r <= 32, every section, both layouts"),
        ),
        (
            "2D axial RoPE is 1D RoPE per axis",
            "a patch at (row, column) rotates its row pairs as 1D RoPE at the row and its "
            "column pairs as 1D RoPE at the column: of width r/2 (split), or the even and odd "
            "pairs of width r (alternating)",
            lambda: exhaustive(
                ((r, b, lay) for r in range(4, 68, 4) for b in bases for lay in AXIAL_LAYOUTS),
                axial_is_1d_per_axis,
                "r <= 64, 4 bases, both layouts",
            ),
        ),
        (
            "linear is default at positions / factor",
            "the angle p theta_t / s of linear scaling is default's angle at position p / s",
            linear_positions,
        ),
    ]


# -- multimodal positions ---------------------------------------------------------------------

#: How M-RoPE assigns the rotated pairs to the temporal, height and width position ids.
MROPE_LAYOUTS = ("sectioned", "interleaved")


def mrope_axes(
    rotary_dim: int, section: Sequence[int], layout: str = "sectioned"
) -> tuple[int, ...]:
    """The axis (0 temporal, 1 height, 2 width) whose position id rotates each pair t of
    M-RoPE, from ``section`` = (s_T, s_H, s_W), which sums to r/2.

    - ``sectioned`` (Qwen2-VL, Wang et al. 2024, arXiv:2409.12191): the first s_T pairs take
      the temporal id, the next s_H the height id, the last s_W the width id;
    - ``interleaved`` (Qwen3-VL): pair t takes the height id when t = 1 mod 3 and t < 3 s_H,
      the width id when t = 2 mod 3 and t < 3 s_W, and the temporal id otherwise, so that
      every axis spans high and low frequencies."""
    if layout not in MROPE_LAYOUTS:
        raise ArgumentError("layout", repr(layout), f"must be one of {', '.join(MROPE_LAYOUTS)}")
    ok = isinstance(section, list | tuple) and len(section) == 3
    ok = ok and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in section)
    if not ok:
        raise ArgumentError(
            "mrope_section", repr(section), "must be three integers >= 0 (temporal, height, width)"
        )
    n = rotary_dim // 2
    if sum(section) != n:
        raise ArgumentError(
            "mrope_section", repr(list(section)), f"must sum to r/2 = {n} (one pair each)"
        )
    if layout == "sectioned":
        return tuple(axis for axis, size in enumerate(section) for _ in range(size))
    _, s_h, s_w = section
    if 3 * s_h > n + 1 or 3 * s_w > n:
        raise ArgumentError(
            "mrope_section",
            repr(list(section)),
            f"must fit the interleaved layout: 3 s_H <= r/2 + 1 and 3 s_W <= r/2 (r/2 = {n})",
        )
    return tuple(
        1 if t % 3 == 1 and t < 3 * s_h else 2 if t % 3 == 2 and t < 3 * s_w else 0
        for t in range(n)
    )


def mrope_angles(
    inverse: Sequence[sp.Expr],
    positions: Sequence[int],
    section: Sequence[int],
    layout: str = "sectioned",
) -> tuple[sp.Expr, ...]:
    """The exact angle of each pair for one token with position ids ``positions`` =
    (temporal, height, width): pos[axis(t)] theta'_t."""
    if len(positions) != 3 or not all(isinstance(p, int) for p in positions):
        raise ArgumentError(
            "positions", repr(positions), "must be three integers (temporal, height, width)"
        )
    axes = mrope_axes(2 * len(inverse), section, layout)
    return tuple(positions[a] * theta for a, theta in zip(axes, inverse, strict=True))


# -- 2D positions: axial RoPE of image patches -------------------------------------------------

#: How 2D axial RoPE assigns the rotated pairs to a patch's row and column, and which frequency
#: each pair turns at.
AXIAL_LAYOUTS = ("split", "alternating")


def axial_pairs(
    rotary_dim: int, base: Any = 10000, layout: str = "split"
) -> tuple[tuple[int, sp.Expr], ...]:
    """(axis, theta) of each rotated pair t (t = 0 .. r/2 - 1) of 2D axial RoPE, axis 0 the
    patch's row and 1 its column; r is a multiple of 4.

    - ``split`` (Heo et al. 2024, Rotary Position Embedding for Vision Transformer,
      arXiv:2403.13298; EVA-02; Qwen2-VL's vision encoder): each axis is a 1D RoPE of width
      r/2. The first r/4 pairs rotate with the row and the other r/4 with the column, pair
      j of each (j = t mod r/4) at base^(-2j / (r/2)).
    - ``alternating`` (Pixtral, Mistral AI 2024): the frequencies of 1D RoPE of width r,
      theta_j = base^(-2j/r), alternate between the axes: the row's r/4 pairs take the even
      j (theta_0, theta_2, ...), the column's r/4 pairs the odd j (theta_1, theta_3, ...).

    Both rotate the row pairs alike; they differ in the column's frequencies."""
    if layout not in AXIAL_LAYOUTS:
        raise ArgumentError("layout", repr(layout), f"must be one of {', '.join(AXIAL_LAYOUTS)}")
    ok = isinstance(rotary_dim, int) and not isinstance(rotary_dim, bool)
    if not ok or rotary_dim < 4 or rotary_dim % 4:
        raise ArgumentError(
            "rotary_dim",
            f"rotary_dim={rotary_dim!r}",
            "must be a multiple of 4, >= 4 (r/4 pairs per axis)",
        )
    if _number(above=1)(base) is not None:
        raise ArgumentError("base", f"base={base!r}", "must be a finite number > 1")
    quarter, b = rotary_dim // 4, exact(base)
    if layout == "split":
        half = _default(b, rotary_dim // 2)
        return tuple((axis, half[j]) for axis in (0, 1) for j in range(quarter))
    full = _default(b, rotary_dim)
    return tuple((axis, full[2 * j + axis]) for axis in (0, 1) for j in range(quarter))


def axial_angles(
    rotary_dim: int, position: Sequence[int], base: Any = 10000, layout: str = "split"
) -> tuple[sp.Expr, ...]:
    """The exact angle of each pair of a patch at ``position`` = (row, column):
    pos[axis(t)] theta_t."""
    ok = isinstance(position, list | tuple) and len(position) == 2
    if not ok or not all(isinstance(p, int) and not isinstance(p, bool) for p in position):
        raise ArgumentError("position", repr(position), "must be two integers (row, column)")
    return tuple(position[a] * theta for a, theta in axial_pairs(rotary_dim, base, layout))


#: The kinds of segment of a multimodal sequence, for :func:`mrope_position_ids`.
SEGMENT_KINDS = ("text", "image", "video")


def _segment_problem(segment: Any) -> str | None:
    if not isinstance(segment, list | tuple) or len(segment) != 2:
        return "must be (kind, size)"
    kind, size = segment
    if kind not in SEGMENT_KINDS:
        return f"must have a kind among {', '.join(SEGMENT_KINDS)}"
    if kind == "text":
        ok = isinstance(size, int) and not isinstance(size, bool) and size >= 1
        return None if ok else "must be ('text', n) with an integer n >= 1"
    ok = isinstance(size, list | tuple) and len(size) == 3
    ok = ok and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in size)
    if not ok:
        return f"must be ({kind!r}, (t, h, w)) with integers >= 1 (the grid after merging)"
    if kind == "image" and size[0] != 1:
        return "must have t = 1 (an image is one temporal step)"
    return None


def mrope_position_ids(
    segments: Sequence[Any], *, generated: int = 0, temporal_interval: Any = 1
) -> list[list[int]]:
    """The M-RoPE position ids (temporal, height, width) of every token of a multimodal
    sequence and of ``generated`` text tokens generated after it, as three lists of L + n
    integers (Wang et al. 2024, Qwen2-VL, arXiv:2409.12191, section 2.1).

    ``segments`` lists the sequence in order: ``("text", n)`` for n text tokens, and
    ``("image", (1, h, w))`` or ``("video", (t, h, w))`` for a vision input whose grid, after
    the vision encoder's merging, is t x h x w tokens in (t, h, w) raster order. From a start
    s: text token k has ids (s + k, s + k, s + k); vision token (i, j, l) has (s +
    floor(i temporal_interval), s + j, s + l). Each segment starts at the largest id of
    everything before it plus one (0 at first), and so do the generated tokens, which are
    text."""
    if not isinstance(segments, list | tuple) or not segments:
        raise ArgumentError("segments", repr(segments), "must be a non-empty list of segments")
    for index, segment in enumerate(segments):
        problem = _segment_problem(segment)
        if problem is not None:
            raise ArgumentError("segments", f"segments[{index}]={segment!r}", problem)
    if _length(generated) is not None and generated != 0:
        raise ArgumentError("generated", f"generated={generated!r}", "must be an integer >= 0")
    if _number(above=0)(temporal_interval) is not None:
        raise ArgumentError(
            "temporal_interval",
            f"temporal_interval={temporal_interval!r}",
            "must be a finite number > 0",
        )
    step = Fraction(temporal_interval)
    ids: list[list[int]] = [[], [], []]
    start = 0
    for kind, size in [*segments, ("text", generated)] if generated else segments:
        if kind == "text":
            for axis in ids:
                axis.extend(range(start, start + size))
        else:
            t, h, w = size
            for i in range(t):
                for j in range(h):
                    for col in range(w):
                        ids[0].append(start + math.floor(i * step))
                        ids[1].append(start + j)
                        ids[2].append(start + col)
        start = max(max(axis) for axis in ids) + 1
    return ids
