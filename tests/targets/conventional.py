"""Small torch attention functions written to libraries' conventions (from
shared reference descriptions, not from their code), and targets that misbehave on purpose.
Each is checked as a third-party target: the first under its own profile passes, under the
spec's profile fails and is diagnosed."""

from __future__ import annotations

import torch

from relpos.equivalence.adapters import stateful


def _finish(logits, v, mask, masked_value):
    if mask is not None:
        bias = torch.zeros(mask.shape, dtype=logits.dtype).masked_fill(~mask, masked_value)
        logits = logits + bias
    probs = torch.softmax(logits, dim=-1)
    return probs @ v


def bert_relative_key(q, k, v, *, rel_k, clip, mask=None, **_):
    """Hugging Face BERT relative_key as transformers 4.x computes it: distance i - j, table
    of 2P - 1 rows with row = i - j + P - 1, no clip, additive finfo.min mask."""
    qlen, klen, d = q.shape[2], k.shape[2], q.shape[3]
    P = (rel_k.shape[0] + 1) // 2
    distance = torch.arange(qlen)[:, None] - torch.arange(klen)[None, :]
    table = rel_k[distance + P - 1]  # (qlen, klen, d): IndexError past the table
    logits = (q @ k.transpose(-1, -2) + torch.einsum("bhid,ijd->bhij", q, table)) / d**0.5
    if mask is not None:
        mask = torch.broadcast_to(mask, logits.shape)
    return _finish(logits, v, mask, torch.finfo(q.dtype).min)


def txl_style(q, k, v, *, w_r, r_w_bias, r_r_bias, clamp_len=None, mask=None, **_):
    """Transformer-XL's conventions: D = (mlen + i) - j clamped from above, concatenated
    sinusoid, boolean mask True = masked filled with -inf (fully masked rows are NaN)."""
    qlen, klen, d = q.shape[2], k.shape[2], q.shape[3]
    d_model = w_r.shape[-1]
    D = (klen - qlen + torch.arange(qlen))[:, None] - torch.arange(klen)[None, :]
    if clamp_len is not None:
        D = D.clamp(max=clamp_len)
    freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angle = D[..., None].to(torch.float64) * freq
    R = torch.cat([angle.sin(), angle.cos()], dim=-1).to(q.dtype)  # (qlen, klen, d_model)
    r = torch.einsum("ijm,hdm->hijd", R, w_r)
    ac = (q + r_w_bias[None, :, None]) @ k.transpose(-1, -2)
    bd = torch.einsum("bhid,hijd->bhij", q + r_r_bias[None, :, None], r)
    logits = (ac + bd) / d**0.5
    causal = torch.arange(klen)[None, :] > (klen - qlen + torch.arange(qlen))[:, None]
    hidden = causal if mask is None else (mask | causal)
    logits = logits.masked_fill(hidden, float("-inf"))
    return torch.softmax(logits, dim=-1) @ v


def raises_on_memory(q, k, v, **arguments):
    """The bundled reference, except that it raises as soon as there is memory."""
    from relpos.impls.torch.shaw import shaw_reference

    if k.shape[2] != q.shape[2]:
        raise ValueError("memory is not supported")
    return shaw_reference(q, k, v, **arguments)


def wrong_shape(q, k, v, **_):
    return torch.zeros(q.shape[0], q.shape[2], q.shape[1], q.shape[3], dtype=q.dtype)


def wrong_dtype(q, k, v, **_):
    return torch.zeros(q.shape, dtype=torch.float32 if q.dtype != torch.float32 else torch.float64)


def bshd_relative_attention(query, key, value, *, distance_embedding, attention_mask=None):
    """A library-shaped function: (bsz, length, heads, d) tensors, a table indexed by
    i - j + P - 1 and an additive mask (the documented adapter example calls it)."""
    q, k, v = (x.transpose(1, 2) for x in (query, key, value))
    P = (distance_embedding.shape[0] + 1) // 2
    distance = torch.arange(q.shape[2])[:, None] - torch.arange(k.shape[2])[None, :]
    table = distance_embedding[distance + P - 1]
    logits = (q @ k.transpose(-1, -2) + torch.einsum("bhid,ijd->bhij", q, table)) / q.shape[
        3
    ] ** 0.5
    if attention_mask is not None:
        logits = logits + attention_mask
    return (torch.softmax(logits, dim=-1) @ v).transpose(1, 2)


def _llama_tables(klen, r, base, dtype):
    """cos and sin for positions 0..klen-1 on the pairs (t, t + r/2), from float64 angles."""
    theta = float(base) ** (-torch.arange(0, r, 2, dtype=torch.float64) / r)
    angle = torch.arange(klen, dtype=torch.float64)[:, None] * theta[None]
    cos = torch.cat([angle.cos(), angle.cos()], dim=-1).to(dtype)
    sin = torch.cat([angle.sin(), angle.sin()], dim=-1).to(dtype)
    return cos, sin


