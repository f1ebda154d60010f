"""Adapters for Hugging Face transformers (5.x): XLNet relative attention, Wav2Vec2-BERT's
relative_key self-attention, T5's bucketed bias, Llama's rotary attention and DeBERTa-v2's
disentangled attention, built from tiny configurations (nothing is downloaded).

Each adapter builds the library's own module, substitutes the canonical tensors for its
parameters with ``torch.func.functional_call`` (so gradients reach them) and runs the library
code under test. Only what the library leaves to its caller is computed here, exactly as the
library's caller computes it:

``xlnet_rel_attn_core`` (target ``XLNetRelativeAttention.rel_attn_core``)
    heads in XLNet's (position, batch, head, d) layout; the positional key heads W_R R from
    ``XLNetModel.relative_positional_encoding`` (the library's sinusoid, float32, then cast to
    the run's dtype as the module does); the one-hot segment matrix and the float mask (1 =
    masked, causal part from ``XLNetModel.create_mask``) as ``XLNetModel.forward`` builds them.
``xlnet_relative_attention`` (target ``XLNetRelativeAttention``)
    the whole module, including its q, k, v and positional projections: heads are widened to
    carry [keys | values | padding] side by side, so identity projections of hidden states
    give exactly the canonical q, k, v and W_R; queries enter through XLNet's query stream
    ``g`` (whose projection is independent of the keys'). The module's scale is set to the
    canonical d_head's, and the attention output is read where the module's output dropout
    receives it (before the o-projection, residual and LayerNorm, which are not part of the
    encoding), with the o-projection set to the identity.
``wav2vec2_bert_self_attention`` (target ``Wav2Vec2BertSelfAttention``)
    the whole module with its linear q, k, v and output layers, widened the same way (hidden
    states carry [q | k | v] per head; the linear layers select); the additive mask
    (1 - mask) * finfo.min as the model builds it; clip (p_min, p_max) becomes
    left_max_position_embeddings = -p_min and right_max_position_embeddings = p_max.
``t5_attention`` (target ``T5Attention``, profile hf-t5)
    the whole module with its own q, k, v, o layers and its own relative attention bias
    (``relative_attention_bias.weight`` is the canonical table); hidden states carry [q | k | v]
    per head and the layers select. bidirectional=False is a decoder (``is_decoder``). Memory
    positions enter as a generation cache: the module first runs on the memory positions with
    an empty ``DynamicCache`` (which it fills with their keys and values), then on the query
    positions, so the bias of query i comes from ``compute_bias`` with the cache's length as
    offset, as when T5 decodes. The additive mask is (1 - mask) * finfo.min.
``llama_attention`` (target ``LlamaAttention``, profile llama)
    the whole module with its own projections (head_dim = the canonical d_head, so its
    scaling is the spec's default); cos and sin from ``LlamaRotaryEmbedding`` at the
    ``position_ids`` a decoding ``LlamaModel`` is given: k_pos (0 .. klen - 1 by default),
    the memory positions first, through the cache as above, then the queries', which are the
    newest keys (q_pos must equal k_pos[:, mlen:]); rope_theta is the canonical base. The
    rotary module keeps the float32 inverse frequencies it is built with. The additive mask
    is (1 - mask) * finfo.min.
``llama_attention_kept`` (target ``LlamaAttention``, profile llama; :func:`stateful`)
    the same, with one module and one rotary module per configuration kept across calls and
    moved to each call's dtype with ``.to()``, as one model moved between dtypes is: the
    rotary module's inverse frequencies are a buffer, so they follow.
``qwen2_vl_position_ids`` (``relpos position-ids``)
    the M-RoPE position ids Qwen2-VL's ``generate`` gives its text rotary embedding, for a
    prompt of text, images and videos and the tokens generated after it (a tiny random
    model; the ids are read by a hook).
``qwen2_5_vl_position_ids`` (``relpos position-ids --timed``)
    the same for Qwen2.5-VL, whose videos step their temporal ids by ``temporal_interval``
    (given to the model as 2 tokens per second and float32 seconds per temporal patch).
``qwen3_vl_position_ids`` (``relpos position-ids --frames``)
    the same for Qwen3-VL, whose videos come one frame at a time, each after its timestamp.
``pixtral_rotary`` (``relpos rotations --layout alternating``)
    Pixtral's 2D rotary embedding for patch positions (row, column), head_dim = rotary_dim;
    the cos and sin of each pair, read from one rotate_half half (the halves checked equal).
``deberta_v2_self_attention`` (target ``DisentangledSelfAttention``, profile hf-deberta-v2)
    the whole module with its own content and position projections (attention_head_size =
    the canonical d_head): the relative embeddings carry [pos_key | pos_query] per head and
    the position projections select; pos_att_type holds the terms whose tables are given,
    position_buckets = span and max_relative_positions = max_position. The boolean mask goes
    in as the module takes it (all True when none is given).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch

from relpos.equivalence.adapters import stateful

__all__ = [
    "deberta_v2_self_attention",
    "llama_attention",
    "llama_attention_kept",
    "llama_rotary_frequencies",
    "pixtral_rotary",
    "qwen2_5_vl_position_ids",
    "qwen2_vl_position_ids",
    "qwen2_vl_vision_rotary",
    "qwen3_vl_position_ids",
    "qwen_vl_rotary",
    "qwen_vl_vision_rotations",
    "t5_attention",
    "wav2vec2_bert_self_attention",
    "xlnet_rel_attn_core",
    "xlnet_relative_attention",
]


def _xlnet_config(d_model: int, n_head: int, **kw: Any) -> Any:
    from transformers import XLNetConfig

    return XLNetConfig(
        vocab_size=8, d_model=d_model, n_layer=1, n_head=n_head, d_inner=4, dropout=0.0, **kw
    )


@cache
def _xlnet_positions(width: int, attn_type: str, clamp_len: int) -> Any:
    """An XLNetModel whose relative_positional_encoding gives R of the given width."""
    from transformers import XLNetModel

    model = XLNetModel(_xlnet_config(width, 1, attn_type=attn_type, clamp_len=clamp_len))
    return model.eval()


def _positions(d_model: int, attn_type: str, clamp_len: int | None, qlen: int, klen: int, bsz: int):
    # XLNet: clamp_len <= 0 means no clamp (the xlnet profile never draws the spec's 0)
    model = _xlnet_positions(d_model, attn_type, -1 if clamp_len is None else clamp_len)
    return model.relative_positional_encoding(qlen, klen, bsz=bsz)  # (rlen, bsz, d_model)


def _xlnet_mask(mask: Any, attn_type: str, shape: tuple[int, int, int, int], dtype: Any):
    """XLNet's float mask (qlen, klen, bsz, n_head), 1 = masked, or None."""
    qlen, klen = shape[2], shape[3]
    hidden = None
    if attn_type == "uni":
        model = _xlnet_positions(2, "uni", -1)
        causal = model.create_mask(qlen, klen - qlen).to(torch.bool)  # (qlen, klen)
        hidden = causal[None, None].expand(shape)
    if mask is not None:
        given = torch.broadcast_to(mask, shape)
        hidden = given if hidden is None else (given | hidden)
    return None if hidden is None else hidden.permute(2, 3, 0, 1).to(dtype)


