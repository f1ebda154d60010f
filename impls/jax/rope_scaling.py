"""RoPE's scaling variants in JAX: the inverse frequencies theta'_t and the attention factor
of each ``rope_type`` of :mod:`relpos.spec.rope_scaling` (``relpos spec show rope``), as
:func:`inverse_frequencies`. ``relpos frequencies`` checks it against the spec.

The frequencies are computed in ``precision`` (float32, as shipped models compute them, or
float64, which needs ``jax_enable_x64``); the scalars of the configuration are float64
(:mod:`relpos.impls._rope_scaling`).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from relpos.impls._rope_scaling import plan
from relpos.spec import ArgumentError

__all__ = ["inverse_frequencies"]


def inverse_frequencies(
    rope_type: str = "default",
    *,
    rotary_dim: int,
    base: float = 10000,
    seq_len: int | None = None,
    precision: str = "float32",
    **parameters: Any,
) -> tuple[jax.Array, float]:
    """(theta'_0 .. theta'_{r/2-1} in ``precision``, the attention factor m) of ``rope_type``
    for rotary width ``rotary_dim``, ``base`` and the current sequence length ``seq_len``
    (the largest position + 1; ``dynamic`` and ``longrope`` depend on it). The variant's
    parameters are keywords (those of ``relpos spec show rope``); a bad argument raises
    :class:`~relpos.spec.ArgumentError` with the spec's text."""
    p = plan(
        rope_type,
        rotary_dim=rotary_dim,
        base=base,
        seq_len=seq_len,
        precision=precision,
        **parameters,
    )
    if precision == "float64" and not jax.config.read("jax_enable_x64"):
        raise ArgumentError(
            "precision",
            "precision='float64'",
            "needs jax.config.update('jax_enable_x64', True) first (without it JAX computes "
            "in float32)",
        )
    work = jnp.float64 if precision == "float64" else jnp.float32
    exponent = jnp.arange(0, p.r, 2, dtype=work) / p.denominator
    theta = jnp.power(jnp.asarray(p.base, work), -exponent)
    if p.ext is not None:
        theta = theta / jnp.asarray(p.ext, work)
    if p.ramp is not None:
        low, high = p.ramp
        gamma = jnp.clip((jnp.arange(p.r // 2, dtype=work) - low) / (high - low), 0, 1)
        theta = theta / p.factor * gamma + theta * (1 - gamma)
    if p.bands is not None:
        L0, lo, hi = p.bands
        wavelength = 2 * math.pi / theta
        smooth = (L0 / wavelength - lo) / (hi - lo)
        blended = (1 - smooth) * theta / p.factor + smooth * theta
        blended = jnp.where(wavelength > L0 / lo, theta / p.factor, blended)
        theta = jnp.where(wavelength < L0 / hi, theta, blended)
    return theta / p.divide, p.attention_factor
