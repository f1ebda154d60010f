"""ALiBi (Press et al. 2022) in PyTorch: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show alibi``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True``. Half types
run in float32 (logits, softmax and sums), the output rounded back.
"""

from __future__ import annotations

import torch

from relpos.impls._validated import validated
from relpos.impls.torch._common import (
    Blocks,
    accumulation_dtype,
    block_rows,
    causal_pairs,
    default_scale,
    guard,
    masked_softmax,
    positions,
    tracks_grad,
    visible_pairs,
    whole_attention,
)
from relpos.spec import Problem

__all__ = ["VARIANTS", "alibi_fast", "alibi_reference", "slopes_for"]

VARIANTS = {"reference": "alibi_reference", "fast": "alibi_fast"}


def _geometric(n: int) -> list[float]:
    return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]


def slopes_for(n_head: int, rule: str) -> list[float]:
    """The slopes of n_head heads: 'geometric' is 2^(-8h/n); 'paper' is that for a power of
    two n, else the slopes of the largest power of two p < n and every other slope of 2p."""
    if rule == "geometric" or n_head & (n_head - 1) == 0:
        return _geometric(n_head)
    p = 1 << (n_head.bit_length() - 1)
    return _geometric(p) + slopes_for(2 * p, "paper")[0::2][: n_head - p]


def _slopes(slopes, n_head, rule, dtype, device):
    if slopes is not None:
        return slopes.to(dtype)
    return torch.tensor(slopes_for(n_head, rule), dtype=torch.float64, device=device).to(dtype)


def _distance_bias(problem: Problem, signed: bool, device: torch.device) -> torch.Tensor:
    """B_ij = -|pos_i - pos_j| (signed: pos_j - pos_i) as a (B, qlen, klen) int64 tensor."""
    q_pos, k_pos = positions(problem, device)
    delta = k_pos[:, None, :] - q_pos[:, :, None]
    return delta if signed else -delta.abs()


def _prepare(problem, q, mask, causal):
    visible = visible_pairs(mask, causal_pairs(problem, q.device) if causal else None)
    return default_scale(problem), visible


@validated("alibi")
@guard
def alibi_reference(
    problem: Problem,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    slopes: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    causal: bool = False,
    signed: bool = False,
    slope_rule: str = "paper",
    scale: float | None = None,
    with_weights: bool = False,
):
    """The definition written plainly: e_ij = scale q_i . k_j + m_h B_ij per pair."""
    s, visible = _prepare(problem, q, mask, causal)
    n_head = q.shape[1]
    acc = accumulation_dtype(q.dtype)
    m = _slopes(slopes, n_head, slope_rule, acc, q.device)
    bias = _distance_bias(problem, signed, q.device).to(acc)
    content = torch.einsum("bhid,bhjd->bhij", q, k).to(acc) * s
    logits = content + m[None, :, None, None] * bias[:, None]
    probs = masked_softmax(logits, visible)
    out = torch.einsum("bhij,bhjd->bhid", probs, v.to(acc)).to(q.dtype)
    if not with_weights:
        return out
    return out, probs, logits if visible is None else logits.masked_fill(~visible, float("-inf"))


@validated("alibi")
@guard
def alibi_fast(
    problem: Problem,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    slopes: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    causal: bool = False,
    signed: bool = False,
    slope_rule: str = "paper",
    scale: float | None = None,
    with_weights: bool = False,
):
    """One distance grid (per batch row with position ids) shared by every head, scaled by
    each head's slope and added to batched q k^T. Without autograd it runs in blocks of
    query rows and forms no (qlen, klen) buffer per head."""
    s, visible = _prepare(problem, q, mask, causal)
    bsz, n_head, qlen, d_head = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)
    m = _slopes(slopes, n_head, slope_rule, acc, q.device)
    bias = _distance_bias(problem, signed, q.device).to(acc)
    if tracks_grad(q, k, v, slopes):
        scores = torch.matmul(q, k.transpose(-1, -2)).to(acc) * s
        scores = scores + m[None, :, None, None] * bias[:, None]
        return whole_attention(scores, visible, v, with_weights)
    blocks = Blocks((bsz, n_head, qlen, klen), visible, acc, q.device, with_weights)
    scaled = (q * s).reshape(bsz * n_head, qlen, d_head)
    keys_t = k.reshape(bsz * n_head, klen, d_head).transpose(1, 2)
    per_head = m.repeat(bsz)[:, None, None]  # (bh, 1, 1)

    def scores_of(i0: int, i1: int) -> torch.Tensor:
        scores = torch.bmm(scaled[:, i0:i1], keys_t).to(acc)
        return scores.add_(per_head * block_rows(bias, bsz, n_head, i0, i1))

    return blocks.attend(v, scores_of, with_weights)
