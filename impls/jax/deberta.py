"""DeBERTa disentangled attention in JAX: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show deberta``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True``. They
compose with ``jax.jit``, ``jax.grad`` and ``jax.vmap``. Rows (and DeBERTa-v2's log buckets)
are integers computed when a shape is first traced.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from relpos.impls._integers import deberta_rows, deberta_rows_of
from relpos.impls._validated import validated
from relpos.impls.jax._common import (
    accumulation_dtype,
    guard,
    host_distances,
    masked_softmax,
    with_masked_scores,
)

__all__ = ["VARIANTS", "deberta_fast", "deberta_reference"]

VARIANTS = {"reference": "deberta_reference", "fast": "deberta_fast"}

_STATIC = ("span", "max_position", "p2c_distance", "scale", "with_weights")


@lru_cache(maxsize=64)
def _rows(qlen: int, klen: int, span: int, max_position, p2c_distance: str):
    """(1, qlen, klen) rows of r_ij = pos_i - pos_j (c2p) and of the p2c distance (r_ji,
    the paper, or r_ij) at the default positions, numpy int."""
    table = np.array(deberta_rows(klen, span, max_position))
    r = (klen - qlen + np.arange(qlen))[:, None] - np.arange(klen)[None, :]
    c2p = table[r + klen - 1][None]
    return c2p, (table[klen - 1 - r][None] if p2c_distance == "r_ji" else c2p)


def _rows_at(r: np.ndarray, span: int, max_position, p2c_distance: str):
    """The same rows (B, qlen, klen) of the distances r of position ids, on the host."""
    c2p = deberta_rows_of(r, span, max_position)
    return c2p, (deberta_rows_of(-r, span, max_position) if p2c_distance == "r_ji" else c2p)


def _per_pair(table, rows):
    """table[rows] as (B, 1, qlen, klen, d) shared, or (B, n_head, qlen, klen, d) per head."""
    return table[rows][:, None] if table.ndim == 2 else jnp.swapaxes(table[:, rows], 0, 1)


def _table_matmul(x, table):
    if table.ndim == 2:
        return jnp.einsum("bhnd,rd->bhnr", x, table)
    return jnp.einsum("bhnd,hrd->bhnr", x, table)


@partial(jax.jit, static_argnames=_STATIC)
def _reference(
    q,
    k,
    v,
    pos_key,
    pos_query,
    mask,
    rows,
    *,
    span,
    max_position,
    p2c_distance,
    scale,
    with_weights,
):
    qlen, klen = q.shape[2], k.shape[2]
    acc = accumulation_dtype(q.dtype)
    c2p_rows, p2c_rows = rows or _rows(qlen, klen, span, max_position, p2c_distance)
    logits = jnp.einsum("bhid,bhjd->bhij", q, k).astype(acc)
    if pos_key is not None:
        logits = logits + jnp.einsum("bhid,bhijd->bhij", q, _per_pair(pos_key, c2p_rows))
    if pos_query is not None:
        logits = logits + jnp.einsum("bhjd,bhijd->bhij", k, _per_pair(pos_query, p2c_rows))
    logits = logits.astype(acc) * scale
    probs = masked_softmax(logits, mask)
    out = jnp.einsum("bhij,bhjd->bhid", probs, v.astype(acc)).astype(q.dtype)
    return (out, probs, with_masked_scores(logits, mask)) if with_weights else out


@partial(jax.jit, static_argnames=_STATIC)
def _fast(
    q,
    k,
    v,
    pos_key,
    pos_query,
    mask,
    rows,
    *,
    span,
    max_position,
    p2c_distance,
    scale,
    with_weights,
):
    bsz, n_head, qlen, _ = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)
    c2p_rows, p2c_rows = rows or _rows(qlen, klen, span, max_position, p2c_distance)
    scores = jnp.matmul(q, jnp.swapaxes(k, -1, -2))
    if pos_key is not None:
        index = jnp.broadcast_to(c2p_rows[:, None], (bsz, n_head, qlen, klen))
        scores = scores + jnp.take_along_axis(_table_matmul(q, pos_key), index, axis=-1)
    if pos_query is not None:
        p2c_t = jnp.swapaxes(p2c_rows, -1, -2)[:, None]
        index = jnp.broadcast_to(p2c_t, (bsz, n_head, klen, qlen))
        key_side = jnp.take_along_axis(_table_matmul(k, pos_query), index, axis=-1)
        scores = scores + jnp.swapaxes(key_side, -1, -2)
    scores = scores.astype(acc) * scale
    probs = masked_softmax(scores, mask)
    out = jnp.matmul(probs.astype(q.dtype), v)
    return (out, probs, with_masked_scores(scores, mask)) if with_weights else out


def _call(core, problem, with_weights):
    t, o = problem.tensors, problem.options
    tables = ("pos_key", "pos_query")
    terms = 1 + sum(t[name] is not None for name in tables)
    scale = o["scale"]
    r = host_distances(problem)
    span, max_position = int(o["span"]), o["max_position"]
    max_position = None if max_position is None else int(max_position)
    rows = None if r is None else _rows_at(r, span, max_position, str(o["p2c_distance"]))
    return core(
        *(t[name] for name in ("q", "k", "v", *tables, "mask")),
        rows,
        span=int(o["span"]),
        max_position=None if o["max_position"] is None else int(o["max_position"]),
        p2c_distance=str(o["p2c_distance"]),
        scale=1 / math.sqrt(problem.dims["d_head"] * terms) if scale is None else float(scale),
        with_weights=bool(with_weights),
    )


@validated("deberta")
@guard
def deberta_reference(
    problem,
    q,
    k,
    v,
    *,
    pos_key=None,
    pos_query=None,
    mask=None,
    q_pos=None,
    k_pos=None,
    span=None,
    max_position=None,
    p2c_distance="r_ji",
    scale=None,
    with_weights=False,
):
    """The definition written plainly: both relative tables gathered per pair."""
    return _call(_reference, problem, with_weights)


@validated("deberta")
@guard
def deberta_fast(
    problem,
    q,
    k,
    v,
    *,
    pos_key=None,
    pos_query=None,
    mask=None,
    q_pos=None,
    k_pos=None,
    span=None,
    max_position=None,
    p2c_distance="r_ji",
    scale=None,
    with_weights=False,
):
    """q K^r^T and k Q^r^T products gathered by row; no (qlen, klen, d_head) tensor."""
    return _call(_fast, problem, with_weights)
