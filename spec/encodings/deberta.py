"""DeBERTa (He et al. 2021): disentangled attention with relative positions.

Formula (per batch element and head h)::

    r_ij   = pos_i - pos_j                                  (query minus key)
    b(r)   = r                                               max_position None (DeBERTa)
           = r if |r| <= m, else sign(r) (m + ceil(log(|r|/m) / log((M - 1)/m) (m - 1)))
                                                             (DeBERTa-v2 log buckets, m = k // 2)
    d(r)   = clip(b(r), -k, k - 1) + k                       (table row, 0 <= d < 2k)
    e_ij   = scale * [q_i . k_j + q_i . K^r[d(r_ij)] + k_j . Q^r[d(r_ji)]]
    o_i    = sum_j alpha_ij v_j

The second term is content-to-position (c2p), the third position-to-content (p2c): the key
looks up the query-side table at the reversed distance r_ji = pos_j - pos_i, as equation 2
says ("we use delta(j, i) rather than delta(i, j)"). The reference code (microsoft/DeBERTa,
Hugging Face) gathers p2c at r_ij, the c2p distance: ``p2c_distance="r_ij"`` computes that.
Without clipping the two differ by mirroring Q^r (row x <-> 2k - x, identity "p2c distances
mirror"); with the asymmetric clip no table map turns one into the other. A term is present
when its table is given (DeBERTa's pos_att_type "c2p|p2c"); ``scale`` defaults to
1/sqrt(d_head (1 + the number of terms present)), the paper's 1/sqrt(3 d_head) with both.

Symbols: ``span`` k (DeBERTa's att_span, max_relative_positions); ``pos_key`` K^r and
``pos_query`` Q^r have 2k rows (the relative embeddings after the key and query projections),
shared by heads (2k, d_head) or per head (n_head, 2k, d_head); ``max_position`` M switches on
DeBERTa-v2's logarithmic buckets (bucket size k). The ceiling is exact: the smallest t >= 0
with (M - 1)^t m^(m-1) >= |r|^(m-1) m^t (identity "integer buckets = log buckets").

Citation: He, Liu, Gao, Chen (2021), DeBERTa: Decoding-enhanced BERT with Disentangled
Attention, arXiv:2006.03654 (equations 2-4); the log buckets of DeBERTa-v2 as in its reference
code (microsoft/DeBERTa, Hugging Face ``make_log_bucket_position``).
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
from relpos.spec._pairs import PairFormula, Rows, keys, queries, relative
from relpos.spec._profiles import Profile, fixed
from relpos.spec._signature import ArgumentError, Option, Problem, Tensor, check_int

__all__ = ["DeBERTa", "row"]

_P_i, _P_j = sp.symbols("pos_i pos_j", integer=True)
_r = sp.Symbol("r", integer=True)
_k, _m, _M = sp.symbols("k m M", integer=True, positive=True)

q_i = sp.MatrixSymbol("q_i", 1, cv.d_head)
k_j = sp.MatrixSymbol("k_j", 1, cv.d_head)
Kr = sp.MatrixSymbol("K^r_d(r_ij)", 1, cv.d_head)
Qr = sp.MatrixSymbol("Q^r_d(r_ji)", 1, cv.d_head)

#: The log bucket of DeBERTa-v2, and the table row of a (bucketed) distance.
LOG_BUCKET: Final = sp.Piecewise(
    (_r, sp.Abs(_r) <= _m),
    (
        sp.sign(_r) * (_m + sp.ceiling(sp.log(sp.Abs(_r) / _m) / sp.log((_M - 1) / _m) * (_m - 1))),
        True,
    ),
)
ROW: Final = sp.Min(sp.Max(_r, -_k), _k - 1) + _k
#: The logit with both terms; the variants drop a term.
LOGIT: Final = cv.scale * (q_i * k_j.T + q_i * Kr.T + k_j * Qr.T)
_ZERO = sp.ZeroMatrix(1, cv.d_head)
LOGITS: Final = {
    (True, True): LOGIT,
    (True, False): LOGIT.subs(Qr, _ZERO),
    (False, True): LOGIT.subs(Kr, _ZERO),
    (False, False): LOGIT.subs({Kr: _ZERO, Qr: _ZERO}),
}
_FORMULAS = {key: PairFormula(expr, (cv.scale, q_i, k_j, Kr, Qr)) for key, expr in LOGITS.items()}


def log_bucket(r: int, size: int, max_position: int) -> int:
    """b(r) for DeBERTa-v2's buckets, integers only (the exact ceiling of the log form)."""
    mid = size // 2
    a = abs(r)
    if a <= mid:
        return r
    k = mid - 1

    def reaches(t: int) -> bool:  # ((M - 1)/mid)^t >= (a/mid)^k, in integers
        return (max_position - 1) ** t * mid**k >= a**k * mid**t

    # the smallest t that reaches: start from a float estimate, then step exactly
    t = max(0, math.ceil(k * math.log(a / mid) / math.log((max_position - 1) / mid)))
    while t > 0 and reaches(t - 1):
        t -= 1
    while not reaches(t):
        t += 1
    return (1 if r > 0 else -1) * (mid + t)


