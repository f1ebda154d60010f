"""RoPE (Su et al. 2021) in JAX: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show rope``) and return the output
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

__all__ = ["VARIANTS", "rope_fast", "rope_reference"]

VARIANTS = {"reference": "rope_reference", "fast": "rope_fast"}

_STATIC = ("base", "rotary", "scale", "with_weights")


def _angles(positions, r: int, base: float, dtype):
    """p theta_t of integer positions (B, L), theta_t = base^(-2t/r): (B, L, r/2)."""
    work = jnp.float64 if dtype == jnp.float64 else jnp.float32
    theta = jnp.power(jnp.asarray(base, work), -jnp.arange(0, r, 2, dtype=work) / r)
    return positions.astype(work)[..., None] * theta


def _rotation_matrices(angles, d_head: int, r: int):
    """Block-diagonal (B, L, d_head, d_head) rotations of angles (B, L, r/2) on the pairs
    (2t, 2t+1) of the first r features, the identity on the rest."""
    m = jnp.broadcast_to(jnp.eye(d_head, dtype=angles.dtype), (*angles.shape[:2], d_head, d_head))
    for t in range(r // 2):
        c, s = jnp.cos(angles[..., t]), jnp.sin(angles[..., t])
        a, b = 2 * t, 2 * t + 1
        m = m.at[..., a, a].set(c).at[..., a, b].set(-s).at[..., b, a].set(s)
        m = m.at[..., b, b].set(c)
    return m


@partial(jax.jit, static_argnames=_STATIC)
def _reference(q, k, v, mask, pos, *, base, rotary, scale, with_weights):
    bsz, _, qlen, d_head = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)

    def rotated(x, at):
        rot = _rotation_matrices(_angles(at, rotary, base, q.dtype), d_head, rotary).astype(acc)
        rot = jnp.broadcast_to(rot, (bsz, *rot.shape[1:]))
        return jnp.einsum("bide,bhie->bhid", rot, x.astype(acc))

    q_pos, k_pos = grid_positions(pos, qlen, klen)
    q_rot, k_rot = rotated(q, q_pos), rotated(k, k_pos)
    logits = jnp.einsum("bhid,bhjd->bhij", q_rot, k_rot) * scale
    probs = masked_softmax(logits, mask)
    out = jnp.einsum("bhij,bhjd->bhid", probs, v.astype(acc)).astype(q.dtype)
    return (out, probs, with_masked_scores(logits, mask)) if with_weights else out


def _rotate(x, cos, sin, r: int):
    if r == 0:
        return x
    even, odd = x[..., 0:r:2], x[..., 1:r:2]
    pairs = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return jnp.concatenate([pairs.reshape(*pairs.shape[:-2], r), x[..., r:]], axis=-1)


@partial(jax.jit, static_argnames=_STATIC)
def _fast(q, k, v, mask, pos, *, base, rotary, scale, with_weights):
    qlen, klen = q.shape[2], k.shape[2]
    acc = accumulation_dtype(q.dtype)

    def rotated(x, at):
        angles = _angles(at, rotary, base, q.dtype)[:, None]  # (B, 1, L, r/2)
        cos, sin = jnp.cos(angles), jnp.sin(angles)
        return _rotate(x.astype(cos.dtype), cos, sin, rotary).astype(q.dtype)

    q_pos, k_pos = grid_positions(pos, qlen, klen)
    q_rot, k_rot = rotated(q, q_pos), rotated(k, k_pos)
    scores = jnp.matmul(q_rot, jnp.swapaxes(k_rot, -1, -2)).astype(acc) * scale
    probs = masked_softmax(scores, mask)
    out = jnp.matmul(probs.astype(q.dtype), v)
    return (out, probs, with_masked_scores(scores, mask)) if with_weights else out


def _call(core, problem, with_weights):
    t, o = problem.tensors, problem.options
    d, rotary_dim = problem.dims["d_head"], o["rotary_dim"]
    return core(
        *(t[name] for name in ("q", "k", "v", "mask")),
        position_ids(problem),
        base=float(o["base"]),
        rotary=d - d % 2 if rotary_dim is None else int(rotary_dim),
        scale=default_scale(problem),
        with_weights=bool(with_weights),
    )


@validated("rope")
@guard
def rope_reference(
    problem,
    q,
    k,
    v,
    *,
    mask=None,
    q_pos=None,
    k_pos=None,
    base=10000,
    rotary_dim=None,
    scale=None,
    with_weights=False,
):
    """The definition written plainly: a rotation matrix per position applied to q and k."""
    return _call(_reference, problem, with_weights)


@validated("rope")
@guard
def rope_fast(
    problem,
    q,
    k,
    v,
    *,
    mask=None,
    q_pos=None,
    k_pos=None,
    base=10000,
    rotary_dim=None,
    scale=None,
    with_weights=False,
):
    """cos and sin tables per position, elementwise rotation, batched q k^T."""
    return _call(_fast, problem, with_weights)
