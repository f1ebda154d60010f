"""Transformer-XL / XLNet relative attention in JAX: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show xl``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True``. They
compose with ``jax.jit``, ``jax.grad`` and ``jax.vmap``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from relpos.impls._validated import validated
from relpos.impls.jax._common import (
    accumulation_dtype,
    default_scale,
    grid_positions,
    guard,
    masked_softmax,
    position_ids,
    sinusoid,
    with_masked_scores,
)

__all__ = ["VARIANTS", "rel_shift", "xl_fast", "xl_reference"]

VARIANTS = {"reference": "xl_reference", "fast": "xl_fast"}

_STATIC = ("d_model", "attn_type", "clamp_len", "clamp_style", "scale", "with_weights")


def clamp_distance(distance: jax.Array, clamp_len: int | None, style: str) -> jax.Array:
    if clamp_len is None:
        return distance
    if style == "upper":
        return jnp.minimum(distance, clamp_len)
    return jnp.clip(distance, -clamp_len, clamp_len)


def rel_shift(x: jax.Array, klen: int) -> jax.Array:
    """Realign scores against distances klen-1, ..., -(qlen-1) (last axis of length
    klen + qlen - 1): out[..., i, j] = x[..., i, j + qlen - 1 - i]. One zero column, a
    reshape, a slice and a reshape (no gather)."""
    *lead, qlen, rlen = x.shape
    if rlen != klen + qlen - 1:
        raise ValueError(
            f"rel_shift needs klen + qlen - 1 = {klen + qlen - 1} columns, "
            f"got x.shape={tuple(x.shape)}"
        )
    padded = jnp.pad(x, [(0, 0)] * len(lead) + [(0, 0), (0, 1)])
    flat = padded.reshape(*lead, qlen * (rlen + 1))[..., qlen - 1 : qlen - 1 + qlen * rlen]
    return flat.reshape(*lead, qlen, rlen)[..., :klen]


def _visible(mask, q_pos, k_pos, attn_type):
    """The mask AND, for 'uni', pos_j <= pos_i ((B, 1, qlen, klen))."""
    if attn_type == "bi":
        return mask
    causal = (k_pos[:, None, :] <= q_pos[:, :, None])[:, None]
    return causal if mask is None else mask & causal


def _shifted_layout(problem, pos) -> bool:
    """Whether concrete position ids shift every position of a row alike (the distances of
    the default layout, which the rel-shift path computes exactly); False for traced ids."""
    if any(isinstance(p, jax.core.Tracer) for p in pos):
        return False
    qlen, klen, mlen = (problem.dims[n] for n in ("qlen", "klen", "mlen"))
    q_pos, k_pos = (np.asarray(p, dtype=np.int64) for p in pos)
    distance = q_pos[:, :, None] - k_pos[:, None, :]
    return bool((distance == mlen + np.arange(qlen)[:, None] - np.arange(klen)[None, :]).all())


def _segment_term(q, r_s_bias, seg_embed, seg_ids, mlen):
    per_segment = jnp.einsum("bhid,shd->bhis", q + r_s_bias[:, None, :], seg_embed)
    differs = (seg_ids[:, mlen:, None] != seg_ids[:, None, :])[:, None]
    return jnp.where(differs, per_segment[..., 1:2], per_segment[..., 0:1])


@partial(jax.jit, static_argnames=_STATIC)
def _reference(
    q,
    k,
    v,
    w_r,
    r_w_bias,
    r_r_bias,
    r_s_bias,
    seg_embed,
    seg_ids,
    mask,
    pos,
    *,
    d_model,
    attn_type,
    clamp_len,
    clamp_style,
    scale,
    with_weights,
):
    bsz, _, qlen, _ = q.shape
    klen = k.shape[2]
    mlen = klen - qlen
    acc = accumulation_dtype(q.dtype)
    q_pos, k_pos = grid_positions(pos, qlen, klen)
    distance = clamp_distance(q_pos[:, :, None] - k_pos[:, None, :], clamp_len, clamp_style)
    R = sinusoid(distance.reshape(-1), d_model, q.dtype).reshape(*distance.shape, d_model)
    r = jnp.einsum("bijm,hdm->bhijd", R.astype(q.dtype), w_r)
    r = jnp.broadcast_to(r, (bsz, *r.shape[1:]))
    logits = jnp.einsum("bhid,bhjd->bhij", q + r_w_bias[None, :, None, :], k)
    logits = logits + jnp.einsum("bhid,bhijd->bhij", q + r_r_bias[None, :, None, :], r)
    if seg_ids is not None:
        differs = (seg_ids[:, mlen:, None] != seg_ids[:, None, :]).astype(jnp.int32)
        S = seg_embed[differs]  # (b, i, j, h, d)
        logits = logits + jnp.einsum("bhid,bijhd->bhij", q + r_s_bias[None, :, None, :], S)
    logits = logits.astype(acc) * scale
    visible = _visible(mask, q_pos, k_pos, attn_type)
    probs = masked_softmax(logits, visible)
    out = jnp.einsum("bhij,bhjd->bhid", probs, v.astype(acc)).astype(q.dtype)
    return (out, probs, with_masked_scores(logits, visible)) if with_weights else out


@partial(jax.jit, static_argnames=_STATIC)
def _fast(
    q,
    k,
    v,
    w_r,
    r_w_bias,
    r_r_bias,
    r_s_bias,
    seg_embed,
    seg_ids,
    mask,
    pos,
    *,
    d_model,
    attn_type,
    clamp_len,
    clamp_style,
    scale,
    with_weights,
):
    qlen, klen = q.shape[2], k.shape[2]
    acc = accumulation_dtype(q.dtype)
    scores = jnp.einsum("bhid,bhjd->bhij", q + r_w_bias[:, None, :], k)
    if pos is None:  # the default layout: klen + qlen - 1 distances and a rel-shift
        distances = clamp_distance(jnp.arange(klen - 1, -qlen, -1), clamp_len, clamp_style)
        R = sinusoid(distances, d_model, q.dtype).astype(q.dtype)  # (rlen, m)
        r = jnp.einsum("rm,hdm->hrd", R, w_r)
        by_distance = jnp.einsum("bhid,hrd->bhir", q + r_r_bias[:, None, :], r)
        scores = scores + rel_shift(by_distance, klen)
    else:  # position ids: ((q + v) W_R) . R(D_ij), the sinusoid per pair
        q_pos, k_pos = pos
        distance = clamp_distance(q_pos[:, :, None] - k_pos[:, None, :], clamp_len, clamp_style)
        R = sinusoid(distance.reshape(-1), d_model, q.dtype).astype(q.dtype)
        R = R.reshape(*distance.shape, d_model)  # (B, i, j, m)
        projected = jnp.einsum("bhid,hdm->bhim", q + r_r_bias[:, None, :], w_r)
        scores = scores + jnp.einsum("bhim,bijm->bhij", projected, R)
    if seg_ids is not None:
        scores = scores + _segment_term(q, r_s_bias, seg_embed, seg_ids, klen - qlen)
    scores = scores.astype(acc) * scale
    visible = _visible(mask, *grid_positions(pos, qlen, klen), attn_type)
    probs = masked_softmax(scores, visible)
    out = jnp.einsum("bhij,bhjd->bhid", probs.astype(q.dtype), v)
    return (out, probs, with_masked_scores(scores, visible)) if with_weights else out


def _call(core, problem, with_weights, *, shifts: bool = False):
    """``shifts``: position ids that only shift each row's positions run as the default
    layout (the rel-shift path's own distances)."""
    t, o = problem.tensors, problem.options
    tensors = ("q", "k", "v", "w_r", "r_w_bias", "r_r_bias", "r_s_bias", "seg_embed", "seg_ids")
    pos = position_ids(problem)
    if shifts and pos is not None and _shifted_layout(problem, pos):
        pos = None
    return core(
        *(t[name] for name in (*tensors, "mask")),
        pos,
        d_model=problem.dims["d_model"],
        attn_type=o["attn_type"],
        clamp_len=o["clamp_len"],
        clamp_style=o["clamp_style"],
        scale=default_scale(problem),
        with_weights=bool(with_weights),
    )


@validated("xl")
@guard
def xl_reference(
    problem,
    q,
    k,
    v,
    *,
    w_r=None,
    r_w_bias=None,
    r_r_bias=None,
    r_s_bias=None,
    seg_embed=None,
    seg_ids=None,
    mask=None,
    q_pos=None,
    k_pos=None,
    d_model=None,
    attn_type="bi",
    clamp_len=None,
    clamp_style="upper",
    scale=None,
    with_weights=False,
):
    """The definition written plainly: R(D_ij) and W_R R(D_ij) for every pair, explicit
    einsums and an explicit softmax."""
    return _call(_reference, problem, with_weights)


@validated("xl")
@guard
def xl_fast(
    problem,
    q,
    k,
    v,
    *,
    w_r=None,
    r_w_bias=None,
    r_r_bias=None,
    r_s_bias=None,
    seg_embed=None,
    seg_ids=None,
    mask=None,
    q_pos=None,
    k_pos=None,
    d_model=None,
    attn_type="bi",
    clamp_len=None,
    clamp_style="upper",
    scale=None,
    with_weights=False,
):
    """The sinusoid once for the klen + qlen - 1 distances, one (q + v) r^T product, and a
    pad-and-reshape rel-shift; no (qlen, klen, d_head) tensor. Position ids that shift each
    row alike take the same path; other ids the sinusoid per pair, contracted with
    (q + v) W_R (no (qlen, klen, d_head) tensor either)."""
    return _call(_fast, problem, with_weights, shifts=True)
