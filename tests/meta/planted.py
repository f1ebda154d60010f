"""Small torch implementations with one planted bug each, written here from the definitions
(not the project's implementations). With ``bug=None`` they are correct."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from relpos.impls import Implementation

SHAW_BUGS = ("sign", "off_by_one", "no_scale", "nan_rows", "relative_error", "no_memory_offset")
XL_BUGS = ("float32_sinusoid", "swapped_biases", "no_scale")


@dataclass(frozen=True)
class Planted(Implementation):
    """A registry-shaped implementation whose function is given directly."""

    fn: Callable[..., Any] = field(default=lambda: None, compare=False)

    def load(self) -> Callable[..., Any]:
        return self.fn


def _finish(torch, logits, mask, values, bug, with_weights):
    if mask is not None:
        logits = logits.masked_fill(~mask, -math.inf)
    probs = torch.softmax(logits, dim=-1)
    if bug != "nan_rows":
        probs = torch.nan_to_num(probs, nan=0.0)
    out = torch.einsum("bhij,bhijd->bhid", probs, values)
    if bug == "relative_error":
        out = out * (1 + 1e-6)
    return (out, probs, logits) if with_weights else out


def _positions(torch, q_pos, k_pos, qlen: int, klen: int):
    """(B, qlen) and (B, klen) positions: the ids given, else query i at klen - qlen + i and
    key j at j."""
    qp = klen - qlen + torch.arange(qlen)[None] if q_pos is None else q_pos.reshape(-1, qlen)
    kp = torch.arange(klen)[None] if k_pos is None else k_pos.reshape(-1, klen)
    return qp.long(), kp.long()


def shaw(bug: str | None) -> Planted:
    import torch

    def fn(
        q,
        k,
        v,
        *,
        rel_k=None,
        rel_v=None,
        clip=None,
        key_query=False,
        mask=None,
        q_pos=None,
        k_pos=None,
        scale=None,
        with_weights=False,
    ):
        bsz, n_head, qlen, d = q.shape
        klen = k.shape[2]
        qp, kp = _positions(torch, q_pos, k_pos, qlen, klen)
        if bug == "no_memory_offset":  # queries placed at 0..qlen-1, as if there were no memory
            qp = torch.arange(qlen)[None]
        distance = kp[:, None, :] - qp[:, :, None]  # (B, i, j)
        if bug == "sign":
            distance = -distance
        rows = distance.clamp(*clip) - clip[0]
        if bug == "off_by_one":
            rows = (rows + 1).clamp(max=clip[1] - clip[0])

        def per_pair(table):  # (bsz, n_head, i, j, d) from a shared or a per-head table
            gathered = table[rows][:, None] if table.dim() == 2 else table[:, rows].transpose(0, 1)
            return gathered.expand(bsz, n_head, qlen, klen, d)

        a_k = per_pair(rel_k)
        logits = torch.einsum("bhid,bhjd->bhij", q, k) + torch.einsum("bhid,bhijd->bhij", q, a_k)
        if key_query:
            logits = logits + torch.einsum("bhjd,bhijd->bhij", k, a_k)
        s = 1 / math.sqrt(d) if scale is None else scale
        logits = logits * (1.0 if bug == "no_scale" else s)
        values = v[:, :, None].expand(-1, -1, qlen, -1, -1)
        if rel_v is not None:
            values = values + per_pair(rel_v)
        return _finish(torch, logits, mask, values, bug, with_weights)

    return Planted("shaw", "torch", f"planted-{bug}", "fn", fn)


def xl(bug: str | None) -> Planted:
    import torch

    def fn(
        q,
        k,
        v,
        *,
        w_r=None,
        r_w_bias=None,
        r_r_bias=None,
        r_s_bias=None,
        seg_embed=None,
        seg_ids=None,
        mask=None,
        q_pos=None,
        k_pos=None,
        d_model=None,
        attn_type="bi",
        clamp_len=None,
        clamp_style="upper",
        scale=None,
        with_weights=False,
    ):
        bsz, n_head, qlen, d = q.shape
        klen = k.shape[2]
        mlen = klen - qlen
        width = w_r.shape[-1]
        qp, kp = _positions(torch, q_pos, k_pos, qlen, klen)
        distance = qp[:, :, None] - kp[:, None, :]  # (B, i, j)
        if clamp_len is not None:
            distance = (
                distance.clamp(max=clamp_len)
                if clamp_style == "upper"
                else distance.clamp(-clamp_len, clamp_len)
            )
        work = torch.float32 if bug == "float32_sinusoid" else torch.float64
        freq = 10000.0 ** (-torch.arange(0, width, 2, dtype=work) / width)
        angle = distance.to(work)[..., None] * freq
        R = torch.cat([angle.sin(), angle.cos()], -1).to(q.dtype)
        r = torch.einsum("bijm,hdm->bhijd", R, w_r).expand(bsz, n_head, qlen, klen, d)
        u, vb = (r_r_bias, r_w_bias) if bug == "swapped_biases" else (r_w_bias, r_r_bias)
        logits = torch.einsum("bhid,bhjd->bhij", q + u[:, None], k)
        logits = logits + torch.einsum("bhid,bhijd->bhij", q + vb[:, None], r)
        if seg_ids is not None:
            differs = (seg_ids[:, mlen:, None] != seg_ids[:, None, :]).long()
            logits = logits + torch.einsum(
                "bhid,bijhd->bhij", q + r_s_bias[:, None], seg_embed[differs]
            )
        s = 1 / math.sqrt(d) if scale is None else scale
        logits = logits * (1.0 if bug == "no_scale" else s)
        if attn_type == "uni":
            causal = (kp[:, None, :] <= qp[:, :, None])[:, None]
            mask = causal if mask is None else mask & causal
        values = v[:, :, None].expand(-1, -1, qlen, -1, -1)
        return _finish(torch, logits, mask, values, bug, with_weights)

    return Planted("xl", "torch", f"planted-{bug}", "fn", fn)


@cache
def _shaw_sign() -> Callable[..., Any]:
    return shaw("sign").fn


def __getattr__(name: str) -> Any:
    """``shaw_sign``: the Shaw sign bug as a name of this module, so that ``relpos check
    --target tests.meta.planted:shaw_sign --encoding shaw`` imports it (one function per
    process, as a target must be; torch is imported only when it is asked for)."""
    if name == "shaw_sign":
        return _shaw_sign()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
