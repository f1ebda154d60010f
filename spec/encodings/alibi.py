"""ALiBi (Press, Smith, Lewis 2022): attention with linear biases.

Formula (per batch element and head h)::

    D_ij  = pos_i - pos_j                          (query minus key)
    B_ij  = -|D_ij|                                 (pos_j - pos_i with signed=True)
    e_ij  = scale * q_i . k_j + m_h * B_ij
    o_i   = sum_j alpha_ij v_j                      (causal=True also masks pos_j > pos_i)

Symbols: ``slopes`` m (n_head,) when given; otherwise the paper's slopes for the head count:
for n a power of two, m_h = 2^(-8h/n), h = 1..n (a geometric sequence starting at and with
ratio 2^(-8/n)); for other n, the slopes of the largest power of two p < n followed by every
other slope of 2p (the 1st, 3rd, ...), n - p of them (``slope_rule='paper'``). With
``slope_rule='geometric'`` m_h = 2^(-8h/n) for every n (FlexAttention's attention-gym).
``scale`` multiplies q . k only and defaults to 1/sqrt(d_head): the bias is added unscaled.

The paper defines ALiBi for causal language models (pos_j <= pos_i, where -|D| = pos_j - pos_i);
for attention without the causal mask the common extension penalises distance in both
directions (-|D|), while attention-gym's score_mod keeps the sign (``signed=True``): keys in the
future get a positive bias.

Citation: Press, Smith, Lewis (2022), Train Short, Test Long: Attention with Linear Biases
Enables Input Length Extrapolation, arXiv:2108.12409.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, final

import numpy as np
import sympy as sp

from relpos.spec import _conventions as cv
from relpos.spec._arith import Mode, array, constant
from relpos.spec._encoding import Case, Encoding, Identity, Reference
from relpos.spec._index import IndexFunction
from relpos.spec._pairs import PairFormula, Rows, keys, queries, relative
from relpos.spec._profiles import Profile, fixed
from relpos.spec._signature import Option, Problem, Tensor, check_bool, check_scale

__all__ = ["ALiBi", "paper_slopes"]

_P_i, _P_j = sp.symbols("pos_i pos_j", integer=True)
_n, _h = sp.symbols("n h", integer=True, positive=True)

q_i = sp.MatrixSymbol("q_i", 1, cv.d_head)
k_j = sp.MatrixSymbol("k_j", 1, cv.d_head)
m = sp.Symbol("m_h")
B = sp.Symbol("B_ij")

#: The bias multiplier of a pair, from positions, unsigned and signed.
BIAS_OF_POSITIONS: Final = -sp.Abs(_P_i - _P_j)
SIGNED_BIAS_OF_POSITIONS: Final = _P_j - _P_i
BIAS: Final = {
    False: BIAS_OF_POSITIONS.subs({_P_i: cv.pos_i, _P_j: cv.pos_j}),
    True: SIGNED_BIAS_OF_POSITIONS.subs({_P_i: cv.pos_i, _P_j: cv.pos_j}),
}
#: The logit. B_ij enters as a constant of the pair, so magnitudes see |B_ij|.
LOGIT: Final = cv.scale * q_i * k_j.T + sp.Matrix([[m * B]])
#: Slope h (1-based) of n heads in the geometric rule.
GEOMETRIC_SLOPE: Final = sp.Integer(2) ** (-8 * _h / _n)

_LOGIT = PairFormula(LOGIT, (cv.scale, q_i, k_j, m, B))
_BIAS = {
    False: IndexFunction(BIAS_OF_POSITIONS, (_P_i, _P_j)),
    True: IndexFunction(SIGNED_BIAS_OF_POSITIONS, (_P_i, _P_j)),
}
_CAUSAL = IndexFunction(sp.Piecewise((1, sp.Le(_P_j, _P_i)), (0, True)), (_P_i, _P_j))


def geometric_slopes(n: int) -> list[sp.Expr]:
    """2^(-8h/n) for h = 1..n, exact."""
    return [GEOMETRIC_SLOPE.subs({_h: h, _n: n}) for h in range(1, n + 1)]


def paper_slopes(n: int) -> list[sp.Expr]:
    """The paper's slopes for n heads, exact (its rule for head counts not a power of 2)."""
    if n & (n - 1) == 0:
        return geometric_slopes(n)
    p = 1 << (n.bit_length() - 1)
    return geometric_slopes(p) + paper_slopes(2 * p)[0::2][: n - p]


