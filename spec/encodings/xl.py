"""Transformer-XL (Dai et al. 2019) and XLNet (Yang et al. 2019) relative attention.

Formula (per batch element and head h)::

    D_ij   = pos_i - pos_j   (query minus key; by default pos_i = mlen + i, pos_j = j)
    D'_ij  = min(D, clamp_len)                 clamp_style "upper"     (Transformer-XL)
           = max(min(D, clamp_len), -clamp_len) clamp_style "symmetric" (XLNet)
           = D                                 clamp_len None
    R(D)   = [sin(D f_0), ..., sin(D f_{d_model/2-1}), cos(D f_0), ..., cos(D f_{d_model/2-1})]
    f_k    = 10000^(-2k / d_model)
    r(D)   = W_R R(D)                           W_R = w_r[h], (d_head, d_model)
    e_ij   = scale * [(q_i + u) . k_j + (q_i + v) . r(D'_ij) (+ (q_i + b) . S[s_ij])]
    s_ij   = 0 if seg(pos_i) == seg(pos_j) else 1    (the optional segment term of XLNet)
    o_i    = sum_j alpha_ij v_j

Symbols: u = ``r_w_bias``, v = ``r_r_bias``, b = ``r_s_bias`` (n_head, d_head); S =
``seg_embed`` (2, n_head, d_head); ``seg_ids`` (bsz, klen) gives the segment of every position
(query i has seg_ids[:, mlen + i]); ``attn_type`` "uni" adds the causal mask pos_j <= pos_i;
``scale`` defaults to 1/sqrt(d_head).

The seed form (Dai et al. 2019, eq. 2 with absolute positions replaced by R) is
(a) x_i W_Q W_K^T x_j^T + (b) x_i W_Q W_K^T R^T + (c) u W_Q W_K^T x_j^T + (d) v W_Q W_K^T R^T;
the grouped form above is it with separate W_KR (= w_r^T) and u, v moved past W_Q
(identity "(b) seed form").

Citation: Dai, Yang, Yang, Carbonell, Le, Salakhutdinov (2019), Transformer-XL: Attentive
Language Models Beyond a Fixed-Length Context, arXiv:1901.02860; Yang, Dai, Yang, Carbonell,
Salakhutdinov, Le (2019), XLNet: Generalized Autoregressive Pretraining for Language
Understanding, arXiv:1906.08237.

How other code differs: Transformer-XL clamps D from above only and fills masked scores with
-inf (NaN rows); XLNet clamps both signs and subtracts 1e30 (uniform rows; 65500 in float16 in
Hugging Face); both store R rows in decreasing position and realign with a rel-shift
(Transformer-XL pads a zero column, XLNet does not and starts at position klen); labml replaces
W_R R by a learned table and the d-term by a scalar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, final

import mpmath
import numpy as np
import sympy as sp

from relpos.spec import _conventions as cv
from relpos.spec._arith import FLOAT_MODES, Mode, array, constant
from relpos.spec._balls import compile_expression, compile_matrix_expression
from relpos.spec._encoding import Case, Encoding, Identity, Reference
from relpos.spec._index import IndexFunction
from relpos.spec._pairs import PairFormula, Rows, keys, queries, size_symbol
from relpos.spec._profiles import Axis, NotApplicable, Profile, Value, fixed
from relpos.spec._signature import ArgumentError, Option, Problem, Tensor, check_int

__all__ = ["XL"]

d_model = size_symbol("d_model")
clamp_len = sp.Symbol("c", integer=True, nonnegative=True)
_D = sp.Symbol("D", integer=True)
_k = sp.Symbol("k", integer=True, nonnegative=True)
_P_i, _P_j = sp.symbols("pos_i pos_j", integer=True)

q_i = sp.MatrixSymbol("q_i", 1, cv.d_head)
k_j = sp.MatrixSymbol("k_j", 1, cv.d_head)
v_j = sp.MatrixSymbol("v_j", 1, cv.d_head)
u = sp.MatrixSymbol("u", 1, cv.d_head)
v = sp.MatrixSymbol("v", 1, cv.d_head)
b = sp.MatrixSymbol("b", 1, cv.d_head)
S_s = sp.MatrixSymbol("S_s", 1, cv.d_head)
R_D = sp.MatrixSymbol("R_D", 1, d_model)
W_R = sp.MatrixSymbol("W_R", cv.d_head, d_model)
r_D = sp.MatrixSymbol("r_D", 1, cv.d_head)

#: Distance of a pair, and its clamped forms.
DISTANCE_OF_POSITIONS: Final = _P_i - _P_j
CLAMPS: Final = {
    None: DISTANCE_OF_POSITIONS,
    "upper": sp.Min(DISTANCE_OF_POSITIONS, clamp_len),
    "symmetric": sp.Max(sp.Min(DISTANCE_OF_POSITIONS, clamp_len), -clamp_len),
}
#: The sinusoid: entry k (sin half) and d_model/2 + k (cos half) of R(D).
FREQUENCY: Final = sp.Integer(10000) ** (-2 * _k / d_model)
R_SIN: Final = sp.sin(_D * FREQUENCY)
R_COS: Final = sp.cos(_D * FREQUENCY)
#: The projected relative embedding and the score.
PROJECTION: Final = R_D * W_R.T
LOGIT: Final = cv.scale * ((q_i + u) * k_j.T + (q_i + v) * r_D.T)
LOGIT_SEGMENT: Final = LOGIT + cv.scale * (q_i + b) * S_s.T
#: The four-term expansion of the paper (terms a, b, c, d), scaled.
FOUR_TERMS: Final = cv.scale * (q_i * k_j.T + q_i * r_D.T + u * k_j.T + v * r_D.T)
CAUSAL: Final = sp.Le(_P_j, _P_i)

_SIN = sp.lambdify((_D, _k, d_model), R_SIN, "mpmath")
_ARGUMENT = sp.lambdify((_D, _k, d_model), _D * FREQUENCY, "mpmath")
_COS = sp.lambdify((_D, _k, d_model), R_COS, "mpmath")
_FLOAT_SIN = sp.lambdify((_D, _k, d_model), R_SIN, "numpy")
_FLOAT_ARGUMENT = sp.lambdify((_D, _k, d_model), _D * FREQUENCY, "numpy")
_FLOAT_COS = sp.lambdify((_D, _k, d_model), R_COS, "numpy")
_CLAMPED = {style: IndexFunction(expr, (_P_i, _P_j, clamp_len)) for style, expr in CLAMPS.items()}
_PROJECTION = PairFormula(PROJECTION, (R_D, W_R), vector=True)
_BALL_SIN = compile_expression((_D, _k, d_model), R_SIN)
_BALL_COS = compile_expression((_D, _k, d_model), R_COS)
_BALL_PROJECTION = compile_matrix_expression((R_D, W_R), PROJECTION)
_LOGIT = PairFormula(LOGIT, (cv.scale, q_i, k_j, u, v, r_D))
_LOGIT_SEGMENT = PairFormula(LOGIT_SEGMENT, (cv.scale, q_i, k_j, u, v, r_D, b, S_s))
_CAUSAL = IndexFunction(sp.Piecewise((1, CAUSAL), (0, True)), (_P_i, _P_j))

_HEAD_VECTOR = (("n_head", "d_head"),)
_SEGMENT_TERM = ("r_s_bias", "seg_embed", "seg_ids")


def _check_choice(*choices: str) -> Any:
    def check(value: Any) -> str | None:
        return None if value in choices else "must be one of " + ", ".join(map(repr, choices))

    return check


def _check_d_model(value: Any) -> str | None:
    if value is None:
        return None
    problem = check_int(value, minimum=2)
    return problem or (None if value % 2 == 0 else "must be even: R(D) is [sin | cos]")


def _check_clamp_len(value: Any) -> str | None:
    if value is None:
        return None
    problem = check_int(value, minimum=0)
    return (
        None
        if problem is None
        else (
            "must be None (no clamp) or an integer >= 0 (Transformer-XL and XLNet's 0 or -1 "
            "for 'no clamp' is None here)"
        )
    )


# -- library conventions -------------------------------------------------------------------
# Every map acts on w_r's last axis (the sinusoid's entries): W_lib R_lib(D) = W_R R(D).


def _negate_sines(args: Mapping[str, Any]) -> dict[str, Any]:
    if args.get("clamp_len") is not None and args.get("clamp_style", "upper") == "upper":
        raise NotApplicable(
            "min(j - i, clamp_len) is a lower clamp of i - j, which the spec does not state"
        )
    w = np.array(args["w_r"], copy=True)
    w[..., : w.shape[-1] // 2] *= -1
    return dict(args, w_r=w)


def _interleave(args: Mapping[str, Any]) -> dict[str, Any]:
    w = np.asarray(args["w_r"])
    half = w.shape[-1] // 2
    out = np.empty_like(w)
    out[..., 0::2], out[..., 1::2] = w[..., :half], w[..., half:]
    return dict(args, w_r=out)


def _concatenate(args: Mapping[str, Any]) -> dict[str, Any]:
    w = np.asarray(args["w_r"])
    return dict(args, w_r=np.concatenate([w[..., 0::2], w[..., 1::2]], axis=-1))


def _clamp_style(style: str) -> Any:
    return lambda args: dict(args, clamp_style=style)


_AXES = (
    Axis(
        "distance",
        "which distance the sinusoid is evaluated at",
        (
            Value("query_minus_key", "D = pos_i - pos_j (Transformer-XL, XLNet)"),
            Value(
                "key_minus_query",
                "pos_j - pos_i: R(-D) negates the sine half, so w_r's sine columns are negated "
                "(min(j - i, clamp_len) has no spec counterpart: symmetric clamps only)",
                _negate_sines,
                options={"clamp_style": fixed("symmetric")},
                changes=("w_r",),
                permutes=True,
            ),
        ),
    ),
    Axis(
        "sinusoid",
        "how R(D) lays out its sines and cosines",
        (
            Value("concatenated", "[sin(D f_0) .. sin(D f_n) | cos(D f_0) .. cos(D f_n)]"),
            Value(
                "interleaved",
                "[sin(D f_0), cos(D f_0), sin(D f_1), ...] (Vaswani et al.'s layout)",
                _concatenate,
                _interleave,
                changes=("w_r",),
                permutes=True,
            ),
        ),
    ),
    Axis(
        "clamp",
        "how clamp_len bounds the distance",
        (
            Value("any", "as clamp_style says"),
            Value(
                "upper",
                "min(D, clamp_len) (Transformer-XL)",
                _clamp_style("upper"),
                options={"clamp_style": fixed("upper")},
            ),
            Value(
                "symmetric",
                "D clipped to [-clamp_len, clamp_len] (XLNet)",
                _clamp_style("symmetric"),
                options={"clamp_style": fixed("symmetric")},
            ),
        ),
    ),
)


def _no_zero_clamp(dims: Mapping[str, int], candidates: list[Any]) -> list[Any]:
    return [c for c in candidates if c != 0]


_NO_SEGMENT = ("r_s_bias", "seg_embed", "seg_ids")
_PROFILES = (
    Profile(
        "transformer-xl",
        "xl",
        "Transformer-XL (kimiyoung/transformer-xl PyTorch)",
        "kimiyoung/transformer-xl pytorch/mem_transformer.py (44781ed)",
        {"clamp": "upper", "mask": "hide", "masked_rows": "nan"},
        options={"scale": fixed(None), "attn_type": fixed("uni"), "clamp_len": _no_zero_clamp},
        exclude=_NO_SEGMENT,
        notes=(
            "masked scores are filled with -inf, so a fully masked row is NaN; this is the "
            "original code: the Hugging Face TransfoXL port (transformers 4.x, deprecated) "
            "fills finfo.min on a float32 copy, so its fully masked rows are uniform (check it "
            "with masked_rows uniform, or with profile xlnet's mask conventions)",
            "clamp_len 0 means no clamp in Transformer-XL (it clamps only when clamp_len > 0): "
            "the spec's clamp_len=0 has no counterpart and is not drawn",
            "boolean mask, True = masked; no segment term; causal attention only (positions "
            "klen - 1 .. 0 hold no negative distance)",
            "memory is the model's mems; no position ids: the sinusoid is built for distances "
            "klen - 1 .. 0, so only the default layout exists",
        ),
    ),
    Profile(
        "xlnet",
        "xl",
        "XLNet (zihangdai/xlnet TF and Hugging Face XLNetRelativeAttention)",
        "zihangdai/xlnet modeling.py (bbaa3a6); transformers 5.24 models/xlnet/modeling_xlnet.py",
        {"clamp": "symmetric", "mask": "hide", "masked_rows": "uniform"},
        options={"scale": fixed(None), "clamp_len": _no_zero_clamp},
        notes=(
            "float mask, 1 = masked; masked scores minus 1e30 (65500 for float16 masks in "
            "Hugging Face), so a fully masked row is uniform",
            "clamp_len 0 (or -1) means no clamp in XLNet: the spec's clamp_len=0 has no "
            "XLNet counterpart and is not drawn",
            "memory is XLNet's mems; no position ids: relative_positional_encoding takes "
            "lengths (distances klen .. -qlen), so only the default layout exists",
        ),
    ),
)


def sinusoid(distance: int, width: int, mode: Mode = "exact") -> list[Any]:
    """R(distance) of the given width, as mpf at the working precision.

    In ``abs`` mode each entry is |R(D)_k| + |D f_k|: the magnitude that bounds its rounding
    error, since an ulp of the argument D f_k moves the sine by up to |D f_k| ulps.
    """
    half = width // 2
    dist, w = mpmath.mpf(distance), mpmath.mpf(width)
    ks = [mpmath.mpf(n) for n in range(half)]
    entries = [_SIN(dist, k, w) for k in ks] + [_COS(dist, k, w) for k in ks]
    if mode not in ("abs", "abs_float"):
        return entries
    arguments = [abs(_ARGUMENT(dist, k, w)) for k in ks] * 2
    return [abs(e) + a for e, a in zip(entries, arguments, strict=True)]


def sinusoid_float(distances: Sequence[int] | np.ndarray, width: int, mode: Mode) -> np.ndarray:
    """R(D) of the given width for each distance in float64, (len(distances), width): the
    float modes' magnitudes, over the whole grid at once (``abs_float`` as in
    :func:`sinusoid`)."""
    dist = np.asarray(distances, dtype=np.float64)[:, None]
    ks = np.arange(width // 2, dtype=np.float64)[None, :]
    grid = np.broadcast_shapes(dist.shape, ks.shape)
    entries = np.concatenate(
        [
            np.broadcast_to(_FLOAT_SIN(dist, ks, float(width)), grid),
            np.broadcast_to(_FLOAT_COS(dist, ks, float(width)), grid),
        ],
        axis=1,
    )
    if mode != "abs_float":
        return entries
    arguments = np.abs(np.broadcast_to(_FLOAT_ARGUMENT(dist, ks, float(width)), grid))
    return np.abs(entries) + np.concatenate([arguments, arguments], axis=1)


def sinusoid_balls(distances: Sequence[int] | np.ndarray, width: int) -> np.ndarray:
    """R(D) of the given width for each distance, (len(distances), width) certified balls,
    from R_SIN and R_COS evaluated over the whole grid of distances and frequencies."""
    from relpos.spec._balls import number

    dist = np.array([number(int(D)) for D in distances], dtype=object)[:, None]
    ks = np.array([number(n) for n in range(width // 2)], dtype=object)[None, :]
    w = number(width)
    grid = np.broadcast_shapes(dist.shape, ks.shape)
    sin = np.broadcast_to(_BALL_SIN(dist, ks, w), grid)
    cos = np.broadcast_to(_BALL_COS(dist, ks, w), grid)
    return np.concatenate([sin, cos], axis=1)


@final
class XL(Encoding):
    """Transformer-XL / XLNet relative attention (see the module docstring)."""

    name = "xl"
    large_options = MappingProxyType({"clamp_len": 500, "clamp_style": "symmetric"})
    title = "Transformer-XL / XLNet: four-term relative attention with a sinusoid"
    summary = (
        "Content and position terms with global biases u and v, a projected sinusoid of the "
        "query-minus-key distance, optional clamping, memory, and XLNet's segment term."
    )
    references = (
        Reference(
            "Dai, Z., Yang, Z., Yang, Y., Carbonell, J., Le, Q. V., Salakhutdinov, R.",
            "Transformer-XL: Attentive Language Models Beyond a Fixed-Length Context",
            2019,
            "1901.02860",
        ),
        Reference(
            "Yang, Z., Dai, Z., Yang, Y., Carbonell, J., Salakhutdinov, R., Le, Q. V.",
            "XLNet: Generalized Autoregressive Pretraining for Language Understanding",
            2019,
            "1906.08237",
        ),
    )
    tensors = (
        cv.Q,
        cv.K,
        cv.V,
        Tensor(
            "w_r",
            (("n_head", "d_head", "d_model"),),
            "float",
            "W_R per head: projects the sinusoid R(D) (width d_model) to d_head",
        ),
        Tensor("r_w_bias", _HEAD_VECTOR, "float", "u: the content bias"),
        Tensor("r_r_bias", _HEAD_VECTOR, "float", "v: the position bias"),
        Tensor(
            "r_s_bias", _HEAD_VECTOR, "float", "b: the segment bias (segment term)", required=False
        ),
        Tensor(
            "seg_embed",
            ((2, "n_head", "d_head"),),
            "float",
            "S: row 0 = same segment, row 1 = different segment (segment term)",
            required=False,
        ),
        Tensor(
            "seg_ids",
            (("bsz", "klen"),),
            "int",
            "segment id of every position; query i has seg_ids[:, mlen + i] (segment term)",
            required=False,
        ),
        cv.MASK,
        cv.Q_POS,
        cv.K_POS,
    )
    options = (
        Option(
            "d_model", "width of the sinusoid (even); None = w_r.shape[-1]", None, _check_d_model
        ),
        Option(
            "attn_type",
            "'bi' (no causal mask) or 'uni' (pos_j <= pos_i)",
            "bi",
            _check_choice("bi", "uni"),
        ),
        Option(
            "clamp_len",
            "None (no clamp) or an integer >= 0 bounding the distance",
            None,
            _check_clamp_len,
        ),
        Option(
            "clamp_style",
            "'upper' (Transformer-XL: min(D, clamp_len)) or 'symmetric' "
            "(XLNet: clip to [-clamp_len, clamp_len])",
            "upper",
            _check_choice("upper", "symmetric"),
        ),
        cv.SCALE,
    )
    glossary = (
        ("q_i, k_j, v_j", "query i, key j, value j of one head"),
        ("pos_i, pos_j", "absolute positions q_pos[b, i] and k_pos[b, j]; by default m + i and j"),
        ("D", "pos_i - pos_j, the query-minus-key distance (then clamped)"),
        ("c", "clamp_len"),
        ("R_D", "the sinusoid R(D), width d_model, laid out [sin | cos]"),
        ("W_R", "w_r[h], (d_head, d_model)"),
        ("r_D", "W_R R(D): the relative key of distance D"),
        ("u, v, b", "r_w_bias, r_r_bias, r_s_bias of head h"),
        ("S_s", "seg_embed[s_ij, h]: row 0 same segment, row 1 different"),
        ("scale", "the scale argument, default 1/sqrt(d_head)"),
    )
    conventions = (
        "distance D = pos_i - pos_j (query minus key): D > 0 is a key in the past",
        "R(D) = [sin(D f) | cos(D f)] concatenated, f_k = 10000^(-2k/d_model), computed from "
        "integer D (never a rounded distance)",
        "clamp_style 'upper' clamps D from above (Transformer-XL); 'symmetric' clips it to "
        "[-clamp_len, clamp_len] (XLNet); clamp_len None = no clamp",
        "attn_type 'uni' masks pos_j > pos_i in addition to the mask argument",
        "the segment term needs r_s_bias, seg_embed and seg_ids together; s_ij = 1 when the "
        "segments of positions pos_i and pos_j differ",
        "u, v and b are added to the query before the dot products (the grouped form)",
    )
    differences = (
        "Transformer-XL (PyTorch): masked scores -inf, so a fully masked row is NaN; clamp "
        "from above; R rows ordered klen-1 ... 0 and realigned by a zero-padded rel-shift.",
        "XLNet (TF and Hugging Face): symmetric clamp; masked scores minus 1e30 (65500 for "
        "float16 masks in Hugging Face), so a fully masked row is uniform; R rows start at "
        "position klen (never read); memory positions get segment 0.",
        "Hugging Face XLNet builds positions and frequencies in float32; the TF original casts "
        "them to bfloat16 with use_bfloat16 (distances above 256 rounded).",
        "labml-nn: learned per-head position table instead of W_R R(D), scalar d-term.",
    )

    free_dims = MappingProxyType({"d_model": (2, 4, 6, 8, 12, 16)})
    optional_groups = (_SEGMENT_TERM,)
    causal_options = MappingProxyType({"attn_type": "uni"})
    metamorphic = ("translation", "masked_keys", "batch", "memory_rows", "wide_range")
    axes = _AXES
    profiles = _PROFILES

    def option_values(self, dims: Mapping[str, int]) -> dict[str, list[Any]]:
        klen = dims["qlen"] + dims["mlen"]
        return {
            "d_model": [None],
            "attn_type": ["bi", "uni"],
            # and, for long ranges, a clamp well inside them
            "clamp_len": [None, 0, 1, 2, 3, 5, klen + 1, *([klen // 3] if klen > 48 else [])],
            "clamp_style": ["upper", "symmetric"],
            "scale": [None, 0.5, 1.0, 0.125],
        }

    def widen(
        self, args: Mapping[str, Any], extra: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        qlen, klen = args["q"].shape[2], args["k"].shape[2]
        return dict(args, clamp_len=max(klen - 1, qlen - 1) + extra)

    def derived_dims(self, options: Mapping[str, Any]) -> dict[str, int]:
        return {} if options["d_model"] is None else {"d_model": options["d_model"]}

    def dim_note(self, dim: str, options: Mapping[str, Any]) -> str | None:
        if dim == "d_model" and options["d_model"] is not None:
            return f"d_model={options['d_model']} as given"
        return None

    def check(self, problem: Problem) -> None:
        width = problem.dims["d_model"]
        if width % 2:
            raise ArgumentError(
                "w_r",
                f"w_r.shape={tuple(problem.tensors['w_r'].shape)}",
                "must have an even d_model (last dimension): R(D) is [sin | cos]",
            )
        present = [n for n in _SEGMENT_TERM if problem.tensors.get(n) is not None]
        if present and len(present) != len(_SEGMENT_TERM):
            missing = next(n for n in _SEGMENT_TERM if n not in present)
            raise ArgumentError(
                missing,
                "None",
                f"is required when {', '.join(present)} is given: the segment term needs "
                "r_s_bias, seg_embed and seg_ids",
            )

    def default_scale(self, problem: Problem) -> sp.Expr:
        return 1 / sp.sqrt(problem.dims["d_head"])

    def formulas(self) -> dict[str, sp.Basic]:
        D = sp.Symbol("D_ij")
        f_k = sp.Symbol("f_k")
        return {
            **cv.position_formulas(),
            "distance": sp.Eq(D, DISTANCE_OF_POSITIONS, evaluate=False),
            "clamp (upper)": sp.Eq(sp.Symbol("D'_ij"), sp.Min(D, clamp_len), evaluate=False),
            "clamp (symmetric)": sp.Eq(
                sp.Symbol("D'_ij"), sp.Max(sp.Min(D, clamp_len), -clamp_len), evaluate=False
            ),
            "frequencies": sp.Eq(f_k, FREQUENCY, evaluate=False),
            "sinusoid (sin half)": sp.Eq(sp.Indexed("R", _D, _k), sp.sin(_D * f_k), evaluate=False),
            "sinusoid (cos half)": sp.Eq(
                sp.Indexed("R", _D, d_model / 2 + _k), sp.cos(_D * f_k), evaluate=False
            ),
            "relative key": sp.Eq(r_D, PROJECTION, evaluate=False),
            "logit": sp.Eq(sp.Symbol("e_ij"), LOGIT, evaluate=False),
            "logit (segment term)": sp.Eq(sp.Symbol("e_ij"), LOGIT_SEGMENT, evaluate=False),
            "segment index": sp.Eq(
                sp.Symbol("s_ij"),
                1 - sp.KroneckerDelta(sp.Symbol("seg(pos_i)"), sp.Symbol("seg(pos_j)")),
                evaluate=False,
            ),
            "four terms": sp.Eq(sp.Symbol("e_ij"), FOUR_TERMS, evaluate=False),
            "uni mask": sp.Eq(sp.Symbol("visible_ij"), CAUSAL, evaluate=False),
            "pair value": sp.Eq(sp.Symbol("V_ij"), v_j, evaluate=False),
            **cv.attention_formulas("V"),
        }

    def distance_index(self, problem: Problem) -> np.ndarray:
        """D'_ij for every (b, i, j), exact integers: (B, qlen, klen), B in {1, bsz}."""
        o = problem.options
        style = None if o["clamp_len"] is None else o["clamp_style"]
        return _CLAMPED[style].grid(*cv.positions(problem), o["clamp_len"] or 0)

    def table_index(self, problem: Problem) -> tuple[str, np.ndarray]:
        return "clamped distance D'_ij", self.distance_index(problem)

    def structural_mask(self, problem: Problem) -> np.ndarray | None:
        if problem.options["attn_type"] == "bi":
            return None
        return _CAUSAL.grid(*cv.positions(problem)).astype(bool)

    def regions(self, problem: Problem) -> frozenset[str]:
        o = problem.options
        if o["clamp_len"] is None:
            return frozenset({"no clamp"})
        distance = np.unique(cv.query_minus_key(problem))  # pos_i - pos_j
        reach = distance if o["clamp_style"] == "upper" else np.abs(distance)
        found = {"clamped"} if (reach > o["clamp_len"]).any() else set()
        inside = {"inside the clamp"} if (reach <= o["clamp_len"]).any() else set()
        return frozenset(found | inside)

    def relative_table(
        self, problem: Problem, w_r: np.ndarray, distances: np.ndarray, mode: Mode
    ) -> tuple[np.ndarray, Any]:
        """r = W_R R(D) per head for each distance, (n_head, n_dist, d_head), and in ball
        mode the pullback of its gradient to W_R (dW_R[h] = dr[h]^T R)."""
        d = problem.dims
        if mode == "ball":
            from relpos.spec._balls import matrix, table

            R = matrix(sinusoid_balls(distances, d["d_model"]))
            rel = np.stack([table(_BALL_PROJECTION(R, matrix(w))) for w in w_r])

            def pullback(g: np.ndarray) -> dict[str, np.ndarray]:
                return {"w_r": np.stack([table(matrix(gh).transpose() * R) for gh in g[0]])}

            return rel, pullback
        if mode in FLOAT_MODES:
            R = sinusoid_float(distances, d["d_model"], mode)
        else:
            width = d["d_model"]
            R = array(
                [[constant(e, mode) for e in sinusoid(int(D), width, mode)] for D in distances],
                mode,
            )  # (n_dist, d_model)
        projected = _PROJECTION(
            {"d_head": d["d_head"], "d_model": d["d_model"]},
            np.moveaxis(R, -1, 0)[None, :, None, :],  # R_D: (1, dm, 1, n)
            np.moveaxis(w_r, 0, -1)[..., None],  # W_R: (dh, dm, H, 1)
        )
        rel = np.stack(
            [np.broadcast_to(e, (d["n_head"], len(distances))) for e in projected], axis=-1
        )
        return rel, None

    def logit_operands(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> tuple[PairFormula, tuple[Any, ...]]:
        d = problem.dims
        # The sinusoid once per distinct clamped distance, projected per head.
        distances = self.distance_index(problem)
        unique, where = np.unique(distances, return_inverse=True)
        rel, to_w_r = self.relative_table(problem, x["w_r"], unique, mode)
        operands = (
            scale,
            queries(x["q"], d["klen"], "q"),
            keys(x["k"], d["qlen"], "k"),
            Rows.per_head_row(x["r_w_bias"], "r_w_bias"),
            Rows.per_head_row(x["r_r_bias"], "r_r_bias"),
            Rows(rel[None], where.reshape(distances.shape)[:, None], to_w_r),
        )
        if x.get("seg_ids") is None:
            return _LOGIT, operands
        seg = np.asarray(x["seg_ids"])
        differs = (seg[:, d["mlen"] :, None] != seg[:, None, :]).astype(np.int64)  # (B, Q, K)
        segments = Rows(
            np.moveaxis(x["seg_embed"], 0, 1)[None],  # (1, H, 2, dh): row 0 same, 1 differs
            differs[:, None],
            lambda g: {"seg_embed": np.moveaxis(g[0], 1, 0)},
        )
        return _LOGIT_SEGMENT, (
            *operands,
            Rows.per_head_row(x["r_s_bias"], "r_s_bias"),
            segments,
        )

    def identities(self) -> list[Identity]:
        return _identities()

    def own_cases(self) -> list[Case]:
        base = {"bsz": 1, "n_head": 2, "qlen": 4, "mlen": 0, "d_head": 4, "d_model": 8}
        seg = ("r_s_bias", "seg_embed", "seg_ids")

        def case(name: str, seed: int, **kw: Any) -> Case:
            dims = {**base, **kw.pop("dims", {})}
            return Case(name, dims, kw.pop("options", {}), seed=seed, **kw)

        return [
            case("bi", 101),
            case("bi_memory", 102, dims={"qlen": 3, "mlen": 3}),
            case("uni", 103, options={"attn_type": "uni"}),
            case("uni_memory", 104, options={"attn_type": "uni"}, dims={"qlen": 3, "mlen": 2}),
            case(
                "single_query_memory",
                105,
                options={"attn_type": "uni"},
                dims={"qlen": 1, "mlen": 6},
            ),
            case("clamp_upper", 106, options={"clamp_len": 2}, dims={"qlen": 5}),
            case(
                "clamp_symmetric",
                107,
                options={"clamp_len": 2, "clamp_style": "symmetric"},
                dims={"qlen": 5},
            ),
            case(
                "clamp_symmetric_uni_memory",
                108,
                options={"clamp_len": 1, "clamp_style": "symmetric", "attn_type": "uni"},
                dims={"qlen": 3, "mlen": 3},
            ),
            case("clamp_zero", 109, options={"clamp_len": 0}),
            case(
                "clamp_wider_than_sequence",
                110,
                options={"clamp_len": 20, "clamp_style": "symmetric"},
            ),
            case("segments", 111, include=seg, dims={"bsz": 2}),
            case(
                "segments_memory_uni",
                112,
                include=seg,
                options={"attn_type": "uni"},
                dims={"qlen": 3, "mlen": 2},
            ),
            case("mask_causal_bi", 113, mask="causal", dims={"mlen": 2}),
            case("mask_padding", 114, mask="padding", dims={"bsz": 3}),
            case("mask_random", 115, mask="random", dims={"bsz": 2}),
            case("mask_fully_masked_row", 116, mask="fully_masked_row"),
            case("mask_broadcast", 117, mask="broadcast", dims={"n_head": 3}),
            case("custom_scale", 118, options={"scale": 0.25}),
            case("d_model_2", 119, dims={"d_model": 2}),
            case("d_model_not_heads_times_d_head", 120, dims={"d_model": 6, "n_head": 3}),
            case(
                "batch_and_heads",
                121,
                options={"attn_type": "uni"},
                dims={"bsz": 2, "n_head": 3, "qlen": 5, "mlen": 2},
            ),
            case("d_model_explicit", 122, options={"d_model": 8}),
        ]


# -- identities ------------------------------------------------------------------------------


def _rel_shift_xlnet(qlen: int, klen: int, rlen: int) -> np.ndarray:
    """Cell ids (i * rlen + c) read by XLNet's rel-shift: no padding, reshape to
    (rlen, qlen), drop the first row, reshape to (qlen, rlen - 1), keep klen columns."""
    ids = np.arange(qlen * rlen).reshape(qlen, rlen)
    return ids.reshape(rlen, qlen)[1:].reshape(qlen, rlen - 1)[:, :klen]


def _rel_shift_txl(qlen: int, klen: int) -> np.ndarray:
    """Cell ids read by Transformer-XL's rel-shift: a zero column (id -1) on the left,
    reshape to (klen + 1, qlen), drop the first row, reshape to (qlen, klen)."""
    ids = np.arange(qlen * klen).reshape(qlen, klen)
    padded = np.concatenate([np.full((qlen, 1), -1), ids], axis=1)
    return padded.reshape(klen + 1, qlen)[1:].reshape(qlen, klen)


def _shift_mismatches(ids: np.ndarray, rlen: int, positions: list[int], mlen: int) -> set:
    """Cells (i, j) where the shifted matrix does not hold r(D_ij) of row i."""
    bad = set()
    qlen, klen = ids.shape
    for a in range(qlen):
        for col in range(klen):
            cell = int(ids[a, col])
            row, c = divmod(cell, rlen) if cell >= 0 else (-1, -1)
            if row != a or positions[c] != mlen + a - col:
                bad.add((a, col))
    return bad


def _identities() -> list[Identity]:
    from relpos.spec._proofs import MAX_SIZE, exhaustive, sizes, symbolic_zero

    def causal_cells(qlen: int, mlen: int) -> set:
        return {(a, col) for a in range(qlen) for col in range(qlen + mlen) if col > mlen + a}

    def xlnet_shift(qlen: int, mlen: int, attn_type: str) -> str | None:
        klen = qlen + mlen
        rlen = klen + qlen if attn_type == "bi" else klen + 1
        positions = list(range(klen, klen - rlen, -1))
        bad = _shift_mismatches(_rel_shift_xlnet(qlen, klen, rlen), rlen, positions, mlen)
        expected = set() if attn_type == "bi" else causal_cells(qlen, mlen)
        return (
            None
            if bad == expected
            else (f"differs at {sorted(bad)}, expected exactly {sorted(expected)}")
        )

    def txl_shift(qlen: int, mlen: int) -> str | None:
        klen = qlen + mlen
        positions = list(range(klen - 1, -1, -1))
        bad = _shift_mismatches(_rel_shift_txl(qlen, klen), klen, positions, mlen)
        masked = causal_cells(qlen, mlen)
        return (
            None
            if bad == masked
            else (f"differs at {sorted(bad)}, the uni-masked cells are {sorted(masked)}")
        )

    def wide_clamp(qlen: int, mlen: int, c: int, style: str) -> str | None:
        clamped = _CLAMPED[style].layout(qlen, qlen + mlen, c)
        plain = _CLAMPED[None].layout(qlen, qlen + mlen, 0)
        same = bool((clamped == plain).all())
        wide = c >= (plain.max() if style == "upper" else np.abs(plain).max())
        return None if same == wide else f"unchanged={same} but covers every distance={wide}"

    def shifts() -> tuple[bool, str, str]:
        results = [
            exhaustive(
                ((q, m, t) for q, m in sizes() for t in ("bi", "uni")),
                xlnet_shift,
                "XLNet rel-shift reads r(D_ij) at every cell (bi: all cells; uni: all "
                "but j > mlen + i)",
            ),
            exhaustive(
                sizes(),
                txl_shift,
                "Transformer-XL rel-shift reads r(D_ij) exactly at the cells "
                "j <= mlen + i and something else exactly at the uni-masked cells",
            ),
        ]
        return all(r[0] for r in results), "exhaustive", "; ".join(r[2] for r in results)

    # The seed form: model-space inputs x, the sinusoid R, shared W_K.
    x_i = sp.MatrixSymbol("x_i", 1, d_model)
    x_j = sp.MatrixSymbol("x_j", 1, d_model)
    W_Q = sp.MatrixSymbol("W_Q", d_model, cv.d_head)
    W_K = sp.MatrixSymbol("W_K", d_model, cv.d_head)
    u_m = sp.MatrixSymbol("u_m", 1, d_model)
    v_m = sp.MatrixSymbol("v_m", 1, d_model)
    seed = (
        x_i * W_Q * W_K.T * x_j.T
        + x_i * W_Q * W_K.T * R_D.T
        + u_m * W_Q * W_K.T * x_j.T
        + v_m * W_Q * W_K.T * R_D.T
    )
    grouped = (q_i + u) * k_j.T + (q_i + v) * r_D.T
    special = grouped.xreplace(
        {q_i: x_i * W_Q, k_j: x_j * W_K, r_D: R_D * W_K, u: u_m * W_Q, v: v_m * W_Q}
    )
    t = sp.Symbol("t", integer=True)

    return [
        Identity(
            "(a) four terms = grouped form",
            "scale[q.k + q.r + u.k + v.r] = scale[(q + u).k + (q + v).r]",
            lambda: symbolic_zero(FOUR_TERMS - LOGIT, "four-term minus grouped"),
        ),
        Identity(
            "(b) seed form",
            "x_i W_Q W_K^T x_j^T + x_i W_Q W_K^T R^T + u W_Q W_K^T x_j^T + v W_Q W_K^T R^T is "
            "the grouped form with W_KR = W_K (w_r = W_K^T), u' = u W_Q, v' = v W_Q",
            lambda: symbolic_zero(special - seed, "grouped(special case) minus seed"),
        ),
        Identity(
            "(c) rel-shifts",
            "the XLNet rel-shift (no padding, drop the first row, keep klen columns) and the "
            "Transformer-XL rel-shift (left zero pad) place r(D_ij) at every cell they must; "
            "the cells that differ are exactly the uni-masked ones",
            shifts,
        ),
        Identity(
            "(d) wide clamp = unclamped",
            "D'_ij = D_ij for every pair exactly when clamp_len covers every distance "
            "(upper: max D; symmetric: max |D|)",
            lambda: exhaustive(
                (
                    (q, m, c, s)
                    for q, m in sizes()
                    for c in range(2 * MAX_SIZE + 1)
                    for s in ("upper", "symmetric")
                ),
                wide_clamp,
                f"qlen, mlen <= {MAX_SIZE}, clamp_len <= {2 * MAX_SIZE}",
            ),
        ),
        Identity(
            "(f) translation invariance",
            "the score depends on positions only through D = pos_i - pos_j: shifting both "
            "positions by t leaves D (hence R(D)) unchanged",
            lambda: symbolic_zero(
                DISTANCE_OF_POSITIONS.subs({_P_i: _P_i + t, _P_j: _P_j + t}, simultaneous=True)
                - DISTANCE_OF_POSITIONS,
                "D(pos_i + t, pos_j + t) - D(pos_i, pos_j)",
            ),
        ),
    ]
