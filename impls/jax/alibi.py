"""ALiBi (Press et al. 2022) in JAX: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show alibi``) and return the output
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

__all__ = ["VARIANTS", "alibi_fast", "alibi_reference", "slopes_for"]

VARIANTS = {"reference": "alibi_reference", "fast": "alibi_fast"}

_STATIC = ("causal", "signed", "rule_slopes", "scale", "with_weights")


def slopes_for(n_head: int, rule: str) -> tuple[float, ...]:
    """'geometric': 2^(-8h/n); 'paper': that for a power of two n, else the slopes of the
    largest power of two p < n and every other slope of 2p."""
    if rule == "geometric" or n_head & (n_head - 1) == 0:
        return tuple(2.0 ** (-8.0 * h / n_head) for h in range(1, n_head + 1))
    p = 1 << (n_head.bit_length() - 1)
    return slopes_for(p, "paper") + slopes_for(2 * p, "paper")[0::2][: n_head - p]


def _grid(pos, qlen: int, klen: int, signed: bool, causal: bool):
    """B_ij (B, 1, qlen, klen) and the causal mask pos_j <= pos_i (or None)."""
    q_pos, k_pos = grid_positions(pos, qlen, klen)
    delta = (k_pos[:, None, :] - q_pos[:, :, None])[:, None]
    bias = delta if signed else -jnp.abs(delta)
    return bias, (delta <= 0) if causal else None


def _visible(mask, causal_mask):
    if causal_mask is None:
        return mask
    return causal_mask if mask is None else mask & causal_mask


def _slopes(slopes, rule_slopes, acc):
    return slopes.astype(acc) if slopes is not None else jnp.asarray(rule_slopes, acc)


@partial(jax.jit, static_argnames=_STATIC)
def _reference(q, k, v, slopes, mask, pos, *, causal, signed, rule_slopes, scale, with_weights):
    qlen, klen = q.shape[2], k.shape[2]
    acc = accumulation_dtype(q.dtype)
    bias, causal_mask = _grid(pos, qlen, klen, signed, causal)
    m = _slopes(slopes, rule_slopes, acc)
    content = jnp.einsum("bhid,bhjd->bhij", q, k).astype(acc) * scale
    logits = content + m[None, :, None, None] * bias.astype(acc)
    visible = _visible(mask, causal_mask)
    probs = masked_softmax(logits, visible)
    out = jnp.einsum("bhij,bhjd->bhid", probs, v.astype(acc)).astype(q.dtype)
    return (out, probs, with_masked_scores(logits, visible)) if with_weights else out


@partial(jax.jit, static_argnames=_STATIC)
def _fast(q, k, v, slopes, mask, pos, *, causal, signed, rule_slopes, scale, with_weights):
    qlen, klen = q.shape[2], k.shape[2]
    acc = accumulation_dtype(q.dtype)
    bias, causal_mask = _grid(pos, qlen, klen, signed, causal)
    m = _slopes(slopes, rule_slopes, acc)
    scores = jnp.matmul(q * jnp.asarray(scale, q.dtype), jnp.swapaxes(k, -1, -2)).astype(acc)
    scores = scores + m[:, None, None] * bias.astype(acc)
    visible = _visible(mask, causal_mask)
    probs = masked_softmax(scores, visible)
    out = jnp.matmul(probs.astype(q.dtype), v)
    return (out, probs, with_masked_scores(scores, visible)) if with_weights else out


def _call(core, problem, with_weights):
    t, o = problem.tensors, problem.options
    return core(
        *(t[name] for name in ("q", "k", "v", "slopes", "mask")),
        position_ids(problem),
        causal=bool(o["causal"]),
        signed=bool(o["signed"]),
        rule_slopes=slopes_for(problem.dims["n_head"], o["slope_rule"]),
        scale=default_scale(problem),
        with_weights=bool(with_weights),
    )


@validated("alibi")
@guard
def alibi_reference(
    problem,
    q,
    k,
    v,
    *,
    slopes=None,
    mask=None,
    q_pos=None,
    k_pos=None,
    causal=False,
    signed=False,
    slope_rule="paper",
    scale=None,
    with_weights=False,
):
    """The definition written plainly: e_ij = scale q_i . k_j + m_h B_ij per pair."""
    return _call(_reference, problem, with_weights)


@validated("alibi")
@guard
def alibi_fast(
    problem,
    q,
    k,
    v,
    *,
    slopes=None,
    mask=None,
    q_pos=None,
    k_pos=None,
    causal=False,
    signed=False,
    slope_rule="paper",
    scale=None,
    with_weights=False,
):
    """q pre-scaled and one batched matmul; one distance grid scaled per head."""
    return _call(_fast, problem, with_weights)
