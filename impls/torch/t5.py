"""T5 relative position bias in PyTorch: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show t5``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True``. Buckets are
computed with integer arithmetic only, so they are exact at every boundary.
"""

from __future__ import annotations

import torch

from relpos.impls._integers import t5_buckets, t5_buckets_of
from relpos.impls._validated import validated
from relpos.impls.torch._common import (
    Blocks,
    accumulation_dtype,
    guard,
    has_positions,
    masked_softmax,
    positions,
    tracks_grad,
    whole_attention,
)
from relpos.spec import Problem

__all__ = ["VARIANTS", "t5_fast", "t5_reference"]

VARIANTS = {"reference": "t5_reference", "fast": "t5_fast"}


def _buckets(problem, num_buckets, max_distance, bidirectional, device):
    """(B, qlen, klen) int64 buckets of pos_i - pos_j: at the default positions from the
    cached table of every distance, at position ids each distinct distance bucketed on the
    host."""
    klen = problem.dims["klen"]
    q_pos, k_pos = positions(problem, device)
    distance = q_pos[:, :, None] - k_pos[:, None, :]
    args = (num_buckets, max_distance, bidirectional)
    if has_positions(problem):
        return torch.from_numpy(t5_buckets_of(distance.cpu().numpy(), *args)).to(device)
    table = torch.tensor(t5_buckets(klen, *args), device=device)
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
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    num_buckets: int = 32,
    max_distance: int = 128,
    bidirectional: bool = True,
    scale: float | None = None,
    with_weights: bool = False,
):
    """The definition written plainly: each pair's bucket, its bias gathered per pair."""
    s = _scale(problem)
    acc = accumulation_dtype(q.dtype)
    buckets = _buckets(problem, num_buckets, max_distance, bidirectional, q.device)
    bias = rel_bias[buckets].permute(0, 3, 1, 2)  # (B, n_head, qlen, klen)
    logits = torch.einsum("bhid,bhjd->bhij", q, k).to(acc) * s + bias.to(acc)
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
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    num_buckets: int = 32,
    max_distance: int = 128,
    bidirectional: bool = True,
    scale: float | None = None,
    with_weights: bool = False,
):
    """Buckets of the qlen + klen - 1 distinct distances once (cached; per distinct distance
    at position ids), the per-head bias as one gather added to batched q k^T. Without
    autograd it runs in blocks of query rows."""
    s = _scale(problem)
    bsz, n_head, qlen, d_head = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)
    buckets = _buckets(problem, num_buckets, max_distance, bidirectional, q.device)
    per_head = rel_bias.t().to(acc)  # (n_head, num_buckets)
    if tracks_grad(q, k, v, rel_bias):
        bias = per_head[:, buckets].transpose(0, 1)  # (B, n_head, qlen, klen)
        scores = torch.matmul(q, k.transpose(-1, -2)).to(acc) * s + bias
        return whole_attention(scores, mask, v, with_weights)
    blocks = Blocks((bsz, n_head, qlen, klen), mask, acc, q.device, with_weights)
    keys_t = k.reshape(bsz * n_head, klen, d_head).transpose(1, 2)
    queries = q.reshape(bsz * n_head, qlen, d_head)

    def scores_of(i0: int, i1: int) -> torch.Tensor:
        scores = torch.bmm(queries[:, i0:i1], keys_t).to(acc).mul_(s)
        bias = per_head[:, buckets[:, i0:i1]].transpose(0, 1)  # (B, n_head, i1 - i0, klen)
        scores.view(bsz, n_head, i1 - i0, klen).add_(bias)
        return scores

    return blocks.attend(v, scores_of, with_weights)