def _seg_mat(seg_ids: Any, qlen: int, dtype: Any) -> Any:
    """One-hot (qlen, klen, bsz, 2): 1 in column 1 where the segments of i and j differ."""
    mlen = seg_ids.shape[1] - qlen
    query = seg_ids[:, mlen:]  # (bsz, qlen)
    different = (query[:, :, None] != seg_ids[:, None, :]).long()  # (bsz, qlen, klen)
    return torch.nn.functional.one_hot(different.permute(1, 2, 0), num_classes=2).to(dtype)


def _pad_last(x: Any, width: int, at: int = 0) -> Any:
    """x with its last axis placed at offset ``at`` of ``width`` zeros."""
    before = torch.zeros((*x.shape[:-1], at), dtype=x.dtype)
    after = torch.zeros((*x.shape[:-1], width - at - x.shape[-1]), dtype=x.dtype)
    return torch.cat([before, x, after], dim=-1)


def _pick(n_head: int, d: int, part: int, width: int, dtype: Any) -> Any:
    """A linear layer's weight from hidden states laid out as [q | k | v] per head (3 d per
    head) to ``width`` features per head: head h's first d features are part ``part`` of input
    head h, the rest zero."""
    w = torch.zeros(n_head, width, n_head, 3 * d, dtype=dtype)
    for h in range(n_head):
        w[h, :d, h, part * d : (part + 1) * d] = torch.eye(d, dtype=dtype)
    return w.reshape(n_head * width, n_head * 3 * d)


def _qkv_states(q: Any, k: Any, v: Any) -> Any:
    """Hidden states (bsz, klen, n_head 3 d) carrying [q | k | v] per head. Queries fill the
    last qlen positions; memory positions (the first klen - qlen) carry zero queries."""
    bsz, n_head, qlen, d = q.shape
    klen = k.shape[2]
    queries = torch.cat([torch.zeros(bsz, n_head, klen - qlen, d, dtype=q.dtype), q], dim=2)
    states = torch.cat([queries, k, v], dim=-1)  # (bsz, n_head, klen, 3 d)
    return states.permute(0, 2, 1, 3).reshape(bsz, klen, n_head * 3 * d)


def _additive_mask(mask: Any, shape: tuple[int, int, int, int], dtype: Any) -> Any:
    """(1 - mask) * finfo.min as Hugging Face models build their additive masks, or None."""
    if mask is None:
        return None
    keep = torch.broadcast_to(mask, shape)
    return torch.zeros(shape, dtype=dtype).masked_fill(~keep, torch.finfo(dtype).min)


def _prefilled(module: Any, params: dict[str, Any], states: Any, qlen: int, **kw: Any) -> Any:
    """A ``DynamicCache`` holding the module's keys and values of the memory positions (all but
    the last qlen of ``states``), filled by running the module on them as generation does;
    None without memory."""
    from transformers import DynamicCache

    mlen = states.shape[1] - qlen
    if mlen == 0:
        return None
    cache = DynamicCache()
    torch.func.functional_call(module, params, (states[:, :mlen],), {**kw, "cache": cache})
    return cache


def _unused(name: str, value: Any, allowed: Any) -> None:
    if value != allowed:
        raise ValueError(f"`{name}` must be {allowed!r} for this adapter, got {value!r}")


def _self_attention_only(q: Any, k: Any) -> None:
    if k.shape[2] != q.shape[2]:
        raise ValueError(f"self-attention only: klen must equal qlen, got {k.shape[2]}")


def _xlnet_inputs(
    q: Any,
    k: Any,
    w_r: Any,
    seg_ids: Any,
    mask: Any,
    attn_type: str,
    clamp_len: int | None,
    clamp_style: str,
    scale: float | None,
) -> tuple[Any, Any, Any]:
    """What XLNetModel.forward hands its attention layers: the sinusoid R (rlen, bsz, width)
    in the run's dtype, the one-hot segment matrix and the float mask (both None if absent)."""
    _unused("scale", scale, None)
    _unused("clamp_style", clamp_style, "symmetric")
    bsz, n_head, qlen = q.shape[:3]
    klen = k.shape[2]
    pos = _positions(w_r.shape[-1], attn_type, clamp_len, qlen, klen, bsz).to(q.dtype)
    seg_mat = None if seg_ids is None else _seg_mat(seg_ids, qlen, q.dtype)
    return pos, seg_mat, _xlnet_mask(mask, attn_type, (bsz, n_head, qlen, klen), q.dtype)


