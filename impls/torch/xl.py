"""Transformer-XL / XLNet relative attention in PyTorch: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show xl``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True`` (scores are
-inf where masked). Half types run in float32 (logits, softmax, sums); the sinusoid is built
from integer distances in float32 (float64 for float64 inputs).
"""

from __future__ import annotations

import torch

from relpos.impls._validated import validated
from relpos.impls.torch._common import (
    Blocks,
    accumulation_dtype,
    causal_pairs,
    default_scale,
    guard,
    has_positions,
    masked_softmax,
    positions,
    sinusoid,
    tracks_grad,
    visible_pairs,
    whole_attention,
)
from relpos.spec import Problem

__all__ = ["VARIANTS", "rel_shift", "xl_fast", "xl_reference"]

VARIANTS = {"reference": "xl_reference", "fast": "xl_fast"}


def clamp_distance(distance: torch.Tensor, clamp_len: int | None, style: str) -> torch.Tensor:
    if clamp_len is None:
        return distance
    if style == "upper":
        return distance.clamp(max=clamp_len)
    return distance.clamp(-clamp_len, clamp_len)


def query_minus_key(problem: Problem, device: torch.device) -> torch.Tensor:
    """D_ij = pos_i - pos_j as a (B, qlen, klen) int64 tensor, B in {1, bsz}."""
    q_pos, k_pos = positions(problem, device)
    return q_pos[:, :, None] - k_pos[:, None, :]


def _shifted_layout(problem: Problem, distance: torch.Tensor) -> bool:
    """Whether every row's distances are the default layout's (mlen + i - j): position ids
    that shift every position of a row alike, which the rel-shift path computes exactly."""
    if not has_positions(problem):
        return True
    qlen, klen, mlen = (problem.dims[n] for n in ("qlen", "klen", "mlen"))
    i = torch.arange(qlen, device=distance.device)[:, None]
    j = torch.arange(klen, device=distance.device)[None, :]
    return bool((distance == (mlen + i - j)).all())


def rel_shift(x: torch.Tensor, klen: int) -> torch.Tensor:
    """Realign scores computed against distances klen-1, klen-2, ..., -(qlen-1) (last axis of
    length klen + qlen - 1) so that out[..., i, j] = x[..., i, j + qlen - 1 - i], the
    distance (klen - qlen) + i - j. A zero-copy strided view of a contiguous ``x``."""
    *lead, qlen, rlen = x.shape
    if rlen != klen + qlen - 1:
        raise ValueError(
            f"rel_shift needs klen + qlen - 1 = {klen + qlen - 1} columns, "
            f"got x.shape={tuple(x.shape)}"
        )
    x = x.contiguous()
    strides = (*x.stride()[:-2], rlen - 1, 1)
    return x.as_strided((*lead, qlen, klen), strides, x.storage_offset() + qlen - 1)


def _segment_term(q, r_s_bias, seg_embed, seg_ids, mlen):
    per_segment = torch.matmul(q + r_s_bias[:, None, :], seg_embed.permute(1, 2, 0))  # (b,h,i,2)
    differs = (seg_ids[:, mlen:, None] != seg_ids[:, None, :])[:, None]  # (b,1,i,j)
    return torch.where(differs, per_segment[..., 1:2], per_segment[..., 0:1])