@cache
def row(r: int, span: int, max_position: int | None) -> int:
    """d(r): the table row of the distance r."""
    b = r if max_position is None else log_bucket(r, span, max_position)
    return min(max(b, -span), span - 1) + span


def _check_span(value: Any) -> str | None:
    return check_int(value, minimum=1)


#: p2c_distance -> whether the p2c term reads the reversed distance r_ji (the paper).
P2C_DISTANCES: Final = {"r_ji": True, "r_ij": False}


def _check_p2c_distance(value: Any) -> str | None:
    return None if value in P2C_DISTANCES else "must be 'r_ji' (the paper) or 'r_ij' (its code)"


def _check_max_position(value: Any) -> str | None:
    if value is None:
        return None
    return check_int(value, minimum=3)


_TABLE_LAYOUTS = (("R", "d_head"), ("n_head", "R", "d_head"))

#: What every library profile fixes: the reference code's p2c distance, the default scale.
_CODE = {"p2c_distance": fixed("r_ij"), "scale": fixed(None)}
_V1_OPTIONS = {**_CODE, "max_position": fixed(None)}
_V2_OPTIONS = {
    **_CODE,
    "max_position": lambda dims, c: [x for x in c if x is not None],
    "span": lambda dims, c: [x for x in c if x >= 4],
}

_PROFILES = (
    Profile(
        "deberta-v1",
        "deberta",
        "DeBERTa v1 (microsoft/DeBERTa, XSoftmax)",
        "arXiv:2006.03654; microsoft/DeBERTa DeBERTa/deberta/disentangled_attention.py, ops.py",
        options=_V1_OPTIONS,
        include=("pos_key", "pos_query"),
        memory=False,
        notes=(
            "relative positions i - j of one sequence (no memory, no position ids); the table "
            "is the middle 2 att_span rows, att_span = min(max(qlen, klen), "
            "max_relative_positions)",
            "XSoftmax zeroes masked probabilities: fully masked rows give output 0",
        ),
    ),
    Profile(
        "deberta-v2",
        "deberta",
        "DeBERTa-v2/v3 log buckets (microsoft/DeBERTa, XSoftmax)",
        "microsoft/DeBERTa DeBERTa/deberta/da_utils.py (make_log_bucket_position)",
        options=_V2_OPTIONS,
        include=("pos_key", "pos_query"),
        memory=False,
        notes=(
            "position_buckets = span, max_relative_positions = max_position",
            "XSoftmax zeroes masked probabilities: fully masked rows give output 0",
            "no memory and no position ids: an encoder of one sequence, relative positions "
            "i - j of indices, without a cache",
        ),
    ),
    Profile(
        "hf-deberta",
        "deberta",
        "Hugging Face DebertaModel (transformers 5.x)",
        "transformers 5.24 models/deberta/modeling_deberta.py DisentangledSelfAttention",
        {"masked_rows": "uniform"},
        options=_V1_OPTIONS,
        include=("pos_key", "pos_query"),
        memory=False,
        notes=(
            "as deberta-v1, but masked scores are filled with finfo.min before a plain softmax "
            "(no XSoftmax), so fully masked rows are uniform",
            "no memory and no position ids: an encoder without a cache; the module's "
            "relative_pos argument is one bucketed (qlen, klen) matrix for the whole batch, "
            "which the encoder builds from arange",
        ),
    ),
    Profile(
        "hf-deberta-v2",
        "deberta",
        "Hugging Face DebertaV2Model (transformers 5.x), log buckets",
        "transformers 5.24 models/deberta_v2/modeling_deberta_v2.py DisentangledSelfAttention",
        {"masked_rows": "uniform"},
        options=_V2_OPTIONS,
        include=("pos_key", "pos_query"),
        memory=False,
        notes=(
            "position_buckets = span, max_relative_positions = max_position; the log is "
            "taken in float32 before the ceiling",
            "masked scores are filled with finfo.min before a plain softmax (no XSoftmax), so "
            "fully masked rows are uniform",
            "no memory and no position ids: an encoder without a cache; the module's "
            "relative_pos argument is one bucketed (qlen, klen) matrix for the whole batch, "
            "which the encoder builds from arange",
        ),
    ),
)