def xlnet_rel_attn_core(
    target: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    w_r: Any,
    r_w_bias: Any,
    r_r_bias: Any,
    r_s_bias: Any = None,
    seg_embed: Any = None,
    seg_ids: Any = None,
    mask: Any = None,
    d_model: int | None = None,
    attn_type: str = "bi",
    clamp_len: int | None = None,
    clamp_style: str = "symmetric",
    scale: float | None = None,
    with_weights: bool = False,
) -> Any:
    """``XLNetRelativeAttention.rel_attn_core`` (the target) on canonical inputs, profile
    xlnet (mask True = masked)."""
    from transformers.models.xlnet.modeling_xlnet import XLNetRelativeAttention

    pos, seg_mat, attn_mask = _xlnet_inputs(
        q, k, w_r, seg_ids, mask, attn_type, clamp_len, clamp_style, scale
    )
    n_head, d_head = q.shape[1], q.shape[3]
    module = XLNetRelativeAttention(_xlnet_config(n_head * d_head, n_head)).eval()
    params = {"r_w_bias": r_w_bias, "r_r_bias": r_r_bias}
    if seg_embed is not None:
        params.update(r_s_bias=r_s_bias, seg_embed=seg_embed)
    k_head_r = torch.einsum("ibm,ndm->ibnd", pos, w_r)  # as XLNetRelativeAttention.forward
    heads = [x.permute(2, 0, 1, 3) for x in (q, k, v)]  # (position, bsz, n_head, d_head)

    def core(*args: Any, **kw: Any) -> Any:
        return target(module, *args, **kw)

    with _substituted(module, params):
        vec, prob = core(
            *heads, k_head_r, seg_mat=seg_mat, attn_mask=attn_mask, output_attentions=True
        )
    out = vec.permute(1, 2, 0, 3)
    return (out, prob.permute(2, 3, 0, 1), None) if with_weights else out


class _substituted:
    """Temporarily replace module parameters by (differentiable) tensors."""

    def __init__(self, module: Any, tensors: dict[str, Any]) -> None:
        self.module, self.tensors = module, tensors
        self.saved: dict[str, Any] = {}

    def __enter__(self) -> None:
        for name, tensor in self.tensors.items():
            self.saved[name] = self.module._parameters.pop(name)
            setattr(self.module, name, tensor)

    def __exit__(self, *exc: Any) -> None:
        for name, parameter in self.saved.items():
            delattr(self.module, name)
            self.module.register_parameter(name, parameter)


def _identity_heads(width: int, n_head: int, d: int, dtype: Any) -> Any:
    return torch.eye(width, dtype=dtype).reshape(width, n_head, d)


