"""DeBERTa disentangled attention in PyTorch: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show deberta``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True``. Table rows,
including DeBERTa-v2's log buckets, are computed with integer arithmetic only.
"""

from __future__ import annotations

import math

import torch

from relpos.impls._integers import deberta_rows, deberta_rows_of
from relpos.impls._validated import validated
from relpos.impls.torch._common import (
    Blocks,
    accumulation_dtype,
    block_rows,
    guard,
    has_positions,
    masked_softmax,
    positions,
    tracks_grad,
    whole_attention,
)
from relpos.spec import Problem

__all__ = ["VARIANTS", "deberta_fast", "deberta_reference"]

VARIANTS = {"reference": "deberta_reference", "fast": "deberta_fast"}


def _rows(
    problem: Problem, span: int, max_position, p2c_distance: str, device
) -> tuple[torch.Tensor, ...]:
    """(B, qlen, klen) rows of r_ij (c2p) and of the p2c distance: r_ji = -r_ij (the paper)
    or r_ij (p2c_distance 'r_ij'). At the default positions from the cached table of every
    distance; at position ids each distinct distance's row is computed on the host."""
    klen = problem.dims["klen"]
    q_pos, k_pos = positions(problem, device)
    r = q_pos[:, :, None] - k_pos[:, None, :]
    if has_positions(problem):

        def rows_of(x: torch.Tensor) -> torch.Tensor:
            found = deberta_rows_of(x.cpu().numpy(), span, max_position)
            return torch.from_numpy(found).to(device)

        c2p = rows_of(r)
        return c2p, (rows_of(-r) if p2c_distance == "r_ji" else c2p)
    table = torch.tensor(deberta_rows(klen, span, max_position), device=device)
    c2p = table[r + klen - 1]
    return c2p, (table[klen - 1 - r] if p2c_distance == "r_ji" else c2p)


def _scale(problem) -> float:
    """The given scale, or 1/sqrt(d_head (1 + terms present))."""
    scale = problem.options["scale"]
    if scale is not None:
        return float(scale)
    terms = 1 + sum(problem.tensors[name] is not None for name in ("pos_key", "pos_query"))
    return 1 / math.sqrt(problem.dims["d_head"] * terms)


def _per_pair(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """table[rows] as (B, 1, qlen, klen, d) shared, or (B, n_head, qlen, klen, d) per head."""
    return table[rows][:, None] if table.dim() == 2 else table[:, rows].transpose(0, 1)


@validated("deberta")
@guard
def deberta_reference(
    problem: Problem,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    pos_key: torch.Tensor | None = None,
    pos_query: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    span: int | None = None,
    max_position: int | None = None,
    p2c_distance: str = "r_ji",
    scale: float | None = None,
    with_weights: bool = False,
):
    """The definition written plainly: both relative tables gathered per pair."""
    s = _scale(problem)
    acc = accumulation_dtype(q.dtype)
    c2p_rows, p2c_rows = _rows(problem, span, max_position, p2c_distance, q.device)
    logits = torch.einsum("bhid,bhjd->bhij", q, k).to(acc)
    if pos_key is not None:  # content to position: q_i . K^r[d(r_ij)]
        logits = logits + torch.einsum("bhid,bhijd->bhij", q, _per_pair(pos_key, c2p_rows))
    if pos_query is not None:  # position to content: k_j . Q^r[d(r_ji)] (or d(r_ij))
        logits = logits + torch.einsum("bhjd,bhijd->bhij", k, _per_pair(pos_query, p2c_rows))
    logits = logits.to(acc) * s
    probs = masked_softmax(logits, mask)
    out = torch.einsum("bhij,bhjd->bhid", probs, v.to(acc)).to(q.dtype)
    if not with_weights:
        return out
    return out, probs, logits if mask is None else logits.masked_fill(~mask, float("-inf"))


def _table_product(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x @ table^T for a shared (R, d) or per-head (h, R, d) table: (b, h, n, R)."""
    return torch.matmul(x, table.transpose(-1, -2))


@validated("deberta")
@guard
def deberta_fast(
    problem: Problem,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    pos_key: torch.Tensor | None = None,
    pos_query: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    span: int | None = None,
    max_position: int | None = None,
    p2c_distance: str = "r_ji",
    scale: float | None = None,
    with_weights: bool = False,
):
    """c2p as q K^r^T (qlen x 2k) gathered by row, p2c as k Q^r^T (klen x 2k) gathered by
    the reversed row and transposed: no (qlen, klen, d_head) tensor. Without autograd it runs
    in blocks of query rows."""
    s = _scale(problem)
    bsz, n_head, qlen, d_head = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)
    c2p_rows, p2c_rows = _rows(problem, span, max_position, p2c_distance, q.device)
    c2p = None if pos_key is None else _table_product(q, pos_key)  # (b, h, qlen, 2k)
    p2c = None if pos_query is None else _table_product(k, pos_query)  # (b, h, klen, 2k)
    if tracks_grad(q, k, v, pos_key, pos_query):
        scores = torch.matmul(q, k.transpose(-1, -2))
        if c2p is not None:
            index = c2p_rows[:, None].expand(bsz, n_head, qlen, klen)
            scores = scores + torch.gather(c2p, -1, index)
        if p2c is not None:
            index = p2c_rows.transpose(-1, -2)[:, None].expand(bsz, n_head, klen, qlen)
            scores = scores + torch.gather(p2c, -1, index).transpose(-1, -2)
        return whole_attention(scores.to(acc) * s, mask, v, with_weights)
    blocks = Blocks((bsz, n_head, qlen, klen), mask, acc, q.device, with_weights)
    bh = bsz * n_head
    queries = q.reshape(bh, qlen, d_head)
    keys_t = k.reshape(bh, klen, d_head).transpose(1, 2)
    p2c_t = None if p2c is None else p2c.transpose(-1, -2).reshape(bh, -1, klen)  # (bh, 2k, K)
    c2p = None if c2p is None else c2p.reshape(bh, qlen, -1)

    def scores_of(i0: int, i1: int) -> torch.Tensor:
        scores = torch.bmm(queries[:, i0:i1], keys_t)
        if c2p is not None:
            index = block_rows(c2p_rows, bsz, n_head, i0, i1)
            scores.add_(torch.gather(c2p[:, i0:i1], -1, index))
        if p2c_t is not None:
            scores.add_(torch.gather(p2c_t, -2, block_rows(p2c_rows, bsz, n_head, i0, i1)))
        return scores.to(acc).mul_(s)

    return blocks.attend(v, scores_of, with_weights)
