"""Adapter for rotary-embedding-torch (lucidrains, PyPI ``rotary-embedding-torch``): its
``RotaryEmbedding`` rotates queries and keys, and the adapter attends with them.

One ``RotaryEmbedding`` per (rotary_dim, base) is kept across calls, as a model keeps its
module: the module caches its angles (``cached_freqs``, up to ``cache_max_seq_len``
positions) and the checker's ``history`` property exercises that cache across dtypes and
lengths. Keys longer than the queries are a cache (``rotate_queries_with_cached_keys``: the
queries sit at the last qlen positions). The library rotates interleaved pairs (2t, 2t + 1),
the spec's layout, and the first ``dim`` features of the head; it takes no position ids.

The attention around the rotation is the adapter's, not the library's: scores q k^T times the
scale, in float32 for the half types (as models compute them), an additive ``finfo.min``
mask (fully masked rows are uniform), softmax and the weighted values.
"""

from __future__ import annotations

from typing import Any

import torch

from relpos.equivalence.adapters import stateful

__all__ = ["rotary_attention"]

_KEPT: dict[tuple[Any, ...], Any] = {}


def _module(target: Any, r: int, base: float) -> Any:
    key = (target, r, float(base))
    if key not in _KEPT:
        _KEPT[key] = target(dim=r, theta=base)
    return _KEPT[key]


@stateful
def rotary_attention(
    target: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    mask: Any = None,
    base: float = 10000,
    rotary_dim: int | None = None,
    scaling: Any = None,
    scale: float | None = None,
    with_weights: bool = False,
) -> Any:
    """``target`` is the ``RotaryEmbedding`` class (plain RoPE: its profile draws no
    ``scaling``)."""
    if scaling is not None:
        raise ValueError(
            f"`scaling` must be None for rotary-embedding-torch (profile "
            f"rotary-embedding-torch), got {scaling!r}"
        )
    d = q.shape[3]
    r = d - d % 2 if rotary_dim is None else rotary_dim
    rotary = _module(target, r, base).to(q.device)
    qr, kr = rotary.rotate_queries_with_cached_keys(q, k)
    work = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    factor = d**-0.5 if scale is None else scale
    logits = (qr.to(work) @ kr.to(work).transpose(-1, -2)) * factor
    scores = logits
    if mask is not None:
        scores = logits.masked_fill(~mask, float("-inf"))  # the canonical masked score
        logits = logits.masked_fill(~mask, torch.finfo(work).min)
    probs = torch.softmax(logits, dim=-1)
    out = (probs @ v.to(work)).to(q.dtype)
    return (out, probs, scores) if with_weights else out
