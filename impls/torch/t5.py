"""T5 relative position bias in PyTorch: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show t5``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True``. Buckets are
computed with integer arithmetic only, so they are exact at every boundary.
"""

from __future__ import annotations

import torch

from relpos.impls._integers import t5_buckets
from relpos.impls._validated import validated
from relpos.impls.torch._common import (
    Blocks,
    accumulation_dtype,
    guard,
    masked_softmax,
    tracks_grad,
    whole_attention,
)
from relpos.spec import Problem

__all__ = ["VARIANTS", "t5_fast", "t5_reference"]

VARIANTS = {"reference": "t5_reference", "fast": "t5_fast"}


def _buckets(qlen, klen, num_buckets, max_distance, bidirectional, device):
    """(qlen, klen) int64 buckets of pos_i - pos_j."""
    table = torch.tensor(t5_buckets(klen, num_buckets, max_distance, bidirectional), device=device)
    pos_i = klen - qlen + torch.arange(qlen, device=device)
    distance = pos_i[:, None] - torch.arange(klen, device=device)[None, :]
    return table[distance + klen - 1]


def _scale(problem) -> float:
    """The given scale, or T5's 1 (no 1/sqrt(d_head))."""
    s = problem.options["scale"]
    return 1.0 if s is None else float(s)


@validated("t5")
@guard
def t5_reference(
    problem: Problem,
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
):
    """The definition written plainly: each pair's bucket, its bias gathered per pair."""
    s = _scale(problem)
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


@validated("t5")
@guard
def t5_fast(
    problem: Problem,
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
):
    """Buckets of the qlen + klen - 1 distinct distances once (cached), the per-head bias as
    one (n_head, qlen, klen) gather added to batched q k^T. Without autograd it runs in
    blocks of query rows."""
    s = _scale(problem)
    bsz, n_head, qlen, d_head = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)
    buckets = _buckets(qlen, klen, num_buckets, max_distance, bidirectional, q.device)
    per_head = rel_bias.t().to(acc)  # (n_head, num_buckets)
    if tracks_grad(q, k, v, rel_bias):
        scores = torch.matmul(q, k.transpose(-1, -2)).to(acc) * s + per_head[:, buckets]
        return whole_attention(scores, mask, v, with_weights)
    blocks = Blocks((bsz, n_head, qlen, klen), mask, acc, q.device, with_weights)
    keys_t = k.reshape(bsz * n_head, klen, d_head).transpose(1, 2)
    queries = q.reshape(bsz * n_head, qlen, d_head)

    def scores_of(i0: int, i1: int) -> torch.Tensor:
        scores = torch.bmm(queries[:, i0:i1], keys_t).to(acc).mul_(s)
        scores.view(bsz, n_head, i1 - i0, klen).add_(per_head[:, buckets[i0:i1]])
        return scores

    return blocks.attend(v, scores_of, with_weights)
