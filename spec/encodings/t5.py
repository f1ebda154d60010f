"""T5 relative position bias (Raffel et al. 2020): a learned scalar per (bucket, head).

Formula (per batch element and head h)::

    n_ij  = pos_i - pos_j                                   (query minus key)
    bidirectional:  N = num_buckets // 2,  o = N [n < 0],  a = |n|
    causal:         N = num_buckets,       o = 0,          a = max(n, 0)
    E     = N // 2                                          (exact buckets 0 .. E - 1)
    b(a)  = a                                                               a < E
          = min(N - 1, E + floor(log(a / E) / log(max_distance / E) * (N - E)))   a >= E
    e_ij  = scale * q_i . k_j + rel_bias[o + b(a), h]
    o_i   = sum_j alpha_ij v_j

The floor is exact: b(a) = min(N - 1, E + t) with t the largest integer in [0, N - E] such that
max_distance^t * E^(N - E) <= a^(N - E) * E^t (identity "integer buckets = log buckets").
Keys in the future (n < 0) take the upper half of the buckets when bidirectional; a causal
bias sends them to bucket 0 (T5's decoder also masks them).

Symbols: ``rel_bias`` (num_buckets, n_head), T5's relative_attention_bias embedding; ``scale``
multiplies q . k only and defaults to 1: T5 applies no 1/sqrt(d_head) to its logits (it is
folded into the initialisation of W_Q).

Citation: Raffel, Shazeer, Roberts, Lee, Narang, Matena, Zhou, Li, Liu (2020), Exploring the
Limits of Transfer Learning with a Unified Text-to-Text Transformer, arXiv:1910.10683
(section 2.1); the bucketing as in its reference code (mesh-tensorflow, Hugging Face
``T5Attention._relative_position_bucket``).

How other code differs: x-transformers scales the logits by 1/sqrt(d_head) and multiplies the
learned bias by sqrt(d_head) (profile x-transformers); Hugging Face T5 computes the log in
float32 and truncates: not exact by construction, although it agreed with the exact floor for
every num_buckets <= 64, max_distance < 200 and distance < 400 tried.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from fractions import Fraction
from functools import cache
from types import MappingProxyType
from typing import Any, Final, final

import numpy as np
import sympy as sp

from relpos.spec import _conventions as cv
from relpos.spec._arith import Mode
from relpos.spec._encoding import Case, Encoding, Identity, Reference
from relpos.spec._pairs import PairFormula, Rows, keys, queries
from relpos.spec._profiles import Axis, Profile, Value, fixed
from relpos.spec._signature import (
    ArgumentError,
    Option,
    Problem,
    Tensor,
    check_bool,
    check_int,
    check_scale,
)

__all__ = ["T5", "bucket"]

_P_i, _P_j = sp.symbols("pos_i pos_j", integer=True)
_a = sp.Symbol("a", integer=True, nonnegative=True)
_N, _E, _M = sp.symbols("N E max_distance", integer=True, positive=True)

q_i = sp.MatrixSymbol("q_i", 1, cv.d_head)
k_j = sp.MatrixSymbol("k_j", 1, cv.d_head)
beta = sp.Symbol("beta_bh")

#: The bucket of a distance a >= 0 within one direction, as the paper's code defines it.
BUCKET: Final = sp.Piecewise(
    (_a, _a < _E),
    (sp.Min(_N - 1, _E + sp.floor(sp.log(_a / _E) / sp.log(_M / _E) * (_N - _E))), True),
)
#: The logit: the bias is added after the scale.
LOGIT: Final = cv.scale * q_i * k_j.T + sp.Matrix([[beta]])

_LOGIT = PairFormula(LOGIT, (cv.scale, q_i, k_j, beta))


def _halves(num_buckets: int, bidirectional: bool) -> tuple[int, int]:
    """(N, E): buckets per direction and exact buckets."""
    n = num_buckets // 2 if bidirectional else num_buckets
    return n, n // 2


def log_bucket(a: int, n: int, e: int, max_distance: int) -> int:
    """b(a) for a >= 0 with integer arithmetic only (the exact floor of the log form)."""
    if a < e:
        return a
    k = n - e
    t = 0
    while t < k and max_distance ** (t + 1) * e**k <= a**k * e ** (t + 1):
        t += 1
    return min(n - 1, e + t)


@cache
def bucket(distance: int, num_buckets: int, max_distance: int, bidirectional: bool) -> int:
    """The bucket of n = pos_i - pos_j (exact integers)."""
    n, e = _halves(num_buckets, bidirectional)
    if bidirectional:
        return (n if distance < 0 else 0) + log_bucket(abs(distance), n, e, max_distance)
    return log_bucket(max(distance, 0), n, e, max_distance)


def _check_buckets(value: Any) -> str | None:
    return check_int(value, minimum=2)


def _check_max_distance(value: Any) -> str | None:
    return check_int(value, minimum=2)


def _bucket_grid(problem: Problem) -> np.ndarray:
    """The bucket of every pair, (B, qlen, klen) with B in {1, bsz}: each distinct distance
    bucketed once, in Python integers."""
    o = problem.options
    distance = cv.query_minus_key(problem)
    args = (o["num_buckets"], o["max_distance"], o["bidirectional"])
    distinct, where = np.unique(distance, return_inverse=True)
    buckets = np.array([bucket(int(n), *args) for n in distinct], dtype=np.int64)
    return buckets[where].reshape(distance.shape)


def _sqrt_d_scale(dims: Mapping[str, int], candidates: list[Any]) -> list[Any]:
    return [1 / math.sqrt(dims["d_head"])]


def _bias_times(factor_of_d: Any) -> Any:
    def convert(args: Mapping[str, Any]) -> dict[str, Any]:
        d = args["q"].shape[-1]
        return dict(args, rel_bias=np.asarray(args["rel_bias"]) * factor_of_d(d))

    return convert


_AXES = (
    Axis(
        "bias_scale",
        "how the learned bias meets the scaled logits",
        (
            Value("unscaled", "e = scale q.k + bias (T5)"),
            Value(
                "sqrt_d",
                "e = q.k / sqrt(d_head) + sqrt(d_head) bias (x-transformers): the spec's bias "
                "is the library's times sqrt(d_head), with scale 1/sqrt(d_head)",
                _bias_times(math.sqrt),
                _bias_times(lambda d: 1 / math.sqrt(d)),
                options={"scale": _sqrt_d_scale},
                changes=("rel_bias",),
            ),
        ),
    ),
)

_PROFILES = (
    Profile(
        "hf-t5",
        "t5",
        "T5 (Hugging Face T5Attention, as mesh-tensorflow)",
        "arXiv:1910.10683; transformers models/t5/modeling_t5.py",
        {"masked_rows": "uniform"},
        options={"scale": fixed(None)},
        memory=True,
        notes=(
            "no 1/sqrt(d_head); additive mask finfo.min, so fully masked rows are uniform",
            "with a cache, queries are the last positions of the keys (memory)",
            "no position ids: T5Attention.compute_bias places query i at the cache's length "
            "+ i and key j at j, so only the default layout exists",
        ),
    ),
    Profile(
        "x-transformers",
        "t5",
        "x-transformers RelativePositionBias",
        "lucidrains/x-transformers x_transformers.py (9252ed7)",
        {"bias_scale": "sqrt_d"},
        notes=(
            "bias module built with scale = dim_head ** 0.5 and added after the logits are "
            "scaled by dim_head ** -0.5; fully masked rows give output 0",
            "no position ids in this profile: the bias is built from the lengths i and j "
            "(queries the last i of j keys); custom positions can be checked with "
            "--allow positions",
        ),
    ),
)


@final
class T5(Encoding):
    """T5's bucketed relative position bias (see the module docstring)."""

    name = "t5"
    large_options = MappingProxyType({"num_buckets": 32, "max_distance": 128})
    title = "T5 (Raffel et al. 2020): bucketed relative position bias"
    summary = (
        "A learned scalar per head for each bucket of the query-key distance: exact buckets "
        "for short distances, logarithmic ones up to max_distance, one bucket beyond."
    )
    references = (
        Reference(
            "Raffel, C., Shazeer, N., Roberts, A., Lee, K., Narang, S., Matena, M., Zhou, Y., "
            "Li, W., Liu, P. J.",
            "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer",
            2020,
            "1910.10683",
        ),
    )
    tensors = (
        cv.Q,
        cv.K,
        cv.V,
        Tensor(
            "rel_bias",
            (("num_buckets", "n_head"),),
            "float",
            "the learned bias: row b, column h is head h's bias for bucket b",
        ),
        cv.MASK,
        cv.Q_POS,
        cv.K_POS,
    )
    options = (
        Option(
            "num_buckets",
            "buckets in all (split in two halves when bidirectional)",
            32,
            _check_buckets,
        ),
        Option(
            "max_distance", "distances from here on share the last bucket", 128, _check_max_distance
        ),
        Option(
            "bidirectional",
            "True: future keys take the upper half of the buckets (encoder); False: "
            "they share bucket 0 (decoder)",
            True,
            check_bool,
        ),
        Option(
            "scale",
            "multiplies q . k only (the bias is added unscaled); None = 1 (T5 does not "
            "scale its logits)",
            None,
            check_scale,
        ),
    )
    glossary = (
        ("q_i, k_j", "query i and key j of one head"),
        ("n", "pos_i - pos_j, the query-minus-key distance"),
        ("N, E", "buckets per direction and exact buckets (E = N // 2)"),
        ("a", "|n| (bidirectional) or max(n, 0) (causal)"),
        ("beta_bh", "rel_bias[o + b(a), h], the bias of the pair's bucket"),
        ("scale", "the scale argument, default 1; multiplies q . k only"),
    )
    conventions = (
        "n = pos_i - pos_j (query minus key); bidirectional: n < 0 (a future key) adds N to "
        "the bucket; causal: a = max(n, 0)",
        "buckets are exact integers: the floor of the log form computed without rounding",
        "scale defaults to 1 and multiplies q . k only; the bias is added after it",
    )
    differences = (
        "x-transformers RelativePositionBias: bias times sqrt(d_head), logits times "
        "d_head^-1/2 (profile x-transformers); fully masked rows 0.",
        "Hugging Face T5: log in float32 truncated to an integer (not exact by construction; "
        "it agreed with the exact buckets wherever tried); additive finfo.min mask (fully "
        "masked rows uniform; profile hf-t5).",
    )

    metamorphic = ("translation", "masked_keys", "batch", "memory_rows", "zero_tables")
    zero_tables = ("rel_bias",)
    axes = _AXES
    profiles = _PROFILES

    def option_values(self, dims: Mapping[str, int]) -> dict[str, list[Any]]:
        klen = dims["qlen"] + dims["mlen"]
        if klen > 48:  # a long range: T5's own 32 buckets, a max_distance well inside it
            buckets, distances = [8, 4, 6, 10, 32], [20, 128, max(17, klen // 3)]
        else:
            buckets, distances = [8, 4, 6, 10], [20, 6, 7, 9, 12, 128]
        return {
            # every pair valid: at most 5 exact buckets and max_distance from 6 (with 32
            # buckets at most 16, and max_distance from 17)
            "num_buckets": buckets,
            "max_distance": distances,
            "bidirectional": [True, False],
            "scale": [None, 0.5, 1.0, 0.125],
        }

    def derived_dims(self, options: Mapping[str, Any]) -> dict[str, int]:
        return {"num_buckets": options["num_buckets"]}

    def dim_note(self, dim: str, options: Mapping[str, Any]) -> str | None:
        if dim == "num_buckets":
            return f"num_buckets={options['num_buckets']} as given"
        return None

    def check(self, problem: Problem) -> None:
        o = problem.options
        _, e = _halves(o["num_buckets"], o["bidirectional"])
        if e < 1:
            raise ArgumentError(
                "num_buckets",
                f"num_buckets={o['num_buckets']}",
                "must leave at least 2 buckets per direction (>= 4 when bidirectional)",
            )
        if o["max_distance"] <= e:
            raise ArgumentError(
                "max_distance",
                f"max_distance={o['max_distance']}",
                f"must exceed the {e} exact buckets (num_buckets={o['num_buckets']}, "
                f"bidirectional={o['bidirectional']})",
            )

    def default_scale(self, problem: Problem) -> sp.Expr:
        return sp.Integer(1)

    def formulas(self) -> dict[str, sp.Basic]:
        n = sp.Symbol("n_ij")
        return {
            "distance": sp.Eq(n, _P_i - _P_j, evaluate=False),
            "bucket within a direction": sp.Eq(sp.Function("b")(_a), BUCKET, evaluate=False),
            "bias": sp.Eq(beta, sp.Symbol("rel_bias[o + b(a), h]"), evaluate=False),
            "logit": sp.Eq(sp.Symbol("e_ij"), LOGIT, evaluate=False),
            **cv.attention_formulas("v"),
        }

    def table_index(self, problem: Problem) -> tuple[str, np.ndarray]:
        return "bucket", _bucket_grid(problem)

    def regions(self, problem: Problem) -> frozenset[str]:
        o = problem.options
        e = _halves(o["num_buckets"], o["bidirectional"])[1]
        distance = np.unique(cv.query_minus_key(problem))  # pos_i - pos_j
        a = np.abs(distance) if o["bidirectional"] else np.maximum(distance, 0)
        found = {"exact buckets"} if (a < e).any() else set()
        found |= {"log buckets"} if ((a >= e) & (a < o["max_distance"])).any() else set()
        found |= {"beyond max_distance"} if (a >= o["max_distance"]).any() else set()
        return frozenset(found)

    def logit_operands(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> tuple[PairFormula, tuple[Any, ...]]:
        d = problem.dims
        per_head = np.moveaxis(np.asarray(x["rel_bias"]), -1, 0)[..., None]  # (H, buckets, 1)
        bias = Rows(
            per_head[None],
            _bucket_grid(problem)[:, None],
            lambda g: {"rel_bias": g[0, :, :, 0].T},
        )
        return _LOGIT, (scale, queries(x["q"], d["klen"], "q"), keys(x["k"], d["qlen"], "k"), bias)

    def identities(self) -> list[Identity]:
        return _identities()

    def own_cases(self) -> list[Case]:
        base = {"bsz": 1, "n_head": 2, "qlen": 5, "mlen": 0, "d_head": 4}
        small = {"num_buckets": 8, "max_distance": 6}

        def case(name: str, seed: int, **kw: Any) -> Case:
            options = {**small, **kw.pop("options", {})}
            return Case(name, {**base, **kw.pop("dims", {})}, options, seed=seed, **kw)

        return [
            case("bidirectional", 1),
            case("causal", 2, options={"bidirectional": False}),
            case(
                "t5_defaults",
                3,
                options={"num_buckets": 32, "max_distance": 128},
                dims={"qlen": 12, "mlen": 8, "n_head": 1},
            ),
            case(
                "log_region",
                4,
                options={"num_buckets": 6, "max_distance": 5},
                dims={"qlen": 9, "mlen": 3},
            ),
            case(
                "beyond_max_distance",
                5,
                options={"num_buckets": 4, "max_distance": 3},
                dims={"qlen": 8},
            ),
            case("memory", 6, dims={"qlen": 3, "mlen": 4}),
            case("memory_causal", 7, options={"bidirectional": False}, dims={"qlen": 2, "mlen": 6}),
            case("mask_causal", 8, mask="causal", options={"bidirectional": False}),
            case("mask_padding", 9, mask="padding", dims={"bsz": 3}),
            case("mask_random", 10, mask="random", dims={"bsz": 2}),
            case("mask_fully_masked_row", 11, mask="fully_masked_row"),
            case("mask_broadcast", 12, mask="broadcast", dims={"n_head": 3}),
            case("custom_scale", 13, options={"scale": 0.125}),
            case("d_head_1", 14, dims={"d_head": 1, "qlen": 6}),
        ]


def _grid() -> list[tuple[int, int, bool]]:
    """(num_buckets, max_distance, bidirectional) for the exhaustive identities."""
    out = []
    for nb in (2, 3, 4, 6, 8, 16, 32):
        for bidirectional in (True, False):
            _, e = _halves(nb, bidirectional)
            if e < 1:
                continue
            for md in sorted({e + 1, 2 * e + 1, 128}):
                out.append((nb, md, bidirectional))
    return out


def _identities() -> list[Identity]:
    from relpos.spec._proofs import exhaustive, rounded_log_ratio, symbolic_zero

    grid = _grid()
    span = 300

    def integer_equals_log(nb: int, md: int, bidirectional: bool) -> str | None:
        n, e = _halves(nb, bidirectional)
        for a in range(e, min(2 * md + 2, md + 40)):
            ratio = rounded_log_ratio(Fraction(a, e), Fraction(md, e), n - e, up=False)
            want = min(n - 1, e + ratio)
            if log_bucket(a, n, e, md) != want:
                return f"a={a}: integer {log_bucket(a, n, e, md)}, log form {want}"
        return None

    def monotone(nb: int, md: int, bidirectional: bool) -> str | None:
        for sign in (1, -1) if bidirectional else (1,):
            values = [bucket(sign * a, nb, md, bidirectional) for a in range(span)]
            if any(b2 < b1 for b1, b2 in itertools.pairwise(values)):
                return f"not monotone for sign {sign}: {values[:40]}"
        return None

    def boundaries(nb: int, md: int, bidirectional: bool) -> str | None:
        n, e = _halves(nb, bidirectional)
        for a in range(span):
            b = bucket(a, nb, md, bidirectional)
            if a < e and b != a:
                return f"a={a} < E={e} must be its own bucket, got {b}"
            if a >= md and b != n - 1:
                return f"a={a} >= max_distance={md} must be bucket {n - 1}, got {b}"
            if not 0 <= b <= n - 1:
                return f"a={a}: bucket {b} outside 0 .. {n - 1}"
            if bidirectional and bucket(-a - 1, nb, md, True) != n + bucket(a + 1, nb, md, True):
                return f"future key {-a - 1} is not its distance's bucket + {n}"
            if not bidirectional and bucket(-a - 1, nb, md, False) != 0:
                return f"causal: future key {-a - 1} must be bucket 0"
        return None

    t = sp.Symbol("t", integer=True)
    return [
        Identity(
            "integer buckets = log buckets",
            "for every distance up to 2 max_distance + 1 (max_distance + 39 at most) the "
            "oracle's integer comparison gives min(N - 1, E + floor(log(a/E) / "
            "log(max_distance/E) (N - E))); the floor is read at 60 digits, or decided by "
            "SymPy where the value is within 1e-40 of an integer (16, 32, 64 with 32 buckets "
            "and max_distance 128)",
            lambda: exhaustive(grid, integer_equals_log, "num_buckets <= 32, both directions"),
        ),
        Identity(
            "buckets are monotone",
            "within each direction the bucket never decreases with the distance",
            lambda: exhaustive(grid, monotone, f"distances 0 .. {span - 1}"),
        ),
        Identity(
            "bucket boundaries",
            "a < E is bucket a; a >= max_distance is bucket N - 1; every bucket lies in "
            "0 .. N - 1; bidirectional future keys take bucket N + b(|n|), causal ones bucket 0",
            lambda: exhaustive(grid, boundaries, f"distances 0 .. {span - 1}"),
        ),
        Identity(
            "translation invariance",
            "the bucket depends on positions only through pos_i - pos_j",
            lambda: symbolic_zero(
                (_P_i - _P_j).subs({_P_i: _P_i + t, _P_j: _P_j + t}, simultaneous=True)
                - (_P_i - _P_j),
                "n(pos + t) - n(pos)",
            ),
        ),
        Identity(
            "zero bias = plain attention",
            "with rel_bias = 0 the logit is scale q_i k_j^T",
            lambda: symbolic_zero(LOGIT.subs(beta, 0) - cv.scale * q_i * k_j.T, "logit"),
        ),
    ]
