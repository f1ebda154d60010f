"""RoPE (Su et al. 2021) in PyTorch: a reference and a fast variant.

Both take the spec's arguments (``relpos spec show rope``) and return the output
(bsz, n_head, qlen, d_head), or ``(out, probs, scores)`` with ``with_weights=True``. Angles
come from integer positions, in float64 for float64 inputs and float32 otherwise; half types
run in float32 (logits, softmax and sums). A ``scaling`` variant's inverse frequencies and
attention factor come from :func:`relpos.impls.torch.rope_scaling.inverse_frequencies`.
"""

from __future__ import annotations

import torch

from relpos.impls._validated import validated
from relpos.impls.torch._common import (
    Blocks,
    accumulation_dtype,
    default_scale,
    guard,
    has_positions,
    masked_softmax,
    positions,
    tracks_grad,
    whole_attention,
)
from relpos.impls.torch.rope_scaling import inverse_frequencies
from relpos.spec import Problem
from relpos.spec.encodings.rope import LENGTH_DEPENDENT, scaling_parameters

__all__ = ["VARIANTS", "rope_fast", "rope_reference"]

VARIANTS = {"reference": "rope_reference", "fast": "rope_fast"}


def _rotary(problem) -> int:
    r = problem.options["rotary_dim"]
    d = problem.dims["d_head"]
    return d - d % 2 if r is None else int(r)


def _frequencies(
    problem: Problem, r: int, base: float, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, float]:
    """theta'_t per batch row (B, r/2), B in {1, bsz}, and the attention factor m: the
    scaling variant's (theta_t = base^(-2t/r) and 1 without one), in float64 for float64
    inputs and float32 otherwise. dynamic and longrope take each row's length, 1 + its
    largest query or key position."""
    precision = "float64" if dtype == torch.float64 else "float32"
    if r == 0:
        return torch.zeros((1, 0), dtype=getattr(torch, precision), device=device), 1.0
    rope_type, params = scaling_parameters(problem.options["scaling"], problem.dims["d_head"])
    if rope_type not in LENGTH_DEPENDENT:
        theta, m = inverse_frequencies(
            rope_type, rotary_dim=r, base=base, precision=precision, **params
        )
        return theta.to(device)[None], m
    q_pos, k_pos = positions(problem, device)
    lengths = (torch.maximum(q_pos.amax(dim=1), k_pos.amax(dim=1)) + 1).tolist()
    by_length = {  # once per distinct length, however many rows share it
        length: inverse_frequencies(
            rope_type, rotary_dim=r, base=base, seq_len=int(length), precision=precision, **params
        )
        for length in set(lengths)
    }
    (m,) = {m for _, m in by_length.values()}  # the attention factor does not depend on it
    return torch.stack([by_length[length][0] for length in lengths]).to(device), m


