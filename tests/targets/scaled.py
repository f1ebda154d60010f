"""A RoPE attention with every scaling variant, written to the spec's conventions (interleaved
pairs, fully masked rows zero), and the same with one planted bug each: the bugs public
trackers report in shipped scaled RoPE. Checked as third-party targets under the spec's own
profile: the correct one passes, each planted one fails."""

from __future__ import annotations

import math

import torch

from relpos.impls.torch.rope_scaling import inverse_frequencies

#: The planted bugs, each a public tracker's kind of report.
BUGS = (
    # the attention factor multiplied into cos and sin and once more into the logits
    "factor_squared",
    # the attention factor collapsed to 1
    "factor_ignored",
    # "dynamic" NTK whose base never grows past the original length
    "dynamic_static",
    # longrope's long factors from seq_len >= L0 instead of > L0
    "longrope_at_L0",
    # llama3 frequencies left unscaled
    "llama3_unscaled",
    # dynamic and longrope lengths from the whole batch's largest position, not each row's
    "batch_length",
    # dynamic's grown length kept across calls (the longest so far) until one shorter than L0
    "dynamic_kept",
)

#: The longest length "dynamic_kept" has seen, per configuration, across calls.
_KEPT: dict[str, int] = {}


def _frequencies(scaling, r, d_head, base, lengths, bug, precision):
    """theta'_t (B, r/2) in ``precision`` and the attention factor for rows of these
    lengths."""
    params = {k: v for k, v in (scaling or {}).items() if k != "rope_type"}
    rope_type = (scaling or {}).get("rope_type", "default")
    if rope_type == "proportional":
        params.setdefault("head_dim", d_head)
    if bug == "llama3_unscaled" and rope_type == "llama3":
        rope_type, params = "default", {}
    if bug == "batch_length":
        lengths = [max(lengths)] * len(lengths)
    rows, factor = [], 1.0
    for length in lengths:
        seq_len = length
        if rope_type == "dynamic" and bug == "dynamic_static":
            seq_len = None
        if rope_type == "dynamic" and bug == "dynamic_kept":
            key, L0 = repr((r, base, params)), params["original_max_position_embeddings"]
            _KEPT[key] = L0 if length < L0 else max(_KEPT.get(key, L0), length)
            seq_len = _KEPT[key]
        if rope_type == "longrope" and bug == "longrope_at_L0":
            seq_len = length + 1
        theta, factor = inverse_frequencies(
            rope_type, rotary_dim=r, base=base, seq_len=seq_len, precision=precision, **params
        )
        rows.append(theta)
    if bug == "factor_ignored":
        factor = 1.0
    return torch.stack(rows), factor


def rope_scaled(
    q,
    k,
    v,
    *,
    base=10000,
    rotary_dim=None,
    scaling=None,
    mask=None,
    scale=None,
    q_pos=None,
    k_pos=None,
    bug=None,
    **_,
):
    """Interleaved RoPE with ``scaling``'s frequencies and attention factor, angles in
    float32 (float64 for float64 inputs), scores in float32 for the half types."""
    qlen, d = q.shape[2], q.shape[3]
    klen = k.shape[2]
    r = d - d % 2 if rotary_dim is None else rotary_dim
    if k_pos is None:
        k_pos = torch.arange(klen)[None]
    if q_pos is None:
        q_pos = (klen - qlen + torch.arange(qlen))[None]
    q_pos, k_pos = (p.reshape(-1, p.shape[-1]).long() for p in (q_pos, k_pos))
    rows = max(q_pos.shape[0], k_pos.shape[0])
    lengths = (torch.maximum(q_pos.amax(1).expand(rows), k_pos.amax(1).expand(rows)) + 1).tolist()
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    if r:
        precision = str(work).removeprefix("torch.")
        theta, factor = _frequencies(scaling, r, d, base, lengths, bug, precision)
    else:
        theta, factor = torch.zeros((1, 0), dtype=work), 1.0

    def rotate(x, pos):
        angle = pos.to(work)[:, None, :, None] * theta[:, None, None, :]
        cos, sin = torch.cos(angle) * factor, torch.sin(angle) * factor
        x = x.to(work)
        even, odd = x[..., 0:r:2], x[..., 1:r:2]
        pairs = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
        return torch.cat([pairs.flatten(-2), x[..., r:]], dim=-1)

    logits = rotate(q, q_pos) @ rotate(k, k_pos).transpose(-1, -2)
    logits = logits * (d**-0.5 if scale is None else scale)
    if bug == "factor_squared" and r:
        logits = logits * factor**2
    if mask is not None:
        logits = logits.masked_fill(~torch.broadcast_to(mask, logits.shape), -math.inf)
    probs = torch.nan_to_num(torch.softmax(logits, dim=-1), nan=0.0)
    return (probs @ v.to(work)).to(q.dtype)


def _planted(bug):
    def target(q, k, v, **kw):
        return rope_scaled(q, k, v, **kw, bug=bug)

    target.__name__ = target.__qualname__ = f"rope_scaled_{bug}"
    target.__doc__ = f"rope_scaled with the planted bug {bug!r}"
    return target


for _bug in BUGS:
    globals()[f"rope_scaled_{_bug}"] = _planted(_bug)
