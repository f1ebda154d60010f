"""Shaw et al. 2018: relative position representations with clipped distances.

Formula (per batch element and head)::

    c_ij  = clip(pos_j - pos_i, p_min, p_max) - p_min            (table row, 0 <= c_ij < P)
    e_ij  = scale * q_i . (k_j + a^K[c_ij])   [+ scale * k_j . a^K[c_ij]  with key_query]
    V_ij  = v_j + a^V[c_ij]                   (a^V = 0 without rel_v: the key-only variant)
    o_i   = sum_j alpha_ij V_ij,  alpha = softmax over visible keys

Symbols: ``rel_k`` = a^K and ``rel_v`` = a^V are tables of P = p_max - p_min + 1 rows of
width d_head, shared by all heads (P, d_head) or one per head (n_head, P, d_head);
``clip = (p_min, p_max)`` with p_min <= 0 <= p_max (the paper's k is (-k, k)); ``scale``
defaults to 1/sqrt(d_head). ``key_query`` adds k_j . a^K[c_ij] (Huang et al. 2020, "method 4").

Conventions: the distance is key position minus query position (j - i with memory offset),
row c = 0 holds the most negative clipped distance p_min.

Citation: Shaw, Uszkoreit, Vaswani (2018), Self-Attention with Relative Position
Representations, arXiv:1803.02155; Huang, Liang, Xu, Xiang (2020), Improve Transformer Models
with Better Relative Position Embeddings, arXiv:2009.13658.

How other code differs: tensor2tensor matches (j - i, symmetric clip, separate key and value
tables shared by heads, q pre-scaled); Hugging Face BERT ``relative_key(_query)`` (4.x) uses
i - j, no clipping (IndexError past the table), rows offset by P - 1, no value term;
Hugging Face Wav2Vec2-BERT (5.x) uses j - i with an asymmetric clamp (64 past, 8 future),
key-only; the Music Transformer skew zeroes distances beyond the table instead of clipping.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, final

import numpy as np
import sympy as sp

from relpos.spec import _conventions as cv
from relpos.spec._arith import Mode
from relpos.spec._encoding import Case, Encoding, Identity, Reference
from relpos.spec._index import IndexFunction
from relpos.spec._pairs import PairFormula, keys, queries, relative
from relpos.spec._profiles import Axis, NotApplicable, Profile, Value, fixed
from relpos.spec._signature import Option, Problem, Tensor, check_bool

__all__ = ["Shaw"]

p_min, p_max = sp.symbols("p_min p_max", integer=True)
_P_i, _P_j = sp.symbols("pos_i pos_j", integer=True)

# Row vectors (1 x d_head) of one pair.
q_i = sp.MatrixSymbol("q_i", 1, cv.d_head)
k_j = sp.MatrixSymbol("k_j", 1, cv.d_head)
v_j = sp.MatrixSymbol("v_j", 1, cv.d_head)
aK = sp.MatrixSymbol("a^K_c", 1, cv.d_head)
aV = sp.MatrixSymbol("a^V_c", 1, cv.d_head)

#: The clipped table row as a function of the two positions, then of (i, j, mlen).
CLIP_ROW_OF_POSITIONS: Final = sp.Min(sp.Max(_P_j - _P_i, p_min), p_max) - p_min
CLIP_ROW: Final = CLIP_ROW_OF_POSITIONS.subs({_P_i: cv.pos_i, _P_j: cv.pos_j})
#: Scores, with and without the key-query term.
LOGIT: Final = cv.scale * q_i * (k_j + aK).T
LOGIT_KEY_QUERY: Final = LOGIT + cv.scale * k_j * aK.T
#: The value a pair contributes.
VALUE: Final = v_j + aV

_ROW = IndexFunction(CLIP_ROW_OF_POSITIONS, (_P_i, _P_j, p_min, p_max))
_LOGIT = PairFormula(LOGIT, (cv.scale, q_i, k_j, aK))
_LOGIT_KQ = PairFormula(LOGIT_KEY_QUERY, (cv.scale, q_i, k_j, aK))
_VALUE = PairFormula(VALUE, (v_j, aV), vector=True)
_VALUE_KEY_ONLY = PairFormula(VALUE.subs(aV, sp.ZeroMatrix(1, cv.d_head)), (v_j,), vector=True)


def _check_clip(value: Any) -> str | None:
    ok = (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(p, int) and not isinstance(p, bool) for p in value)
        and value[0] <= 0 <= value[1]
    )
    return None if ok else "must be a pair (p_min, p_max) of integers with p_min <= 0 <= p_max"


_TABLE_LAYOUTS = (("P", "d_head"), ("n_head", "P", "d_head"))


# -- library conventions -------------------------------------------------------------------
# Library tables: rows ordered by the library's own distance d' (d' = j - i, or i - j), clip
# range (lo, hi) of d'. Spec tables: distance j - i, row c = clip(j - i) - p_min.

_TABLES = ("rel_k", "rel_v")


def _reverse(args: Mapping[str, Any], *, negate_clip: bool) -> dict[str, Any]:
    out = dict(args)
    for name in _TABLES:
        if out.get(name) is not None:
            out[name] = np.flip(out[name], axis=-2).copy()
    if negate_clip:
        lo, hi = out["clip"]
        out["clip"] = (-hi, -lo)
    return out


def _covering(args: Mapping[str, Any], symmetric: bool) -> tuple[int, int]:
    qlen, klen = args["q"].shape[2], args["k"].shape[2]
    lo, hi = args["clip"]
    lo, hi = min(lo, -(klen - 1)), max(hi, qlen - 1)
    return (-max(-lo, hi), max(-lo, hi)) if symmetric else (lo, hi)


def _extend(args: Mapping[str, Any], to: tuple[int, int], fill: str) -> dict[str, Any]:
    """Tables widened to the clip range ``to``: new rows copy the edge rows ("edge": the same
    clipped values) or are zero ("zero")."""
    lo, hi = args["clip"]
    out = dict(args, clip=to)
    for name in _TABLES:
        table = args.get(name)
        if table is None:
            continue
        before, after = lo - to[0], to[1] - hi
        if fill == "edge":
            pad = [(0, 0)] * (table.ndim - 2) + [(before, after), (0, 0)]
            out[name] = np.pad(table, pad, mode="edge")
        else:
            shape = table.shape[:-2]
            out[name] = np.concatenate(
                [
                    np.zeros((*shape, before, table.shape[-1])),
                    table,
                    np.zeros((*shape, after, table.shape[-1])),
                ],
                axis=-2,
            )
    return out


def _symmetric_only(args: Mapping[str, Any]) -> dict[str, Any]:
    lo, hi = args["clip"]
    if lo != -hi:
        raise NotApplicable(f"clip={tuple(args['clip'])} is not symmetric")
    return dict(args)


def _as_symmetric(args: Mapping[str, Any]) -> dict[str, Any]:
    lo, hi = args["clip"]
    return dict(args) if lo == -hi else _extend(args, _covering(args, True), "edge")


def _covered_only(args: Mapping[str, Any]) -> dict[str, Any]:
    if not _covers(args):
        raise NotApplicable(f"clip={tuple(args['clip'])} does not cover every distance")
    return dict(args)


def _covers(args: Mapping[str, Any]) -> bool:
    lo, hi = args["clip"]
    return lo <= -(args["k"].shape[2] - 1) and hi >= args["q"].shape[2] - 1


def _terms(key_query: bool) -> Any:
    def to_spec(args: Mapping[str, Any]) -> dict[str, Any]:
        return {**{k: v for k, v in args.items() if k != "rel_v"}, "key_query": key_query}

    return to_spec


def _symmetric_clips(dims: Mapping[str, int], candidates: list[Any]) -> list[Any]:
    return [c for c in candidates if c[0] == -c[1]]


_AXES = (
    Axis(
        "distance",
        "which distance indexes the table",
        (
            Value("key_minus_query", "j - i (key position minus query position)"),
            Value(
                "query_minus_key",
                "i - j: the table is the spec's reversed and the clip range negated",
                lambda a: _reverse(a, negate_clip=True),
                changes=_TABLES,
                permutes=True,
            ),
        ),
    ),
    Axis(
        "rows",
        "how table rows are ordered by the library's own distance",
        (
            Value("ascending", "row 0 = the most negative distance (row = d - lo)"),
            Value(
                "descending",
                "row 0 = the most positive distance (row = hi - d)",
                lambda a: _reverse(a, negate_clip=False),
                changes=_TABLES,
                permutes=True,
            ),
        ),
    ),
    Axis(
        "clipping",
        "what happens to distances beyond the table",
        (
            Value("asymmetric", "clipped to [p_min, p_max], any p_min <= 0 <= p_max"),
            Value(
                "symmetric",
                "clipped to [-k, k]",
                _symmetric_only,
                _as_symmetric,
                options={"clip": _symmetric_clips},
                changes=_TABLES,
            ),
            Value(
                "none",
                "no clip: the table must cover every distance (an error past it)",
                _covered_only,
                lambda a: _extend(a, _covering(a, True), "edge"),
                changes=_TABLES,
            ),
            Value(
                "zero",
                "distances past the table get a zero vector (Music Transformer)",
                lambda a: _extend(a, _covering(a, False), "zero"),
                lambda a: _extend(a, _covering(a, False), "edge"),
                changes=_TABLES,
            ),
        ),
    ),
    Axis(
        "terms",
        "which relative terms the library computes",
        (
            Value("any", "as given: a^V when rel_v is given, key_query as given"),
            Value(
                "key_value",
                "q.a^K in the logit and a^V in the output (the paper)",
                options={"key_query": fixed(False)},
                include=("rel_v",),
            ),
            Value(
                "key",
                "q.a^K only, no value term",
                _terms(False),
                options={"key_query": fixed(False)},
                exclude=("rel_v",),
            ),
            Value(
                "key_query",
                "q.a^K + k.a^K, no value term (Huang et al. 2020)",
                _terms(True),
                options={"key_query": fixed(True)},
                exclude=("rel_v",),
            ),
        ),
    ),
)

_SHARED = {"rel_k": 0, "rel_v": 0}
_DEFAULT_SCALE = {"scale": fixed(None)}
_PROFILES = (
    Profile(
        "shaw-paper",
        "shaw",
        "Shaw et al. 2018 as published",
        "arXiv:1803.02155, section 3",
        {"clipping": "symmetric", "terms": "key_value"},
        options=_DEFAULT_SCALE,
        layouts=_SHARED,
        memory=False,
        notes=(
            "tables shared by heads; the paper has no memory and no masks, so fully masked "
            "rows follow the spec",
            "no position ids: the paper's distances are differences of sequence indices",
        ),
    ),
    Profile(
        "t2t",
        "shaw",
        "tensor2tensor dot_product_attention_relative",
        "tensorflow/tensor2tensor common_attention.py (bafdc1b)",
        {"clipping": "symmetric", "terms": "key_value", "masked_rows": "uniform"},
        options=_DEFAULT_SCALE,
        layouts=_SHARED,
        notes=(
            "queries are the last qlen of klen positions (memory); q is pre-multiplied by "
            "d^-1/2, which equals the spec's scale",
            "masks are additive -1e9 biases, so a fully masked row is (nearly) uniform",
            "no position ids: the distance matrix is generated from the lengths",
        ),
    ),
    Profile(
        "hf-bert-relative-key",
        "shaw",
        "Hugging Face BERT-family relative_key (transformers 4.x)",
        "transformers 4.57 models/bert/modeling_bert.py BertSelfAttention",
        {
            "distance": "query_minus_key",
            "clipping": "none",
            "terms": "key",
            "masked_rows": "uniform",
        },
        options=_DEFAULT_SCALE,
        layouts=_SHARED,
        memory=False,
        notes=(
            "table of 2P - 1 rows, row = i - j + P - 1 (P = max_position_embeddings); no clip, "
            "an IndexError past the table",
            "additive mask (1 - attention_mask) * finfo.min: fully masked rows are uniform",
            "no memory: with a cache (use_cache) every query is placed at key_length - 1, "
            "which is right for one decoded query only; no position ids reach the distances",
        ),
    ),
    Profile(
        "hf-bert-relative-key-query",
        "shaw",
        "Hugging Face BERT-family relative_key_query (transformers 4.x)",
        "transformers 4.57 models/bert/modeling_bert.py BertSelfAttention",
        {
            "distance": "query_minus_key",
            "clipping": "none",
            "terms": "key_query",
            "masked_rows": "uniform",
        },
        options=_DEFAULT_SCALE,
        layouts=_SHARED,
        memory=False,
        notes=(
            "as hf-bert-relative-key, plus k_j . D[i - j] in the logit",
            "no memory and no position ids, as hf-bert-relative-key",
        ),
    ),
    Profile(
        "hf-wav2vec2-bert-relative-key",
        "shaw",
        "Hugging Face Wav2Vec2-BERT / SeamlessM4Tv2 relative_key (transformers 5.x)",
        "transformers 5.24 models/wav2vec2_bert/modeling_wav2vec2_bert.py",
        {"terms": "key", "masked_rows": "uniform"},
        options=_DEFAULT_SCALE,
        layouts=_SHARED,
        memory=False,
        notes=(
            "distance j - i clamped to [-left_max, right_max] (64, 8 by default), row = "
            "clamp + left_max: the spec's clip (-left_max, right_max)",
            "self-attention only (qlen = klen); additive mask",
            "no memory and no position ids: the conformer encoder has no cache, and its "
            "distances come from arange(qlen)",
        ),
    ),
)


@final
class Shaw(Encoding):
    """Shaw et al. 2018 clipped relative keys and values (see the module docstring)."""

    name = "shaw"
    large_options = MappingProxyType({"clip": (-300, 100)})
    title = "Shaw et al. 2018: clipped relative position representations"
    summary = (
        "Learned vectors for each clipped relative distance, added to the keys inside the "
        "logit and to the values inside the output."
    )
    references = (
        Reference(
            "Shaw, P., Uszkoreit, J., Vaswani, A.",
            "Self-Attention with Relative Position Representations",
            2018,
            "1803.02155",
        ),
        Reference(
            "Huang, Z., Liang, D., Xu, P., Xiang, B.",
            "Improve Transformer Models with Better Relative Position Embeddings",
            2020,
            "2009.13658",
        ),
    )
    tensors = (
        cv.Q,
        cv.K,
        cv.V,
        Tensor(
            "rel_k",
            _TABLE_LAYOUTS,
            "float",
            "a^K: one row per clipped distance, row c <-> distance p_min + c",
        ),
        Tensor(
            "rel_v",
            _TABLE_LAYOUTS,
            "float",
            "a^V: value table, same layout as rel_k; None for the key-only variant",
            required=False,
        ),
        cv.MASK,
        cv.Q_POS,
        cv.K_POS,
    )
    options = (
        Option(
            "clip",
            "(p_min, p_max): the clip range of pos_j - pos_i, p_min <= 0 <= p_max",
            None,
            _check_clip,
        ),
        Option(
            "key_query",
            "add the key-query term k_j . a^K[c_ij] (Huang et al. 2020)",
            False,
            check_bool,
        ),
        cv.SCALE,
    )
    glossary = (
        ("q_i, k_j, v_j", "query i, key j, value j of one head (rows of q, k, v)"),
        ("pos_i, pos_j", "absolute positions q_pos[b, i] and k_pos[b, j]; by default m + i and j"),
        ("m", "mlen, the number of memory positions before the queries"),
        ("p_min, p_max", "the clip range (clip argument); P = p_max - p_min + 1 table rows"),
        ("c", "c_ij, the table row of pair (i, j)"),
        ("a^K_c, a^V_c", "row c of rel_k and rel_v (of head h for per-head tables)"),
        ("scale", "the scale argument, default 1/sqrt(d_head)"),
        ("e, alpha, o", "logits, probabilities, outputs"),
        ("V", "the value pair (i, j) contributes"),
    )
    conventions = (
        "distance = pos_j - pos_i (key minus query), clipped to [p_min, p_max]",
        "table row c = clipped distance - p_min: row 0 is the most negative distance",
        "the scale multiplies both the content and the relative terms",
        "rel_v absent means a^V = 0 (the key-only variant)",
    )
    differences = (
        "tensor2tensor: same sign, symmetric clip, q pre-multiplied by d^-1/2, tables shared "
        "by heads (profile t2t).",
        "Hugging Face BERT relative_key / relative_key_query (4.x): distance i - j, no clip "
        "(IndexError past the table), row = i - j + P - 1, no value term.",
        "Hugging Face Wav2Vec2-BERT relative_key (5.x): distance j - i clamped to "
        "[-left_max, right_max] (64, 8), row = clamp + left_max, key only.",
        "Music Transformer (t2t v2): out-of-range distances get a zero vector, not the edge row.",
    )

    optional_groups = (("rel_v",),)
    metamorphic = (
        "translation",
        "masked_keys",
        "batch",
        "memory_rows",
        "zero_tables",
        "wide_range",
    )
    zero_tables = ("rel_k", "rel_v")
    axes = _AXES
    profiles = _PROFILES

    def option_values(self, dims: Mapping[str, int]) -> dict[str, list[Any]]:
        qlen, klen = dims["qlen"], dims["qlen"] + dims["mlen"]
        clips = [
            (0, 0),
            (-1, 1),
            (-2, 2),
            (-1, 0),
            (0, 1),
            (-3, 1),
            (-1, 3),
            (-2, 0),
            (0, 2),
            (-(klen - 1), qlen - 1),
            (-(klen + 2), qlen + 2),
            (-16, 16),
            (-5, 2),
        ]
        if klen > 48:  # clips inside a long range: rows clipped on both sides, far apart
            clips += [(-64, 64), (-(klen // 3), max(1, qlen // 3))]
        return {
            "clip": list(dict.fromkeys(clips)),
            "key_query": [False, True],
            "scale": [None, 0.5, 1.0, 0.125],
        }

    def widen(
        self, args: Mapping[str, Any], extra: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        qlen, klen = args["q"].shape[2], args["k"].shape[2]
        lo, hi = args["clip"]
        new_lo, new_hi = min(lo, -(klen - 1) - extra), max(hi, qlen - 1 + extra)
        out = dict(args, clip=(new_lo, new_hi))
        for name in ("rel_k", "rel_v"):
            table = args.get(name)
            if table is None:
                continue
            before = rng.standard_normal((*table.shape[:-2], lo - new_lo, table.shape[-1]))
            after = rng.standard_normal((*table.shape[:-2], new_hi - hi, table.shape[-1]))
            # The edge rows keep their meaning only if the range already covered every
            # distance; the property draws its inputs that way.
            out[name] = np.concatenate([before, table, after], axis=-2)
        return out

    def derived_dims(self, options: Mapping[str, Any]) -> dict[str, int]:
        lo, hi = options["clip"]
        return {"P": hi - lo + 1}

    def dim_note(self, dim: str, options: Mapping[str, Any]) -> str | None:
        return f"P = p_max - p_min + 1 for clip={tuple(options['clip'])}" if dim == "P" else None

    def default_scale(self, problem: Problem) -> sp.Expr:
        return 1 / sp.sqrt(problem.dims["d_head"])

    def formulas(self) -> dict[str, sp.Basic]:
        c = sp.Symbol("c_ij")
        return {
            **cv.position_formulas(),
            "table row": sp.Eq(c, CLIP_ROW_OF_POSITIONS, evaluate=False),
            "logit": sp.Eq(sp.Symbol("e_ij"), LOGIT, evaluate=False),
            "logit (key_query)": sp.Eq(sp.Symbol("e_ij"), LOGIT_KEY_QUERY, evaluate=False),
            "pair value": sp.Eq(sp.Symbol("V_ij"), VALUE, evaluate=False),
            **cv.attention_formulas("V"),
        }

    def row_index(self, problem: Problem) -> np.ndarray:
        """c_ij for every (b, i, j), exact integers: (B, qlen, klen), B in {1, bsz}."""
        lo, hi = problem.options["clip"]
        return _ROW.grid(*cv.positions(problem), lo, hi)

    def table_index(self, problem: Problem) -> tuple[str, np.ndarray]:
        return "clip row c_ij", self.row_index(problem)

    def regions(self, problem: Problem) -> frozenset[str]:
        lo, hi = problem.options["clip"]
        distance = -np.unique(cv.query_minus_key(problem))  # pos_j - pos_i
        found = {"clipped below"} if (distance < lo).any() else set()
        found |= {"clipped above"} if (distance > hi).any() else set()
        inside = ((distance >= lo) & (distance <= hi)).any()
        return frozenset(found | ({"inside the clip"} if inside else set()))

    def logit_operands(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> tuple[PairFormula, tuple[Any, ...]]:
        qlen, klen = problem.dims["qlen"], problem.dims["klen"]
        formula = _LOGIT_KQ if problem.options["key_query"] else _LOGIT
        rel_k = relative(x["rel_k"], self.row_index(problem)[:, None], "rel_k")
        return formula, (scale, queries(x["q"], klen, "q"), keys(x["k"], qlen, "k"), rel_k)

    def value_operands(
        self, problem: Problem, x: Mapping[str, Any], mode: Mode
    ) -> tuple[PairFormula, tuple[Any, ...]]:
        v = keys(x["v"], problem.dims["qlen"], "v")
        if x.get("rel_v") is None:
            return _VALUE_KEY_ONLY, (v,)
        return _VALUE, (v, relative(x["rel_v"], self.row_index(problem)[:, None], "rel_v"))

    def identities(self) -> list[Identity]:
        return _identities()

    def own_cases(self) -> list[Case]:
        base = {"bsz": 1, "n_head": 2, "qlen": 4, "mlen": 0, "d_head": 4}
        kv = ("rel_v",)

        def case(name: str, seed: int, clip: tuple[int, int] = (-2, 2), **kw: Any) -> Case:
            dims = {**base, **kw.pop("dims", {})}
            options = {"clip": clip, **kw.pop("options", {})}
            return Case(name, dims, options, seed=seed, **kw)

        return [
            case("symmetric", 1, include=kv),
            case("memory", 2, include=kv, dims={"qlen": 3, "mlen": 2}),
            case("memory_single_query", 3, include=kv, dims={"qlen": 1, "mlen": 5}),
            case("asymmetric", 4, (-3, 1), include=kv, dims={"qlen": 5}),
            case("future_only", 5, (0, 2), include=kv),
            case("past_only", 6, (-2, 0), include=kv, dims={"mlen": 2}),
            case("degenerate", 7, (0, 0), include=kv),
            case("wider_than_sequence", 8, (-10, 10), include=kv, dims={"mlen": 1}),
            case("narrow", 9, (-1, 1), include=kv, dims={"qlen": 6}),
            case(
                "per_head_tables",
                10,
                include=kv,
                layouts={"rel_k": 1, "rel_v": 1},
                dims={"n_head": 3},
            ),
            case("per_head_keys_shared_values", 11, include=kv, layouts={"rel_k": 1}),
            case("key_only", 12, dims={"mlen": 1}),
            case("key_query", 13, include=kv, options={"key_query": True}),
            case(
                "key_query_key_only", 14, (-3, 2), options={"key_query": True}, layouts={"rel_k": 1}
            ),
            case("mask_causal", 15, include=kv, mask="causal", dims={"mlen": 2}),
            case("mask_padding", 16, include=kv, mask="padding", dims={"bsz": 3}),
            case("mask_random", 17, include=kv, mask="random", dims={"bsz": 2}),
            case("mask_fully_masked_row", 18, include=kv, mask="fully_masked_row"),
            case("mask_broadcast", 19, include=kv, mask="broadcast", dims={"n_head": 3}),
            case("custom_scale", 20, include=kv, options={"scale": 0.5}),
            case(
                "batch_and_heads",
                21,
                (-4, 3),
                include=kv,
                dims={"bsz": 2, "n_head": 3, "qlen": 5, "mlen": 3},
            ),
            case("d_head_1", 22, include=kv, dims={"d_head": 1, "qlen": 6}),
            case("d_head_8", 23, (-5, 5), include=kv, dims={"d_head": 8, "mlen": 2}),
        ]


def _clip_ranges(max_size: int) -> list[tuple[int, int]]:
    return [(lo, hi) for lo in range(-max_size, 1) for hi in range(0, max_size + 1)]


def _identities() -> list[Identity]:
    from relpos.spec._proofs import MAX_SIZE, all_of, exhaustive, sizes, symbolic_zero

    clips = _clip_ranges(MAX_SIZE)

    def grid(qlen: int, mlen: int, clip: tuple[int, int]) -> np.ndarray:
        return _ROW.layout(qlen, qlen + mlen, *clip)

    def in_table(qlen: int, mlen: int, lo: int, hi: int) -> str | None:
        rows = grid(qlen, mlen, (lo, hi))
        return None if rows.min() >= 0 and rows.max() <= hi - lo else f"rows {rows.tolist()}"

    def wide_equals_unclipped(qlen: int, mlen: int, lo: int, hi: int) -> str | None:
        klen = qlen + mlen
        distance = np.arange(klen)[None, :] - (mlen + np.arange(qlen))[:, None]
        unclipped = bool((grid(qlen, mlen, (lo, hi)) + lo == distance).all())
        wide = lo <= int(distance.min()) and hi >= int(distance.max())
        return None if unclipped == wide else f"unclipped={unclipped} but wide={wide}"

    def band(qlen: int, mlen: int, lo: int, hi: int) -> str | None:
        # The fast value term: row 0 for j <= pos_i + p_min, row P-1 for j >= pos_i + p_max,
        # and the band row j - pos_i - p_min strictly between.
        rows = grid(qlen, mlen, (lo, hi))
        for a in range(qlen):
            for b in range(qlen + mlen):
                d = b - (mlen + a)
                want = 0 if d <= lo else (hi - lo if d >= hi else d - lo)
                if rows[a, b] != want:
                    return f"c[{a},{b}]={rows[a, b]}, band structure says {want}"
        return None

    cases = [(q, m, lo, hi) for q, m in sizes() for lo, hi in clips]
    t = sp.Symbol("t", integer=True)
    zero = sp.ZeroMatrix(1, cv.d_head)
    qm = sp.MatrixSymbol("q", sp.Symbol("qlen", integer=True, positive=True), cv.d_head)
    table = sp.MatrixSymbol("A", sp.Symbol("P", integer=True, positive=True), cv.d_head)
    row, col = sp.symbols("i c", integer=True, nonnegative=True)

    def gather_matches_sum() -> tuple[bool, str, str]:
        # SymPy expands the matrix element of the product into its defining sum; compare it
        # with the direct sum over the same summation variable.
        gathered = (qm * table.T)[row, col].doit()
        ((d, _, _),) = gathered.limits
        direct = sp.Sum(qm[row, d] * table[col, d], (d, 0, cv.d_head - 1))
        ok, _, detail = symbolic_zero(gathered - direct, "(q A^T)[i, c] - sum_d q[i, d] A[c, d]")
        index_ok, _, index_detail = exhaustive(cases, in_table, "0 <= c_ij < P")
        return ok and index_ok, "symbolic + exhaustive", f"{detail}; {index_detail}"

    return [
        Identity(
            "clip row in table",
            "0 <= c_ij <= P - 1 for every pair, so every gather is inside the table",
            lambda: exhaustive(cases, in_table, f"qlen, mlen <= {MAX_SIZE}, every clip range"),
        ),
        Identity(
            "(d) wide clip = unclipped",
            "c_ij + p_min = pos_j - pos_i for every pair exactly when [p_min, p_max] covers "
            "every distance of the sequence",
            lambda: exhaustive(
                cases, wide_equals_unclipped, f"qlen, mlen <= {MAX_SIZE}, every clip range"
            ),
        ),
        Identity(
            "(e) zero tables = plain attention",
            "with a^K = a^V = 0 the logit is scale q_i k_j^T (also with key_query) and the "
            "pair value is v_j",
            lambda: all_of(
                symbolic_zero(LOGIT.subs(aK, zero) - cv.scale * q_i * k_j.T, "logit"),
                symbolic_zero(
                    LOGIT_KEY_QUERY.subs(aK, zero) - cv.scale * q_i * k_j.T, "key_query logit"
                ),
                symbolic_zero(VALUE.subs(aV, zero) - v_j, "value"),
            ),
        ),
        Identity(
            "(f) translation invariance",
            "c_ij depends on positions only through pos_j - pos_i: shifting both by t leaves "
            "it unchanged",
            lambda: symbolic_zero(
                CLIP_ROW_OF_POSITIONS.subs({_P_i: _P_i + t, _P_j: _P_j + t}, simultaneous=True)
                - CLIP_ROW_OF_POSITIONS,
                "c(pos_i + t, pos_j + t) - c(pos_i, pos_j)",
            ),
        ),
        Identity(
            "(g) gather by distance = direct sum",
            "(q rel_k^T)[i, c_ij] = sum_d q[i, d] rel_k[c_ij, d], and c_ij is a valid column",
            gather_matches_sum,
        ),
        Identity(
            "band structure of c",
            "c_ij = 0 for pos_j - pos_i <= p_min, P - 1 for >= p_max, pos_j - pos_i - p_min "
            "between (the value term as a band plus two tail sums)",
            lambda: exhaustive(cases, band, f"qlen, mlen <= {MAX_SIZE}, every clip range"),
        ),
    ]