def xlnet_relative_attention(
    target: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    w_r: Any,
    r_w_bias: Any,
    r_r_bias: Any,
    r_s_bias: Any = None,
    seg_embed: Any = None,
    seg_ids: Any = None,
    mask: Any = None,
    d_model: int | None = None,
    attn_type: str = "bi",
    clamp_len: int | None = None,
    clamp_style: str = "symmetric",
    scale: float | None = None,
    with_weights: bool = False,
) -> Any:
    """The whole ``XLNetRelativeAttention`` module (the target, a class) on canonical inputs,
    profile xlnet."""
    pos, seg_mat, attn_mask = _xlnet_inputs(
        q, k, w_r, seg_ids, mask, attn_type, clamp_len, clamp_style, scale
    )
    bsz, n_head, qlen, d = q.shape
    klen, width = k.shape[2], w_r.shape[-1]
    wide = max(2 * d, -(-width // n_head))  # per-head width: [keys | values | padding]
    hidden = n_head * wide
    module = target(_xlnet_config(hidden, n_head)).eval().to(q.dtype)
    module.scale = d**-0.5  # the canonical d_head's (the module's heads are widened)
    eye = _identity_heads(hidden, n_head, wide, q.dtype)
    r_weight = _pad_last(w_r.permute(2, 0, 1), wide)  # (width, n_head, wide)
    r_weight = torch.cat([r_weight, torch.zeros(hidden - width, n_head, wide, dtype=q.dtype)])
    params = {
        "q": eye,
        "k": eye,
        "v": eye,
        "o": eye,
        "r": r_weight,
        "r_w_bias": _pad_last(r_w_bias, wide),
        "r_r_bias": _pad_last(r_r_bias, wide),
    }
    if seg_embed is not None:
        params.update(r_s_bias=_pad_last(r_s_bias, wide), seg_embed=_pad_last(seg_embed, wide))
    key_value = _pad_last(torch.cat([k, v], dim=-1), wide)  # (bsz, n_head, klen, wide)
    states = key_value.permute(2, 0, 1, 3).reshape(klen, bsz, hidden)
    g = _pad_last(q, wide).permute(2, 0, 1, 3).reshape(qlen, bsz, hidden)
    r = _pad_last(pos, hidden)  # (rlen, bsz, hidden)
    seen: list[Any] = []
    hook = module.dropout.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        _, _, (_, prob_g) = torch.func.functional_call(
            module,
            params,
            (states[klen - qlen :], g, attn_mask, attn_mask, r, seg_mat),
            {"mems": states[: klen - qlen] if klen > qlen else None, "output_attentions": True},
        )
    finally:
        hook.remove()
    attn_out = [x for x in seen if x.dim() == 3][-1]  # the query stream's, before o's dropout
    out = attn_out.reshape(qlen, bsz, n_head, wide)[..., d : 2 * d].permute(1, 2, 0, 3)
    return (out, prob_g.permute(2, 3, 0, 1), None) if with_weights else out


def wav2vec2_bert_self_attention(
    target: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    rel_k: Any,
    clip: tuple[int, int],
    rel_v: Any = None,
    mask: Any = None,
    key_query: bool = False,
    scale: float | None = None,
    with_weights: bool = False,
) -> Any:
    """The whole ``Wav2Vec2BertSelfAttention`` module (the target, a class) with
    position_embeddings_type "relative_key", profile hf-wav2vec2-bert-relative-key."""
    from transformers import Wav2Vec2BertConfig

    _unused("rel_v", rel_v, None)
    _unused("key_query", key_query, False)
    _unused("scale", scale, None)
    bsz, n_head, length, d = q.shape
    _self_attention_only(q, k)
    wide, hidden = 3 * d, 3 * d * n_head
    config = Wav2Vec2BertConfig(
        hidden_size=hidden,
        num_attention_heads=n_head,
        position_embeddings_type="relative_key",
        left_max_position_embeddings=-clip[0],
        right_max_position_embeddings=clip[1],
        attention_dropout=0.0,
    )
    config._attn_implementation = "eager"
    module = target(config).eval().to(q.dtype)
    module.scaling = d**-0.5  # the canonical d_head's (the module's heads are widened)
    zero = torch.zeros(hidden, dtype=q.dtype)
    params = {
        "linear_q.weight": _pick(n_head, d, 0, wide, q.dtype),
        "linear_k.weight": _pick(n_head, d, 1, wide, q.dtype),
        "linear_v.weight": _pick(n_head, d, 2, wide, q.dtype),
        "linear_out.weight": torch.eye(hidden, dtype=q.dtype),
        "linear_q.bias": zero,
        "linear_k.bias": zero,
        "linear_v.bias": zero,
        "linear_out.bias": zero,
        "distance_embedding.weight": _pad_last(rel_k, wide),
    }
    states = _qkv_states(q, k, v)
    additive = _additive_mask(mask, (bsz, n_head, length, length), q.dtype)
    out, weights = torch.func.functional_call(
        module, params, (states,), {"attention_mask": additive}
    )
    out = out.reshape(bsz, length, n_head, wide)[..., :d].permute(0, 2, 1, 3)
    return (out, weights, None) if with_weights else out


def _selecting(
    n_head: int, d: int, dtype: Any, q: str, k: str, v: str, o: str | None = None
) -> dict[str, Any]:
    """Weights of the linear layers named q, k, v that take their part of hidden states laid
    out as [q | k | v] per head (d features per head out), and of an output layer o that
    copies the attention output into the first n_head d features."""
    weights = {
        f"{name}.weight": _pick(n_head, d, part, d, dtype) for part, name in enumerate((q, k, v))
    }
    if o is not None:
        weights[f"{o}.weight"] = torch.eye(n_head * 3 * d, n_head * d, dtype=dtype)
    return weights


def _heads(out: Any, n_head: int, d: int) -> Any:
    """The first n_head d features of (bsz, qlen, hidden) as (bsz, n_head, qlen, d)."""
    bsz, qlen = out.shape[:2]
    return out[..., : n_head * d].reshape(bsz, qlen, n_head, d).permute(0, 2, 1, 3)


def t5_attention(
    target: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    rel_bias: Any,
    mask: Any = None,
    num_buckets: int = 32,
    max_distance: int = 128,
    bidirectional: bool = True,
    scale: float | None = None,
    with_weights: bool = False,
) -> Any:
    """The whole ``T5Attention`` module (the target, a class) on canonical inputs, profile
    hf-t5."""
    from transformers import T5Config

    _unused("scale", scale, None)
    bsz, n_head, qlen, d = q.shape
    klen = k.shape[2]
    config = T5Config(
        vocab_size=8,
        d_model=3 * n_head * d,
        d_kv=d,
        d_ff=4,
        num_layers=1,
        num_heads=n_head,
        relative_attention_num_buckets=num_buckets,
        relative_attention_max_distance=max_distance,
        dropout_rate=0.0,
        is_decoder=not bidirectional,
    )
    config._attn_implementation = "eager"
    module = target(config, has_relative_attention_bias=True, layer_idx=0).eval().to(q.dtype)
    params = {
        **_selecting(n_head, d, q.dtype, "q", "k", "v", "o"),
        "relative_attention_bias.weight": rel_bias,
    }
    states = _qkv_states(q, k, v)
    cache = _prefilled(module, params, states, qlen)
    additive = _additive_mask(mask, (bsz, n_head, qlen, klen), q.dtype)
    out, _, weights = torch.func.functional_call(
        module, params, (states[:, klen - qlen :],), {"mask": additive, "cache": cache}
    )
    out = _heads(out, n_head, d)
    return (out, weights, None) if with_weights else out


def _rope_parameters(
    rope_type: str, base: float, parameters: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A config's ``rope_parameters`` and its other keywords for a spec scaling variant: the
    spec's L0 is max_position_embeddings for ``dynamic`` (the length transformers grows from),
    and a longrope max_position_embeddings is the config's."""
    params = dict(parameters)
    config_kw: dict[str, Any] = {}
    if rope_type == "dynamic":
        config_kw["max_position_embeddings"] = params.pop("original_max_position_embeddings")
    elif "max_position_embeddings" in params:
        config_kw["max_position_embeddings"] = params.pop("max_position_embeddings")
    return {"rope_type": rope_type, "rope_theta": float(base), **params}, config_kw


def _llama_modules(
    target: Any, n_head: int, d: int, base: float, scaling: Any = None
) -> tuple[Any, Any]:
    """A ``LlamaAttention`` (the target, a class) and a ``LlamaRotaryEmbedding`` of one
    configuration, in float32; ``scaling`` is the spec's option (None: default RoPE)."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    params = {k: v for k, v in (scaling or {}).items() if k != "rope_type"}
    rope, config_kw = _rope_parameters((scaling or {}).get("rope_type", "default"), base, params)
    config = LlamaConfig(
        vocab_size=8,
        hidden_size=3 * n_head * d,
        intermediate_size=4,
        num_hidden_layers=1,
        num_attention_heads=n_head,
        num_key_value_heads=n_head,
        head_dim=d,
        rope_parameters=rope,
        attention_dropout=0.0,
        **config_kw,
    )
    config._attn_implementation = "eager"
    return target(config, layer_idx=0).eval(), LlamaRotaryEmbedding(config)


def llama_rotary_frequencies(
    rope_type: str, *, rotary_dim: int, base: float, seq_len: int | None = None, **parameters: Any
) -> tuple[Any, float]:
    """The inverse frequencies and attention factor of a ``LlamaRotaryEmbedding`` configured
    with ``rope_type`` and the spec's parameters (:mod:`relpos.spec.rope_scaling`), as the
    module holds them after a forward pass over positions 0 .. seq_len - 1 (its dynamic and
    longrope updates run there). Returns (inverse frequencies of the r/2 rotated pairs, a
    float64 numpy array; the attention factor).

    The spec's L0 is the config's max_position_embeddings for ``dynamic`` (the length
    transformers grows from); ``proportional`` takes head_dim and rotates
    ``partial_rotary_factor`` = r / head_dim of it, and its frequencies past r/2 must be 0."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    params = dict(parameters)
    head_dim = params.pop("head_dim", rotary_dim)
    rope, config_kw = _rope_parameters(rope_type, base, params)
    if head_dim != rotary_dim:
        rope["partial_rotary_factor"] = rotary_dim / head_dim
    config = LlamaConfig(
        vocab_size=8,
        hidden_size=head_dim,
        intermediate_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=head_dim,
        rope_parameters=rope,
        **config_kw,
    )
    module = LlamaRotaryEmbedding(config)
    if seq_len is not None:
        x = torch.zeros(1, seq_len, head_dim, dtype=torch.float32)
        module(x, torch.arange(seq_len)[None])
    inv = module.inv_freq.detach().to(torch.float64).numpy()
    rest = inv[rotary_dim // 2 :]
    if rest.size and (rest != 0).any():
        raise ValueError(
            f"LlamaRotaryEmbedding gives nonzero frequencies {rest.tolist()} past the "
            f"r/2 = {rotary_dim // 2} rotated pairs"
        )
    return inv[: rotary_dim // 2], float(module.attention_scaling)


#: Tokens per second of the tiny Qwen2.5-VL (as its released configurations have it).
QWEN2_5_VL_TOKENS_PER_SECOND = 2


@cache
def _qwen_vl_generator(family: str) -> Any:
    """A tiny Qwen2-VL, Qwen2.5-VL or Qwen3-VL model for generation (random weights: only
    its position ids are read): spatial merge 2, patches of 2 x 2 pixels, temporal patches
    of 2 frames, image and video tokens 30 and 31; Qwen2.5-VL with
    :data:`QWEN2_5_VL_TOKENS_PER_SECOND`, Qwen3-VL with interleaved M-RoPE."""
    from transformers.utils import logging

    logging.set_verbosity_error()  # the tiny vocabulary draws warnings about special tokens
    text: dict[str, Any] = {
        "hidden_size": 16,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "num_hidden_layers": 1,
        "intermediate_size": 8,
        "vocab_size": 32,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [2, 1, 1],
        },
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
    }
    vision: dict[str, Any] = {
        "depth": 1,
        "hidden_size": 16,
        "num_heads": 2,
        "patch_size": 2,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "in_channels": 3,
    }
    if family == "qwen2_vl":
        from transformers import Qwen2VLConfig as Config
        from transformers.models.qwen2_vl.modeling_qwen2_vl import (
            Qwen2VLForConditionalGeneration as Model,
        )

        vision["embed_dim"] = 16
    elif family == "qwen3_vl":
        from transformers import Qwen3VLConfig as Config
        from transformers.models.qwen3_vl.modeling_qwen3_vl import (
            Qwen3VLForConditionalGeneration as Model,
        )

        text["head_dim"] = 8
        text["rope_parameters"] = {**text["rope_parameters"], "mrope_interleaved": True}
        vision.update(
            hidden_size=16,
            intermediate_size=8,
            out_hidden_size=16,
            num_position_embeddings=16,
            deepstack_visual_indexes=[],
        )
    else:
        from transformers import Qwen2_5_VLConfig as Config
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
            Qwen2_5_VLForConditionalGeneration as Model,
        )

        vision.update(
            hidden_size=16,
            intermediate_size=8,
            out_hidden_size=16,
            tokens_per_second=QWEN2_5_VL_TOKENS_PER_SECOND,
            window_size=8,
            fullatt_block_indexes=[0],
        )
    config = Config(
        text_config=text,
        vision_config=vision,
        image_token_id=30,
        video_token_id=31,
        vision_start_token_id=29,
        vision_end_token_id=28,
    )
    torch.manual_seed(0)
    return Model(config).eval()


def _generated_ids(model: Any, segments: Any, generated: int, **extra: Any) -> Any:
    """The M-RoPE position ids (3, L + generated) the text rotary embedding of ``model`` is
    given while ``generate`` runs on a prompt of ``segments`` and generates ``generated``
    tokens: the prompt's from the prefill, then one per decoding step, read by a hook."""
    import numpy as np

    ids: list[int] = []
    types: list[int] = []
    grids: dict[str, list[list[int]]] = {"image": [], "video": []}
    for kind, size in segments:
        if kind == "text":
            ids += [5] * size
            types += [0] * size
            continue
        t, h, w = size
        ids += [30 if kind == "image" else 31] * (t * h * w)
        types += [1 if kind == "image" else 2] * (t * h * w)
        grids[kind].append([t, 2 * h, 2 * w])
    pixels = {}
    for kind, key in (("image", "pixel_values"), ("video", "pixel_values_videos")):
        if grids[kind]:
            rows = sum(t * h * w for t, h, w in grids[kind])
            pixels[key] = torch.randn(rows, 3 * 2 * 2 * 2)
            pixels[f"{kind}_grid_thw"] = torch.tensor(grids[kind])
    seen: list[Any] = []

    def record(module: Any, args: Any, kwargs: Any) -> None:
        seen.append((args[1] if len(args) > 1 else kwargs["position_ids"]).clone())

    hook = model.model.language_model.rotary_emb.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with torch.no_grad():
            model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                mm_token_type_ids=torch.tensor([types]),
                max_new_tokens=generated + 1,  # the last token needs no forward pass
                min_new_tokens=generated + 1,
                do_sample=False,
                **pixels,
                **(extra if grids["video"] else {}),
            )
    finally:
        hook.remove()
    return np.concatenate([step[:, 0, :].numpy() for step in seen], axis=1)


def qwen2_vl_position_ids(segments: Any, *, generated: int) -> Any:
    """The M-RoPE position ids (3, L + generated) that Qwen2-VL's text rotary embedding is
    given while ``generate`` runs on a prompt of ``segments`` (``("text", n)``, ``("image",
    (1, h, w))``, ``("video", (t, h, w))``, grids after the 2 x 2 spatial merge) and
    generates ``generated`` tokens: the prompt's from the prefill, then one per decoding
    step, read by a hook on the rotary embedding. Pixel values are random (the ids do not
    depend on them)."""
    return _generated_ids(_qwen_vl_generator("qwen2_vl"), segments, generated)


def qwen2_5_vl_position_ids(segments: Any, *, generated: int, temporal_interval: Any = 1) -> Any:
    """As :func:`qwen2_vl_position_ids`, for Qwen2.5-VL, whose videos step their temporal ids
    by ``temporal_interval`` = tokens_per_second x second_per_grid_t: the model has
    :data:`QWEN2_5_VL_TOKENS_PER_SECOND`, and each video's ``second_per_grid_ts`` entry is
    temporal_interval / tokens_per_second, a float32 tensor as the processor returns it (for
    a video at fps frames per second, temporal_patch_size / fps)."""
    from fractions import Fraction

    videos = sum(kind == "video" for kind, _ in segments)
    seconds = float(Fraction(temporal_interval) / QWEN2_5_VL_TOKENS_PER_SECOND)
    return _generated_ids(
        _qwen_vl_generator("qwen2_5_vl"),
        segments,
        generated,
        second_per_grid_ts=torch.tensor([seconds] * videos, dtype=torch.float32),
    )


def qwen3_vl_position_ids(segments: Any, *, generated: int) -> Any:
    """As :func:`qwen2_vl_position_ids`, for Qwen3-VL (interleaved M-RoPE), which takes a
    video one frame at a time, each after its timestamp text (``relpos position-ids
    --frames``): a video segment must have t = 1."""
    from relpos.spec import ArgumentError

    for index, (kind, size) in enumerate(segments):
        if kind == "video" and size[0] != 1:
            raise ArgumentError(
                "segments",
                f"segments[{index}]={(kind, size)!r}",
                "must be a single frame ('video', (1, h, w)) for Qwen3-VL, which takes a video "
                "one frame at a time, each after its timestamp text",
            )
    return _generated_ids(_qwen_vl_generator("qwen3_vl"), segments, generated)


def qwen2_vl_vision_rotary(
    positions: Any, *, rotary_dim: int, base: float, layout: str
) -> tuple[Any, Any]:
    """cos and sin of Qwen2-VL's vision rotary embedding (``Qwen2VLVisionRotaryEmbedding``,
    layout ``split``; NotImplementedError for another) for patch positions ``positions`` (2,
    L), rows and columns, given to it as the vision tower gives them, (L, 2). head_dim =
    rotary_dim: it rotates every feature. Returns float64 numpy arrays (L, r/2), pair t in
    column t."""
    import numpy as np

    if layout != "split":
        raise NotImplementedError(f"Qwen2-VL's vision rotary is split, not {layout!r}")
    from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLVisionRotaryEmbedding

    config = Qwen2VLVisionConfig(
        embed_dim=2 * rotary_dim,
        num_heads=2,
        rope_parameters={"rope_type": "axial", "rope_theta": float(base)},
    )
    module = Qwen2VLVisionRotaryEmbedding(config)
    ids = torch.as_tensor(np.asarray(positions, dtype=np.int64).T.copy())
    cos, sin = module(torch.zeros(ids.shape[0], rotary_dim, dtype=torch.float32), ids)
    return _halves(cos, rotary_dim), _halves(sin, rotary_dim)


#: The head width of the tiny models' vision towers (2 heads): r/4 = 2 frequencies per axis.
VISION_HEAD_DIM = 8


def qwen_vl_vision_rotations(family: str, rows: int, cols: int) -> tuple[Any, Any, Any]:
    """What the first vision block of a tiny ``family`` model (``"qwen2_vl"``, ``"qwen2_5_vl"``
    or ``"qwen3_vl"``) receives for an image of ``rows`` x ``cols`` patches (multiples of the
    merge 2): (positions (2, N), the row and column of the patch each token came from; cos
    and sin (N, r/2) of its rotation, pair t in column t), in the block's token order.

    The whole chain a model runs: an image whose pixels carry their patch's row (channel 0)
    and column (channel 1), Qwen2-VL's image processor (PIL backend; no resize, rescale or
    normalization), a patch embedding that passes the two channels' means to features 0 and 1
    (the learned position embedding of Qwen3-VL zeroed), and the tower's own position ids,
    window order (Qwen2.5-VL) and rotary embedding. Positions are read back from the features
    the block is given, so a token order that the position ids do not follow shows as a
    rotation at the wrong (row, column)."""
    import copy

    import numpy as np
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    # a copy to set the probe's weights in: the cached model stays as generate uses it
    visual = copy.deepcopy(_qwen_vl_generator(family).model.visual)
    patch = visual.config.patch_size
    image = np.zeros((rows * patch, cols * patch, 3), dtype=np.float32)
    image[..., 0] = (np.arange(rows * patch) // patch)[:, None]
    image[..., 1] = (np.arange(cols * patch) // patch)[None, :]
    processor = Qwen2VLImageProcessorPil(
        patch_size=patch,
        merge_size=visual.config.spatial_merge_size,
        temporal_patch_size=visual.config.temporal_patch_size,
        do_resize=False,
        do_rescale=False,
        do_normalize=False,
    )
    inputs = processor(images=[image], return_tensors="pt", input_data_format="channels_last")
    seen: dict[str, Any] = {}

    def record(module: Any, args: Any, kwargs: Any) -> None:
        seen["features"] = (args[0] if args else kwargs["hidden_states"]).clone()
        seen["rotation"] = kwargs["position_embeddings"]

    proj = visual.patch_embed.proj
    visual.blocks[0].register_forward_pre_hook(record, with_kwargs=True)
    with torch.no_grad():
        proj.weight.zero_()
        proj.weight[0, 0] = proj.weight[1, 1] = 1 / proj.weight[0, 0].numel()
        if proj.bias is not None:
            proj.bias.zero_()
        if hasattr(visual, "pos_embed"):
            visual.pos_embed.weight.zero_()
        visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"])
    positions = seen["features"][:, :2].T.to(torch.float64).numpy()
    if not np.array_equal(positions, np.round(positions)):
        raise ValueError("the patch features do not carry whole rows and columns")
    cos, sin = seen["rotation"]
    return (
        positions.astype(np.int64),
        _halves(cos, VISION_HEAD_DIM),
        _halves(sin, VISION_HEAD_DIM),
    )


def _halves(table: Any, rotary_dim: int) -> Any:
    """Pair t of a rotate_half table (L, r) as column t: its two halves, checked equal."""
    import numpy as np

    t = table.to(torch.float64).numpy()
    half = rotary_dim // 2
    if not np.array_equal(t[:, :half], t[:, half:]):
        raise ValueError("the module's two rotate_half halves differ")
    return t[:, :half]


def pixtral_rotary(positions: Any, *, rotary_dim: int, base: float, layout: str) -> tuple[Any, Any]:
    """cos and sin of Pixtral's 2D rotary embedding (``PixtralVisionRotaryEmbedding``, layout
    ``alternating``; NotImplementedError for another) for patch positions ``positions``
    (2, L), rows and columns, as the vision model passes them (L, 2). head_dim = rotary_dim:
    Pixtral rotates every feature. Returns float64 numpy arrays (L, r/2), pair t in column
    t."""
    import numpy as np

    if layout != "alternating":
        raise NotImplementedError(f"Pixtral's 2D rotary is alternating, not {layout!r}")
    from transformers.models.pixtral.configuration_pixtral import PixtralVisionConfig
    from transformers.models.pixtral.modeling_pixtral import PixtralVisionRotaryEmbedding

    config = PixtralVisionConfig(
        hidden_size=2 * rotary_dim,
        num_attention_heads=2,
        head_dim=rotary_dim,
        rope_parameters={"rope_type": "axial", "rope_theta": float(base)},
    )
    module = PixtralVisionRotaryEmbedding(config)
    ids = torch.as_tensor(np.asarray(positions, dtype=np.int64).T.copy())
    cos, sin = module(torch.zeros(1, ids.shape[0], rotary_dim, dtype=torch.float32), ids)
    return _halves(cos, rotary_dim), _halves(sin, rotary_dim)


def qwen_vl_rotary(
    positions: Any, *, rotary_dim: int, base: float, section: Any, layout: str
) -> tuple[Any, Any]:
    """cos and sin of a Qwen2-VL (``layout="sectioned"``) or Qwen3-VL (``"interleaved"``) text
    rotary embedding for position ids ``positions`` (3, L): temporal, height and width ids of
    L tokens. Returns float64 numpy arrays (L, r/2), pair t in column t (the module repeats
    them for its rotate_half halves; the repeat is checked to be exact)."""
    import numpy as np

    kw: dict[str, Any] = {
        "hidden_size": 2 * rotary_dim,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "num_hidden_layers": 1,
        "intermediate_size": 4,
        "vocab_size": 8,
    }
    rope = {"rope_type": "default", "rope_theta": float(base), "mrope_section": list(section)}
    if layout == "sectioned":
        from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLTextConfig
        from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLRotaryEmbedding

        module = Qwen2VLRotaryEmbedding(Qwen2VLTextConfig(**kw, rope_parameters=rope))
    elif layout == "interleaved":
        from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLTextConfig
        from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextRotaryEmbedding

        config = Qwen3VLTextConfig(
            **kw, head_dim=rotary_dim, rope_parameters={**rope, "mrope_interleaved": True}
        )
        module = Qwen3VLTextRotaryEmbedding(config)
    else:
        raise ValueError(f"`layout` must be 'sectioned' or 'interleaved', got {layout!r}")
    ids = torch.as_tensor(np.asarray(positions, dtype=np.int64))[:, None, :]
    x = torch.zeros(1, ids.shape[-1], rotary_dim, dtype=torch.float32)
    cos, sin = module(x, ids)
    return _halves(cos[0], rotary_dim), _halves(sin[0], rotary_dim)


def _ids(ids: Any, length: int, default: Any) -> Any:
    """Position ids as (rows, length) longs (``default`` when None), broadcast as the spec's."""
    if ids is None:
        return default[None]
    ids = torch.as_tensor(ids).to(torch.long)
    return torch.atleast_2d(ids).expand(-1, length)


def _position_ids(q: Any, k: Any, q_pos: Any, k_pos: Any) -> Any:
    """The ``position_ids`` (bsz or 1, klen) of the keys, as ``LlamaModel`` is given them:
    ``k_pos`` (the default layout where None), of which the queries must be the last qlen: a
    decoder's queries are its newest keys, q_pos = k_pos[:, klen - qlen:]."""
    qlen, klen = q.shape[2], k.shape[2]
    keys = _ids(k_pos, klen, torch.arange(klen))
    queries = _ids(q_pos, qlen, torch.arange(klen - qlen, klen))
    rows = max(keys.shape[0], queries.shape[0])
    newest, queries = keys[:, klen - qlen :].expand(rows, qlen), queries.expand(rows, qlen)
    differ = (newest != queries).nonzero()
    if len(differ):
        b, i = (int(x) for x in differ[0])
        raise ValueError(
            "`q_pos` must equal k_pos[:, klen - qlen:] for this adapter (a decoder's queries "
            f"are its newest keys), got q_pos[{b}, {i}] = {int(queries[b, i])} and "
            f"k_pos[{b}, {klen - qlen + i}] = {int(newest[b, i])}"
        )
    return keys


def _llama_call(
    module: Any, rotary: Any, q: Any, k: Any, v: Any, mask: Any, q_pos: Any, k_pos: Any
) -> tuple[Any, Any]:
    """One decoding call as ``LlamaModel`` makes it: cos and sin from the rotary module at the
    position ids, the memory positions first through a ``DynamicCache``, then the queries."""
    bsz, n_head, qlen, d = q.shape
    klen = k.shape[2]
    params = _selecting(n_head, d, q.dtype, "q_proj", "k_proj", "v_proj", "o_proj")
    states = _qkv_states(q, k, v)
    positions = _position_ids(q, k, q_pos, k_pos)
    mlen = klen - qlen
    # a model runs its rotary module on the positions it is given, never on none (longrope's
    # update takes their max)
    memory = rotary(states, positions[:, :mlen]) if mlen else None
    cache = _prefilled(module, params, states, qlen, position_embeddings=memory)
    additive = _additive_mask(mask, (bsz, n_head, qlen, klen), q.dtype)
    out, weights = torch.func.functional_call(
        module,
        params,
        (states[:, mlen:],),
        {
            "position_embeddings": rotary(states, positions[:, mlen:]),
            "attention_mask": additive,
            "cache": cache,
        },
    )
    return _heads(out, n_head, d), weights


def llama_attention(
    target: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    mask: Any = None,
    q_pos: Any = None,
    k_pos: Any = None,
    base: float = 10000,
    rotary_dim: int | None = None,
    scaling: Any = None,
    scale: float | None = None,
    with_weights: bool = False,
) -> Any:
    """The whole ``LlamaAttention`` module (the target, a class) on canonical inputs, profile
    llama, or hf-llama-scaled with a ``scaling`` variant as the config's rope_parameters (q
    and k arrive in the half layout)."""
    _unused("scale", scale, None)
    _unused("rotary_dim", rotary_dim, None)
    module, rotary = _llama_modules(target, q.shape[1], q.shape[3], base, scaling)
    out, weights = _llama_call(module.to(q.dtype), rotary, q, k, v, mask, q_pos, k_pos)
    return (out, weights, None) if with_weights else out


#: The modules of :func:`llama_attention_kept`, one pair per configuration.
_KEPT: dict[tuple[Any, ...], tuple[Any, Any]] = {}


@stateful
def llama_attention_kept(
    target: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    mask: Any = None,
    q_pos: Any = None,
    k_pos: Any = None,
    base: float = 10000,
    rotary_dim: int | None = None,
    scaling: Any = None,
    scale: float | None = None,
    with_weights: bool = False,
) -> Any:
    """As :func:`llama_attention`, but with one ``LlamaAttention`` and one
    ``LlamaRotaryEmbedding`` per configuration (n_head, d_head, base, scaling), kept across
    calls and moved to each call's dtype with ``.to()``, as one model moved between dtypes
    is."""
    _unused("scale", scale, None)
    _unused("rotary_dim", rotary_dim, None)
    key = (target, q.shape[1], q.shape[3], float(base), repr(scaling))
    if key not in _KEPT:
        _KEPT[key] = _llama_modules(target, *key[1:4], scaling)
    module, rotary = _KEPT[key]
    out, weights = _llama_call(module.to(q.dtype), rotary.to(q.dtype), q, k, v, mask, q_pos, k_pos)
    return (out, weights, None) if with_weights else out


def deberta_v2_self_attention(
    target: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    pos_key: Any = None,
    pos_query: Any = None,
    mask: Any = None,
    span: int | None = None,
    max_position: int | None = None,
    p2c_distance: str = "r_ij",
    scale: float | None = None,
    with_weights: bool = False,
) -> Any:
    """The whole ``DisentangledSelfAttention`` module of DeBERTa-v2 (the target, a class) on
    canonical inputs, profile hf-deberta-v2."""
    from transformers import DebertaV2Config

    _unused("scale", scale, None)
    _unused("p2c_distance", p2c_distance, "r_ij")
    bsz, n_head, length, d = q.shape
    _self_attention_only(q, k)
    terms = [t for t, table in (("c2p", pos_key), ("p2c", pos_query)) if table is not None]
    width = 2 * (span or 0)
    # read by the module from the config's extra keywords (not in the config's signature)
    extra: dict[str, Any] = {
        "position_buckets": span if max_position is not None else -1,
        "share_att_key": False,
    }
    config = DebertaV2Config(
        vocab_size=8,
        hidden_size=3 * n_head * d,
        num_attention_heads=n_head,
        num_hidden_layers=1,
        intermediate_size=4,
        relative_attention=bool(terms),
        pos_att_type=terms,
        max_relative_positions=max_position if max_position is not None else (span or -1),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **extra,
    )
    config.attention_head_size = d  # the canonical d_head, whatever the hidden width
    module = target(config).eval().to(q.dtype)
    zero = torch.zeros(n_head * d, dtype=q.dtype)
    params = _selecting(n_head, d, q.dtype, "query_proj", "key_proj", "value_proj")
    params.update({f"{name}_proj.bias": zero for name in ("query", "key", "value")})
    # relative embeddings (2 span, hidden): per head [K^r_h | Q^r_h | 0]; the position
    # projections select the part their term reads
    rows = torch.zeros(width, n_head, 3 * d, dtype=q.dtype)
    for part, (term, table) in enumerate((("c2p", pos_key), ("p2c", pos_query))):
        if table is None:
            continue
        per_head = table if table.dim() == 3 else table.expand(n_head, *table.shape)
        rows[:, :, part * d : (part + 1) * d] = per_head.permute(1, 0, 2)
        proj = "pos_key_proj" if term == "c2p" else "pos_query_proj"
        params[f"{proj}.weight"] = _pick(n_head, d, part, d, q.dtype)
        params[f"{proj}.bias"] = zero
    states = _qkv_states(q, k, v)
    keep = (
        torch.ones(bsz, 1, length, length, dtype=torch.bool)
        if mask is None
        else torch.broadcast_to(mask, (bsz, n_head, length, length))
    )
    out, probs = torch.func.functional_call(
        module,
        params,
        (states, keep),
        {"output_attentions": True, "rel_embeddings": rows.reshape(width, -1) if terms else None},
    )
    out = _heads(out, n_head, d)
    return (out, probs, None) if with_weights else out