def _angles(positions: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """p theta'_t of integer positions (B, L) and frequencies (B', r/2), B and B' in
    {1, bsz}: (max(B, B'), L, r/2) in the frequencies' dtype."""
    return positions.to(theta.dtype)[..., None] * theta[:, None]


def _position_angles(
    problem: Problem, r: int, base: float, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """p theta'_t of the queries (B, qlen, r/2) and of the keys (B, klen, r/2), B in
    {1, bsz}, and the attention factor m: at the default positions one table of the klen
    positions (the queries take its last qlen rows), at position ids one per side."""
    qlen, klen = problem.dims["qlen"], problem.dims["klen"]
    theta, m = _frequencies(problem, r, base, dtype, device)
    if not has_positions(problem):
        angles = _angles(torch.arange(klen, device=device)[None], theta)
        return angles[:, klen - qlen :], angles, m
    q_pos, k_pos = positions(problem, device)
    return _angles(q_pos, theta), _angles(k_pos, theta), m


def _rotation_matrices(angles: torch.Tensor, d_head: int, r: int, factor: float) -> torch.Tensor:
    """Block-diagonal (B, L, d_head, d_head) rotations of angles (B, L, r/2): ``factor``
    [[cos, -sin], [sin, cos]] on each pair (2t, 2t+1) of the first r features, the identity
    on the rest."""
    B, L = angles.shape[:2]
    m = torch.eye(d_head, dtype=angles.dtype, device=angles.device).repeat(B, L, 1, 1)
    for t in range(r // 2):
        c, s = torch.cos(angles[..., t]) * factor, torch.sin(angles[..., t]) * factor
        a, b = 2 * t, 2 * t + 1
        m[..., a, a], m[..., a, b], m[..., b, a], m[..., b, b] = c, -s, s, c
    return m


@validated("rope")
@guard
def rope_reference(
    problem: Problem,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    base: float = 10000,
    rotary_dim: int | None = None,
    scaling: dict | None = None,
    scale: float | None = None,
    with_weights: bool = False,
):
    """The definition written plainly: a rotation matrix per position, q and k rotated by
    matrix products, then every pair's dot product."""
    bsz, d_head = q.shape[0], q.shape[3]
    acc = accumulation_dtype(q.dtype)
    r = _rotary(problem)
    q_angles, k_angles, factor = _position_angles(problem, r, base, q.dtype, q.device)
    q_rot, k_rot = (
        torch.einsum(
            "bide,bhie->bhid",
            _rotation_matrices(angles, d_head, r, factor).to(acc).expand(bsz, -1, -1, -1),
            x.to(acc),
        )
        for angles, x in ((q_angles, q), (k_angles, k))
    )
    logits = torch.einsum("bhid,bhjd->bhij", q_rot, k_rot) * default_scale(problem)
    probs = masked_softmax(logits, mask)
    out = torch.einsum("bhij,bhjd->bhid", probs, v.to(acc)).to(q.dtype)
    if not with_weights:
        return out
    return out, probs, logits if mask is None else logits.masked_fill(~mask, float("-inf"))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, r: int) -> torch.Tensor:
    """x with pairs (2t, 2t+1) of its first r features rotated (cos, sin: (B, 1, L, r/2))."""
    if r == 0:
        return x
    even, odd = x[..., 0:r:2], x[..., 1:r:2]
    pairs = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return torch.cat([pairs.flatten(-2), x[..., r:]], dim=-1)


@validated("rope")
@guard
def rope_fast(
    problem: Problem,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    base: float = 10000,
    rotary_dim: int | None = None,
    scaling: dict | None = None,
    scale: float | None = None,
    with_weights: bool = False,
):
    """cos and sin tables once per position (per batch row at position ids), q and k
    rotated elementwise (in the angles' precision, then back to their dtype), then batched
    q k^T. Without autograd it runs in blocks of query rows."""
    bsz, n_head, qlen, d_head = q.shape
    klen = k.shape[2]
    acc = accumulation_dtype(q.dtype)
    r = _rotary(problem)
    q_angles, k_angles, m = _position_angles(problem, r, base, q.dtype, q.device)
    work = q_angles.dtype
    q_rot, k_rot = (
        _rotate(x.to(work), torch.cos(a)[:, None] * m, torch.sin(a)[:, None] * m, r).to(q.dtype)
        for a, x in ((q_angles, q), (k_angles, k))
    )
    s = default_scale(problem)
    if tracks_grad(q, k, v):
        scores = torch.matmul(q_rot, k_rot.transpose(-1, -2)).to(acc) * s
        return whole_attention(scores, mask, v, with_weights)
    blocks = Blocks((bsz, n_head, qlen, klen), mask, acc, q.device, with_weights)
    queries = q_rot.reshape(bsz * n_head, qlen, d_head)
    keys_t = k_rot.reshape(bsz * n_head, klen, d_head).transpose(1, 2)

    def scores_of(i0: int, i1: int) -> torch.Tensor:
        return torch.bmm(queries[:, i0:i1], keys_t).to(acc).mul_(s)

    return blocks.attend(v, scores_of, with_weights)