@validated("xl")
@guard
def xl_reference(
    problem: Problem,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    w_r: torch.Tensor | None = None,
    r_w_bias: torch.Tensor | None = None,
    r_r_bias: torch.Tensor | None = None,
    r_s_bias: torch.Tensor | None = None,
    seg_embed: torch.Tensor | None = None,
    seg_ids: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    d_model: int | None = None,
    attn_type: str = "bi",
    clamp_len: int | None = None,
    clamp_style: str = "upper",
    scale: float | None = None,
    with_weights: bool = False,
):
    """The definition written plainly: R(D_ij) and r = W_R R(D_ij) for every pair, the four
    terms as explicit einsums, an explicit softmax."""
    mlen = problem.dims["mlen"]
    acc = accumulation_dtype(q.dtype)
    distance = clamp_distance(query_minus_key(problem, q.device), clamp_len, clamp_style)
    R = sinusoid(distance.reshape(-1), problem.dims["d_model"], q.dtype)
    R = R.reshape(*distance.shape, -1).to(q.dtype)  # (B, i, j, m)
    r = torch.einsum("bijm,hdm->bhijd", R, w_r)  # (B, h, i, j, d)
    u, vb = r_w_bias[None, :, None, :], r_r_bias[None, :, None, :]
    logits = torch.einsum("bhid,bhjd->bhij", q + u, k)
    logits = logits + torch.einsum("bhid,bhijd->bhij", q + vb, r.expand(q.shape[0], -1, -1, -1, -1))
    if seg_ids is not None:
        differs = (seg_ids[:, mlen:, None] != seg_ids[:, None, :]).long()  # (b, i, j)
        S = seg_embed[differs]  # (b,i,j,h,d)
        logits = logits + torch.einsum("bhid,bijhd->bhij", q + r_s_bias[None, :, None, :], S)
    logits = logits.to(acc) * default_scale(problem)
    visible = visible_pairs(mask, causal_pairs(problem, q.device) if attn_type == "uni" else None)
    probs = masked_softmax(logits, visible)
    out = torch.einsum("bhij,bhjd->bhid", probs, v.to(acc)).to(q.dtype)
    if not with_weights:
        return out
    scores = logits if visible is None else logits.masked_fill(~visible, float("-inf"))
    return out, probs, scores


@validated("xl")
@guard
def xl_fast(
    problem: Problem,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    w_r: torch.Tensor | None = None,
    r_w_bias: torch.Tensor | None = None,
    r_r_bias: torch.Tensor | None = None,
    r_s_bias: torch.Tensor | None = None,
    seg_embed: torch.Tensor | None = None,
    seg_ids: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    d_model: int | None = None,
    attn_type: str = "bi",
    clamp_len: int | None = None,
    clamp_style: str = "upper",
    scale: float | None = None,
    with_weights: bool = False,
):
    """The sinusoid once for the klen + qlen - 1 distances and a strided rel-shift; no
    (qlen, klen, d_head) tensor. Without autograd it runs in blocks of query rows, each
    needing only klen + block - 1 distances, and forms no (qlen, klen) buffer either.
    Position ids that shift a row's positions alike take the same path (the distances are
    the same); other position ids take the sinusoid once per distinct distance, gathered per
    pair."""
    assert w_r is not None and r_w_bias is not None and r_r_bias is not None  # validated
    qlen, klen, mlen = (problem.dims[n] for n in ("qlen", "klen", "mlen"))
    visible = visible_pairs(mask, causal_pairs(problem, q.device) if attn_type == "uni" else None)
    segments = None
    if seg_ids is not None:
        segments = (seg_ids, r_s_bias, seg_embed, mlen)
    distance = query_minus_key(problem, q.device)
    if not _shifted_layout(problem, distance):
        distance = clamp_distance(distance, clamp_len, clamp_style)
        distinct, where = torch.unique(distance, return_inverse=True)
        R = sinusoid(distinct, problem.dims["d_model"], q.dtype).to(q.dtype)  # (n, m)
        r = torch.matmul(R, w_r.transpose(-1, -2))  # (h, n, d)
        return _at_positions(
            q,
            k,
            v,
            r,
            where,
            r_w_bias,
            r_r_bias,
            segments,
            visible,
            default_scale(problem),
            with_weights,
        )
    # Distances klen-1 down to -(qlen-1): column c holds distance klen - 1 - c.
    distances = clamp_distance(
        torch.arange(klen - 1, -qlen, -1, device=q.device), clamp_len, clamp_style
    )
    R = sinusoid(distances, problem.dims["d_model"], q.dtype).to(q.dtype)  # (rlen, m)
    r = torch.matmul(R, w_r.transpose(-1, -2))  # (h, rlen, d)
    run = (
        _whole if tracks_grad(q, k, v, w_r, r_w_bias, r_r_bias, r_s_bias, seg_embed) else (_blocked)
    )
    return run(
        q, k, v, r, r_w_bias, r_r_bias, segments, visible, default_scale(problem), with_weights
    )


