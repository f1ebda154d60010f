"""Small Transformer encoders whose attention is the bundled torch ``fast`` implementations,
trained through autograd: the attention a study trains is the attention ``relpos check``
checks.

Position schemes (:data:`SCHEMES`):

- ``none``: no positions (attention through ``rope_fast`` with rotary_dim 0, which rotates
  nothing: plain scaled dot-product attention);
- ``absolute``: sinusoidal positions added to the token embeddings (Vaswani et al. 2017), the
  same attention;
- ``shaw``: learned key and value tables per layer, shared by the heads, distances clipped to
  ``clip`` (Shaw et al. 2018); ``tables`` "key" or "value" keeps one of them (the other: no
  value term, or a key table fixed at zero, which adds nothing to the logits);
- ``t5``: a learned bias per bucket and head, 32 buckets up to distance 128, bidirectional;
- ``alibi``: the paper's slopes over |i - j| (bidirectional);
- ``rope``: rotary positions, base 10000;
- ``xl``: Transformer-XL's relative attention (Dai et al. 2019): sinusoidal relative
  positions of width d_model projected per head (W_R), and the learned biases u and v;
- ``deberta``: DeBERTa's disentangled attention (He et al. 2021): learned position-key and
  position-query tables of 2 x 32 relative positions, shared by the heads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from relpos.impls.torch.alibi import alibi_fast
from relpos.impls.torch.deberta import deberta_fast
from relpos.impls.torch.rope import rope_fast
from relpos.impls.torch.shaw import shaw_fast
from relpos.impls.torch.t5 import t5_fast
from relpos.impls.torch.xl import xl_fast

__all__ = [
    "POOLS",
    "SCHEMES",
    "TABLES",
    "TIMED",
    "Classifier",
    "LanguageModel",
    "one_thread",
    "throughput",
]

SCHEMES = ("none", "absolute", "shaw", "t5", "alibi", "rope", "xl", "deberta")
#: Shaw's tables a model learns.
TABLES = ("both", "key", "value")
#: How the classifier reads its tokens: their mean, the first token's state, or every token's
#: state (a label per token).
POOLS = ("mean", "first", "every")
#: DeBERTa's span: relative positions clipped to [-span, span - 1].
DEBERTA_SPAN = 32
#: The schemes and the baseline the throughput benchmark times: ``sdpa`` is the ``none``
#: model with torch's ``scaled_dot_product_attention`` in place of ours.
TIMED = (*SCHEMES, "sdpa")


class _Attention(nn.Module):
    rel_k: torch.Tensor
    rel_v: torch.Tensor | None

    def __init__(
        self, d_model: int, n_head: int, scheme: str, clip: tuple[int, int], tables: str
    ) -> None:
        super().__init__()
        self.n_head, self.d_head, self.scheme, self.clip = n_head, d_model // n_head, scheme, clip
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        if scheme == "shaw":
            rows = clip[1] - clip[0] + 1
            # both tables are drawn whichever are kept, so that the other weights do not
            # depend on ``tables``
            rel_k = torch.randn(rows, self.d_head) * self.d_head**-0.5
            rel_v = torch.randn(rows, self.d_head) * self.d_head**-0.5
            if tables == "value":
                self.register_buffer("rel_k", torch.zeros(rows, self.d_head))
            else:
                self.rel_k = nn.Parameter(rel_k)
            self.rel_v = None if tables == "key" else nn.Parameter(rel_v)
        elif scheme == "t5":
            self.rel_bias = nn.Parameter(torch.zeros(32, n_head))
        elif scheme == "xl":
            self.w_r = nn.Parameter(torch.randn(n_head, self.d_head, d_model) * d_model**-0.5)
            self.r_w_bias = nn.Parameter(torch.zeros(n_head, self.d_head))
            self.r_r_bias = nn.Parameter(torch.zeros(n_head, self.d_head))
        elif scheme == "deberta":
            rows = 2 * DEBERTA_SPAN
            self.pos_key = nn.Parameter(torch.randn(rows, self.d_head) * self.d_head**-0.5)
            self.pos_query = nn.Parameter(torch.randn(rows, self.d_head) * self.d_head**-0.5)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, memory: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``memory`` (XL only; then causal, with no mask): states of the tokens before
        ``x``, which its tokens attend to as keys and values besides themselves."""
        b, n, _ = x.shape
        context = x if memory is None else torch.cat([memory, x], dim=1)
        q, k, v = (
            t.reshape(b, -1, self.n_head, self.d_head).transpose(1, 2)
            for t in self.qkv(context).chunk(3, dim=-1)
        )
        q = q[:, :, -n:]
        kw: dict[str, Any] = {"mask": mask}
        if memory is not None:
            if self.scheme != "xl" or mask is not None:
                raise ValueError("memory is for the xl scheme, causal and without a mask")
            kw["attn_type"] = "uni"
        if self.scheme == "shaw":
            out = shaw_fast(q, k, v, rel_k=self.rel_k, rel_v=self.rel_v, clip=self.clip, **kw)
        elif self.scheme == "t5":
            out = t5_fast(q, k, v, rel_bias=self.rel_bias, max_distance=128, **kw)
        elif self.scheme == "alibi":
            out = alibi_fast(q, k, v, **kw)
        elif self.scheme == "xl":
            biases = {"r_w_bias": self.r_w_bias, "r_r_bias": self.r_r_bias}
            out = xl_fast(q, k, v, w_r=self.w_r, **biases, **kw)
        elif self.scheme == "deberta":
            tables = {"pos_key": self.pos_key, "pos_query": self.pos_query}
            out = deberta_fast(q, k, v, **tables, span=DEBERTA_SPAN, **kw)
        elif self.scheme == "sdpa":
            out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            out = rope_fast(q, k, v, rotary_dim=None if self.scheme == "rope" else 0, **kw)
        return self.out(out.transpose(1, 2).reshape(b, n, -1))


