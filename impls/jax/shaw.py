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
    guard,
    masked_softmax,
    with_masked_scores,
)

__all__ = ["VARIANTS", "band_sums", "shaw_fast", "shaw_reference"]

VARIANTS = {"reference": "shaw_reference", "fast": "shaw_fast"}

_STATIC = ("clip", "key_query", "scale", "with_weights")


def clipped_rows(qlen: int, klen: int, clip: tuple[int, int]) -> jax.Array:
    """c_ij = clip(j - (mlen + i), p_min, p_max) - p_min as a (qlen, klen) int32 array."""
    mlen = klen - qlen
    distance = jnp.arange(klen)[None, :] - (mlen + jnp.arange(qlen))[:, None]
    return jnp.clip(distance, clip[0], clip[1]) - clip[0]


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
    return table[rows][None, None] if table.ndim == 2 else table[:, rows][None]


@partial(jax.jit, static_argnames=_STATIC)
def _reference(q, k, v, rel_k, rel_v, mask, *, clip, key_query, scale, with_weights):
    qlen, klen = q.shape[2], k.shape[2]
    acc = accumulation_dtype(q.dtype)
    rows = clipped_rows(qlen, klen, clip)
    a_k = _rows_per_pair(rel_k, rows)  # (1, h, i, j, d)
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
def _fast(q, k, v, rel_k, rel_v, mask, *, clip, key_query, scale, with_weights):
    bsz, n_head, qlen, _ = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)
    rows = jnp.broadcast_to(clipped_rows(qlen, klen, clip), (bsz, n_head, qlen, klen))
    scores = jnp.einsum("bhid,bhjd->bhij", q, k)
    scores = scores + jnp.take_along_axis(_table_matmul(q, rel_k), rows, axis=-1)
    if key_query:
        key_side = jnp.take_along_axis(_table_matmul(k, rel_k), jnp.swapaxes(rows, -1, -2), axis=-1)
        scores = scores + jnp.swapaxes(key_side, -1, -2)
    scores = scores.astype(acc) * scale
    probs = masked_softmax(scores, mask)
    out = jnp.einsum("bhij,bhjd->bhid", probs.astype(q.dtype), v)
    if rel_v is not None:
        per_row = band_sums(probs, klen - qlen, clip).astype(q.dtype)  # (b, h, i, P)
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
    scale=None,
    with_weights=False,
):
    """q rel_k^T gathered by clipped distance; the value term from attention weights summed
    per clipped distance (a band plus two tail sums) and one matmul with rel_v."""
    return _call(_fast, problem, with_weights)
