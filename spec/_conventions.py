"""Conventions shared by every encoding, stated once.

Shapes
    q: (bsz, n_head, qlen, d_head); k, v: (bsz, n_head, klen, d_head).
Positions
    mlen = klen - qlen >= 0 memory positions precede the queries: query i sits at absolute
    position pos_i = mlen + i, key j at pos_j = j.
Mask
    boolean, True = may attend, broadcastable (numpy rules) to (bsz, n_head, qlen, klen).
Scale
    ``scale`` multiplies the whole logit; ``None`` means the encoding's default
    (1/sqrt(d_head) for Shaw and Transformer-XL/XLNet).
Softmax
    over the visible keys of each query; a query row with no visible key has probabilities 0
    and output 0, never NaN (and gradients 0 through it).
"""

from __future__ import annotations

import sympy as sp

from relpos.spec._pairs import size_symbol
from relpos.spec._signature import Option, Tensor, check_scale

__all__ = [
    "CONVENTIONS",
    "MASK",
    "SCALE",
    "Q",
    "attention_formulas",
    "d_head",
    "i",
    "j",
    "mlen",
    "pos_i",
    "pos_j",
    "scale",
]

CONVENTIONS: tuple[str, ...] = (
    "q has shape (bsz, n_head, qlen, d_head); k and v have shape (bsz, n_head, klen, d_head).",
    "mlen = klen - qlen >= 0 memory positions precede the queries: query i sits at absolute "
    "position mlen + i, key j at position j.",
    "mask is boolean, True = may attend, broadcastable to (bsz, n_head, qlen, klen).",
    "scale multiplies the whole logit; None selects the encoding's default.",
    "softmax runs over the visible keys of each query; a query with no visible key gets "
    "probabilities 0 and output 0 (never NaN), and zero gradients through that row.",
)

# Index and size symbols, shared by every formula.
i, j = sp.symbols("i j", integer=True, nonnegative=True)
mlen = sp.Symbol("m", integer=True, nonnegative=True)
d_head = size_symbol("d_head")
scale = sp.Symbol("scale", positive=True)
pos_i = mlen + i
pos_j = j

Q = Tensor("q", (("bsz", "n_head", "qlen", "d_head"),), "float", "queries, one row per query")
K = Tensor(
    "k", (("bsz", "n_head", "klen", "d_head"),), "float", "keys, memory first (klen = mlen + qlen)"
)
V = Tensor("v", (("bsz", "n_head", "klen", "d_head"),), "float", "values, aligned with the keys")
MASK = Tensor(
    "mask",
    (("bsz", "n_head", "qlen", "klen"),),
    "bool",
    "True = may attend; any shape broadcastable to (bsz, n_head, qlen, klen)",
    required=False,
    broadcast=True,
)
SCALE = Option(
    "scale", "multiplies the whole logit; None = the encoding's default", None, check_scale
)

_e = sp.IndexedBase("e")
_alpha = sp.IndexedBase("alpha")
_kk = sp.Symbol("k", integer=True, nonnegative=True)
_klen = sp.Symbol("klen", integer=True, positive=True)


def attention_formulas(value_name: str) -> dict[str, sp.Basic]:
    """The softmax and output, common to every encoding (display form)."""
    visible = sp.Function("visible")
    v_ij = sp.IndexedBase(value_name)
    return {
        "probabilities": sp.Eq(
            _alpha[i, j],
            sp.Piecewise(
                (
                    sp.exp(_e[i, j])
                    / sp.Sum(visible(i, _kk) * sp.exp(_e[i, _kk]), (_kk, 0, _klen - 1)),
                    sp.Eq(visible(i, j), 1),
                ),
                (0, True),
            ),
            evaluate=False,
        ),
        "output": sp.Eq(
            sp.Symbol("o_i"),
            sp.Sum(_alpha[i, j] * v_ij[i, j], (j, 0, _klen - 1)),
            evaluate=False,
        ),
    }
