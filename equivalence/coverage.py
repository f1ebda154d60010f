"""What a run's draws reached: sizes, positions, heads, option values and the encoding's
regions (a clip's inside and clipped sides, T5's exact, log and far buckets...).

A property that never reaches the inputs where a bug shows gives false certainty; the report
says, per result and for the whole run, how far the checked inputs went.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relpos.equivalence.draws import Draw

__all__ = ["Coverage", "summary"]


@dataclass
class Coverage:
    """Accumulates the draws one result checked."""

    examples: int = 0
    qlen: int = 0
    klen: int = 0
    n_head: set[int] = field(default_factory=set)
    d_head: int = 0
    options: dict[str, set[str]] = field(default_factory=dict)
    regions: set[str] = field(default_factory=set)
    #: The largest absolute position reached: a position id, or klen - 1 (key j at j).
    position: int = 0

    def add(self, draw: Draw) -> None:
        from relpos.spec import get_encoding

        d = draw.dims
        self.examples += 1
        self.qlen = max(self.qlen, d["qlen"])
        self.klen = max(self.klen, draw.klen)
        self.n_head.add(d["n_head"])
        self.d_head = max(self.d_head, d["d_head"])
        for name, value in draw.options.items():
            self.options.setdefault(name, set()).add(repr(value))
        enc = get_encoding(draw.encoding)
        args = draw.arguments("float64")
        problem = enc.validate(args, check_dtypes=False)
        self.regions |= enc.regions(problem)
        ids = [int(np.max(args[n])) for n in ("q_pos", "k_pos") if args.get(n) is not None]
        self.position = max(self.position, *ids, draw.klen - 1)

    def merge(self, other: Coverage) -> Coverage:
        merged = Coverage(
            self.examples + other.examples,
            max(self.qlen, other.qlen),
            max(self.klen, other.klen),
            self.n_head | other.n_head,
            max(self.d_head, other.d_head),
            {k: set(v) for k, v in self.options.items()},
            self.regions | other.regions,
            max(self.position, other.position),
        )
        for name, values in other.options.items():
            merged.options.setdefault(name, set()).update(values)
        return merged

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Coverage:
        """The coverage :meth:`to_json` wrote."""
        return cls(
            int(data.get("examples", 0)),
            int(data.get("qlen_max", 0)),
            int(data.get("klen_max", 0)),
            set(data.get("n_head", ())),
            int(data.get("d_head_max", 0)),
            {name: set(values) for name, values in data.get("options", {}).items()},
            set(data.get("regions", ())),
            int(data.get("position_max", 0)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "qlen_max": self.qlen,
            "klen_max": self.klen,
            "position_max": self.position,
            "n_head": sorted(self.n_head),
            "d_head_max": self.d_head,
            "options": {name: sorted(values) for name, values in sorted(self.options.items())},
            "regions": sorted(self.regions),
        }


def summary(per_encoding: Mapping[str, Coverage] | Iterable[tuple[str, Coverage]]) -> str:
    """One line of what the run covered: the largest sizes and positions over every result,
    the head counts, and the regions each encoding reached."""
    items = list(per_encoding.items() if isinstance(per_encoding, Mapping) else per_encoding)
    if not items:
        return "coverage: no example ran"
    total = Coverage()
    for _, c in items:
        total = total.merge(c)
    heads = sorted(total.n_head)
    head_text = f"{heads[0]}-{heads[-1]}" if heads else "-"
    regions = "; ".join(f"{name}: {', '.join(sorted(c.regions))}" for name, c in items if c.regions)
    return (
        f"coverage: {total.examples} examples; qlen <= {total.qlen}, klen <= {total.klen}, "
        f"positions <= {total.position}, n_head {head_text} ({len(heads)} distinct), "
        f"d_head <= {total.d_head}" + (f"; regions {regions}" if regions else "")
    )