@final
class DeBERTa(Encoding):
    """DeBERTa's disentangled attention (see the module docstring)."""

    name = "deberta"
    large_options = MappingProxyType({"span": 64, "max_position": 512})
    title = "DeBERTa (He et al. 2021): disentangled attention"
    summary = (
        "Content and position kept apart: the logit adds content-to-position and "
        "position-to-content terms from clipped (or log-bucketed) relative distances."
    )
    references = (
        Reference(
            "He, P., Liu, X., Gao, J., Chen, W.",
            "DeBERTa: Decoding-enhanced BERT with Disentangled Attention",
            2021,
            "2006.03654",
        ),
    )
    tensors = (
        cv.Q,
        cv.K,
        cv.V,
        Tensor(
            "pos_key",
            _TABLE_LAYOUTS,
            "float",
            "K^r: projected relative keys, row d <-> bucketed distance d - span; gives the "
            "c2p term",
            required=False,
        ),
        Tensor(
            "pos_query",
            _TABLE_LAYOUTS,
            "float",
            "Q^r: projected relative queries, same rows; gives the p2c term",
            required=False,
        ),
        cv.MASK,
        cv.Q_POS,
        cv.K_POS,
    )
    options = (
        Option(
            "span",
            "k: distances are clipped to [-k, k - 1]; tables have 2k rows",
            None,
            _check_span,
        ),
        Option(
            "max_position",
            "None (DeBERTa: linear distances) or M >= 3 for DeBERTa-v2's log buckets of size k",
            None,
            _check_max_position,
        ),
        Option(
            "p2c_distance",
            "the distance the p2c term reads: 'r_ji' = pos_j - pos_i (the paper's delta(j, i)) "
            "or 'r_ij' (the c2p distance, as microsoft/DeBERTa's and Hugging Face's code)",
            "r_ji",
            _check_p2c_distance,
        ),
        Option(
            "scale",
            "multiplies the whole logit; None = 1/sqrt(d_head (1 + the position terms given))",
            None,
            cv.SCALE.check,
        ),
    )
    glossary = (
        ("q_i, k_j", "query i and key j of one head"),
        ("r_ij", "pos_i - pos_j, the query-minus-key distance; r_ji = -r_ij"),
        ("p2c_distance", "'r_ji' (the paper) or 'r_ij': the distance the p2c term reads"),
        ("k", "span (att_span): rows 0 .. 2k - 1"),
        ("m, M", "k // 2 and max_position of DeBERTa-v2's log buckets"),
        ("K^r, Q^r", "pos_key and pos_query of head h"),
        ("scale", "the scale argument, default 1/sqrt(3 d_head) with both terms"),
    )
    conventions = (
        "r_ij = pos_i - pos_j (query minus key); the p2c term reads Q^r at r_ji = pos_j - pos_i "
        "(p2c_distance 'r_ij': at r_ij, as the reference code)",
        "row d = clip(b(r), -k, k - 1) + k: row 0 holds r <= -k, row 2k - 1 holds r >= k - 1",
        "a term is present when its table is given; the scale multiplies every term, by "
        "default 1/sqrt(d_head (1 + the number of position terms))",
        "log buckets are exact integers (the ceiling of the log form without rounding)",
    )
    differences = (
        "Hugging Face DeBERTa: the table is sliced to 2 att_span rows with att_span = "
        "min(max(qlen, klen), max_relative_positions), the same attention as the full table "
        "clipped at max_relative_positions (profiles deberta-v1 and hf-deberta).",
        "DeBERTa-v2: log buckets, in Hugging Face with the log in float32 (profiles deberta-v2 "
        "and hf-deberta-v2); microsoft/DeBERTa's XSoftmax gives fully masked rows output 0, "
        "Hugging Face 5.x fills masked scores with finfo.min (uniform rows); "
        "share_att_key projects the relative embeddings with the content projections, which "
        "changes K^r and Q^r, not this formula.",
        "microsoft/DeBERTa and Hugging Face gather the p2c term at delta(i, j), the c2p "
        "distance, not the paper's delta(j, i): option p2c_distance 'r_ij', which every "
        "library profile fixes (no table map can express it: the clip is asymmetric).",
    )

    optional_groups = (("pos_key",), ("pos_query",))
    metamorphic = ("translation", "masked_keys", "batch", "memory_rows", "zero_tables")
    zero_tables = ("pos_key", "pos_query")
    profiles = _PROFILES

    def option_values(self, dims: Mapping[str, int]) -> dict[str, list[Any]]:
        klen = dims["qlen"] + dims["mlen"]
        if klen > 48:  # a long range: spans and log buckets well inside it
            spans, positions = [2, 4, 3, 6, 8, klen // 4], [None, klen // 2, 2 * klen]
        else:
            spans, positions = [2, 4, 3, 6, 8], [None, 6, 9, 17]
        return {
            # every pair valid: max_position > span // 2 + 1 for every span here
            "span": spans,
            "max_position": positions,
            "p2c_distance": ["r_ji", "r_ij"],
            "scale": [None, 0.5, 1.0, 0.125],
        }

    def derived_dims(self, options: Mapping[str, Any]) -> dict[str, int]:
        return {} if options["span"] is None else {"R": 2 * options["span"]}

    def dim_note(self, dim: str, options: Mapping[str, Any]) -> str | None:
        return f"R = 2 span for span={options['span']}" if dim == "R" else None

    def check(self, problem: Problem) -> None:
        o = problem.options
        m = o["span"] // 2
        if o["max_position"] is not None and (m < 1 or o["max_position"] <= m + 1):
            raise ArgumentError(
                "max_position",
                f"max_position={o['max_position']}",
                f"must exceed span // 2 + 1 = {m + 1}, with span >= 2 (log buckets of size "
                f"span={o['span']})",
            )

    def default_scale(self, problem: Problem) -> sp.Expr:
        terms = 1 + sum(problem.tensors.get(t) is not None for t in ("pos_key", "pos_query"))
        return 1 / sp.sqrt(problem.dims["d_head"] * terms)

    def formulas(self) -> dict[str, sp.Basic]:
        return {
            "distance": sp.Eq(sp.Symbol("r_ij"), _P_i - _P_j, evaluate=False),
            "log bucket (max_position M)": sp.Eq(sp.Function("b")(_r), LOG_BUCKET, evaluate=False),
            "table row": sp.Eq(sp.Function("d")(_r), ROW, evaluate=False),
            "logit": sp.Eq(sp.Symbol("e_ij"), LOGIT, evaluate=False),
            "p2c row (p2c_distance 'r_ij', the reference code)": sp.Eq(
                sp.Symbol("d(r_ji)"), sp.Symbol("d(r_ij)"), evaluate=False
            ),
            **cv.attention_formulas("v"),
        }

    def rows(self, problem: Problem, reverse: bool) -> np.ndarray:
        """The table row d(r) of every pair, r = pos_i - pos_j (pos_j - pos_i with
        ``reverse``): (B, qlen, klen) with B in {1, bsz}, each distinct r computed once."""
        o = problem.options
        r = cv.query_minus_key(problem)
        if reverse:
            r = -r
        distinct, where = np.unique(r, return_inverse=True)
        rows = np.array([row(int(x), o["span"], o["max_position"]) for x in distinct], np.int64)
        return rows[where].reshape(r.shape)

    def table_index(self, problem: Problem) -> tuple[str, np.ndarray]:
        return "table row d(pos_i - pos_j)", self.rows(problem, reverse=False)

    def regions(self, problem: Problem) -> frozenset[str]:
        o = problem.options
        span, max_position = o["span"], o["max_position"]
        distance = np.unique(cv.query_minus_key(problem))  # pos_i - pos_j

        def bucket(r: int) -> int:
            return r if max_position is None else log_bucket(r, span, max_position)

        buckets = np.array([bucket(int(r)) for r in distance])
        inside = (buckets >= -span) & (buckets <= span - 1)
        found = {"clipped"} if not inside.all() else set()
        if max_position is not None and (np.abs(distance) > span // 2).any():
            found.add("log buckets")
        return frozenset(found | ({"inside the span"} if inside.any() else set()))

    def logit_operands(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> tuple[PairFormula, tuple[Any, ...]]:
        d = problem.dims

        def table(name: str, reverse: bool) -> Rows | None:
            given = x.get(name)  # absent: the formula variant drops its term
            if given is None:
                return None
            return relative(given, self.rows(problem, reverse)[:, None], name)

        p2c = P2C_DISTANCES[problem.options["p2c_distance"]]
        formula = _FORMULAS[x.get("pos_key") is not None, x.get("pos_query") is not None]
        return formula, (
            scale,
            queries(x["q"], d["klen"], "q"),
            keys(x["k"], d["qlen"], "k"),
            table("pos_key", False),
            table("pos_query", p2c),
        )

    def identities(self) -> list[Identity]:
        return _identities()

    def own_cases(self) -> list[Case]:
        base = {"bsz": 1, "n_head": 2, "qlen": 5, "mlen": 0, "d_head": 4}
        both = ("pos_key", "pos_query")

        def case(name: str, seed: int, span: int = 2, **kw: Any) -> Case:
            options = {"span": span, **kw.pop("options", {})}
            dims = {**base, **kw.pop("dims", {})}
            return Case(name, dims, options, include=kw.pop("include", both), seed=seed, **kw)

        return [
            case("both_terms", 1),
            case("c2p_only", 2, include=("pos_key",)),
            case("p2c_only", 3, include=("pos_query",)),
            case("no_position", 4, include=()),
            case("wide_span", 5, span=8, dims={"mlen": 1}),
            case("span_1", 6, span=1),
            case("per_head_tables", 7, layouts={"pos_key": 1, "pos_query": 1}, dims={"n_head": 3}),
            case("memory", 8, dims={"qlen": 3, "mlen": 4}),
            case("log_buckets", 9, span=4, options={"max_position": 9}, dims={"qlen": 12}),
            case(
                "log_buckets_wide",
                10,
                span=6,
                options={"max_position": 17},
                dims={"qlen": 10, "mlen": 8, "n_head": 1},
            ),
            case("mask_padding", 11, mask="padding", dims={"bsz": 3}),
            case("mask_random", 12, mask="random", dims={"bsz": 2}),
            case("mask_fully_masked_row", 13, mask="fully_masked_row"),
            case("mask_broadcast", 14, mask="broadcast", dims={"n_head": 3}),
            case("custom_scale", 15, options={"scale": 0.5}),
            case("d_head_1", 16, dims={"d_head": 1, "qlen": 6}),
            case("p2c_reference_code", 17, options={"p2c_distance": "r_ij"}, dims={"mlen": 2}),
            case(
                "p2c_reference_code_log_buckets",
                18,
                span=4,
                options={"max_position": 9, "p2c_distance": "r_ij"},
                dims={"qlen": 12},
            ),
        ]


def _identities() -> list[Identity]:
    from relpos.spec._proofs import MAX_SIZE, exhaustive, rounded_log_ratio, sizes, symbolic_zero

    t = sp.Symbol("t", integer=True)
    grid = [
        (size, mp)
        for size in (2, 3, 4, 6, 8, 16, 32, 256)
        for mp in sorted({size // 2 + 2, size + 1, 2 * size, 512})
        if mp > size // 2 + 1
    ]

    def integer_equals_log(size: int, max_position: int) -> str | None:
        mid = size // 2
        for a in range(mid + 1, min(3 * max_position, mid + 60)):
            want = mid + rounded_log_ratio(
                Fraction(a, mid), Fraction(max_position - 1, mid), mid - 1, up=True
            )
            got = log_bucket(a, size, max_position)
            if got != want or log_bucket(-a, size, max_position) != -want:
                return f"|r|={a}: integer {got}, log form {want}"
        return None

    def monotone(size: int, max_position: int) -> str | None:
        values = [log_bucket(a, size, max_position) for a in range(0, 3 * max_position)]
        if any(b < a for a, b in itertools.pairwise(values)):
            return f"not monotone: {values[:40]}"
        return None

    def rows_in_table(qlen: int, mlen: int, span: int) -> str | None:
        for mp in (None, span + 3):
            if mp is not None and (span < 2 or mp <= span // 2 + 1):
                continue
            for a in range(qlen):
                for b in range(qlen + mlen):
                    for r in ((mlen + a) - b, b - (mlen + a)):
                        d = row(r, span, mp)
                        if not 0 <= d <= 2 * span - 1:
                            return f"r={r}, max_position={mp}: row {d} outside 0 .. {2 * span - 1}"
        return None

    def paper_rows(span: int) -> str | None:
        # equation 3: 0 for r <= -k, 2k - 1 for r >= k, r + k between
        for r in range(-3 * span, 3 * span):
            want = 0 if r <= -span else (2 * span - 1 if r >= span else r + span)
            if row(r, span, None) != want:
                return f"r={r}: row {row(r, span, None)}, the paper says {want}"
        return None

    def mirrored(span: int) -> str | None:
        # unclipped (|r| < k) the p2c row of r_ji is the row of r_ij mirrored: 2k - d(r_ij);
        # at the clip the two part (the clip range [-k, k - 1] is not symmetric)
        for mp in (None, 2 * span + 1):
            if mp is not None and span < 2:
                continue
            for r in range(1 - span, span):
                if row(-r, span, mp) != 2 * span - row(r, span, mp):
                    return f"r={r}, max_position={mp}: d(-r)={row(-r, span, mp)}"
        if row(span, span, None) == 2 * span - row(-span, span, None):
            return f"r={span}: the mirror holds at the clip too"
        return None

    zero = sp.ZeroMatrix(1, cv.d_head)
    return [
        Identity(
            "rows match the paper",
            "without log buckets, d(r) = 0 for r <= -k, 2k - 1 for r >= k and r + k between "
            "(He et al. 2021, equation 3)",
            lambda: exhaustive(((k,) for k in range(1, 33)), paper_rows, "span 1 .. 32"),
        ),
        Identity(
            "p2c distances mirror",
            "for |r| < k, d(r_ji) = 2k - d(r_ij) with and without log buckets, so the paper's "
            "p2c term and the reference code's agree up to mirrored Q^r rows; at r = k they part",
            lambda: exhaustive(((k,) for k in range(1, 33)), mirrored, "span 1 .. 32"),
        ),
        Identity(
            "rows in the table",
            "every pair's c2p and p2c rows lie in 0 .. 2k - 1, with and without log buckets",
            lambda: exhaustive(
                ((q, m, k) for q, m in sizes() for k in range(1, MAX_SIZE + 1)),
                rows_in_table,
                f"qlen, mlen, span <= {MAX_SIZE}",
            ),
        ),
        Identity(
            "integer buckets = log buckets",
            "for |r| > m the oracle's integer comparison gives m + ceil(log(|r|/m) / "
            "log((M - 1)/m) (m - 1)), signed; the ceiling read at 60 digits, or decided by "
            "SymPy within 1e-40 of an integer",
            lambda: exhaustive(grid, integer_equals_log, "bucket sizes 2 .. 256"),
        ),
        Identity(
            "log buckets are monotone",
            "b(r) never decreases with r",
            lambda: exhaustive(grid, monotone, "distances 0 .. 3 max_position"),
        ),
        Identity(
            "translation invariance",
            "rows depend on positions only through pos_i - pos_j",
            lambda: symbolic_zero(
                (_P_i - _P_j).subs({_P_i: _P_i + t, _P_j: _P_j + t}, simultaneous=True)
                - (_P_i - _P_j),
                "r(pos + t) - r(pos)",
            ),
        ),
        Identity(
            "zero tables = plain attention",
            "with K^r = Q^r = 0 the logit is scale q_i k_j^T",
            lambda: symbolic_zero(
                LOGIT.subs({Kr: zero, Qr: zero}) - cv.scale * q_i * k_j.T, "logit"
            ),
        ),
    ]