def _at_positions(q, k, v, r, where, r_w_bias, r_r_bias, segments, visible, scale, with_weights):
    """Whole matrices at arbitrary position ids: pair (b, i, j) reads r[:, where[b, i, j]],
    the projected sinusoid of its distinct distance."""
    acc = accumulation_dtype(q.dtype)
    scores = torch.matmul(q + r_w_bias[:, None, :], k.transpose(-1, -2))
    per_pair = r[:, where].transpose(0, 1)  # (B, h, i, j, d)
    scores = scores + torch.einsum("bhid,bhijd->bhij", q + r_r_bias[:, None, :], per_pair)
    if segments is not None:
        seg_ids, r_s_bias, seg_embed, mlen = segments
        scores = scores + _segment_term(q, r_s_bias, seg_embed, seg_ids, mlen)
    return whole_attention(scores.to(acc) * scale, visible, v, with_weights)


def _whole(q, k, v, r, r_w_bias, r_r_bias, segments, visible, scale, with_weights):
    """Whole (qlen, klen) matrices, out of place: the path autograd records."""
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)
    scores = torch.matmul(q + r_w_bias[:, None, :], k.transpose(-1, -2))
    by_distance = torch.matmul(q + r_r_bias[:, None, :], r.transpose(-1, -2))
    scores = scores + rel_shift(by_distance, klen)
    if segments is not None:
        seg_ids, r_s_bias, seg_embed, mlen = segments
        scores = scores + _segment_term(q, r_s_bias, seg_embed, seg_ids, mlen)
    scores = scores.to(acc) * scale
    probs = masked_softmax(scores, visible)
    out = torch.matmul(probs.to(q.dtype), v)
    if not with_weights:
        return out
    return out, probs, scores if visible is None else scores.masked_fill(~visible, float("-inf"))


def _blocked(q, k, v, r, r_w_bias, r_r_bias, segments, visible, scale, with_weights):
    """Blocks of query rows: block rows i0..i1-1 read distance columns
    qlen - i1 .. qlen - i1 + klen + n - 2 only; scores, softmax and output per block."""
    bsz, n_head, qlen, d_head = q.shape
    klen = k.shape[2]
    bh = bsz * n_head
    acc = accumulation_dtype(q.dtype)
    blocks = Blocks((bsz, n_head, qlen, klen), visible, acc, q.device, with_weights)
    content = ((q + r_w_bias[:, None, :]) * scale).reshape(bh, qlen, d_head)
    position = (q + r_r_bias[:, None, :]) * scale  # (b, h, qlen, d)
    segment = None
    if segments is not None:
        seg_ids, r_s_bias, seg_embed, mlen = segments
        segment = _segment_term(q * scale, r_s_bias * scale, seg_embed, seg_ids, mlen)
    keys_t = k.reshape(bh, klen, d_head).transpose(1, 2)
    values = v.reshape(bh, klen, d_head)
    r_t = r.transpose(-1, -2)  # (h, d, rlen)
    out = torch.empty(bsz, n_head, qlen, d_head, dtype=q.dtype, device=q.device)
    for i0, i1 in blocks.ranges():
        n = i1 - i0
        scores = torch.bmm(content[:, i0:i1], keys_t)
        first = qlen - i1  # first distance column
        window = torch.matmul(position[:, :, i0:i1], r_t[..., first : first + klen + n - 1])
        window = window.reshape(bh, n, klen + n - 1)
        # Row a of the block (query i0 + a) reads window column (n - 1 - a) + j.
        scores.add_(
            window.as_strided(
                (bh, n, klen),
                (window.stride(0), window.stride(1) - 1, 1),
                window.storage_offset() + n - 1,
            )
        )
        if segment is not None:
            scores.view(bsz, n_head, n, klen).add_(segment[:, :, i0:i1])
        probs = blocks.softmax(scores, i0, i1)
        out[:, :, i0:i1] = torch.bmm(probs.to(q.dtype), values).view(bsz, n_head, n, d_head)
    return (out, blocks.probs, blocks.scores) if with_weights else out
