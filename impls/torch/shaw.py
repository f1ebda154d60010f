"""Shaw et al. 2018 relative attention in PyTorch: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show shaw``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True`` (scores are
-inf where masked). Half types run in float32 (logits, softmax, sums).
"""

from __future__ import annotations

import torch

from relpos.impls._validated import validated
from relpos.impls.torch._common import (
    Blocks,
    accumulation_dtype,
    block_rows,
    default_scale,
    guard,
    masked_softmax,
    positions,
    tracks_grad,
)
from relpos.spec import Problem

__all__ = ["VARIANTS", "shaw_fast", "shaw_reference"]

VARIANTS = {"reference": "shaw_reference", "fast": "shaw_fast"}


def clipped_rows(q_pos: torch.Tensor, k_pos: torch.Tensor, clip: tuple[int, int]) -> torch.Tensor:
    """c_ij = clip(pos_j - pos_i, p_min, p_max) - p_min as a (B, qlen, klen) int64 tensor,
    from positions q_pos (B, qlen) and k_pos (B, klen)."""
    distance = k_pos[:, None, :] - q_pos[:, :, None]
    return distance.clamp(clip[0], clip[1]) - clip[0]


def _rows_per_pair(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """table[c_ij] as (B, 1, qlen, klen, d) for a shared table, (B, n_head, ...) per head."""
    return table[rows][:, None] if table.dim() == 2 else table[:, rows].transpose(0, 1)


@validated("shaw")
@guard
def shaw_reference(
    problem: Problem,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    rel_k: torch.Tensor | None = None,
    rel_v: torch.Tensor | None = None,
    clip: tuple[int, int] | None = None,
    key_query: bool = False,
    mask: torch.Tensor | None = None,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    scale: float | None = None,
    with_weights: bool = False,
):
    """The definition written plainly: per-pair gathered tables and an explicit softmax."""
    qlen, klen = problem.dims["qlen"], problem.dims["klen"]
    acc = accumulation_dtype(q.dtype)
    rows = clipped_rows(*positions(problem, q.device), clip)
    a_k = _rows_per_pair(rel_k, rows)  # (B, h, i, j, d)
    # e_ij = scale * q_i . (k_j + a_ij) [+ scale * k_j . a_ij]
    logits = torch.einsum("bhid,bhijd->bhij", q, k[:, :, None, :, :] + a_k)
    if key_query:
        logits = logits + torch.einsum(
            "bhjd,bhijd->bhij", k, a_k.expand(q.shape[0], q.shape[1], qlen, klen, q.shape[-1])
        )
    logits = logits.to(acc) * default_scale(problem)
    probs = masked_softmax(logits, mask)
    values = v[:, :, None, :, :]
    if rel_v is not None:
        values = values + _rows_per_pair(rel_v, rows)  # V_ij = v_j + a^V_ij
    out = torch.einsum("bhij,bhijd->bhid", probs, values.to(acc)).to(q.dtype)
    if not with_weights:
        return out
    scores = logits if mask is None else logits.masked_fill(~mask, float("-inf"))
    return out, probs, scores


@validated("shaw")
@guard
def shaw_fast(
    problem: Problem,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    rel_k: torch.Tensor | None = None,
    rel_v: torch.Tensor | None = None,
    clip: tuple[int, int] | None = None,
    key_query: bool = False,
    mask: torch.Tensor | None = None,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    scale: float | None = None,
    with_weights: bool = False,
):
    """q rel_k^T (qlen x P) gathered by clipped distance for the key term; attention weights
    summed per clipped distance (scatter-add) and one matmul with rel_v for the value term.
    Never forms a (qlen, klen, d_head) tensor. Without autograd it runs in blocks of query
    rows and forms no (qlen, klen) buffer either."""
    assert rel_k is not None and clip is not None  # validated
    run = _whole if tracks_grad(q, k, v, rel_k, rel_v) else _blocked
    rows = clipped_rows(*positions(problem, q.device), (int(clip[0]), int(clip[1])))
    return run(
        rows,
        q,
        k,
        v,
        rel_k,
        rel_v,
        (int(clip[0]), int(clip[1])),
        key_query,
        mask,
        default_scale(problem),
        with_weights,
    )


def _table_product(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x @ table^T for a shared (P, d) or per-head (h, P, d) table: (b, h, n, P)."""
    return torch.matmul(x, table.transpose(-1, -2))


def _whole(rows, q, k, v, rel_k, rel_v, clip, key_query, mask, scale, with_weights):
    """Whole (qlen, klen) matrices, out of place: the path autograd records."""
    bsz, n_head, qlen, _ = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)
    rows = rows[:, None].expand(bsz, n_head, qlen, klen)
    scores = torch.matmul(q, k.transpose(-1, -2))
    scores = scores + torch.gather(_table_product(q, rel_k), -1, rows)
    if key_query:
        key_side = torch.gather(_table_product(k, rel_k), -1, rows.transpose(-1, -2))
        scores = scores + key_side.transpose(-1, -2)
    scores = scores.to(acc) * scale
    probs = masked_softmax(scores, mask)
    out = torch.matmul(probs.to(q.dtype), v)
    if rel_v is not None:
        per_row = torch.zeros(bsz, n_head, qlen, rel_v.shape[-2], dtype=acc, device=q.device)
        per_row = per_row.scatter_add(-1, rows, probs)  # sum_j alpha_ij [c_ij=c]
        out = out + torch.matmul(per_row.to(q.dtype), rel_v)
    if not with_weights:
        return out
    return out, probs, scores if mask is None else scores.masked_fill(~mask, float("-inf"))


def _blocked(rows, q, k, v, rel_k, rel_v, clip, key_query, mask, scale, with_weights):
    """Blocks of query rows: scores, softmax, value sums and output per block, in place."""
    bsz, n_head, qlen, d_head = q.shape
    klen = k.shape[2]
    bh = bsz * n_head
    acc = accumulation_dtype(q.dtype)
    blocks = Blocks((bsz, n_head, qlen, klen), mask, acc, q.device, with_weights)
    scaled = q * scale
    by_distance = _table_product(scaled, rel_k).reshape(bh, qlen, -1)  # (bh, qlen, P)
    if key_query:
        key_side = _table_product(k * scale, rel_k).transpose(-1, -2)  # (b, h, P, klen)
        key_side = key_side.reshape(bh, -1, klen)
    keys_t = k.reshape(bh, klen, d_head).transpose(1, 2)
    values = v.reshape(bh, klen, d_head)
    scaled = scaled.reshape(bh, qlen, d_head)
    out = torch.empty(bsz, n_head, qlen, d_head, dtype=q.dtype, device=q.device)
    for i0, i1 in blocks.ranges():
        index = block_rows(rows, bsz, n_head, i0, i1)
        scores = torch.bmm(scaled[:, i0:i1], keys_t)
        scores.add_(torch.gather(by_distance[:, i0:i1], -1, index))
        if key_query:
            scores.add_(torch.gather(key_side, -2, index))
        probs = blocks.softmax(scores, i0, i1)
        block_out = torch.bmm(probs.to(q.dtype), values).view(bsz, n_head, i1 - i0, d_head)
        if rel_v is not None:
            sums = torch.zeros(bh, i1 - i0, rel_v.shape[-2], dtype=acc, device=q.device)
            sums.scatter_add_(-1, index, probs)  # sum_j alpha_ij [c_ij=c]
            sums = sums.to(q.dtype).view(bsz, n_head, i1 - i0, -1)
            block_out.add_(torch.matmul(sums, rel_v))
        out[:, :, i0:i1] = block_out
    return (out, blocks.probs, blocks.scores) if with_weights else out
