"""T5 relative position bias in JAX: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show t5``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True``. They
compose with ``jax.jit``, ``jax.grad`` and ``jax.vmap``. Buckets are integers computed when a
shape is first traced (the options are static), exact at every boundary.
"""

from __future__ import annotations

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from relpos.impls._integers import t5_buckets, t5_buckets_of
from relpos.impls._validated import validated
from relpos.impls.jax._common import (
    accumulation_dtype,
    guard,
    host_distances,
    masked_softmax,
    with_masked_scores,
)

__all__ = ["VARIANTS", "t5_fast", "t5_reference"]

VARIANTS = {"reference": "t5_reference", "fast": "t5_fast"}

_STATIC = ("num_buckets", "max_distance", "bidirectional", "scale", "with_weights")


@lru_cache(maxsize=64)
def _grid(qlen: int, klen: int, num_buckets: int, max_distance: int, bidirectional: bool):
    """(1, qlen, klen) buckets at the default positions, numpy int."""
    pos_i = klen - qlen + np.arange(qlen)
    distance = pos_i[:, None] - np.arange(klen)[None, :]
    table = np.array(t5_buckets(klen, num_buckets, max_distance, bidirectional))
    return table[distance + klen - 1][None]


@partial(jax.jit, static_argnames=_STATIC)
def _reference(
    q,
    k,
    v,
    rel_bias,
    mask,
    buckets,
    *,
    num_buckets,
    max_distance,
    bidirectional,
    scale,
    with_weights,
):
    qlen, klen = q.shape[2], k.shape[2]
    acc = accumulation_dtype(q.dtype)
    if buckets is None:
        buckets = _grid(qlen, klen, num_buckets, max_distance, bidirectional)
    bias = jnp.moveaxis(rel_bias[buckets], -1, 1)  # (B, n_head, qlen, klen), gathered per pair
    logits = jnp.einsum("bhid,bhjd->bhij", q, k).astype(acc) * scale + bias.astype(acc)
    probs = masked_softmax(logits, mask)
    out = jnp.einsum("bhij,bhjd->bhid", probs, v.astype(acc)).astype(q.dtype)
    return (out, probs, with_masked_scores(logits, mask)) if with_weights else out


@partial(jax.jit, static_argnames=_STATIC)
def _fast(
    q,
    k,
    v,
    rel_bias,
    mask,
    buckets,
    *,
    num_buckets,
    max_distance,
    bidirectional,
    scale,
    with_weights,
):
    qlen, klen = q.shape[2], k.shape[2]
    acc = accumulation_dtype(q.dtype)
    if buckets is None:
        buckets = _grid(qlen, klen, num_buckets, max_distance, bidirectional)
    per_head = jnp.transpose(rel_bias).astype(acc)  # (n_head, num_buckets)
    bias = jnp.swapaxes(per_head[:, buckets], 0, 1)  # (B, n_head, qlen, klen)
    scores = jnp.matmul(q, jnp.swapaxes(k, -1, -2)).astype(acc) * scale + bias
    probs = masked_softmax(scores, mask)
    out = jnp.matmul(probs.astype(q.dtype), v)
    return (out, probs, with_masked_scores(scores, mask)) if with_weights else out


def _call(core, problem, with_weights):
    t, o = problem.tensors, problem.options
    scale = o["scale"]
    distance = host_distances(problem)
    args = (int(o["num_buckets"]), int(o["max_distance"]), bool(o["bidirectional"]))
    return core(
        *(t[name] for name in ("q", "k", "v", "rel_bias", "mask")),
        None if distance is None else t5_buckets_of(distance, *args),
        num_buckets=int(o["num_buckets"]),
        max_distance=int(o["max_distance"]),
        bidirectional=bool(o["bidirectional"]),
        scale=1.0 if scale is None else float(scale),
        with_weights=bool(with_weights),
    )


@validated("t5")
@guard
def t5_reference(
    problem,
    q,
    k,
    v,
    *,
    rel_bias=None,
    mask=None,
    q_pos=None,
    k_pos=None,
    num_buckets=32,
    max_distance=128,
    bidirectional=True,
    scale=None,
    with_weights=False,
):
    """The definition written plainly: each pair's bucket, its bias gathered per pair."""
    return _call(_reference, problem, with_weights)


@validated("t5")
@guard
def t5_fast(
    problem,
    q,
    k,
    v,
    *,
    rel_bias=None,
    mask=None,
    q_pos=None,
    k_pos=None,
    num_buckets=32,
    max_distance=128,
    bidirectional=True,
    scale=None,
    with_weights=False,
):
    """Per-head bias gathered once from the transposed table, added to batched q k^T."""
    return _call(_fast, problem, with_weights)
