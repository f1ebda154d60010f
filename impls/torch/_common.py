"""Pieces every torch implementation shares: dtypes, index grids, the sinusoid, masked softmax.

None of this evaluates a spec formula; the spec is used only through :func:`relpos.spec.validate`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from relpos.impls._validated import Framework, guarded
from relpos.spec import Problem

__all__ = [
    "BLOCK",
    "HALF",
    "Blocks",
    "accumulation_dtype",
    "block_rows",
    "causal_pairs",
    "default_scale",
    "guard",
    "has_positions",
    "masked_softmax",
    "positions",
    "sinusoid",
    "tracks_grad",
    "visible_pairs",
    "whole_attention",
]

HALF = (torch.float16, torch.bfloat16)


def _first_nonfinite(t: torch.Tensor) -> tuple[tuple[int, ...], float] | None:
    """The first NaN or infinite element (index, value) of a float tensor with data."""
    if not t.is_floating_point():
        return None
    bad = ~torch.isfinite(t.detach())
    if not bool(bad.any()):
        return None
    index = tuple(int(i) for i in bad.nonzero()[0])
    return index, float(t.detach()[index])


#: The checks and the half-type policy of every torch variant (see :func:`guarded`).
FRAMEWORK = Framework(
    accepts=lambda t: isinstance(t, torch.Tensor),
    kind=("a torch.Tensor (this is a PyTorch implementation; torch.from_numpy converts an array)"),
    first_nonfinite=_first_nonfinite,
    device=lambda t: str(t.device),
    dataless=frozenset({"meta"}),
    is_half=lambda t: isinstance(t, torch.Tensor) and t.dtype in HALF,
    to_float32=lambda t: t.to(torch.float32),
    cast=lambda t, dtype: t.to(dtype),
)
guard = guarded(FRAMEWORK)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for the half types (softmax and sums), the dtype itself otherwise."""
    return torch.float32 if dtype in HALF else dtype


def default_scale(problem: Problem) -> float:
    scale = problem.options["scale"]
    return 1 / math.sqrt(problem.dims["d_head"]) if scale is None else float(scale)


