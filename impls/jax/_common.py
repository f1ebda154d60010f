"""Pieces every JAX implementation shares: dtypes, the sinusoid, masked softmax.

Public entry points validate their arguments with :func:`relpos.spec.validate` (outside any jitted
code, so options are checked and normalised to hashable static values) and then call a
``jax.jit``-compiled core whose options are static: the same shapes and options never retrace.
float64 needs ``jax.config.update("jax_enable_x64", True)``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from relpos.impls._validated import Framework, guarded
from relpos.spec import ArgumentError, Problem
from relpos.spec._signature import first_nonfinite

__all__ = [
    "accumulation_dtype",
    "default_scale",
    "grid_positions",
    "guard",
    "host_distances",
    "masked_softmax",
    "position_ids",
    "sinusoid",
]

HALF = (jnp.float16, jnp.bfloat16)


def _first_nonfinite(t: Any) -> tuple[tuple[int, ...], float] | None:
    """The first NaN or infinite element (index, value) of a concrete float array; a traced
    one (under jit, grad or vmap) has no values to look at."""
    if isinstance(t, jax.core.Tracer) or not jnp.issubdtype(t.dtype, jnp.floating):
        return None
    return first_nonfinite(np.asarray(t, dtype=np.float64))


def _device(t: Any) -> str | None:
    """The devices of a concrete array; None for a numpy array (JAX moves it where it is
    needed) and for a traced one (under jit, grad or vmap: placed by its computation)."""
    if isinstance(t, np.ndarray | jax.core.Tracer):
        return None
    return ",".join(sorted(str(d) for d in t.devices()))


#: The checks and the half-type policy of every JAX variant (see :func:`guarded`).
guard = guarded(
    Framework(
        accepts=lambda t: isinstance(t, jax.Array | np.ndarray),
        kind="a jax.Array or a numpy array (this is a JAX implementation)",
        first_nonfinite=_first_nonfinite,
        device=_device,
        dataless=frozenset(),
        is_half=lambda t: isinstance(t, jax.Array) and t.dtype in HALF,
        to_float32=lambda t: t.astype(jnp.float32),
        cast=lambda t, dtype: t.astype(dtype),
    )
)


def accumulation_dtype(dtype: Any) -> Any:
    """float32 for the half types (softmax and sums), the dtype itself otherwise."""
    return jnp.float32 if dtype in HALF else dtype


def default_scale(problem: Problem) -> float:
    scale = problem.options["scale"]
    return 1 / math.sqrt(problem.dims["d_head"]) if scale is None else float(scale)


def position_ids(problem: Problem) -> tuple[jax.Array, jax.Array] | None:
    """The call's position ids as (q_pos (B, qlen), k_pos (B, klen)) int32 arrays, B in
    {1, bsz} (broadcast shapes expanded; the default layout on a side not given), or None
    when the call gives none: the cores then build the default layout from their shapes, a
    static structure. Positions are at most 2^31 - 1, so they and their differences are
    exact in int32."""
    d = problem.dims
    given = {name: problem.tensors.get(name) for name in ("q_pos", "k_pos")}
    if all(value is None for value in given.values()):
        return None
    default = {
        "q_pos": d["mlen"] + jnp.arange(d["qlen"], dtype=jnp.int32)[None],
        "k_pos": jnp.arange(d["klen"], dtype=jnp.int32)[None],
    }
    out = []
    for name, length in (("q_pos", d["qlen"]), ("k_pos", d["klen"])):
        value = given[name]
        if value is None:
            out.append(default[name])
            continue
        ids = jnp.atleast_2d(jnp.asarray(value).astype(jnp.int32))
        out.append(jnp.broadcast_to(ids, (ids.shape[0], length)))
    return out[0], out[1]


def host_distances(problem: Problem) -> np.ndarray | None:
    """pos_i - pos_j of every pair as a (B, qlen, klen) numpy int64 array from the call's
    position ids, for integer tables computed on the host (T5's buckets, DeBERTa's rows);
    None when the call gives no ids. Traced ids (under jax.jit or vmap) have no values to
    compute them from: an ArgumentError says so."""
    pos = position_ids(problem)
    if pos is None:
        return None
    found = []
    for name, ids in zip(("q_pos", "k_pos"), pos, strict=True):
        if isinstance(ids, jax.core.Tracer):
            raise ArgumentError(
                name,
                f"a traced {name} ({type(ids).__name__})",
                f"must hold concrete values for {problem.encoding!r}, whose integer tables "
                "are exact integer code run on the host: pass position ids outside jax.jit "
                "and vmap",
            )
        found.append(np.asarray(ids, dtype=np.int64))
    return found[0][:, :, None] - found[1][:, None, :]


def grid_positions(
    pos: tuple[jax.Array, jax.Array] | None, qlen: int, klen: int
) -> tuple[jax.Array, jax.Array]:
    """Inside a core: the position ids, or the default layout (1, qlen) and (1, klen)."""
    if pos is not None:
        return pos
    return (klen - qlen + jnp.arange(qlen))[None], jnp.arange(klen)[None]


def sinusoid(positions: jax.Array, d_model: int, dtype: Any) -> jax.Array:
    """[sin(p f) | cos(p f)] for integer positions, f_k = 10000^(-2k/d_model), computed in
    float64 for float64 and float32 otherwise."""
    work = jnp.float64 if dtype == jnp.float64 else jnp.float32
    freq = jnp.power(jnp.asarray(10000.0, work), -jnp.arange(0, d_model, 2, dtype=work) / d_model)
    angle = positions.astype(work)[:, None] * freq[None, :]
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)


def masked_softmax(scores: jax.Array, visible: jax.Array | None) -> jax.Array:
    """Softmax over the last axis restricted to ``visible`` keys; rows with no visible key
    give zeros, with no NaN in the forward or the backward pass."""
    if visible is not None:
        scores = jnp.where(visible, scores, -jnp.inf)
    top = jax.lax.stop_gradient(jnp.max(scores, axis=-1, keepdims=True))
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    weights = jnp.exp(scores - top)
    total = jnp.sum(weights, axis=-1, keepdims=True)
    return weights / jnp.where(total > 0, total, 1.0)


def with_masked_scores(scores: jax.Array, visible: jax.Array | None) -> jax.Array:
    return scores if visible is None else jnp.where(visible, scores, -jnp.inf)
