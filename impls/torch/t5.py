"""T5 relative position bias in PyTorch: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show t5``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True``. Buckets are
computed with integer arithmetic only, so they are exact at every boundary.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from impls.torch._common import (
    Blocks,
    accumulation_dtype,
    check,
    masked_softmax,
    tracks_grad,
)

__all__ = ["VARIANTS", "bucket_list", "bucket_of", "t5_fast", "t5_reference"]

VARIANTS = {"reference": "t5_reference", "fast": "t5_fast"}


def bucket_of(n: int, num_buckets: int, max_distance: int, bidirectional: bool) -> int:
    """The bucket of a query-minus-key distance n: exact buckets below num_buckets // 4
    (// 2 causal), then floor(log(a/E) / log(max_distance/E) (N - E)) found by comparing
    max_distance^t E^(N-E) with a^(N-E) E^t in integers."""
    half = num_buckets // 2 if bidirectional else num_buckets
    exact = half // 2
    offset = half if bidirectional and n < 0 else 0
    a = abs(n) if bidirectional else max(n, 0)
    if a < exact:
        return offset + a
    k = half - exact
    t = 0
    while t < k and max_distance ** (t + 1) * exact**k <= a**k * exact ** (t + 1):
        t += 1
    return offset + min(half - 1, exact + t)


@lru_cache(maxsize=64)
def bucket_list(klen, num_buckets, max_distance, bidirectional):
    """Entry d + klen - 1 is the bucket of the distance d, for d in [-(klen - 1), klen - 1]
    (every pos_i - pos_j of klen keys)."""
    return tuple(
        bucket_of(d, num_buckets, max_distance, bidirectional) for d in range(1 - klen, klen)
    )


def _buckets(qlen, klen, num_buckets, max_distance, bidirectional, device):
    """(qlen, klen) int64 buckets of pos_i - pos_j."""
    table = torch.tensor(bucket_list(klen, num_buckets, max_distance, bidirectional), device=device)
    pos_i = klen - qlen + torch.arange(qlen, device=device)
    distance = pos_i[:, None] - torch.arange(klen, device=device)[None, :]
    return table[distance + klen - 1]


def _prepare(q, k, v, rel_bias, mask, num_buckets, max_distance, bidirectional, scale, unknown):
    problem = check(
        "t5",
        dict(
            q=q,
            k=k,
            v=v,
            rel_bias=rel_bias,
            mask=mask,
            num_buckets=num_buckets,
            max_distance=max_distance,
            bidirectional=bidirectional,
            scale=scale,
            **unknown,
        ),
    )
    s = problem.options["scale"]
    return 1.0 if s is None else float(s)


def t5_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    rel_bias: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    num_buckets: int = 32,
    max_distance: int = 128,
    bidirectional: bool = True,
    scale: float | None = None,
    with_weights: bool = False,
    **unknown: object,
):
    """The definition written plainly: each pair's bucket, its bias gathered per pair."""
    s = _prepare(q, k, v, rel_bias, mask, num_buckets, max_distance, bidirectional, scale, unknown)
    qlen, klen = q.shape[2], k.shape[2]
    acc = accumulation_dtype(q.dtype)
    buckets = _buckets(qlen, klen, num_buckets, max_distance, bidirectional, q.device)
    bias = rel_bias[buckets].permute(2, 0, 1)  # (n_head, qlen, klen)
    logits = torch.einsum("bhid,bhjd->bhij", q, k).to(acc) * s + bias.to(acc)[None]
    probs = masked_softmax(logits, mask)
    out = torch.einsum("bhij,bhjd->bhid", probs, v.to(acc)).to(q.dtype)
    if not with_weights:
        return out
    return out, probs, logits if mask is None else logits.masked_fill(~mask, float("-inf"))


def t5_fast(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    rel_bias: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    num_buckets: int = 32,
    max_distance: int = 128,
    bidirectional: bool = True,
    scale: float | None = None,
    with_weights: bool = False,
    **unknown: object,
):
    """Buckets of the qlen + klen - 1 distinct distances once (cached), the per-head bias as
    one (n_head, qlen, klen) gather added to batched q k^T. Without autograd it runs in
    blocks of query rows."""
    s = _prepare(q, k, v, rel_bias, mask, num_buckets, max_distance, bidirectional, scale, unknown)
    bsz, n_head, qlen, d_head = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)
    buckets = _buckets(qlen, klen, num_buckets, max_distance, bidirectional, q.device)
    per_head = rel_bias.t().to(acc)  # (n_head, num_buckets)
    if tracks_grad(q, k, v, rel_bias):
        scores = torch.matmul(q, k.transpose(-1, -2)).to(acc) * s + per_head[:, buckets]
        probs = masked_softmax(scores, mask)
        out = torch.matmul(probs.to(q.dtype), v)
        if not with_weights:
            return out
        return out, probs, scores if mask is None else scores.masked_fill(~mask, -torch.inf)
    blocks = Blocks((bsz, n_head, qlen, klen), mask, acc, q.device, with_weights)
    bh = bsz * n_head
    keys_t = k.reshape(bh, klen, d_head).transpose(1, 2)
    queries = q.reshape(bh, qlen, d_head)
    values = v.reshape(bh, klen, d_head)
    out = torch.empty(bsz, n_head, qlen, d_head, dtype=q.dtype, device=q.device)
    for i0, i1 in blocks.ranges():
        scores = torch.bmm(queries[:, i0:i1], keys_t).to(acc).mul_(s)
        bias = per_head[:, buckets[i0:i1]]  # (n_head, rows, klen)
        scores.view(bsz, n_head, i1 - i0, klen).add_(bias)
        probs = blocks.softmax(scores, i0, i1)
        out[:, :, i0:i1] = torch.bmm(probs.to(q.dtype), values).view(bsz, n_head, i1 - i0, -1)
    return (out, blocks.probs, blocks.scores) if with_weights else out
