"""RoPE (Su et al. 2021): rotary position embedding.

Formula (per batch element and head)::

    theta_t = base^(-2t / r),  t = 0 .. r/2 - 1                 (r = rotary_dim)
    R(p)    = rotation by p theta_t of each pair (x_2t, x_2t+1); dimensions >= r unchanged
    e_ij    = scale * (R(pos_i) q_i) . (R(pos_j) k_j)
    o_i     = sum_j alpha_ij v_j

Each pair rotates as [x'_2t, x'_2t+1] = [[c, s'], [s, c]] [x_2t, x_2t+1] with c = cos(p theta_t),
s = sin(p theta_t), s' = -s. Because rotations compose, the score depends on the positions only
through pos_j - pos_i (identity "relative"): RoPE is relative although it rotates q and k by
their absolute positions.

Symbols: ``base`` (default 10000), ``rotary_dim`` r (None = every complete pair of d_head, the
largest even number <= d_head; a smaller even r rotates the first r dimensions only: the
partial rotary of GPT-NeoX and GPT-J); ``scale`` multiplies the whole logit, default
1/sqrt(d_head). Values are not rotated.

Conventions: the spec rotates interleaved pairs (2t, 2t+1), as the paper writes it. GPT-NeoX and
Hugging Face Llama-style code rotates the pairs (t, t + r/2) ("rotate_half"): the same
attention on q and k whose first r features are permuted (axis ``layout``).

Citation: Su, Lu, Pan, Murtadha, Wen, Liu (2021), RoFormer: Enhanced Transformer with Rotary
Position Embedding, arXiv:2104.09864.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Final, final

import mpmath
import numpy as np
import sympy as sp

from relpos.spec import _conventions as cv
from relpos.spec._arith import FLOAT_MODES, Mode, array, constant
from relpos.spec._encoding import Case, Encoding, Identity, Reference
from relpos.spec._pairs import PairFormula, keys, queries, size_symbol
from relpos.spec._profiles import Axis, Profile, Value, fixed
from relpos.spec._signature import ArgumentError, Option, Problem, check_int

__all__ = ["LENGTH_DEPENDENT", "RoPE", "rotation_dim", "scaling_parameters", "sequence_lengths"]

_P_i, _P_j = sp.symbols("pos_i pos_j", integer=True)
_t, _p = sp.symbols("t p", integer=True, nonnegative=True)
_base = sp.Symbol("base", positive=True)
_r = size_symbol("r")

q_i = sp.MatrixSymbol("qt_i", 1, cv.d_head)
k_j = sp.MatrixSymbol("kt_j", 1, cv.d_head)
pair = sp.MatrixSymbol("x", 2, 1)
c, s, s_neg = sp.symbols("c s s'")

#: theta_t, and the rotation of one pair by angle p theta_t (s' = -s: a constant of its own,
#: so magnitudes see |sin|).
THETA: Final = _base ** (-2 * _t / _r)
ROTATION: Final = sp.Matrix([[c, s_neg], [s, c]])
ROTATE: Final = ROTATION * pair
#: The logit of rotated rows.
LOGIT: Final = cv.scale * q_i * k_j.T

_ROTATE = PairFormula(ROTATE, (c, s, s_neg, pair), vector=True)
_ROTATE_T = PairFormula(ROTATION.T * pair, (c, s, s_neg, pair), vector=True)
_LOGIT = PairFormula(LOGIT, (cv.scale, q_i, k_j))


def rotation_dim(d_head: int, rotary_dim: int | None) -> int:
    """r: rotary_dim, or every complete pair of d_head."""
    return d_head - d_head % 2 if rotary_dim is None else rotary_dim


def _check_base(value: Any) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return None if ok and math.isfinite(value) and value > 1 else "must be a finite number > 1"


def _check_rotary_dim(value: Any) -> str | None:
    if value is None:
        return None
    problem = check_int(value, minimum=0)
    if problem is None and value % 2 == 0:
        return None
    return "must be None (every complete pair) or an even integer >= 0"


#: The scaling variants whose frequencies depend on the sequence length L_b (a grown base,
#: short or long factors): a call of another length or with shifted positions differs.
LENGTH_DEPENDENT: Final = ("dynamic", "longrope")

#: |ln theta_t| up to which the tolerance model's phase constant covers the rounded exponent of
#: base^(-2t/r) (bases up to e^20); a smaller theta_t (a base grown by dynamic scaling)
#: widens the spread of its angles by |ln theta_t| / _LN_COVERED.
_LN_COVERED: Final = 20


def _check_scaling(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping) and isinstance(value.get("rope_type"), str):
        return None
    return (
        "must be None or a mapping {'rope_type': name, parameter: value, ...} of a scaling "
        "variant (relpos spec show rope)"
    )


def scaling_parameters(scaling: Mapping[str, Any] | None, d_head: int) -> tuple[str, dict]:
    """(rope_type, its parameters) of a ``scaling`` option: None is ``default``, and
    ``proportional``'s head_dim defaults to the head's width d_head."""
    if scaling is None:
        return "default", {}
    params = {name: value for name, value in scaling.items() if name != "rope_type"}
    if scaling["rope_type"] == "proportional":
        params.setdefault("head_dim", d_head)
    return scaling["rope_type"], params


def sequence_lengths(problem: Problem) -> np.ndarray:
    """L_b = 1 + the largest position, query or key, of each batch row: (B,) int64, B in
    {1, bsz}. The current sequence length of the scaling variants that depend on it."""
    q_pos, k_pos = cv.positions(problem)
    rows = max(q_pos.shape[0], k_pos.shape[0])
    top = [np.broadcast_to(p.max(axis=1, initial=0), (rows,)) for p in (q_pos, k_pos)]
    return np.maximum(*top) + 1


@functools.lru_cache(maxsize=256)
def _scaled(key: str, r: int, base: Any, d_head: int, seq_len: int | None) -> Any:
    from relpos.spec.rope_scaling import frequencies

    rope_type, params = _SCALINGS[key]
    return frequencies(rope_type, rotary_dim=r, base=base, seq_len=seq_len, **params)


_SCALINGS: dict[str, tuple[str, dict]] = {}


def _exact_tables(problem: Problem, r: int, seq_len: int | None) -> tuple[list[sp.Expr], sp.Expr]:
    """theta'_0 .. theta'_{r/2-1} and the attention factor m, exactly: base^(-2t/r) and 1
    without scaling, the variant's (:func:`relpos.spec.rope_scaling.frequencies`) with it;
    ``seq_len`` is L_b for the variants that depend on it."""
    base = problem.options["base"]
    scaling = problem.options.get("scaling")
    if scaling is None:
        exact_base = sp.Rational(Fraction(base)) if isinstance(base, float) else sp.Integer(base)
        return [THETA.subs({_base: exact_base, _t: t, _r: r}) for t in range(r // 2)], sp.Integer(1)
    rope_type, params = scaling_parameters(scaling, problem.dims["d_head"])
    key = repr((rope_type, sorted(params.items())))
    _SCALINGS.setdefault(key, (rope_type, params))
    length = seq_len if rope_type in LENGTH_DEPENDENT else None
    found = _scaled(key, r, base, problem.dims["d_head"], length)
    return list(found.inverse), found.attention_factor


def _spread_weights(thetas: list[Any]) -> list[Any]:
    """max(1, |ln theta_t| / _LN_COVERED) per pair (see _LN_COVERED)."""
    return [max(1, abs(mpmath.log(th)) / _LN_COVERED) for th in thetas]


def _mp_rotations(
    positions: np.ndarray, problem: Problem, r: int, mode: Mode, spread: bool, seq_len: Any
) -> tuple[np.ndarray, ...]:
    """m cos, m sin and -m sin of p theta'_t at the working precision (mpmath), per position
    and pair. In abs mode each is m (|value| + w_t |p theta'_t|) (m |value| without
    ``spread``): rounding the angle by one ulp moves it that far."""
    exact, factor = _exact_tables(problem, r, seq_len)
    digits = mpmath.mp.dps + 10
    if problem.options.get("scaling") is None:
        base = problem.options["base"]
        b = mpmath.mpf(base) if isinstance(base, int) else mpmath.mpf(float(base))
        thetas = [b ** (-mpmath.mpf(2 * t) / r) for t in range(r // 2)]
    else:
        thetas = [mpmath.mpf(sp.N(th, digits)) for th in exact]
    m = mpmath.mpf(sp.N(factor, digits))
    weights = _spread_weights(thetas)
    abs_mode = mode in ("abs", "abs_float")

    def const(value: Any, angle: Any, w: Any) -> Any:
        v = m * (abs(value) + (w * abs(angle) if spread else 0)) if abs_mode else m * value
        return constant(v, mode)

    rows = [[(int(p) * th, w) for th, w in zip(thetas, weights, strict=True)] for p in positions]
    return tuple(
        array([[const(f(a), a, w) for a, w in row] for row in rows], mode)
        for f in (mpmath.cos, mpmath.sin, lambda a: -mpmath.sin(a))
    )


def _float_rotations(
    positions: np.ndarray, problem: Problem, r: int, mode: Mode, spread: bool, seq_len: Any
) -> tuple[np.ndarray, ...]:
    """m cos, m sin and -m sin of p theta'_t in float64, over the whole grid (the float
    modes' magnitudes; ``abs_float`` takes absolute values and, with ``spread``, adds
    w_t |p theta'_t| to each, as the exact abs mode does)."""
    exact, factor = _exact_tables(problem, r, seq_len)
    thetas = np.array([float(sp.N(th, 30)) for th in exact])
    m = float(sp.N(factor, 30))
    weights = np.maximum(1.0, np.abs(np.log(thetas)) / _LN_COVERED)
    angles = np.asarray(positions, dtype=np.float64)[:, None] * thetas[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    if mode == "abs_float":
        grown = weights * np.abs(angles) if spread else 0.0
        return m * (np.abs(cos) + grown), m * (np.abs(sin) + grown), m * (np.abs(sin) + grown)
    return m * cos, m * sin, -m * sin


def _ball_rotations(
    positions: np.ndarray, problem: Problem, r: int, seq_len: Any
) -> tuple[np.ndarray, ...]:
    """m cos, m sin and -m sin of p theta'_t per position and pair, as certified balls:
    theta'_t and m exactly (a float base or parameter is a dyadic rational)."""
    from relpos.spec._balls import ELEMENTWISE, number

    exact, factor = _exact_tables(problem, r, seq_len)
    thetas = [number(th) for th in exact]
    at = np.array([number(int(p)) for p in positions], dtype=object)
    angles = at[:, None] * np.array(thetas, dtype=object)[None, :]
    cos, sin = ELEMENTWISE["cos"](angles), ELEMENTWISE["sin"](angles)
    if factor != 1:
        m = number(factor)
        cos, sin = cos * m, sin * m
    return cos, sin, -sin


# -- conventions ---------------------------------------------------------------------------


def _half_order(r: int) -> np.ndarray:
    """Feature order that turns half-split pairs (t, t + r/2) into interleaved (2t, 2t+1):
    spec feature 2t is the library's t, spec feature 2t + 1 the library's t + r/2."""
    order = np.empty(r, dtype=np.int64)
    order[0::2], order[1::2] = np.arange(r // 2), np.arange(r // 2) + r // 2
    return order


def _permute(args: Mapping[str, Any], inverse: bool) -> dict[str, Any]:
    r = rotation_dim(args["q"].shape[-1], args.get("rotary_dim"))
    order = _half_order(r)
    if inverse:
        order = np.argsort(order)
    out = dict(args)
    for name in ("q", "k"):
        x = np.array(args[name], copy=True)
        x[..., :r] = np.asarray(args[name])[..., order]
        out[name] = x
    return out


def _partial(dims: Mapping[str, int], candidates: list[Any]) -> list[Any]:
    # a quarter of the head (GPT-NeoX's rotary_pct 0.25), at least one pair when possible
    quarter = (dims["d_head"] // 4) // 2 * 2
    return [quarter if quarter else dims["d_head"] - dims["d_head"] % 2]


def _scaling_candidates(dims: Mapping[str, int]) -> list[dict[str, Any]]:
    """Scaling variants for a problem of these dimensions: each rope_type with parameters of
    shipped configurations, and the length-dependent ones with an original length L0 just
    below, at and well below the problem's length klen, so that draws reach both sides of
    L0 (and the offsets of 2^16 to 2^17, far past it)."""
    klen = dims["qlen"] + dims["mlen"]
    below, half = max(2, klen - 1), max(2, klen // 2)
    d = dims["d_head"]
    widths = sorted({r for r in (d - d % 2, 2, 4) if 2 <= r <= d})
    longrope = []
    for r in widths:  # one factor per rotated pair: a list for each width a draw may take
        pairs = r // 2
        short = [1 + t / (2 * pairs) for t in range(pairs)]
        long = [1 + 3 * t / max(1, pairs - 1) for t in range(pairs)]
        longrope.append(
            {
                "rope_type": "longrope",
                "original_max_position_embeddings": below,  # past L0 at klen
                "short_factor": short,
                "long_factor": long,
                "factor": 4.0,
            }
        )
    return [
        {"rope_type": "default"},
        {"rope_type": "linear", "factor": 4.0},
        {"rope_type": "dynamic", "factor": 2.0, "original_max_position_embeddings": half},
        {"rope_type": "dynamic", "factor": 8.0, "original_max_position_embeddings": klen},
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096},
        {
            "rope_type": "yarn",
            "factor": 40.0,
            "original_max_position_embeddings": 4096,
            "beta_fast": 32,
            "beta_slow": 1,
            "mscale": 1.0,
            "mscale_all_dim": 0.707,
        },
        {
            "rope_type": "yarn",
            "factor": 8.0,
            "original_max_position_embeddings": 2048,
            "truncate": False,
            "attention_factor": 1.25,
        },
        *longrope,
        # within L0 at the default positions, past it at larger position ids
        *(
            {**choice, "original_max_position_embeddings": klen, "attention_factor": 1.5}
            for choice in longrope
        ),
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "original_max_position_embeddings": 2048,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
        },
        {"rope_type": "proportional", "factor": 2.0},
    ]


def _accepts(scaling: Mapping[str, Any], r: int, chosen: Mapping[str, Any], d_head: int) -> bool:
    """Whether the spec's checks accept ``scaling`` at rotary width r."""
    from relpos.spec.rope_scaling import checked

    if r < 2:
        return False
    rope_type, params = scaling_parameters(scaling, d_head)
    try:
        checked(rope_type, rotary_dim=r, base=chosen.get("base", 10000), **params)
    except ArgumentError:
        return False
    return True


_AXES = (
    Axis(
        "layout",
        "which features form the rotated pairs",
        (
            Value("interleaved", "pairs (2t, 2t + 1) (the paper, RoFormer, GPT-J)"),
            Value(
                "half",
                "pairs (t, t + r/2) (GPT-NeoX, Hugging Face Llama 'rotate_half'): q and k "
                "with their first r features permuted",
                lambda a: _permute(a, inverse=False),
                lambda a: _permute(a, inverse=True),
                changes=("q", "k"),
                permutes=True,
            ),
        ),
    ),
)

_DEFAULTS = {"base": fixed(10000), "scale": fixed(None), "scaling": fixed(None)}


def _two_or_more(dims: Mapping[str, int], candidates: list[Any]) -> list[Any]:
    # rotary-embedding-torch divides by dim - 2 at construction (theta_rescale_factor)
    kept = [r for r in candidates if r is None or r >= 4]
    return kept if dims["d_head"] >= 4 else []


def _whole_head_scalings(dims: Mapping[str, int], candidates: list[Any]) -> list[Any]:
    # Llama-style code rotates the whole head; a partial-frequency rotary is another module
    return [c for c in candidates if c is None or c["rope_type"] != "proportional"]


_PROFILES = (
    Profile(
        "roformer",
        "rope",
        "RoFormer (Su et al. 2021), interleaved pairs",
        "arXiv:2104.09864; transformers models/roformer",
        {"masked_rows": "uniform"},
        options={**_DEFAULTS, "rotary_dim": fixed(None)},
        notes=(
            "additive finfo.min mask: fully masked rows are uniform",
            "no position ids: the sinusoid is built for positions past_key_values_length .. "
            "past_key_values_length + qlen - 1, so only the default layout exists",
        ),
    ),
    Profile(
        "llama",
        "rope",
        "Hugging Face Llama-style rotary embedding (rotate_half)",
        "transformers models/llama/modeling_llama.py (apply_rotary_pos_emb)",
        {"layout": "half", "masked_rows": "uniform"},
        options={**_DEFAULTS, "rotary_dim": fixed(None)},
        multiple_of={"d_head": 2},
        positions=True,
        notes=(
            "inverse frequencies and angles in float32 (a float64 model is off by float32 "
            "rounding); base is the config's rope_theta",
            "the whole head rotates: rotate_half splits head_dim in two halves, so it is even",
            "position ids are the model's position_ids; memory is a KV cache, so the queries "
            "are the newest keys (q_pos = k_pos[:, mlen:])",
        ),
    ),
    Profile(
        "hf-llama-scaled",
        "rope",
        "Hugging Face Llama-style rotary embedding with a scaling variant (rope_parameters)",
        "transformers models/llama/modeling_llama.py (LlamaRotaryEmbedding, "
        "dynamic_rope_update); modeling_rope_utils (ROPE_INIT_FUNCTIONS)",
        {"layout": "half", "masked_rows": "uniform"},
        options={
            "base": fixed(10000),
            "scale": fixed(None),
            "rotary_dim": fixed(None),
            "scaling": _whole_head_scalings,
        },
        multiple_of={"d_head": 2},
        positions=True,
        notes=(
            "scaling is the config's rope_parameters, rope_theta the base; dynamic's L0 is the "
            "config's max_position_embeddings",
            "proportional is left out: LlamaAttention rotates the whole head",
            "position ids and memory as profile llama (memory is a KV cache filled by an "
            "earlier call)",
        ),
    ),
    Profile(
        "gpt-neox",
        "rope",
        "GPT-NeoX partial rotary (rotary_pct 0.25, rotate_half)",
        "EleutherAI/gpt-neox; transformers models/gpt_neox",
        {"layout": "half", "masked_rows": "uniform"},
        options={**_DEFAULTS, "rotary_dim": _partial},
        positions=True,
        notes=(
            "only the first quarter of each head is rotated",
            "position ids are the model's position_ids",
        ),
    ),
    Profile(
        "rotary-embedding-torch",
        "rope",
        "rotary-embedding-torch (lucidrains) RotaryEmbedding, interleaved pairs",
        "PyPI rotary-embedding-torch, rotary_embedding_torch.py (RotaryEmbedding, "
        "rotate_queries_with_cached_keys)",
        {"masked_rows": "uniform"},
        options={"scale": fixed(None), "scaling": fixed(None), "rotary_dim": _two_or_more},
        notes=(
            "no position ids: positions are arange(klen), the queries the last qlen of them "
            "(rotate_queries_with_cached_keys)",
            "rotary_dim of at least 4: RotaryEmbedding(dim=2) divides by dim - 2 and raises "
            "ZeroDivisionError",
            "the attention around the rotation is the adapter's (float32 scores for the half "
            "types, additive finfo.min mask)",
        ),
    ),
    Profile(
        "gpt-j",
        "rope",
        "GPT-J partial rotary, interleaved pairs",
        "kingoflolz/mesh-transformer-jax; transformers models/gptj",
        {"masked_rows": "uniform"},
        options={**_DEFAULTS, "rotary_dim": _partial},
        positions=True,
        notes=(
            "rotary_dim of the head (64 of 256 in GPT-J 6B), interleaved pairs",
            "position ids are the model's position_ids",
        ),
    ),
)


@final
class RoPE(Encoding):
    """Rotary position embedding (see the module docstring)."""

    name = "rope"
    title = "RoPE (Su et al. 2021): rotary position embedding"
    summary = (
        "Queries and keys rotated pairwise by angles proportional to their absolute "
        "positions, so that their dot product depends only on the relative position."
    )
    references = (
        Reference(
            "Su, J., Lu, Y., Pan, S., Murtadha, A., Wen, B., Liu, Y.",
            "RoFormer: Enhanced Transformer with Rotary Position Embedding",
            2021,
            "2104.09864",
        ),
    )
    tensors = (cv.Q, cv.K, cv.V, cv.MASK, cv.Q_POS, cv.K_POS)
    # Below d_head 4 a draw rotates one pair at most, and no scaling that needs two (dynamic)
    # applies: draws start at 4, where rotary_dim still reaches every width from 0 (none) to
    # d_head, and odd heads their unrotated last feature; the golden cases hold the rest.
    draw_at_least = MappingProxyType({"d_head": 4})
    options = (
        Option("base", "theta_t = base^(-2t/r); a finite number > 1", 10000, _check_base),
        Option(
            "rotary_dim",
            "r, the leading dimensions rotated (even); None = every complete pair",
            None,
            _check_rotary_dim,
        ),
        Option(
            "scaling",
            "None, or a scaling variant {'rope_type': name, parameter: value, ...}: its "
            "inverse frequencies theta'_t replace theta_t and its attention factor m multiplies "
            "cos and sin; dynamic and longrope take the current length L_b = 1 + the row's "
            "largest position",
            None,
            _check_scaling,
        ),
        cv.SCALE,
    )
    glossary = (
        ("q_i, k_j", "query i and key j of one head"),
        ("qt_i, kt_j", "R(pos_i) q_i and R(pos_j) k_j, the rotated rows"),
        ("pos_i, pos_j", "absolute positions q_pos[b, i] and k_pos[b, j]; by default m + i and j"),
        ("r", "rotary_dim: features 0 .. r - 1 rotate in pairs (2t, 2t + 1)"),
        ("theta_t", "base^(-2t/r), the frequency of pair t"),
        ("c, s, s'", "cos(p theta_t), sin(p theta_t), -sin(p theta_t) at position p"),
        (
            "theta'_t, m",
            "with scaling: the variant's inverse frequency and attention factor "
            "(relpos.spec.rope_scaling); c, s, s' are m cos(p theta'_t), m sin, -m sin",
        ),
        ("L_b", "the sequence length of batch row b: 1 + its largest query or key position"),
        ("scale", "the scale argument, default 1/sqrt(d_head)"),
    )
    conventions = (
        "pairs are interleaved: features (2t, 2t + 1) rotate together (the paper)",
        "query i rotates by its absolute position pos_i, key j by pos_j (by default mlen + i and "
        "j); values do not rotate",
        "angles p theta_t come from integer positions (never a rounded position)",
        "features r .. d_head - 1 are not rotated (partial rotary)",
        "a scaling variant multiplies the rotated features by its attention factor m (the "
        "logit of two rotated pairs by m^2) and leaves features r .. d_head - 1 alone",
        "dynamic and longrope frequencies come from the row's own length L_b, for its queries "
        "and keys alike (memory keys included), whatever earlier calls saw",
    )
    differences = (
        "GPT-NeoX and Hugging Face Llama rotate the pairs (t, t + r/2) ('rotate_half'), "
        "profiles gpt-neox and llama; GPT-J and RoFormer interleave, profiles gpt-j and "
        "roformer.",
        "Hugging Face computes inverse frequencies and angles in float32, also in float64 "
        "models; GPT-NeoX rotates a quarter of each head (rotary_pct 0.25).",
    )

    metamorphic = ("translation", "masked_keys", "batch", "memory_rows")
    axes = _AXES
    profiles = _PROFILES

    def option_values(self, dims: Mapping[str, int]) -> dict[str, list[Any]]:
        d = dims["d_head"]
        partial = [r for r in (2, 4) if r < d - d % 2]
        return {
            "base": [10000, 10, 100, 500000, 2.5],
            "rotary_dim": [None, 0, *partial],
            "scaling": [None, *_scaling_candidates(dims)],
            "scale": [None, 0.5, 1.0, 0.125],
        }

    def narrow(
        self, name: str, dims: Mapping[str, int], chosen: Mapping[str, Any], candidates: list[Any]
    ) -> list[Any]:
        """A scaling goes with the rotary width drawn before it: none where no pair rotates,
        and only those its checks accept (longrope's lists of r/2 factors, dynamic's r >= 4)."""
        if name != "scaling" or "rotary_dim" not in chosen:
            return candidates
        r = rotation_dim(dims["d_head"], chosen["rotary_dim"])
        return [c for c in candidates if c is None or _accepts(c, r, chosen, dims["d_head"])]

    def option_kind(self, name: str, value: Any) -> Any:
        """A scaling's kind is its rope_type (None: plain RoPE): each variant is drawn as
        often as plain RoPE, whatever the number of its parameter sets."""
        if name != "scaling":
            return None
        return "none" if value is None else value["rope_type"]

    def length_free(self, name: str, value: Any) -> bool:
        if name != "scaling" or value is None:
            return True
        return value["rope_type"] not in LENGTH_DEPENDENT

    def check(self, problem: Problem) -> None:
        r, d = problem.options["rotary_dim"], problem.dims["d_head"]
        if r is not None and r > d:
            raise ArgumentError("rotary_dim", f"rotary_dim={r}", f"must not exceed d_head = {d}")
        scaling = problem.options["scaling"]
        if scaling is None:
            return
        from relpos.spec.rope_scaling import checked

        width = rotation_dim(d, r)
        if width < 2:
            raise ArgumentError(
                "scaling",
                f"scaling={dict(scaling)!r}",
                f"must be None when no pair rotates (rotary width {width})",
            )
        rope_type, params = scaling_parameters(scaling, d)
        checked(rope_type, rotary_dim=width, base=problem.options["base"], **params)

    def default_scale(self, problem: Problem) -> sp.Expr:
        return 1 / sp.sqrt(problem.dims["d_head"])

    def formulas(self) -> dict[str, sp.Basic]:
        return {
            "frequency": sp.Eq(sp.Symbol("theta_t"), THETA, evaluate=False),
            "rotation of pair t at position p": sp.Eq(
                sp.MatrixSymbol("x'", 2, 1), ROTATE, evaluate=False
            ),
            "angle": sp.Eq(
                sp.Tuple(c, s, s_neg),
                sp.Tuple(
                    sp.cos(_p * sp.Symbol("theta_t")),
                    sp.sin(_p * sp.Symbol("theta_t")),
                    -sp.sin(_p * sp.Symbol("theta_t")),
                ),
            ),
            **cv.position_formulas(),
            "logit": sp.Eq(sp.Symbol("e_ij"), LOGIT, evaluate=False),
            **cv.attention_formulas("v"),
        }

    def rotate(
        self,
        x: np.ndarray,
        positions: np.ndarray,
        problem: Problem,
        mode: Mode,
        transpose: bool = False,
        spread: bool = True,
    ) -> np.ndarray:
        """x (bsz, n_head, L, d_head) rotated at the given positions (B, L), B in {1, bsz},
        in ``mode`` (``transpose``: by the transposed rotation, which carries gradients back).
        In abs mode each c and s is m (|value| + w_t |p theta'_t|) (m |value| without
        ``spread``): rounding the angle by one ulp moves it that far. With ``scaling``,
        theta'_t and m are the variant's, at the row's sequence length L_b where they depend
        on it. Each distinct position's rotation is evaluated once per length."""
        r = rotation_dim(problem.dims["d_head"], problem.options["rotary_dim"])
        if r == 0:
            return x
        grid = np.asarray(positions, dtype=np.int64)
        rope_type, _ = scaling_parameters(problem.options.get("scaling"), problem.dims["d_head"])
        if rope_type not in LENGTH_DEPENDENT:
            return self._rotate_at(x, grid, problem, mode, transpose, spread, None)
        lengths = np.broadcast_to(sequence_lengths(problem), (x.shape[0],))
        if (lengths == lengths[0]).all():
            return self._rotate_at(x, grid, problem, mode, transpose, spread, int(lengths[0]))
        parts = []
        for length in np.unique(lengths):  # rows of one sequence length at a time
            rows = np.flatnonzero(lengths == length)
            at = grid[rows] if grid.shape[0] > 1 else grid
            part = self._rotate_at(x[rows], at, problem, mode, transpose, spread, int(length))
            parts.append((rows, part))
        out = np.empty(x.shape, dtype=parts[0][1].dtype)
        for rows, part in parts:
            out[rows] = part
        return out

    def _rotate_at(
        self,
        x: np.ndarray,
        grid: np.ndarray,
        problem: Problem,
        mode: Mode,
        transpose: bool,
        spread: bool,
        seq_len: int | None,
    ) -> np.ndarray:
        """:meth:`rotate` of rows that share one sequence length."""
        r = rotation_dim(problem.dims["d_head"], problem.options["rotary_dim"])
        positions, where = np.unique(grid, return_inverse=True)
        if mode == "ball":
            cos, sin, neg = _ball_rotations(positions, problem, r, seq_len)
        elif mode in FLOAT_MODES:
            cos, sin, neg = _float_rotations(positions, problem, r, mode, spread, seq_len)
        else:
            cos, sin, neg = _mp_rotations(positions, problem, r, mode, spread, seq_len)
        # (distinct, r/2) -> (B, 1, L, r/2): per batch row, shared by the heads
        cos, sin, neg = (t[where.reshape(grid.shape)][:, None] for t in (cos, sin, neg))
        pairs = np.stack([x[..., 0:r:2], x[..., 1:r:2]], axis=-1)  # (..., L, r/2, 2)
        formula = _ROTATE_T if transpose else _ROTATE
        rotated = formula({}, cos, sin, neg, np.moveaxis(pairs, -1, 0)[:, None])
        out = x.copy() if mode not in FLOAT_MODES else np.array(x, dtype=np.float64)
        out[..., 0:r:2], out[..., 1:r:2] = rotated[0], rotated[1]
        return out

    def regions(self, problem: Problem) -> frozenset[str]:
        d = problem.dims["d_head"]
        r = rotation_dim(d, problem.options["rotary_dim"])
        found = {"no rotation" if r == 0 else "full rotary" if r == d - d % 2 else "partial rotary"}
        rope_type, params = scaling_parameters(problem.options.get("scaling"), d)
        if rope_type in LENGTH_DEPENDENT:
            L0 = params["original_max_position_embeddings"]
            for length in sequence_lengths(problem):
                found.add(f"{rope_type} {'past' if length > L0 else 'within'} L0")
        elif rope_type != "default":
            found.add(f"{rope_type} scaling")
        return frozenset(found)

    def magnitude_operands(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> list[tuple[int, tuple[PairFormula, tuple[Any, ...]]]]:
        """First order in the angles' rounding: the logit on |q| and |k| rotated by |cos| and
        |sin|, plus what spreading the query's rotation by |p theta_t| adds, plus what
        spreading the key's adds. Spreading both at once would count (1 + |p theta|)
        (1 + |p' theta|), a bound that grows with the square of the position where the error
        grows with the position."""
        return [
            (1, self._operands(problem, x, scale, mode, (True, False))),
            (1, self._operands(problem, x, scale, mode, (False, True))),
            (-1, self._operands(problem, x, scale, mode, (False, False))),
        ]

    def phase_free_magnitude_operands(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> list[tuple[int, tuple[PairFormula, tuple[Any, ...]]]]:
        """|q| and |k| rotated by |cos| and |sin|, without the angles' spread."""
        return [(1, self._operands(problem, x, scale, mode, (False, False)))]

    def logit_operands(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> tuple[PairFormula, tuple[Any, ...]]:
        return self._operands(problem, x, scale, mode, (True, True))

    def _operands(
        self,
        problem: Problem,
        x: Mapping[str, Any],
        scale: Any,
        mode: Mode,
        spread: tuple[bool, bool],
    ) -> tuple[PairFormula, tuple[Any, ...]]:
        d = problem.dims
        at = dict(zip(("q", "k"), cv.positions(problem), strict=True))
        q, k = (
            self.rotate(x[name], at[name], problem, mode, spread=grown)
            for name, grown in zip(("q", "k"), spread, strict=True)
        )

        def back(name: str) -> Any:  # rotated rows carry gradients back by R^T
            return lambda g: {name: self.rotate(g, at[name], problem, mode, transpose=True)}

        return _LOGIT, (
            scale,
            dataclasses.replace(queries(q, d["klen"]), pullback=back("q")),
            dataclasses.replace(keys(k, d["qlen"]), pullback=back("k")),
        )

    def identities(self) -> list[Identity]:
        from relpos.spec.rope_scaling import identity_checks

        return _identities() + [Identity(*check) for check in identity_checks()]

    def variants(self) -> list[str]:
        from relpos.spec.rope_scaling import variant_lines

        return variant_lines()

    def own_cases(self) -> list[Case]:
        base = {"bsz": 1, "n_head": 2, "qlen": 4, "mlen": 0, "d_head": 4}

        def case(name: str, seed: int, **kw: Any) -> Case:
            return Case(name, {**base, **kw.pop("dims", {})}, seed=seed, **kw)

        return [
            case("default", 1),
            case("memory", 2, dims={"qlen": 3, "mlen": 4}),
            case("base_10", 3, options={"base": 10}),
            case("float_base", 4, options={"base": 2.5}, dims={"d_head": 6}),
            case("partial", 5, options={"rotary_dim": 2}, dims={"d_head": 6}),
            case("no_rotation", 6, options={"rotary_dim": 0}),
            case("odd_d_head", 7, dims={"d_head": 5}),
            case("d_head_8", 8, dims={"d_head": 8, "qlen": 6, "mlen": 2}),
            case("long", 9, dims={"qlen": 10, "mlen": 6, "n_head": 1}),
            case("mask_causal", 10, mask="causal", dims={"mlen": 2}),
            case("mask_padding", 11, mask="padding", dims={"bsz": 3}),
            case("mask_random", 12, mask="random", dims={"bsz": 2}),
            case("mask_fully_masked_row", 13, mask="fully_masked_row"),
            case("mask_broadcast", 14, mask="broadcast", dims={"n_head": 3}),
            case("custom_scale", 15, options={"scale": 0.5}),
            # frequencies over the rotary width, not d_head: they differ from rotary_dim 4
            case("partial_4_of_8", 16, options={"rotary_dim": 4}, dims={"d_head": 8}),
            # scaling variants, each at a width where its formula has something to do
            case("linear", 17, options={"scaling": {"rope_type": "linear", "factor": 4.0}}),
            case(
                "dynamic_past_L0",
                18,
                options={"scaling": _DYNAMIC | {"original_max_position_embeddings": 3}},
                dims={"mlen": 2},
            ),
            case(
                "dynamic_at_L0",
                19,
                options={"scaling": _DYNAMIC | {"original_max_position_embeddings": 6}},
                dims={"mlen": 2},
            ),
            case("yarn", 20, options={"scaling": _YARN}, dims={"d_head": 8}),
            case(
                "yarn_explicit_factor",
                21,
                options={"scaling": _YARN | {"truncate": False, "attention_factor": 1.25}},
                dims={"d_head": 8},
            ),
            case("longrope_long", 22, options={"scaling": _longrope(3)}, dims={"d_head": 4}),
            case("longrope_short", 23, options={"scaling": _longrope(4)}, dims={"d_head": 4}),
            # memory within L0, the whole sequence past it: every key takes the long factors
            case(
                "longrope_memory",
                27,
                options={"scaling": _longrope(3)},
                dims={"d_head": 4, "mlen": 2},
            ),
            case("llama3", 24, options={"scaling": _LLAMA3}, dims={"d_head": 8}),
            case(
                "proportional_partial",
                25,
                options={"rotary_dim": 4, "scaling": {"rope_type": "proportional"}},
                dims={"d_head": 8},
            ),
            # packed rows: each row's length is its own (5, 5 and 4), on both sides of L0
            case(
                "dynamic_rows",
                26,
                options={"scaling": _DYNAMIC | {"original_max_position_embeddings": 4}},
                dims={"bsz": 3, "qlen": 6},
                positions="packed",
            ),
        ]


_DYNAMIC: Final = {"rope_type": "dynamic", "factor": 2.0}
_YARN: Final = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}
_LLAMA3: Final = {
    "rope_type": "llama3",
    "factor": 8.0,
    "original_max_position_embeddings": 2048,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
}


def _longrope(L0: int) -> dict[str, Any]:
    """longrope on two pairs, with an original length L0 (the cases' length is 4)."""
    return {
        "rope_type": "longrope",
        "original_max_position_embeddings": L0,
        "short_factor": [1.0, 1.25],
        "long_factor": [1.5, 4.0],
        "factor": 4.0,
    }


def _identities() -> list[Identity]:
    from relpos.spec._proofs import MAX_SIZE, exhaustive, symbolic_zero

    a, b, th = sp.symbols("a b theta", real=True)
    x0, x1, y0, y1 = sp.symbols("x0 x1 y0 y1", real=True)

    def rot(angle: Any) -> sp.Matrix:
        return ROTATION.subs({c: sp.cos(angle), s: sp.sin(angle), s_neg: -sp.sin(angle)})

    xv, yv = sp.Matrix([x0, x1]), sp.Matrix([y0, y1])

    def relative() -> tuple[bool, str, str]:
        lhs = (rot(a * th) * xv).T * (rot(b * th) * yv)
        rhs = xv.T * rot((b - a) * th) * yv
        diff = sp.trigsimp(sp.expand_trig(sp.expand(lhs[0, 0] - rhs[0, 0])))
        return symbolic_zero(sp.simplify(diff), "(R(a) x).(R(b) y) - x.R(b - a) y")

    def orthogonal() -> tuple[bool, str, str]:
        m = rot(a * th)
        return symbolic_zero(sp.simplify(m.T * m - sp.eye(2)), "R^T R - I")

    def half_is_permuted(r2: int) -> str | None:
        r = 2 * r2
        order = _half_order(r)
        # the library's pair (t, t + r/2) must land on the spec's (2t, 2t + 1)
        for t in range(r2):
            if (order[2 * t], order[2 * t + 1]) != (t, t + r2):
                return f"pair {t} lands on {(order[2 * t], order[2 * t + 1])}"
        if sorted(order.tolist()) != list(range(r)):
            return "not a permutation"
        return None

    return [
        Identity(
            "relative",
            "the rotated score depends only on pos_j - pos_i: (R(a) x) . (R(b) y) = "
            "x . R(b - a) y for every pair, angle and position",
            relative,
        ),
        Identity(
            "rotations are orthogonal",
            "R(p)^T R(p) = I: rotation preserves norms (and with a = b, the content score)",
            orthogonal,
        ),
        Identity(
            "half layout = permuted interleaved",
            "the pairs (t, t + r/2) of rotate_half are the interleaved pairs of q and k with "
            "their first r features permuted (the layout axis)",
            lambda: exhaustive(
                ((n,) for n in range(1, 4 * MAX_SIZE + 1)), half_is_permuted, "r <= 64"
            ),
        ),
    ]