def tracks_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd records this call (then in-place shortcuts are not allowed)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def positions(problem: Problem, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(q_pos (B, qlen), k_pos (B, klen)) int64 on ``device``, B in {1, bsz}: the call's
    position ids (broadcast shapes expanded), else the default layout (query i at mlen + i,
    key j at j)."""
    d = problem.dims

    def ids(name: str, length: int, start: int) -> torch.Tensor:
        given = problem.tensors.get(name)
        if given is None:
            return (start + torch.arange(length, device=device))[None]
        t = given.to(device=device, dtype=torch.int64)
        t = t.reshape((1,) * (2 - t.dim()) + tuple(t.shape))
        return t.expand(t.shape[0], length)

    return ids("q_pos", d["qlen"], d["mlen"]), ids("k_pos", d["klen"], 0)


def has_positions(problem: Problem) -> bool:
    """Whether the call gives position ids (else the default layout applies)."""
    return any(problem.tensors.get(n) is not None for n in ("q_pos", "k_pos"))


def causal_pairs(problem: Problem, device: torch.device) -> torch.Tensor:
    """pos_j <= pos_i as a (B, 1, qlen, klen) boolean tensor (B in {1, bsz})."""
    q_pos, k_pos = positions(problem, device)
    return (k_pos[:, None, None, :] <= q_pos[:, None, :, None]).contiguous()


def block_rows(grid: torch.Tensor, bsz: int, n_head: int, i0: int, i1: int) -> torch.Tensor:
    """Query rows [i0, i1) of a (B, qlen, klen) per-pair grid as (bsz * n_head, i1 - i0,
    klen): a view of the one shared grid at the default positions (B = 1), a copy per batch
    row for position ids."""
    block = grid[:, i0:i1]
    if block.shape[0] == 1:
        return block.expand(bsz * n_head, *block.shape[1:])
    return block[:, None].expand(bsz, n_head, *block.shape[1:]).reshape(-1, *block.shape[1:])


def sinusoid(positions: torch.Tensor, d_model: int, dtype: torch.dtype) -> torch.Tensor:
    """[sin(p f) | cos(p f)] for integer positions, f_k = 10000^(-2k/d_model), computed in
    float64 for float64 and float32 otherwise (integer positions are exact in both)."""
    work = torch.float64 if dtype == torch.float64 else torch.float32
    freq = torch.pow(
        torch.tensor(10000.0, dtype=work, device=positions.device),
        -torch.arange(0, d_model, 2, dtype=work, device=positions.device) / d_model,
    )
    angle = positions.to(work)[:, None] * freq[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


def masked_softmax(scores: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis restricted to ``visible`` keys; rows with no visible key
    give zeros, with no NaN in the forward or the backward pass."""
    if visible is not None:
        scores = scores.masked_fill(~visible, -math.inf)
    top = scores.amax(dim=-1, keepdim=True).detach()
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    weights = torch.exp(scores - top)
    total = weights.sum(dim=-1, keepdim=True)
    return weights / torch.where(total > 0, total, torch.ones_like(total))


def whole_attention(
    scores: torch.Tensor,
    visible: torch.Tensor | None,
    v: torch.Tensor,
    with_weights: bool,
):
    """Masked softmax of whole scaled scores and the output, out of place (what autograd
    records); with weights also the probabilities and the scores with -inf where masked."""
    probs = masked_softmax(scores, visible)
    out = torch.matmul(probs.to(v.dtype), v)
    if not with_weights:
        return out
    return out, probs, scores if visible is None else scores.masked_fill(~visible, -math.inf)


def visible_pairs(mask: torch.Tensor | None, causal: torch.Tensor | None) -> torch.Tensor | None:
    """The mask argument AND a structural (qlen, klen) mask, either may be absent."""
    if mask is None:
        return causal
    return mask if causal is None else mask & causal


#: Query rows per block in the blocked forward passes (measured: 128 is near the best at
#: L = 512-2048 on 2 cores; see benchmarks).
BLOCK = 128


class Blocks:
    """Row blocks of a (bsz, n_head, qlen, klen) attention computed without any full
    (qlen, klen) buffer: each block's scores are softmaxed and applied immediately. With
    ``keep_weights`` the probabilities and masked scores of every block are copied into full
    tensors (for checking; costs the buffers the blocking otherwise avoids)."""

    def __init__(
        self,
        shape: tuple[int, int, int, int],
        visible: torch.Tensor | None,
        acc: torch.dtype,
        device: torch.device,
        keep_weights: bool,
    ) -> None:
        self.bsz, self.n_head, self.qlen, self.klen = shape
        if visible is not None and visible.dim() < 4:  # e.g. a (klen,) or (qlen, klen) mask
            visible = visible.reshape((1,) * (4 - visible.dim()) + tuple(visible.shape))
        self.hidden = None if visible is None else ~visible
        self.acc = acc
        self.probs = self.scores = None
        if keep_weights:
            self.probs = torch.empty(shape, dtype=acc, device=device)
            self.scores = torch.empty(shape, dtype=acc, device=device)

    def attend(
        self, v: torch.Tensor, scores_of: Any, with_weights: bool
    ) -> torch.Tensor | tuple[torch.Tensor, Any, Any]:
        """The output of every block: ``scores_of(i0, i1)`` gives a block's scaled scores
        (bsz * n_head, i1 - i0, klen) in the accumulation dtype (it may be modified in
        place); masked softmax, then the block's probabilities times v."""
        bsz, n_head, _, d = v.shape
        values = v.reshape(bsz * n_head, self.klen, d)
        out = torch.empty(bsz, n_head, self.qlen, d, dtype=v.dtype, device=v.device)
        for i0, i1 in self.ranges():
            probs = self.softmax(scores_of(i0, i1), i0, i1)
            out[:, :, i0:i1] = torch.bmm(probs.to(v.dtype), values).view(bsz, n_head, i1 - i0, d)
        return (out, self.probs, self.scores) if with_weights else out

    def ranges(self) -> list[tuple[int, int]]:
        return [(i, min(self.qlen, i + BLOCK)) for i in range(0, self.qlen, BLOCK)]

    def softmax(self, scores: torch.Tensor, i0: int, i1: int) -> torch.Tensor:
        """Mask, softmax (in ``acc``) and zero fully masked rows of one (bsz * n_head, n,
        klen) block of scaled scores; returns the probabilities."""
        n = i1 - i0
        view = scores.view(self.bsz, self.n_head, n, self.klen)
        dead = None
        if self.hidden is not None:
            hidden = self.hidden[..., i0:i1, :] if self.hidden.shape[-2] > 1 else self.hidden
            view.masked_fill_(hidden, float("-inf"))
            dead = hidden.all(dim=-1, keepdim=True)
        if self.scores is not None:
            self.scores[:, :, i0:i1].copy_(view)
        probs = torch.softmax(scores, dim=-1, dtype=self.acc)
        if dead is not None:
            probs.view(self.bsz, self.n_head, n, self.klen).masked_fill_(dead, 0.0)
        if self.probs is not None:
            self.probs[:, :, i0:i1].copy_(probs.view(self.bsz, self.n_head, n, self.klen))
        return probs
