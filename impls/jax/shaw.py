"""Shaw et al. 2018 relative attention in JAX: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show shaw``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True``. They
compose with ``jax.jit``, ``jax.grad`` and ``jax.vmap``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from relpos.impls._validated import validated
from relpos.impls.jax._common import (
    accumulation_dtype,
    default_scale,
    grid_positions,
    guard,
    masked_softmax,
    position_ids,
    with_masked_scores,
)

__all__ = ["VARIANTS", "band_sums", "row_sums", "shaw_fast", "shaw_reference"]

VARIANTS = {"reference": "shaw_reference", "fast": "shaw_fast"}

_STATIC = ("clip", "key_query", "scale", "with_weights")


def clipped_rows(q_pos: jax.Array, k_pos: jax.Array, clip: tuple[int, int]) -> jax.Array:
    """c_ij = clip(pos_j - pos_i, p_min, p_max) - p_min as a (B, qlen, klen) int array,
    from positions q_pos (B, qlen) and k_pos (B, klen)."""
    distance = k_pos[:, None, :] - q_pos[:, :, None]
    return jnp.clip(distance, clip[0], clip[1]) - clip[0]


def row_sums(probs: jax.Array, rows: jax.Array, n_rows: int) -> jax.Array:
    """sum_{j: c_ij = c} probs[..., i, j] for every row c, (b, h, qlen, n_rows), for any
    rows (B, qlen, klen): a scatter-add, the value term at arbitrary position ids."""
    b, h, qlen, klen = probs.shape
    index = jnp.broadcast_to(rows[:, None], (b, h, qlen, klen))
    bi, hi, ii = jnp.ix_(jnp.arange(b), jnp.arange(h), jnp.arange(qlen))
    out = jnp.zeros((b, h, qlen, n_rows), probs.dtype)
    return out.at[bi[..., None], hi[..., None], ii[..., None], index].add(probs)


def band_sums(probs: jax.Array, mlen: int, clip: tuple[int, int]) -> jax.Array:
    """sum_{j: c_ij = c} probs[..., i, j] for every row c of the table, (..., qlen, P).

    Row 0 collects distances <= p_min (a prefix sum), row P - 1 distances >= p_max (a suffix
    sum), and each row between exactly one key, j = pos_i + p_min + c (a gather).
    """
    lo, hi = clip
    qlen, klen = probs.shape[-2:]
    if hi == lo:
        return jnp.sum(probs, axis=-1, keepdims=True)
    pos = mlen + jnp.arange(qlen)

    def pick(source: jax.Array, index: jax.Array, valid: jax.Array) -> jax.Array:
        index = jnp.broadcast_to(
            jnp.clip(index, 0, klen - 1), (*source.shape[:-1], index.shape[-1])
        )
        return jnp.where(valid, jnp.take_along_axis(source, index, axis=-1), 0.0)

    first = pos + lo
    head = pick(jnp.cumsum(probs, axis=-1), first[:, None], (first >= 0)[:, None])
    last = pos + hi
    suffix = jnp.flip(jnp.cumsum(jnp.flip(probs, -1), axis=-1), -1)
    tail = pick(suffix, last[:, None], (last <= klen - 1)[:, None])
    keys = pos[:, None] + lo + jnp.arange(1, hi - lo)[None, :]
    middle = pick(probs, keys, (keys >= 0) & (keys < klen))
    return jnp.concatenate([head, middle, tail], axis=-1)


def _table_matmul(x: jax.Array, table: jax.Array) -> jax.Array:
    """x @ table^T for a shared (P, d) or per-head (h, P, d) table: (b, h, n, P)."""
    if table.ndim == 2:
        return jnp.einsum("bhnd,pd->bhnp", x, table)
    return jnp.einsum("bhnd,hpd->bhnp", x, table)


def _rows_per_pair(table: jax.Array, rows: jax.Array) -> jax.Array:
    """table[c_ij] as (B, 1, qlen, klen, d) for a shared table, (B, n_head, ...) per head."""
    return table[rows][:, None] if table.ndim == 2 else jnp.swapaxes(table[:, rows], 0, 1)


@partial(jax.jit, static_argnames=_STATIC)
def _reference(q, k, v, rel_k, rel_v, mask, pos, *, clip, key_query, scale, with_weights):
    qlen, klen = q.shape[2], k.shape[2]
    acc = accumulation_dtype(q.dtype)
    rows = clipped_rows(*grid_positions(pos, qlen, klen), clip)
    a_k = _rows_per_pair(rel_k, rows)  # (B, h, i, j, d)
    logits = jnp.einsum("bhid,bhijd->bhij", q, k[:, :, None, :, :] + a_k)
    if key_query:
        logits = logits + jnp.einsum(
            "bhjd,bhijd->bhij",
            k,
            jnp.broadcast_to(a_k, (q.shape[0], q.shape[1], qlen, klen, q.shape[-1])),
        )
    logits = logits.astype(acc) * scale
    probs = masked_softmax(logits, mask)
    values = v[:, :, None, :, :]
    if rel_v is not None:
        values = values + _rows_per_pair(rel_v, rows)
    out = jnp.einsum("bhij,bhijd->bhid", probs, values.astype(acc)).astype(q.dtype)
    return (out, probs, with_masked_scores(logits, mask)) if with_weights else out


@partial(jax.jit, static_argnames=_STATIC)
def _fast(q, k, v, rel_k, rel_v, mask, pos, *, clip, key_query, scale, with_weights):
    bsz, n_head, qlen, _ = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)
    grid = clipped_rows(*grid_positions(pos, qlen, klen), clip)
    rows = jnp.broadcast_to(grid[:, None], (bsz, n_head, qlen, klen))
    scores = jnp.einsum("bhid,bhjd->bhij", q, k)
    scores = scores + jnp.take_along_axis(_table_matmul(q, rel_k), rows, axis=-1)
    if key_query:
        key_side = jnp.take_along_axis(_table_matmul(k, rel_k), jnp.swapaxes(rows, -1, -2), axis=-1)
        scores = scores + jnp.swapaxes(key_side, -1, -2)
    scores = scores.astype(acc) * scale
    probs = masked_softmax(scores, mask)
    out = jnp.einsum("bhij,bhjd->bhid", probs.astype(q.dtype), v)
    if rel_v is not None:
        if pos is None:  # the default layout: a band plus two tail sums
            per_row = band_sums(probs, klen - qlen, clip)
        else:
            per_row = row_sums(probs, grid, clip[1] - clip[0] + 1)
        per_row = per_row.astype(q.dtype)  # (b, h, i, P)
        if rel_v.ndim == 2:
            out = out + jnp.einsum("bhip,pd->bhid", per_row, rel_v)
        else:
            out = out + jnp.einsum("bhip,hpd->bhid", per_row, rel_v)
    return (out, probs, with_masked_scores(scores, mask)) if with_weights else out


def _call(core, problem, with_weights):
    t, o = problem.tensors, problem.options
    clip = o["clip"]
    return core(
        *(t[name] for name in ("q", "k", "v", "rel_k", "rel_v", "mask")),
        position_ids(problem),
        clip=(int(clip[0]), int(clip[1])),
        key_query=bool(o["key_query"]),
        scale=default_scale(problem),
        with_weights=bool(with_weights),
    )


@validated("shaw")
@guard
def shaw_reference(
    problem,
    q,
    k,
    v,
    *,
    rel_k=None,
    rel_v=None,
    clip=None,
    key_query=False,
    mask=None,
    q_pos=None,
    k_pos=None,
    scale=None,
    with_weights=False,
):
    """The definition written plainly: per-pair gathered tables and an explicit softmax."""
    return _call(_reference, problem, with_weights)


@validated("shaw")
@guard
def shaw_fast(
    problem,
    q,
    k,
    v,
    *,
    rel_k=None,
    rel_v=None,
    clip=None,
    key_query=False,
    mask=None,
    q_pos=None,
    k_pos=None,
    scale=None,
    with_weights=False,
):
    """q rel_k^T gathered by clipped distance; the value term from attention weights summed
    per clipped distance (a band plus two tail sums at the default positions, a scatter-add
    at position ids) and one matmul with rel_v."""
    return _call(_fast, problem, with_weights)
