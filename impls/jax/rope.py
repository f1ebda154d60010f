"""RoPE (Su et al. 2021) in JAX: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show rope``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True``. They
compose with ``jax.jit``, ``jax.grad`` and ``jax.vmap`` (with a dynamic or longrope
``scaling``, whose frequencies depend on the largest position, the position ids must be
concrete). A ``scaling`` variant's inverse frequencies and attention factor come from
:func:`relpos.impls.jax.rope_scaling.inverse_frequencies`.
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
    with_masked_scores,
)
from relpos.impls.jax.rope_scaling import inverse_frequencies
from relpos.spec import ArgumentError
from relpos.spec.encodings.rope import LENGTH_DEPENDENT, scaling_parameters

__all__ = ["VARIANTS", "rope_fast", "rope_reference"]

VARIANTS = {"reference": "rope_reference", "fast": "rope_fast"}

_STATIC = ("factor", "rotary", "scale", "with_weights")


def _frequencies(problem, r: int, dtype):
    """theta'_t per batch row (B, r/2), B in {1, bsz}, and the attention factor m: the
    scaling variant's (theta_t = base^(-2t/r) and 1 without one), in float64 for float64
    inputs and float32 otherwise, computed before the core (a variant's configuration is
    static). dynamic and longrope take each row's length, 1 + its largest query or key
    position, which must then be concrete."""
    precision = "float64" if dtype == jnp.float64 else "float32"
    work = jnp.float64 if dtype == jnp.float64 else jnp.float32
    if r == 0:
        return jnp.zeros((1, 0), work), 1.0
    base = float(problem.options["base"])
    rope_type, params = scaling_parameters(problem.options["scaling"], problem.dims["d_head"])
    if rope_type not in LENGTH_DEPENDENT:
        theta, m = inverse_frequencies(
            rope_type, rotary_dim=r, base=base, precision=precision, **params
        )
        return theta[None], m
    lengths = _lengths(problem)
    by_length = {  # once per distinct length, however many rows share it
        length: inverse_frequencies(
            rope_type, rotary_dim=r, base=base, seq_len=length, precision=precision, **params
        )
        for length in set(lengths)
    }
    (m,) = {m for _, m in by_length.values()}  # the attention factor does not depend on it
    return jnp.stack([by_length[length][0] for length in lengths]), m


def _lengths(problem) -> list[int]:
    """1 + the largest query or key position of each batch row (one row at the default
    positions)."""
    pos = position_ids(problem)
    if pos is None:
        return [problem.dims["klen"]]
    if any(isinstance(p, jax.core.Tracer) for p in pos):
        raise ArgumentError(
            "q_pos",
            "traced position ids",
            f"must be concrete with {problem.options['scaling']['rope_type']} scaling: its "
            "frequencies depend on the sequence length, 1 + the largest position (call "
            "outside jax.jit, or pass the positions as static)",
        )
    q_pos, k_pos = (np.asarray(p) for p in pos)
    rows = max(q_pos.shape[0], k_pos.shape[0])
    top = np.maximum(
        np.broadcast_to(q_pos.max(axis=1), (rows,)), np.broadcast_to(k_pos.max(axis=1), (rows,))
    )
    return [int(t) + 1 for t in top]


def _angles(positions, theta):
    """p theta'_t of integer positions (B, L) and frequencies (B', r/2): (B or B', L, r/2)."""
    return positions.astype(theta.dtype)[..., None] * theta[:, None]


def _rotation_matrices(angles, d_head: int, r: int, factor: float):
    """Block-diagonal (B, L, d_head, d_head) rotations of angles (B, L, r/2) on the pairs
    (2t, 2t+1) of the first r features, times ``factor``; the identity on the rest."""
    m = jnp.broadcast_to(jnp.eye(d_head, dtype=angles.dtype), (*angles.shape[:2], d_head, d_head))
    for t in range(r // 2):
        c, s = jnp.cos(angles[..., t]) * factor, jnp.sin(angles[..., t]) * factor
        a, b = 2 * t, 2 * t + 1
        m = m.at[..., a, a].set(c).at[..., a, b].set(-s).at[..., b, a].set(s)
        m = m.at[..., b, b].set(c)
    return m


@partial(jax.jit, static_argnames=_STATIC)
def _reference(q, k, v, mask, pos, theta, *, factor, rotary, scale, with_weights):
    bsz, _, qlen, d_head = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)

    def rotated(x, at):
        rot = _rotation_matrices(_angles(at, theta), d_head, rotary, factor).astype(acc)
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
def _fast(q, k, v, mask, pos, theta, *, factor, rotary, scale, with_weights):
    qlen, klen = q.shape[2], k.shape[2]
    acc = accumulation_dtype(q.dtype)

    def rotated(x, at):
        angles = _angles(at, theta)[:, None]  # (B, 1, L, r/2)
        cos, sin = jnp.cos(angles) * factor, jnp.sin(angles) * factor
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
    rotary = d - d % 2 if rotary_dim is None else int(rotary_dim)
    theta, factor = _frequencies(problem, rotary, t["q"].dtype)
    return core(
        *(t[name] for name in ("q", "k", "v", "mask")),
        position_ids(problem),
        theta,
        factor=float(factor),
        rotary=rotary,
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
    scaling=None,
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
    scaling=None,
    scale=None,
    with_weights=False,
):
    """cos and sin tables per position, elementwise rotation, batched q k^T."""
    return _call(_fast, problem, with_weights)
