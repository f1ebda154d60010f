"""Concrete inputs for a :class:`~spec._encoding.Case`: small dyadic values, every mask kind and
every kind of position ids.

Values are multiples of 1/8 in [-2, 2], exactly representable in every float dtype down to
float16 and bfloat16, so golden vectors are exact inputs for any implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from relpos.spec._conventions import POSITION_TENSORS
from relpos.spec._encoding import Case, Encoding

__all__ = [
    "MASK_KINDS",
    "POSITION_KINDS",
    "build_arguments",
    "case_inputs",
    "make_mask",
    "make_positions",
]

#: The mask kinds a case may ask for.
MASK_KINDS = ("none", "causal", "padding", "random", "fully_masked_row", "broadcast")
#: The position kinds: no position ids, one large offset shared by every row, sorted random
#: ids per row up to 2^17, and two packed sequences per row (each restarting at 0, so positions
#: repeat).
POSITION_KINDS = ("default", "offset", "per_row", "packed")
#: Positions the position kinds reach: up to 2^17.
POSITION_REACH = 2**17


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


def make_positions(
    kind: str, bsz: int, qlen: int, klen: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """(q_pos (bsz, qlen), k_pos (bsz, klen)) int64 of the given kind, None for "default".
    The queries are the last qlen keys in every kind (q_pos = k_pos[:, mlen:]), as in a
    decoding step that attends to its own keys and to a cache before them."""
    mlen = klen - qlen
    if kind == "default":
        return None
    if kind == "offset":  # one shift in [2^16, 2^17 - klen] for every row
        shift = int(rng.integers(POSITION_REACH // 2, POSITION_REACH - klen + 1))
        k_pos = np.broadcast_to(shift + np.arange(klen), (bsz, klen))
    elif kind == "per_row":
        k_pos = np.sort(
            np.stack([rng.choice(POSITION_REACH, size=klen, replace=False) for _ in range(bsz)]),
            axis=1,
        )
    elif kind == "packed":
        rows = []
        for _ in range(bsz):
            cut = int(rng.integers(1, klen)) if klen > 1 else 1
            rows.append(np.concatenate([np.arange(cut), np.arange(klen - cut)]))
        k_pos = np.stack(rows)
    else:
        raise ValueError(f"position kind must be one of {POSITION_KINDS}, got {kind!r}")
    k_pos = np.ascontiguousarray(k_pos, dtype=np.int64)
    return np.ascontiguousarray(k_pos[:, mlen:]), k_pos


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
        if (not t.required and t.name not in chosen) or t.name in POSITION_TENSORS:
            continue  # position ids come from make_positions
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
    args = _case_arguments(encoding, case, rng)
    klen = case.dims["qlen"] + case.dims.get("mlen", 0)
    ids = make_positions(case.positions, case.dims["bsz"], case.dims["qlen"], klen, rng)
    if ids is not None:
        args["q_pos"], args["k_pos"] = ids
    return args


def _case_arguments(encoding: Encoding, case: Case, rng: np.random.Generator) -> dict[str, Any]:
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
