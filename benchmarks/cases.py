"""Benchmark cases: every registered implementation and the baselines, as zero-argument
callables that run one forward (or forward and backward) pass to completion.

Shapes follow the implementations issue: bsz 1, n_head 8, d_head 64, float32, L = qlen = klen.
Settings: ``clip16`` (Shaw clip (-16, 16); Transformer-XL clamp_len 16), ``unclipped`` (Shaw
clip (-(L-1), L-1), no clamp), for Shaw only ``key_only`` (clip (-16, 16), no rel_v), and for
RoPE ``yarn`` and ``dynamic`` (its scaling variants; ``default`` is plain RoPE).
Any other encoding runs with its option defaults and its required tensors (``default``), so a
new encoding is benchmarked without an edit here.
Reference variants form (L, L, d_head) tensors by design and run only up to
``REFERENCE_MAX``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from relpos.impls import Implementation, registry

__all__ = ["BASELINES", "FLOOR", "REFERENCE_MAX", "SETTINGS", "Case", "cases"]

BSZ, N_HEAD, D_HEAD = 1, 8, 64
D_MODEL = N_HEAD * D_HEAD
SETTINGS = ("clip16", "unclipped", "key_only", "default", "yarn", "dynamic")
_SETTINGS = {
    "shaw": ("clip16", "unclipped", "key_only"),
    "xl": ("clip16", "unclipped"),
    "rope": ("default", "yarn", "dynamic"),
}
#: RoPE's scaling settings at length L: YaRN as shipped (factor 4 of 4096), and dynamic NTK
#: past its original length (L0 = L / 2, so the base grows).
_ROPE_SCALING = {
    "yarn": lambda L: {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 4096,
    },
    "dynamic": lambda L: {
        "rope_type": "dynamic",
        "factor": 2.0,
        "original_max_position_embeddings": L // 2,
    },
}
MODES = ("forward", "backward")
REFERENCE_MAX = 256
#: The floor every ratio is taken to: scaled_dot_product_attention with a float bias.
FLOOR = "sdpa_bias"
BASELINES = ("sdpa", "sdpa_bias", "eager", "hf_xlnet_rel_attn_core", "hf_w2v_bert_relative_key")


@dataclass(frozen=True)
class Case:
    """One benchmark: ``name`` is an implementation id or a baseline, ``mode`` forward or
    backward (forward and backward), ``setting`` clip16 or unclipped (baselines without a
    range use clip16 only)."""

    name: str
    L: int
    mode: str
    setting: str

    @property
    def id(self) -> str:
        return f"{self.name}-{self.setting}-{self.mode}-L{self.L}"

    def build(self) -> Callable[[], Any]:
        """Inputs allocated once; the callable runs one pass (JAX: already compiled, blocked
        until ready)."""
        impl = next((i for i in registry() if i.id == self.name), None)
        if impl is not None:
            return _build_impl(impl, self)
        return _BASELINE_BUILDERS[self.name](self)


def cases(sizes: tuple[int, ...] = (256, 512, 1024, 2048)) -> list[Case]:
    out: list[Case] = []
    for L in sizes:
        for mode in MODES:
            for impl in registry():
                if impl.variant == "reference" and L > REFERENCE_MAX:
                    continue
                out.extend(
                    Case(impl.id, L, mode, s) for s in _SETTINGS.get(impl.encoding, ("default",))
                )
            out.extend(Case(b, L, mode, "clip16") for b in BASELINES)
            out.append(Case("hf_w2v_bert_relative_key", L, mode, "unclipped"))
    return out


def _inputs(case: Case, encoding: str) -> dict[str, np.ndarray | Any]:
    rng = np.random.default_rng(0)
    L = case.L

    def randn(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    args: dict[str, Any] = {name: randn(BSZ, N_HEAD, L, D_HEAD) for name in ("q", "k", "v")}
    if encoding == "shaw":
        clip = (-(L - 1), L - 1) if case.setting == "unclipped" else (-16, 16)
        rows = clip[1] - clip[0] + 1
        args.update(rel_k=randn(rows, D_HEAD, scale=0.1), clip=clip)
        if case.setting != "key_only":
            args["rel_v"] = randn(rows, D_HEAD, scale=0.1)
    elif encoding == "xl":
        args.update(
            w_r=randn(N_HEAD, D_HEAD, D_MODEL, scale=1 / math.sqrt(D_MODEL)),
            r_w_bias=randn(N_HEAD, D_HEAD, scale=0.1),
            r_r_bias=randn(N_HEAD, D_HEAD, scale=0.1),
            clamp_len=16 if case.setting == "clip16" else None,
        )
    else:
        args = _default_inputs(encoding, L, randn, rng)
        if encoding == "rope" and case.setting in _ROPE_SCALING:
            args["scaling"] = _ROPE_SCALING[case.setting](L)
    return args


def _default_inputs(encoding: str, L: int, randn: Any, rng: np.random.Generator) -> dict:
    """Any encoding with its option defaults (the first candidate where an option has no
    valid default) and every tensor it takes, tables at scale 0.1."""
    from relpos.spec import get_encoding
    from relpos.spec._cases import build_arguments

    enc = get_encoding(encoding)
    dims = {"bsz": BSZ, "n_head": N_HEAD, "qlen": L, "mlen": 0, "d_head": D_HEAD}
    dims.update({name: max(sizes) for name, sizes in enc.free_dims.items()})
    candidates = enc.option_values(dims)
    options = {
        o.name: o.default if o.check(o.default) is None else candidates[o.name][0]
        for o in enc.options
    }
    optional = tuple(t.name for t in enc.tensors if not t.required and t.name != "mask")
    # (position ids are never built here: the benchmarks time the default layout)
    args = build_arguments(
        enc, dims, options, optional, {}, lambda d: None, lambda s: randn(*s, scale=0.1), rng
    )
    args.update({name: randn(BSZ, N_HEAD, L, D_HEAD) for name in ("q", "k", "v")})
    return args


def _build_impl(impl: Implementation, case: Case) -> Callable[[], Any]:
    args = _inputs(case, impl.encoding)
    fn = impl.load()
    if impl.backend == "torch":
        import torch

        tensors = {k: torch.from_numpy(v) for k, v in args.items() if isinstance(v, np.ndarray)}
        options = {k: v for k, v in args.items() if not isinstance(v, np.ndarray)}
        if case.mode == "forward":

            def run() -> Any:
                with torch.no_grad():
                    t = dict(tensors)
                    return fn(t.pop("q"), t.pop("k"), t.pop("v"), **t, **options)

            return run
        leaves = {k: v.clone().requires_grad_(True) for k, v in tensors.items()}

        def run_backward() -> Any:
            t = dict(leaves)
            out = fn(t.pop("q"), t.pop("k"), t.pop("v"), **t, **options)
            return torch.autograd.grad(out.sum(), list(leaves.values()))

        return run_backward

    import jax
    import jax.numpy as jnp

    arrays = {k: jnp.asarray(v) for k, v in args.items() if isinstance(v, np.ndarray)}
    options = {k: v for k, v in args.items() if not isinstance(v, np.ndarray)}

    def forward(t: dict[str, Any]) -> Any:
        t = dict(t)
        return fn(t.pop("q"), t.pop("k"), t.pop("v"), **t, **options)

    step = jax.jit(forward if case.mode == "forward" else jax.grad(lambda t: jnp.sum(forward(t))))
    start = time.perf_counter()
    jax.block_until_ready(step(arrays))
    _COMPILE_SECONDS[case.id] = time.perf_counter() - start
    return lambda: jax.block_until_ready(step(arrays))


#: First-call seconds of JAX cases (compilation plus one run), by case id.
_COMPILE_SECONDS: dict[str, float] = {}


def compile_seconds(case: Case) -> float | None:
    return _COMPILE_SECONDS.get(case.id)


def _torch_qkv(case: Case) -> tuple[Any, ...]:
    import torch

    g = torch.Generator().manual_seed(0)
    qkv = [torch.randn(BSZ, N_HEAD, case.L, D_HEAD, generator=g) for _ in range(3)]
    if case.mode == "backward":
        qkv = [t.requires_grad_(True) for t in qkv]
    return tuple(qkv)


def _run_torch(case: Case, compute: Callable[[], Any], leaves: list[Any]) -> Callable[[], Any]:
    import torch

    if case.mode == "forward":

        def run() -> Any:
            with torch.no_grad():
                return compute()

        return run
    return lambda: torch.autograd.grad(compute().sum(), leaves)


def _sdpa(case: Case, bias: bool) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    q, k, v = _torch_qkv(case)
    mask = torch.randn(BSZ, N_HEAD, case.L, case.L) if bias else None
    return _run_torch(
        case, lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), [q, k, v]
    )


def _eager(case: Case) -> Callable[[], Any]:
    import torch

    q, k, v = _torch_qkv(case)
    scale = 1 / math.sqrt(D_HEAD)
    return _run_torch(
        case, lambda: torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1) @ v, [q, k, v]
    )


def _hf_xlnet(case: Case) -> Callable[[], Any]:
    import torch
    from transformers import XLNetConfig
    from transformers.models.xlnet.modeling_xlnet import XLNetRelativeAttention

    torch.manual_seed(0)
    config = XLNetConfig(d_model=D_MODEL, n_head=N_HEAD, d_inner=4 * D_MODEL, dropout=0.0)
    module = XLNetRelativeAttention(config).eval()
    L = case.L
    grad = case.mode == "backward"
    q, k, v = (torch.randn(L, BSZ, N_HEAD, D_HEAD, requires_grad=grad) for _ in range(3))
    k_r = torch.randn(2 * L, BSZ, N_HEAD, D_HEAD, requires_grad=grad)
    return _run_torch(case, lambda: module.rel_attn_core(q, k, v, k_r), [q, k, v, k_r])


def _hf_w2v_bert(case: Case) -> Callable[[], Any]:
    import torch
    from transformers import Wav2Vec2BertConfig
    from transformers.models.wav2vec2_bert.modeling_wav2vec2_bert import (
        Wav2Vec2BertSelfAttention,
    )

    torch.manual_seed(0)
    reach = 16 if case.setting == "clip16" else case.L
    config = Wav2Vec2BertConfig(
        hidden_size=D_MODEL,
        num_attention_heads=N_HEAD,
        position_embeddings_type="relative_key",
        left_max_position_embeddings=reach,
        right_max_position_embeddings=reach,
        attention_dropout=0.0,
    )
    module = Wav2Vec2BertSelfAttention(config).eval()
    hidden = torch.randn(BSZ, case.L, D_MODEL, requires_grad=case.mode == "backward")
    return _run_torch(case, lambda: module(hidden)[0], [hidden])


_BASELINE_BUILDERS: dict[str, Callable[[Case], Callable[[], Any]]] = {
    "sdpa": lambda c: _sdpa(c, bias=False),
    "sdpa_bias": lambda c: _sdpa(c, bias=True),
    "eager": _eager,
    "hf_xlnet_rel_attn_core": _hf_xlnet,
    "hf_w2v_bert_relative_key": _hf_w2v_bert,
}
