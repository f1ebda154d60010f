"""Conventions shared by every encoding, stated once.

Shapes
    q: (bsz, n_head, qlen, d_head); k, v: (bsz, n_head, klen, d_head).
Positions
    mlen = klen - qlen >= 0 memory positions precede the queries: by default query i sits at
    absolute position pos_i = mlen + i, key j at pos_j = j. Position ids ``q_pos`` (bsz, qlen)
    and ``k_pos`` (bsz, klen), integers in [0, MAX_POSITION], replace the default per batch
    row: pos_i = q_pos[b, i], pos_j = k_pos[b, j] (a decoding step's offset, left padding,
    packed sequences, repeated positions). Causal masks compare positions: key j is visible
    to query i when pos_j <= pos_i.
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

from typing import Any

import numpy as np
import sympy as sp

from relpos.spec._pairs import size_symbol
from relpos.spec._signature import ArgumentError, Option, Problem, Tensor, check_scale

__all__ = [
    "CONVENTIONS",
    "K_POS",
    "MASK",
    "MAX_POSITION",
    "POSITION_TENSORS",
    "Q_POS",
    "SCALE",
    "P_i",
    "P_j",
    "Q",
    "attention_formulas",
    "check_positions",
    "d_head",
    "default_positions",
    "i",
    "j",
    "mlen",
    "pos_i",
    "pos_j",
    "position_formulas",
    "positions",
    "query_minus_key",
    "scale",
]

CONVENTIONS: tuple[str, ...] = (
    "q has shape (bsz, n_head, qlen, d_head); k and v have shape (bsz, n_head, klen, d_head).",
    "mlen = klen - qlen >= 0 memory positions precede the queries: by default query i sits at "
    "absolute position mlen + i, key j at position j.",
    "position ids q_pos (bsz, qlen) and k_pos (bsz, klen), integers in [0, 2^31 - 1], replace "
    "the default positions per batch row; causal masks then compare positions (key j visible "
    "to query i when k_pos[j] <= q_pos[i]).",
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
#: Absolute positions as symbols of their own: the index arithmetic of every encoding is
#: written over (P_i, P_j), and the default layout substitutes P_i = pos_i, P_j = pos_j.
P_i, P_j = sp.symbols("pos_i pos_j", integer=True)

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
#: The largest position id (int32's largest value): positions, and their differences, are
#: exact in every integer dtype an implementation may hold them in.
MAX_POSITION = 2**31 - 1
Q_POS = Tensor(
    "q_pos",
    (("bsz", "qlen"),),
    "int",
    "absolute position of every query, integers in [0, 2^31 - 1]; default mlen + i; any "
    "shape broadcastable to (bsz, qlen)",
    required=False,
    broadcast=True,
)
K_POS = Tensor(
    "k_pos",
    (("bsz", "klen"),),
    "int",
    "absolute position of every key, integers in [0, 2^31 - 1]; default j; any shape "
    "broadcastable to (bsz, klen)",
    required=False,
    broadcast=True,
)
#: The position ids, which every encoding takes (never drawn as an ordinary optional tensor).
POSITION_TENSORS: tuple[str, ...] = ("q_pos", "k_pos")

SCALE = Option(
    "scale", "multiplies the whole logit; None = the encoding's default", None, check_scale
)

_e = sp.IndexedBase("e")
_alpha = sp.IndexedBase("alpha")
_kk = sp.Symbol("k", integer=True, nonnegative=True)
_klen = sp.Symbol("klen", integer=True, positive=True)


def position_formulas() -> dict[str, sp.Basic]:
    """Where the positions come from (display form): the position ids, and their default."""
    b = sp.Symbol("b", integer=True, nonnegative=True)
    return {
        "positions": sp.Eq(
            sp.Tuple(P_i, P_j),
            sp.Tuple(sp.IndexedBase("q_pos")[b, i], sp.IndexedBase("k_pos")[b, j]),
        ),
        "default positions": sp.Eq(
            sp.Tuple(sp.IndexedBase("q_pos")[b, i], sp.IndexedBase("k_pos")[b, j]),
            sp.Tuple(pos_i, pos_j),
        ),
    }


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


def default_positions(qlen: int, klen: int) -> tuple[np.ndarray, np.ndarray]:
    """The default layout: q_pos = mlen + i and k_pos = j, each (1, length) int64."""
    mlen = klen - qlen
    return (mlen + np.arange(qlen, dtype=np.int64))[None], np.arange(klen, dtype=np.int64)[None]


def _host(value: Any) -> np.ndarray:
    """Position ids as a numpy array in their own dtype (a torch tensor from any device)."""
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)


def _ids(value: Any, length: int) -> np.ndarray:
    """Position ids as a (B, length) int64 array, B in {1, bsz} (broadcast shapes expanded)."""
    ids = np.atleast_2d(_host(value).astype(np.int64))
    return np.broadcast_to(ids, (ids.shape[0], length))


def positions(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """(q_pos, k_pos) of a validated call: (B, qlen) and (B, klen) int64, B in {1, bsz},
    the given position ids or the default layout."""
    d = problem.dims
    q_default, k_default = default_positions(d["qlen"], d["klen"])
    given_q, given_k = problem.tensors.get("q_pos"), problem.tensors.get("k_pos")
    q_pos = q_default if given_q is None else _ids(given_q, d["qlen"])
    k_pos = k_default if given_k is None else _ids(given_k, d["klen"])
    return q_pos, k_pos


def query_minus_key(problem: Problem) -> np.ndarray:
    """pos_i - pos_j of every pair, (B, qlen, klen) int64 with B in {1, bsz}."""
    q_pos, k_pos = positions(problem)
    return q_pos[:, :, None] - k_pos[:, None, :]


def check_positions(problem: Problem) -> None:
    """Position ids must be integers in [0, MAX_POSITION]: the first one outside is named.
    (Their dtype and shape are checked with every tensor's.)"""
    for name in POSITION_TENSORS:
        value = problem.tensors.get(name)
        if value is None:
            continue
        try:
            ids = _host(value)
        except Exception:  # a traced value (under jax.jit or vmap) holds no values to check
            continue
        bad = (ids < 0) | (ids > MAX_POSITION)  # in the given dtype: no wrap-around
        if bad.any():
            index = tuple(int(n) for n in np.argwhere(bad)[0])
            where = ", ".join(map(str, index))
            raise ArgumentError(
                name,
                f"{name}[{where}] = {int(ids[index])}",
                f"must hold positions in [0, {MAX_POSITION}]",
            )
