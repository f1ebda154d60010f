"""The scalars of RoPE's scaling variants that every backend shares: what comes from the
configuration alone (a grown base, the correction dimensions, the chosen per-pair factors,
the attention factor), in Python floats (float64), written from the formulas of
``relpos spec show rope``. The backends apply a :class:`Plan` to their own tensors; nothing
here evaluates a spec formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from relpos.spec import ArgumentError
from relpos.spec.rope_scaling import checked

__all__ = ["PRECISIONS", "Plan", "plan"]

#: What the frequencies may be computed in: float32 (as shipped models compute them; a model
#: in a half type rotates by float32 angles) or float64.
PRECISIONS = ("float32", "float64")


@dataclass(frozen=True)
class Plan:
    """theta_t = base^(-2t / denominator) for t < r/2, then, in this order: divided by
    ``ext[t]`` (longrope), blended by the YaRN ramp between ``ramp`` = (low, high), blended
    over the Llama 3 wavelength ``bands`` = (L0, low_freq_factor, high_freq_factor), and
    divided by ``divide``. ``factor`` is the variant's s (what the blends divide by)."""

    r: int
    base: float
    denominator: int
    attention_factor: float = 1.0
    factor: float = 1.0
    divide: float = 1.0
    ext: tuple[float, ...] | None = None
    ramp: tuple[float, float] | None = None
    bands: tuple[int, float, float] | None = None


def _mscale(s: float, m: float) -> float:
    return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0


def _yarn_ramp(r: int, base: float, p: dict[str, Any]) -> tuple[float, float]:
    L0 = p["original_max_position_embeddings"]

    def correction(beta: float) -> float:  # the pair index that turns beta times over L0
        return r * math.log(L0 / (beta * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction(float(p["beta_fast"])), correction(float(p["beta_slow"]))
    if p["truncate"]:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, r - 1)
    return float(low), float(high) + (0.001 if high == low else 0.0)


def plan(
    rope_type: str,
    *,
    rotary_dim: int,
    base: Any = 10000,
    seq_len: int | None = None,
    precision: Any = "float32",
    **parameters: Any,
) -> Plan:
    """The :class:`Plan` of a call, after the spec's argument checks (the same
    :class:`~relpos.spec.ArgumentError` text as the spec's)."""
    if precision not in PRECISIONS:
        raise ArgumentError(
            "precision", f"precision={precision!r}", f"must be one of {', '.join(PRECISIONS)}"
        )
    p = checked(rope_type, rotary_dim=rotary_dim, base=base, seq_len=seq_len, **parameters)
    r, b = rotary_dim, float(base)
    if rope_type == "default":
        return Plan(r, b, r)
    if rope_type == "linear":
        return Plan(r, b, r, divide=float(p["factor"]))
    if rope_type == "proportional":
        return Plan(r, b, p["head_dim"], divide=float(p["factor"]))
    L0 = p["original_max_position_embeddings"]
    if rope_type == "dynamic":
        s = float(p["factor"])
        length = max(seq_len or L0, L0)
        if length > L0:  # the base grows past L0 only
            b = b * (s * length / L0 - (s - 1)) ** (r / (r - 2))
        return Plan(r, b, r, factor=s)
    if rope_type == "yarn":
        s = float(p["factor"])
        if p["attention_factor"] is not None:
            m = float(p["attention_factor"])
        else:
            m = _mscale(s, float(p["mscale"])) / _mscale(s, float(p["mscale_all_dim"]))
        return Plan(r, b, r, attention_factor=m, factor=s, ramp=_yarn_ramp(r, b, p))
    if rope_type == "longrope":
        chosen = p["long_factor" if seq_len is not None and seq_len > L0 else "short_factor"]
        ext = tuple(float(e) for e in chosen)
        if p["attention_factor"] is not None:
            m = float(p["attention_factor"])
        else:
            s = float(p["factor"]) if p["factor"] is not None else p["max_position_embeddings"] / L0
            m = 1.0 if s <= 1 else math.sqrt(1 + math.log(s) / math.log(L0))
        return Plan(r, b, r, attention_factor=m, ext=ext)
    lo, hi = float(p["low_freq_factor"]), float(p["high_freq_factor"])
    return Plan(r, b, r, factor=float(p["factor"]), bands=(L0, lo, hi))