_SLOPE_RULES = {"paper": paper_slopes, "geometric": geometric_slopes}


def _check_rule(value: Any) -> str | None:
    return None if value in _SLOPE_RULES else "must be 'paper' or 'geometric'"


_PROFILES = (
    Profile(
        "alibi-paper",
        "alibi",
        "Press et al. 2022 as published (causal language models)",
        "arXiv:2108.12409, section 3; ofirpress/attention_with_linear_biases",
        options={"causal": fixed(True), "slope_rule": fixed("paper"), "scale": fixed(None)},
        exclude=("slopes",),
        notes=(
            "the slopes follow from the head count; the target computes them",
            "no position ids: the published code builds its bias for positions 0 .. L - 1; "
            "code that takes positions can be checked with --allow positions",
        ),
    ),
    Profile(
        "x-transformers",
        "alibi",
        "x-transformers AlibiPositionalBias",
        "lucidrains/x-transformers x_transformers.py (9252ed7)",
        options={"signed": fixed(False), "slope_rule": fixed("paper"), "scale": fixed(None)},
        exclude=("slopes",),
        notes=(
            "bias -|j - i| * slope added after the 1/sqrt(d_head) scaling; the paper's slopes "
            "(its rule for other head counts); fully masked rows give output 0",
            "no position ids in this profile: the bias is built from the lengths i and j "
            "(queries the last i of j keys); custom positions can be checked with "
            "--allow positions",
        ),
    ),
    Profile(
        "attention-gym",
        "alibi",
        "attention-gym alibi score_mod (FlexAttention)",
        "meta-pytorch/attention-gym attn_gym/mods/alibi.py (7fdb85d)",
        options={"signed": fixed(True), "slope_rule": fixed("geometric"), "scale": fixed(None)},
        exclude=("slopes",),
        notes=(
            "signed bias (kv_idx - q_idx) * 2^(-8(h+1)/H): future keys get a positive bias",
            "FlexAttention scales before score_mod, and gives fully masked rows output 0",
            "no position ids: score_mod sees q_idx and kv_idx, indices into the block; a "
            "score_mod that reads position tensors can be checked with --allow positions",
        ),
    ),
)