class _Layer(nn.Module):
    def __init__(
        self, d_model: int, n_head: int, scheme: str, clip: tuple[int, int], tables: str
    ) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = _Attention(d_model, n_head, scheme, clip, tables)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )
        self.dropout = nn.Dropout(0.1)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, memory: torch.Tensor | None = None
    ) -> torch.Tensor:
        kept = None if memory is None else self.norm1(memory)
        x = x + self.dropout(self.attention(self.norm1(x), mask, kept))
        return x + self.dropout(self.ffn(self.norm2(x)))


def sinusoidal(length: int, d_model: int) -> torch.Tensor:
    """(length, d_model): sin and cos of p / 10000^(2i/d) (Vaswani et al. 2017)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2], table[:, 1::2] = torch.sin(position * rate), torch.cos(position * rate)
    return table


class Classifier(nn.Module):
    """Pre-norm Transformer encoder over token ids (0 = padding), pooled (``pool``: the mean
    over the real tokens, the first token's state, or every token's state for a label per
    token), then a linear layer to the classes. ``causal``: each token attends to itself and
    the tokens before it only."""

    def __init__(
        self,
        vocab: int,
        classes: int,
        scheme: str,
        *,
        d_model: int = 64,
        n_head: int = 4,
        layers: int = 2,
        max_len: int = 64,
        clip: tuple[int, int] = (-16, 16),
        tables: str = "both",
        pool: str = "mean",
        causal: bool = False,
    ) -> None:
        super().__init__()
        if scheme not in TIMED:
            raise ValueError(f"scheme={scheme!r} must be one of {', '.join(TIMED)}")
        if tables not in TABLES:
            raise ValueError(f"tables={tables!r} must be one of {', '.join(TABLES)}")
        if tables != "both" and scheme != "shaw":
            raise ValueError(f"tables={tables!r} is Shaw's: scheme={scheme!r} has no tables")
        if pool not in POOLS:
            raise ValueError(f"pool={pool!r} must be one of {', '.join(POOLS)}")
        self.scheme, self.pool, self.causal = scheme, pool, causal
        self.embed = nn.Embedding(vocab, d_model, padding_idx=0)
        self.register_buffer("positions", sinusoidal(max_len, d_model), persistent=False)
        self.layers = nn.ModuleList(
            _Layer(d_model, n_head, scheme, clip, tables) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        real = ids != 0
        x = self.embed(ids)
        if self.scheme == "absolute":
            x = x + self.positions[: ids.shape[1]]
        mask = real[:, None, None, :]  # (b, 1, 1, n): every query attends to the real keys
        if self.causal:  # (b, 1, n, n): and to none after it
            n = ids.shape[1]
            mask = mask & torch.ones(n, n, dtype=torch.bool).tril()
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x) * real[..., None]
        if self.pool == "every":
            return self.head(x)
        if self.pool == "first":
            return self.head(x[:, 0])
        return self.head(x.sum(1) / real.sum(1, keepdim=True).clamp(min=1))


class LanguageModel(nn.Module):
    """A causal pre-norm Transformer over bytes (256 symbols) that predicts each next byte.

    ``absolute``: sinusoidal positions added to the embeddings (up to ``max_len``), a context
    of the segment alone. ``xl``: Transformer-XL's relative attention (the bundled
    ``xl_fast``, causal) with segment-level recurrence: each layer's input states of earlier
    segments, detached, are kept as a memory that the next segment's tokens attend to (Dai
    et al. 2019). ``forward(ids, memory, keep=K)`` returns the logits and the new memory: the
    last K states of every layer's input (the memory's included), or None when K is 0."""

    SCHEMES = ("absolute", "xl")

    def __init__(
        self,
        scheme: str,
        *,
        d_model: int = 64,
        n_head: int = 4,
        layers: int = 2,
        max_len: int = 512,
    ) -> None:
        super().__init__()
        if scheme not in self.SCHEMES:
            raise ValueError(f"scheme={scheme!r} must be one of {', '.join(self.SCHEMES)}")
        self.scheme = scheme
        self.embed = nn.Embedding(256, d_model)
        self.register_buffer("positions", sinusoidal(max_len, d_model), persistent=False)
        self.layers = nn.ModuleList(
            _Layer(d_model, n_head, scheme, (-1, 1), "both") for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 256)

    def forward(
        self, ids: torch.Tensor, memory: list[torch.Tensor] | None = None, *, keep: int = 0
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        n = ids.shape[1]
        x = self.embed(ids)
        if self.scheme == "absolute":
            if memory is not None or keep:
                raise ValueError("the absolute model keeps no memory: its context is the segment")
            if n > self.positions.shape[0]:
                raise ValueError(f"a segment of {n} tokens needs max_len >= {n}")
            x = x + self.positions[:n]
            mask: torch.Tensor | None = torch.ones(n, n, dtype=torch.bool).tril()
        else:
            mask = None
        kept: list[torch.Tensor] = []
        for at, layer in enumerate(self.layers):
            before = None if not memory else memory[at]
            if keep:
                states = x if before is None else torch.cat([before, x], dim=1)
                kept.append(states[:, -keep:].detach())
            if self.scheme == "xl" and before is None:
                before = x[:, :0]  # no memory yet: the causal XL call, over the segment
            x = layer(x, mask, before)
        return self.head(self.norm(x)), (kept if keep else None)


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside, as many as before afterwards: models this small gain
    nothing from more, and on a loaded machine each step of them took 40 times as long."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def throughput(
    schemes: tuple[str, ...] = TIMED,
    *,
    steps: int = 20,
    batch: int = 64,
    length: int = 64,
    rounds: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Training tokens per second of each scheme's model (the text-classification study's
    size, one thread, random token ids of ``length``, a forward, backward and AdamW step
    each), measured side by side: ``rounds`` interleaved rounds of ``steps`` steps, the
    median of each scheme's rounds."""
    import statistics
    import time

    with one_thread():
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(2, 1000, (batch, length), generator=generator)
        labels = torch.randint(0, 2, (batch,), generator=generator)
        models = {s: Classifier(1000, 2, s, max_len=length) for s in schemes}
        optimisers = {s: torch.optim.AdamW(m.parameters()) for s, m in models.items()}
        timings: dict[str, list[float]] = {s: [] for s in schemes}
        for _ in range(rounds):
            for scheme, model in models.items():
                start = time.perf_counter()
                for _ in range(steps):
                    loss = nn.functional.cross_entropy(model(ids), labels)
                    optimisers[scheme].zero_grad()
                    loss.backward()
                    optimisers[scheme].step()
                timings[scheme].append(steps * batch * length / (time.perf_counter() - start))
        return {s: statistics.median(t) for s, t in timings.items()}
