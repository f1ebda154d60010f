"""Concrete inputs for a :class:`~spec._encoding.Case`: small dyadic values and every mask kind.

Values are multiples of 1/8 in [-2, 2], exactly representable in every float dtype down to
float16 and bfloat16, so golden vectors are exact inputs for any implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from relpos.spec._encoding import Case, Encoding

__all__ = ["MASK_KINDS", "build_arguments", "case_inputs", "make_mask"]

#: The mask kinds a case may ask for.
MASK_KINDS = ("none", "causal", "padding", "random", "fully_masked_row", "broadcast")


def make_mask(
    kind: str, bsz: int, n_head: int, qlen: int, klen: int, rng: np.random.Generator
) -> np.ndarray | None:
    """A boolean mask (True = may attend) of the given kind, in its natural shape."""
    mlen = klen - qlen
    if kind == "none":
        return None
    if kind == "causal":
        return np.arange(klen)[None, :] <= mlen + np.arange(qlen)[:, None]
    if kind == "padding":
        lengths = rng.integers(1, klen + 1, size=bsz)
        lengths[0] = max(1, klen - 1)
        return (np.arange(klen)[None, :] < lengths[:, None])[:, None, None, :]
    if kind == "random":
        return rng.random((bsz, n_head, qlen, klen)) < 0.7
    if kind == "fully_masked_row":
        mask = rng.random((bsz, n_head, qlen, klen)) < 0.8
        mask[0, 0, qlen // 2, :] = False
        return mask
    if kind == "broadcast":
        mask = rng.random((1, n_head, 1, klen)) < 0.7
        mask[..., 0] = True
        return mask
    raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}")


def _dyadic(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-16, 17, size=shape).astype(np.float64) / 8


def build_arguments(
    encoding: Encoding,
    dims: Mapping[str, int],
    options: Mapping[str, Any],
    include: Iterable[str],
    layouts: Mapping[str, int],
    mask: Callable[[Mapping[str, int]], np.ndarray | None],
    floats: Callable[[tuple[int, ...]], np.ndarray],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Every argument of a call: the options, the mask (``mask(dims)``), each required or
    included tensor in its chosen layout, floats from ``floats(shape)``, integers in 0..2."""
    full = {**dims, "klen": dims["qlen"] + dims.get("mlen", 0)}
    full.update(
        encoding.derived_dims({o.name: o.default for o in encoding.options} | dict(options))
    )
    args: dict[str, Any] = dict(options)
    chosen = set(include)
    for t in encoding.tensors:
        if t.name == "mask":
            value = mask(full)
            if value is not None:
                args["mask"] = value
            continue
        if not t.required and t.name not in chosen:
            continue
        layout = t.layouts[layouts.get(t.name, 0)]
        shape = tuple(full[d] if isinstance(d, str) else d for d in layout)
        if t.kind == "float":
            args[t.name] = floats(shape)
        elif t.kind == "int":
            args[t.name] = rng.integers(0, 3, size=shape).astype(np.int64)
        else:
            args[t.name] = rng.random(shape) < 0.5
    return args


def case_inputs(encoding: Encoding, case: Case) -> dict[str, Any]:
    """Every argument of ``case`` (options and tensors) as numpy arrays."""
    rng = np.random.default_rng(case.seed)
    return build_arguments(
        encoding,
        case.dims,
        case.options,
        case.include,
        case.layouts,
        lambda d: make_mask(case.mask, d["bsz"], d["n_head"], d["qlen"], d["klen"], rng),
        lambda shape: _dyadic(rng, shape),
        rng,
    )
