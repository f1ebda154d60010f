"""Concrete inputs for a :class:`~spec._encoding.Case`: small dyadic values and every mask kind.

Values are multiples of 1/8 in [-2, 2], exactly representable in every float dtype down to
float16 and bfloat16, so golden vectors are exact inputs for any implementation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spec._encoding import Case, Encoding

__all__ = ["MASK_KINDS", "case_inputs", "make_mask"]

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


def case_inputs(encoding: Encoding, case: Case) -> dict[str, Any]:
    """Every argument of ``case`` (options and tensors) as numpy arrays."""
    rng = np.random.default_rng(case.seed)
    dims: dict[str, int] = dict(case.dims)
    dims["klen"] = dims["qlen"] + dims.get("mlen", 0)
    options = {o.name: o.default for o in encoding.options} | dict(case.options)
    dims.update(encoding.derived_dims(options))
    args: dict[str, Any] = dict(case.options)
    for t in encoding.tensors:
        if t.name == "mask":
            mask = make_mask(
                case.mask, dims["bsz"], dims["n_head"], dims["qlen"], dims["klen"], rng
            )
            if mask is not None:
                args["mask"] = mask
            continue
        if not t.required and t.name not in case.include:
            continue
        layout = t.layouts[case.layouts.get(t.name, 0)]
        shape = tuple(dims[d] if isinstance(d, str) else d for d in layout)
        if t.kind == "float":
            args[t.name] = _dyadic(rng, shape)
        elif t.kind == "int":
            args[t.name] = rng.integers(0, 3, size=shape).astype(np.int64)
        else:
            args[t.name] = rng.random(shape) < 0.5
    return args