@final
class ALiBi(Encoding):
    """ALiBi: a per-head linear penalty on distance (see the module docstring)."""

    name = "alibi"
    large_dims = MappingProxyType({"n_head": 3})  # not a power of two: the paper's mixed rule
    title = "ALiBi (Press et al. 2022): attention with linear biases"
    summary = (
        "No position vectors: each head adds -m_h |pos_i - pos_j| to its logits, with fixed "
        "geometric slopes m_h."
    )
    references = (
        Reference(
            "Press, O., Smith, N. A., Lewis, M.",
            "Train Short, Test Long: Attention with Linear Biases Enables Input Length "
            "Extrapolation",
            2022,
            "2108.12409",
        ),
    )
    tensors = (
        cv.Q,
        cv.K,
        cv.V,
        Tensor(
            "slopes",
            (("n_head",),),
            "float",
            "m: one slope per head; None = the slope rule's slopes for n_head",
            required=False,
        ),
        cv.MASK,
        cv.Q_POS,
        cv.K_POS,
    )
    options = (
        Option("causal", "also mask keys after the query (pos_j > pos_i)", False, check_bool),
        Option(
            "signed",
            "bias m (pos_j - pos_i) instead of -m |pos_i - pos_j| (equal under causal)",
            False,
            check_bool,
        ),
        Option(
            "slope_rule",
            "'paper' (the paper's rule for any head count) or 'geometric' (2^(-8h/n) always); "
            "used when slopes is None",
            "paper",
            _check_rule,
        ),
        Option(
            "scale",
            "multiplies q . k only (the bias is added unscaled); None = 1/sqrt(d_head)",
            None,
            check_scale,
        ),
    )
    glossary = (
        ("q_i, k_j", "query i and key j of one head"),
        ("pos_i, pos_j", "absolute positions q_pos[b, i] and k_pos[b, j]; by default m + i and j"),
        ("m_h", "the slope of head h (slopes argument, or the slope rule)"),
        ("B_ij", "-|pos_i - pos_j| (signed: pos_j - pos_i)"),
        ("scale", "the scale argument, default 1/sqrt(d_head); multiplies q . k only"),
        ("e, alpha, o", "logits, probabilities, outputs"),
    )
    conventions = (
        "bias = -m_h |pos_i - pos_j|: a penalty growing with distance in both directions; "
        "signed=True keeps the sign, m_h (pos_j - pos_i)",
        "the bias is added after the scale (scale multiplies q . k only)",
        "slopes None = the slope rule: 'paper' is 2^(-8h/n) for a power of two n, else the "
        "slopes of the largest power of two p < n then every other slope of 2p",
        "causal=True masks pos_j > pos_i in addition to the mask argument",
    )
    differences = (
        "x-transformers AlibiPositionalBias: -|j - i| * slope, the paper's slopes; fully "
        "masked rows give 0 (profile x-transformers).",
        "attention-gym / FlexAttention: signed (kv_idx - q_idx) * 2^(-8(h+1)/H) for every H, "
        "not the paper's rule for H not a power of two (profile attention-gym).",
        "The paper (fairseq): causal only; q is pre-scaled by d^-1/2 and the bias added after.",
    )

    causal_options = MappingProxyType({"causal": True})
    metamorphic = ("translation", "masked_keys", "batch", "memory_rows")
    profiles = _PROFILES

    def option_values(self, dims: Mapping[str, int]) -> dict[str, list[Any]]:
        return {
            "causal": [False, True],
            "signed": [False, True],
            "slope_rule": ["paper", "geometric"],
            "scale": [None, 0.5, 1.0, 0.125],
        }

    def default_scale(self, problem: Problem) -> sp.Expr:
        return 1 / sp.sqrt(problem.dims["d_head"])

    def formulas(self) -> dict[str, sp.Basic]:
        return {
            **cv.position_formulas(),
            "bias": sp.Eq(B, BIAS_OF_POSITIONS, evaluate=False),
            "bias (signed)": sp.Eq(B, SIGNED_BIAS_OF_POSITIONS, evaluate=False),
            "slope (geometric, n heads)": sp.Eq(m, GEOMETRIC_SLOPE.subs(_h, sp.Symbol("h"))),
            "logit": sp.Eq(sp.Symbol("e_ij"), LOGIT, evaluate=False),
            **cv.attention_formulas("v"),
        }

    def slopes(self, problem: Problem, x: Mapping[str, Any], mode: Mode) -> np.ndarray:
        """m_h per head: the slopes argument, or the rule's exact slopes as constants."""
        if x.get("slopes") is not None:
            return np.asarray(x["slopes"])
        rule = _SLOPE_RULES[problem.options["slope_rule"]]
        return array([constant(s, mode) for s in rule(problem.dims["n_head"])], mode)

    def regions(self, problem: Problem) -> frozenset[str]:
        n = problem.dims["n_head"]
        if problem.tensors.get("slopes") is not None:
            return frozenset({"given slopes"})
        kind = "heads a power of two" if n & (n - 1) == 0 else "heads not a power of two"
        return frozenset({f"{problem.options['slope_rule']} rule, {kind}"})

    def logit_operands(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> tuple[PairFormula, tuple[Any, ...]]:
        d = problem.dims
        grid = _BIAS[problem.options["signed"]].grid(*cv.positions(problem))
        distinct, where = np.unique(grid, return_inverse=True)
        bias = array([[constant(int(b), mode)] for b in distinct], mode)  # (n, 1)
        slopes = self.slopes(problem, x, mode)
        given = "slopes" if x.get("slopes") is not None else None  # else rule constants
        return _LOGIT, (
            scale,
            queries(x["q"], d["klen"], "q"),
            keys(x["k"], d["qlen"], "k"),
            Rows.per_head(slopes, given),
            relative(bias, where.reshape(grid.shape)[:, None]),
        )

    def structural_mask(self, problem: Problem) -> np.ndarray | None:
        if not problem.options["causal"]:
            return None
        return _CAUSAL.grid(*cv.positions(problem)).astype(bool)

    def identities(self) -> list[Identity]:
        return _identities()

    def own_cases(self) -> list[Case]:
        base = {"bsz": 1, "n_head": 4, "qlen": 4, "mlen": 0, "d_head": 4}

        def case(name: str, seed: int, **kw: Any) -> Case:
            return Case(name, {**base, **kw.pop("dims", {})}, seed=seed, **kw)

        return [
            case("bidirectional", 1),
            case("causal", 2, options={"causal": True}),
            case("signed", 3, options={"signed": True}),
            case("signed_causal", 4, options={"signed": True, "causal": True}, dims={"mlen": 2}),
            case("memory", 5, dims={"qlen": 3, "mlen": 3}),
            case("three_heads", 6, dims={"n_head": 3}),
            case("six_heads_geometric", 7, options={"slope_rule": "geometric"}, dims={"n_head": 6}),
            case("twelve_heads", 8, dims={"n_head": 12, "qlen": 3}),
            case("one_head", 9, dims={"n_head": 1}),
            case("given_slopes", 10, include=("slopes",)),
            case("mask_padding", 11, mask="padding", dims={"bsz": 3}),
            case("mask_random", 12, mask="random", dims={"bsz": 2}),
            case("mask_fully_masked_row", 13, mask="fully_masked_row"),
            case("mask_broadcast", 14, mask="broadcast"),
            case("custom_scale", 15, options={"scale": 0.5}),
            case("d_head_1", 16, dims={"d_head": 1, "qlen": 6}),
            case("long", 17, dims={"qlen": 9, "mlen": 4, "n_head": 2}),
        ]


def _identities() -> list[Identity]:
    from relpos.spec._proofs import MAX_SIZE, all_of, exhaustive, sizes, symbolic_zero

    t = sp.Symbol("t", integer=True)

    def signed_equals_unsigned_when_causal(qlen: int, mlen: int) -> str | None:
        klen = qlen + mlen
        causal = _CAUSAL.layout(qlen, klen).astype(bool)
        unsigned, signed = (_BIAS[s].layout(qlen, klen) for s in (False, True))
        differ = causal & (unsigned != signed)
        return None if not differ.any() else f"differ at {np.argwhere(differ).tolist()}"

    def rule(n: int) -> str | None:
        slopes = paper_slopes(n)
        if len(slopes) != n or len(set(slopes)) != n:
            return f"{len(slopes)} slopes, {len(set(slopes))} distinct"
        if not all(0 < s < 1 for s in slopes):
            return f"a slope outside (0, 1): {slopes}"
        p = 1 << (n.bit_length() - 1)
        if slopes[:p] != geometric_slopes(p):
            return "the first p slopes are not those of p heads"
        return None

    def geometric(n: int) -> tuple[bool, str, str]:
        s = geometric_slopes(n)
        ratios = [sp.simplify(s[h + 1] / s[h] - s[0]) for h in range(n - 1)]
        ok = all(r == 0 for r in ratios) and sp.simplify(s[-1] - sp.Rational(1, 256)) == 0
        return ok, "symbolic", f"n={n}: start = ratio = 2^(-8/n), last slope 1/256"

    def powers_of_two() -> tuple[bool, str, str]:
        results = [geometric(n) for n in (1, 2, 4, 8, 16, 32, 64)]
        eight = paper_slopes(8) == [sp.Rational(1, 2**h) for h in range(1, 9)]
        ok = all(r[0] for r in results) and eight
        return ok, "symbolic", "; ".join(r[2] for r in results) + "; 8 heads: 1/2 ... 1/256"

    return [
        Identity(
            "translation invariance",
            "B depends on positions only through pos_i - pos_j (signed and unsigned)",
            lambda: all_of(
                *(
                    symbolic_zero(
                        expr.subs({_P_i: _P_i + t, _P_j: _P_j + t}, simultaneous=True) - expr,
                        f"B(pos + t) - B(pos), {what}",
                    )
                    for what, expr in (
                        ("unsigned", BIAS_OF_POSITIONS),
                        ("signed", SIGNED_BIAS_OF_POSITIONS),
                    )
                )
            ),
        ),
        Identity(
            "slopes for a power of two",
            "for n = 2^a heads the slopes are geometric, starting at and with ratio "
            "2^(-8/n), ending at 1/256 (8 heads: 1/2, 1/4, ..., 1/256)",
            powers_of_two,
        ),
        Identity(
            "slope rule for other head counts",
            "for every n the paper's rule gives n distinct slopes in (0, 1), the first p of "
            "them those of the largest power of two p <= n",
            lambda: exhaustive(((n,) for n in range(1, 65)), rule, "n = 1 .. 64 heads"),
        ),
        Identity(
            "signed = unsigned under the causal mask",
            "on every visible pair of a causal problem, pos_j - pos_i = -|pos_i - pos_j|",
            lambda: exhaustive(
                sizes(), signed_equals_unsigned_when_causal, f"qlen, mlen <= {MAX_SIZE}"
            ),
        ),
        Identity(
            "zero slopes = plain attention",
            "with m_h = 0 the logit is scale q_i k_j^T",
            lambda: symbolic_zero(LOGIT.subs(m, 0) - cv.scale * q_i * k_j.T, "logit"),
        ),
    ]
