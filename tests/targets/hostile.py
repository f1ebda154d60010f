"""Targets that attack the checker: they hang, abort or segfault. Each must become a finding
of its own while the checker survives (they run in a worker process)."""

from __future__ import annotations

import ctypes
import os
import time

from relpos.impls.torch.shaw import shaw_reference


def correct(q, k, v, **arguments):
    """The bundled reference: passes."""
    return shaw_reference(q, k, v, **arguments)


def hangs(q, k, v, **arguments):
    time.sleep(3600)
    return shaw_reference(q, k, v, **arguments)


def aborts(q, k, v, **arguments):
    os.abort()


def segfaults(q, k, v, **arguments):
    ctypes.string_at(0)


def scales_q_in_place(q, k, v, **arguments):
    """Right answer, but q is doubled afterwards: the caller's tensor is corrupted."""
    out = shaw_reference(q, k, v, **arguments)
    q.mul_(2)
    return out


_calls = {"n": 0}


def wrong_every_fourth_call(q, k, v, **arguments):
    """Right three calls in four; the fourth returns out scaled by 1 + 2^-20."""
    _calls["n"] += 1
    result = shaw_reference(q, k, v, **arguments)
    if _calls["n"] % 4:
        return result
    out, *rest = result if isinstance(result, tuple) else (result,)
    out = out * (1 + 2.0**-20)
    return (out, *rest) if rest else out


_previous = {"q": None}


def keeps_state(q, k, v, **arguments):
    """Adds a trace of the previous call's q to out: state kept between calls."""
    result = shaw_reference(q, k, v, **arguments)
    previous, _previous["q"] = _previous["q"], q.detach().clone()
    if previous is None:
        return result
    out, *rest = result if isinstance(result, tuple) else (result,)
    out = out + 2.0**-30 * float(previous.flatten()[0])
    return (out, *rest) if rest else out


def uniform_probs_on_dead_rows(q, k, v, *, with_weights=False, **arguments):
    """out right (zeros on fully masked rows), but probs uniform there: probs is wrong."""
    import torch

    if not with_weights:
        return shaw_reference(q, k, v, **arguments)
    out, probs, scores = shaw_reference(q, k, v, with_weights=True, **arguments)
    dead = torch.isneginf(scores).all(dim=-1, keepdim=True)
    probs = torch.where(dead, torch.full_like(probs, 1 / probs.shape[-1]), probs)
    return out, probs, scores


def scales_after_the_product(q, k, v, **arguments):
    """The bundled reference, except that q k^T is first formed unscaled in the input dtype,
    as code that scales afterwards does: where that product overflows (float16, large logits)
    the row's out is NaN."""
    import torch

    result = shaw_reference(q, k, v, **arguments)
    out, *rest = result if isinstance(result, tuple) else (result,)
    overflowed = ~torch.isfinite(q @ k.transpose(-1, -2)).all(dim=-1, keepdim=True)
    out = torch.where(overflowed, torch.full_like(out, float("nan")), out)
    return (out, *rest) if rest else out


def allocates_a_petabyte(q, k, v, **arguments):
    """Asks for more memory than any machine has: the framework refuses it."""
    import torch

    torch.empty(2**50, dtype=torch.uint8)
    return shaw_reference(q, k, v, **arguments)


def killed_for_memory(q, k, v, **arguments):
    """Killed with SIGKILL, as the out-of-memory killer kills a process that took too much
    (without taking this machine's memory to get there)."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def nan_on_one_query_else_off(q, k, v, **arguments):
    """Two bugs at once: NaN out for a single query, out 1% too large otherwise."""
    import torch

    result = shaw_reference(q, k, v, **arguments)
    out, *rest = result if isinstance(result, tuple) else (result,)
    out = torch.full_like(out, float("nan")) if q.shape[2] == 1 else out * 1.01
    return (out, *rest) if rest else out


def clamp_zero_is_no_clamp(q, k, v, *, clamp_len=None, **arguments):
    """Transformer-XL code's reading of clamp_len 0: no clamp at all (the spec clamps every
    distance to 0)."""
    from relpos.impls.torch.xl import xl_reference

    return xl_reference(q, k, v, clamp_len=None if clamp_len == 0 else clamp_len, **arguments)


def aborts_from_three_queries(q, k, v, **arguments):
    """Right for one or two queries; aborts from three on."""
    if q.shape[2] >= 3:
        os.abort()
    return shaw_reference(q, k, v, **arguments)