def _llama_attend(q, k, v, cos, sin, r, mask, scale, q_tables=None):
    """Attention with keys rotated by (cos, sin) and queries by ``q_tables``, by default the
    tables' last qlen rows (queries are the newest keys)."""
    qlen, klen, d = q.shape[2], k.shape[2], q.shape[3]

    def rotate(x, c, s):
        head, rest = x[..., :r], x[..., r:]
        half = torch.cat([-head[..., r // 2 :], head[..., : r // 2]], dim=-1)
        return torch.cat([head * c + half * s, rest], dim=-1)

    qc, qs = q_tables if q_tables is not None else (cos[klen - qlen :], sin[klen - qlen :])
    qr = rotate(q, qc, qs)
    kr = rotate(k, cos, sin)
    logits = qr @ kr.transpose(-1, -2) * (d**-0.5 if scale is None else scale)
    return _finish(logits, v, mask, torch.finfo(q.dtype).min)


def _width(q, rotary_dim):
    d = q.shape[3]
    return d - d % 2 if rotary_dim is None else rotary_dim


def _llama_tables_at(pos, r, base, dtype):
    """cos and sin of shape (bsz, 1, len, r) for integer position ids (bsz, len)."""
    theta = float(base) ** (-torch.arange(0, r, 2, dtype=torch.float64) / r)
    angle = pos.to(torch.float64)[:, None, :, None] * theta
    return (torch.cat([f(angle), f(angle)], dim=-1).to(dtype) for f in (torch.cos, torch.sin))


def llama_rope(
    q, k, v, *, base=10000, rotary_dim=None, mask=None, scale=None, q_pos=None, k_pos=None, **_
):
    """Rotary embedding as Llama-style code applies it: rotate_half on the pairs
    (t, t + r/2), angles from float64 positions, or from position ids where given."""
    r = _width(q, rotary_dim)
    if q_pos is None and k_pos is None:
        cos, sin = _llama_tables(k.shape[2], r, base, q.dtype)
        return _llama_attend(q, k, v, cos, sin, r, mask, scale)
    klen, qlen = k.shape[2], q.shape[2]
    if k_pos is None:
        k_pos = torch.arange(klen)[None]
    if q_pos is None:
        q_pos = torch.arange(klen - qlen, klen)[None]
    cos, sin = _llama_tables_at(k_pos, r, base, q.dtype)
    q_tables = tuple(_llama_tables_at(q_pos, r, base, q.dtype))
    return _llama_attend(q, k, v, cos, sin, r, mask, scale, q_tables)


_PER_LENGTH: dict = {}


def rope_tables_cached_per_length(
    q, k, v, *, base=10000, rotary_dim=None, mask=None, scale=None, **_
):
    """llama_rope with its tables cached per (length, width, base) but not per dtype: a
    table first built in bfloat16 serves later float32 calls of that length, rounded."""
    r = _width(q, rotary_dim)
    key = (k.shape[2], r, base)
    if key not in _PER_LENGTH:
        _PER_LENGTH[key] = _llama_tables(k.shape[2], r, base, q.dtype)
    cos, sin = (t.to(q.dtype) for t in _PER_LENGTH[key])
    return _llama_attend(q, k, v, cos, sin, r, mask, scale)


_FIRST: dict = {}


def rope_tables_sized_by_the_first_call(
    q, k, v, *, base=10000, rotary_dim=None, mask=None, scale=None, **_
):
    """llama_rope with one table per (width, base, dtype), as long as the first call needed
    and never grown: a longer call reads its positions clamped to the last row."""
    r, klen = _width(q, rotary_dim), k.shape[2]
    key = (r, base, q.dtype)
    if key not in _FIRST:
        _FIRST[key] = _llama_tables(klen, r, base, q.dtype)
    rows = torch.arange(klen).clamp(max=_FIRST[key][0].shape[0] - 1)
    cos, sin = (t[rows] for t in _FIRST[key])
    return _llama_attend(q, k, v, cos, sin, r, mask, scale)


def xt_relative_position_bias(
    q, k, v, *, rel_bias, num_buckets, max_distance, bidirectional, mask=None, **_
):
    """x-transformers RelativePositionBias as its profile describes it: logits q.k / sqrt(d)
    plus sqrt(d) times the learned bias, whatever scale is asked for (T5's buckets come from
    the bundled reference, called with those factors)."""
    from relpos.impls.torch.t5 import t5_reference

    d = q.shape[-1]
    return t5_reference(
        q,
        k,
        v,
        rel_bias=rel_bias * d**0.5,
        num_buckets=num_buckets,
        max_distance=max_distance,
        bidirectional=bidirectional,
        mask=mask,
        scale=d**-0.5,
    )


@stateful
def kept_passthrough(target, q, k, v, **arguments):
    """An adapter declared stateful that calls the target as it is (for the checker's
    header)."""
    return target(q, k, v, **arguments)


_GROWN: dict = {}


def rope_tables_grown_from_positions_in_the_input_dtype(
    q, k, v, *, base=10000, rotary_dim=None, mask=None, scale=None, **_
):
    """llama_rope with one float32 table per (width, base), rebuilt only when a call is
    longer than it, from positions in that call's dtype: a bfloat16 call that grows it past
    position 256 leaves rounded positions for every later call."""
    r, klen = _width(q, rotary_dim), k.shape[2]
    key = (r, base)
    if key not in _GROWN or _GROWN[key][0].shape[0] < klen:
        positions = torch.arange(klen, dtype=q.dtype).to(torch.float64)
        theta = float(base) ** (-torch.arange(0, r, 2, dtype=torch.float64) / r)
        angle = positions[:, None] * theta[None]
        _GROWN[key] = tuple(
            torch.cat([f(angle), f(angle)], dim=-1).to(torch.float32)
            for f in (torch.cos, torch.sin)
        )
    cos, sin = (t[:klen].to(q.dtype) for t in _GROWN[key])
    return _llama_attend(q, k, v, cos, sin, r, mask, scale)
