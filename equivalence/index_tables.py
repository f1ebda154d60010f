"""The integer tables an encoding reads, probed through the scores, for every option set.

Clip rows (Shaw), buckets (T5, DeBERTa), clamped distances and the causal mask
(Transformer-XL), distances and slopes (ALiBi) are integer code that both backends often share,
so comparing backends cannot see them. A probe writes each table's row numbers into the table
itself and zeroes everything else, so that every score *is* what the implementation read:

- a relative table (Shaw's ``rel_k``, T5's ``rel_bias``, DeBERTa's ``pos_key`` and
  ``pos_query``) holds r in every entry of row r, with q = 1 and k = 0 (the query side) or
  q = 0 and k = 1 (the key side), d_head 1 and scale 1: the score is the row read;
- Transformer-XL with q = k = 0 and r_r_bias = 1 scores W_R R(D): head 0 reads sin(D), head 1
  cos(D) (d_model 2), which tell every integer distance apart;
- ALiBi with q = k = 0 scores the bias alone, -m_h |D|.

The scores are compared with the oracle's on one long range (100 queries after 100 memory
positions: distances from -99 to 199, past the clips, clamps, spans and max_distances drawn
there, T5's 128 included) for every combination of the encoding's options there, and ALiBi's
slopes for every head count up to 16 on a short one (:func:`index_cases`). A probe is an ordinary
:class:`~relpos.equivalence.draws.Draw`, so a failure's repro replays it; its seed says the
side (even: query, odd: key).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from relpos.equivalence.draws import Draw
from relpos.spec import get_encoding

__all__ = ["PROBED", "index_cases", "probe_arguments"]

#: The long range every probe runs on.
_DIMS = {"bsz": 1, "qlen": 100, "mlen": 100, "d_head": 1}

#: Encodings with a table to probe, and the tensors each probe includes.
PROBED: dict[str, tuple[str, ...]] = {
    "shaw": (),
    "t5": (),
    "deberta": ("pos_key", "pos_query"),
    "xl": (),
    "alibi": (),
}

#: ALiBi's slopes depend on the head count: every count up to 16 with the default options.
_ALIBI_HEADS = range(1, 17)


def index_cases(encoding: str, restrict: Any = None) -> list[tuple[str, Draw]]:
    """Every option combination of ``encoding`` on the long range (scale 1), each from the
    query side and, where a table is read by keys, from the key side too; less those a
    library's restriction rules out. Empty for an encoding with no table to probe."""
    if encoding not in PROBED:
        return []
    enc = get_encoding(encoding)
    n_head = 2 if encoding in ("xl", "alibi") else 1
    dims: dict[str, int] = {**_DIMS, "n_head": n_head}
    if encoding == "xl":
        dims["d_model"] = 2
    candidates = {
        name: values
        for name, values in enc.option_values(dims).items()
        if name not in ("scale", "d_model")
    }
    combos = [
        dict(zip(candidates, values, strict=True))
        for values in itertools.product(*candidates.values())
    ]
    found = []
    sides = (0, 1) if encoding in ("shaw", "deberta") else (0,)
    for options in combos:
        for side in sides:
            found.append(_case(encoding, dims, options, side))
    if encoding == "alibi":
        for heads in _ALIBI_HEADS:
            short = {**dims, "n_head": heads, "qlen": 8, "mlen": 8}
            found.append(_case(encoding, short, {}, 0))
    return [
        (name, draw)
        for name, draw in found
        if _valid(draw) and (restrict is None or restrict.admits(draw))
    ]


def _case(
    encoding: str, dims: Mapping[str, int], options: Mapping[str, Any], side: int
) -> tuple[str, Draw]:
    shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
    name = f"{'key' if side else 'query'} side, n_head={dims['n_head']}" + (
        f", {shown}" if shown else ""
    )
    draw = Draw(
        encoding,
        dict(dims),
        {**options, "scale": 1.0},
        PROBED[encoding],
        {},
        "none",
        "dyadic",
        side,
    )
    return name, draw


def _valid(draw: Draw) -> bool:
    from relpos.spec import ArgumentError, validate

    try:
        validate(draw.encoding, probe_arguments(draw), check_dtypes=False)
    except ArgumentError:
        return False
    return True


def _row_axis(layout: tuple[Any, ...]) -> int:
    """The axis of a table's rows: the first that is not heads or head width."""
    return next(n for n, d in enumerate(layout) if d not in ("n_head", "d_head"))


def probe_arguments(draw: Draw) -> dict[str, Any]:
    """The probe's arguments: every float tensor zero but what the module docstring says."""
    enc = get_encoding(draw.encoding)
    args = draw.arguments("float64")
    for t in enc.tensors:
        if t.kind == "float" and args.get(t.name) is not None:
            args[t.name] = np.zeros_like(args[t.name])
    side = draw.seed % 2
    if draw.encoding == "xl":
        args["r_r_bias"][:] = 1.0
        for h in range(args["w_r"].shape[0]):
            args["w_r"][h, :, h % args["w_r"].shape[2]] = 1.0
        return args
    args["q" if side == 0 else "k"][:] = 1.0
    for t in enc.tensors:
        if t.name in enc.zero_tables and args.get(t.name) is not None:
            layout = t.layouts[draw.layouts.get(t.name, 0)]
            axis = _row_axis(layout)
            rows = np.arange(args[t.name].shape[axis], dtype=np.float64)
            shape = [1] * args[t.name].ndim
            shape[axis] = -1
            args[t.name] = np.broadcast_to(rows.reshape(shape), args[t.name].shape).copy()
    return args
