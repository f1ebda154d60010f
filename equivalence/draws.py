"""A drawn check input, reproducible from a few integers.

A :class:`Draw` names everything about one input (encoding, dimensions, options, which
optional tensors, layouts, the mask, the kind of values, a seed) and regenerates the numpy
arguments deterministically, rounded to the dtype under test. Its ``repr`` is valid Python, so
a failure's repro is a copy-pasteable snippet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relpos.equivalence.dtypes import representable
from relpos.spec import get_encoding
from relpos.spec._cases import build_arguments, make_mask

__all__ = ["MASK_KINDS", "VALUE_KINDS", "Draw"]

#: Mask kinds (spec golden kinds plus two more broadcast shapes).
MASK_KINDS = (
    "none",
    "causal",
    "padding",
    "random",
    "fully_masked_row",
    "broadcast",
    "random_2d",
    "keys",
)
#: dyadic: multiples of 1/8 in [-2, 2] (exact in every dtype); normal: standard normal;
#: large: normal times 40 (logits of order 1e3 to 1e4).
VALUE_KINDS = ("dyadic", "normal", "large")
_SCALE = {"dyadic": 1.0, "normal": 1.0, "large": 40.0}


@dataclass(frozen=True)
class Draw:
    """One check input. ``dims`` holds bsz, n_head, qlen, mlen, d_head and the encoding's free
    dimensions; ``options`` every option; ``include`` the optional tensors present;
    ``layouts`` a layout index per tensor with several."""

    encoding: str
    dims: Mapping[str, int]
    options: Mapping[str, Any]
    include: tuple[str, ...] = ()
    layouts: Mapping[str, int] = field(default_factory=dict)
    mask: str = "none"
    values: str = "normal"
    seed: int = 0

    @property
    def klen(self) -> int:
        return self.dims["qlen"] + self.dims["mlen"]

    def arguments(self, dtype: str = "float64") -> dict[str, Any]:
        """Every argument as numpy arrays (floats exactly representable in ``dtype``)."""
        rng = np.random.default_rng(self.seed)
        return build_arguments(
            get_encoding(self.encoding),
            self.dims,
            self.options,
            self.include,
            self.layouts,
            lambda dims: _mask(self.mask, dims, rng),
            lambda shape: representable(self._floats(rng, shape), dtype),
            rng,
        )

    def _floats(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        if self.values == "dyadic":
            return rng.integers(-16, 17, size=shape) / 8
        return rng.standard_normal(shape) * _SCALE[self.values]

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in (
                "encoding",
                "dims",
                "options",
                "include",
                "layouts",
                "mask",
                "values",
                "seed",
            )
        )
        return f"Draw({fields})"


def _mask(kind: str, dims: Mapping[str, int], rng: np.random.Generator) -> np.ndarray | None:
    bsz, n_head, qlen, klen = dims["bsz"], dims["n_head"], dims["qlen"], dims["klen"]
    if kind == "random_2d":
        return rng.random((qlen, klen)) < 0.7
    if kind == "keys":
        keys = rng.random(klen) < 0.7
        keys[rng.integers(klen)] = True
        return keys
    return make_mask(kind, bsz, n_head, qlen, klen, rng)
