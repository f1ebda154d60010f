"""Hypothesis strategies for check inputs: backend-neutral, drawing :class:`Draw` values.

Every strategy is derived from the spec's declarations (arguments, option candidates, optional
groups, free dimensions), so a new encoding is covered without edits here. Array contents come
from a drawn seed (fast for long sequences); dimensions, options, masks and value kinds are
drawn by Hypothesis and shrink towards the smallest shapes, the first option candidates, no
mask and dyadic values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import mul
from typing import Any

from hypothesis import reject
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from relpos.equivalence.draws import MASK_KINDS, VALUE_KINDS, Draw
from relpos.spec import ENCODINGS, get_encoding
from relpos.spec._cases import POSITION_KINDS
from relpos.spec._conventions import POSITION_TENSORS

__all__ = [
    "KLEN_MAX",
    "REACH",
    "SIZES",
    "Restriction",
    "dimensions",
    "draws",
    "mask_kinds",
    "position_kinds",
    "value_kinds",
]


@dataclass(frozen=True)
class Restriction:
    """What a checked library accepts, narrowing what is drawn: option candidates (a function
    of the dimensions and the spec's candidates), optional tensors always or never given,
    fixed table layouts, upper bounds on dimensions (``{"mlen": 0}``: no memory) and
    dimensions drawn as multiples of a number (``{"d_head": 2}``: even heads), and whether
    position ids may be given."""

    options: Mapping[str, Callable[[Mapping[str, int], list[Any]], list[Any]]] = field(
        default_factory=dict
    )
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    layouts: Mapping[str, int] = field(default_factory=dict)
    at_most: Mapping[str, int] = field(default_factory=dict)
    multiple_of: Mapping[str, int] = field(default_factory=dict)
    #: Whether the library takes position ids (q_pos, k_pos).
    positions: bool = True

    def admits(self, draw: Draw) -> bool:
        """Whether a fixed input (a golden case) is one the library accepts: within the
        bounds, the multiples, the tensors given or not, the layouts and the options."""
        d = draw.dims
        if any(d.get(name, 0) > bound for name, bound in self.at_most.items()):
            return False
        if any(d.get(name, 0) % step for name, step in self.multiple_of.items()):
            return False
        if not set(self.include) <= set(draw.include) or set(self.exclude) & set(draw.include):
            return False
        if any(draw.layouts.get(name, 0) != index for name, index in self.layouts.items()):
            return False
        if draw.positions != "default" and not self.positions:
            return False
        defaults = {o.name: o.default for o in get_encoding(draw.encoding).options}
        for name, allowed in self.options.items():
            value = draw.options.get(name, defaults.get(name))
            if value not in allowed(d, [value]):
                return False
        return True


#: Ranges (inclusive) of each dimension per size class.
SIZES: dict[str, dict[str, tuple[int, int]]] = {
    # small enough for the exact oracle
    "oracle": {"bsz": (1, 3), "n_head": (1, 4), "qlen": (1, 12), "mlen": (0, 6), "d_head": (1, 8)},
    # small enough for exact gradients (dual numbers)
    "tiny": {"bsz": (1, 2), "n_head": (1, 2), "qlen": (1, 4), "mlen": (0, 3), "d_head": (1, 4)},
    # long sequences, for checks between backends
    "cross": {
        "bsz": (1, 2),
        "n_head": (1, 4),
        "qlen": (1, 128),
        "mlen": (0, 16),
        "d_head": (1, 16),
    },
}


#: Where one axis of a draw may grow, per size class: the other axes stay in the class's
#: ranges (with bsz 1, and n_head <= 2 unless the heads grow), so an example costs about what
#: one long sequence, one long memory, many heads or wide heads cost, never all at once.
#: Memory is bounded so that klen stays <= KLEN_MAX.
REACH: dict[str, dict[str, tuple[int, int]]] = {
    "oracle": {"qlen": (13, 512), "mlen": (7, 1012), "n_head": (5, 16), "d_head": (9, 128)},
    "cross": {"qlen": (129, 512), "mlen": (17, 1012), "n_head": (5, 16), "d_head": (17, 128)},
}
KLEN_MAX = 1024

#: How often a draw grows an axis: the axis is drawn from (None,) * _SMALL_WEIGHT + the
#: axes, so most draws stay small and every draw shrinks towards none grown.
_SMALL_WEIGHT = 3


def _check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise InvalidArgument(
            f"encoding={encoding!r} must be one of {', '.join(map(repr, ENCODINGS))}"
        )


def dimensions(
    encoding: str,
    size: str = "oracle",
    *,
    at_least: Mapping[str, int] | None = None,
    at_most: Mapping[str, int] | None = None,
    multiple_of: Mapping[str, int] | None = None,
) -> st.SearchStrategy[dict[str, int]]:
    """bsz, n_head, qlen, mlen, d_head in the ranges of ``size`` (raised to ``at_least``,
    lowered to ``at_most``, multiples of ``multiple_of[name]`` where given) and the encoding's
    free dimensions; shrinks towards the smallest."""
    _check_encoding(encoding)
    if size not in SIZES:
        raise InvalidArgument(f"size={size!r} must be one of {', '.join(map(repr, SIZES))}")
    floors = dict(at_least or {})
    ceilings = dict(at_most or {})
    steps = dict(multiple_of or {})
    for which, names in (("at_least", floors), ("at_most", ceilings), ("multiple_of", steps)):
        unknown = set(names) - set(SIZES[size])
        if unknown:
            raise InvalidArgument(f"{which} names unknown dimensions {sorted(unknown)}")
    bad = {name: m for name, m in steps.items() if not (isinstance(m, int) and m >= 1)}
    if bad:
        raise InvalidArgument(f"multiple_of must map dimensions to integers >= 1, got {bad}")
    ranges = {}
    for name, (lo, hi) in SIZES[size].items():
        lo, hi = max(lo, floors.get(name, lo)), min(hi, ceilings.get(name, hi))
        if lo > hi:
            raise InvalidArgument(
                f"at_least[{name!r}]={lo} exceeds the {size} maximum {hi}"
                if name not in ceilings
                else f"{name}: at least {lo} exceeds at most {hi} ({size})"
            )
        step = steps.get(name, 1)
        if -(-lo // step) > hi // step:
            raise InvalidArgument(f"{name}: no multiple of {step} in [{lo}, {hi}] ({size})")
        ranges[name] = _multiples(lo, hi, step)
    for name, sizes in get_encoding(encoding).free_dims.items():
        ranges[name] = st.sampled_from(sizes)
    small = st.fixed_dictionaries(ranges)
    growth = {
        name: (max(lo, floors.get(name, lo)), min(hi, ceilings.get(name, hi)))
        for name, (lo, hi) in REACH.get(size, {}).items()
    }
    growth = {
        name: (lo, hi)
        for name, (lo, hi) in growth.items()
        if -(-lo // steps.get(name, 1)) <= hi // steps.get(name, 1)
    }
    if not growth:
        return small
    return _grown(small, growth, steps, floors)


def _multiples(lo: int, hi: int, step: int) -> st.SearchStrategy[int]:
    return st.integers(-(-lo // step), hi // step).map(partial(mul, step))


@st.composite
def _grown(
    draw: Any,
    small: st.SearchStrategy[dict[str, int]],
    growth: Mapping[str, tuple[int, int]],
    steps: Mapping[str, int],
    floors: Mapping[str, int],
) -> dict[str, int]:
    """A small draw, or one with a single axis grown (see :data:`REACH`)."""
    dims = draw(small)
    axis = draw(st.sampled_from((None,) * _SMALL_WEIGHT + tuple(growth)))
    if axis is None:
        return dims
    lo, hi = growth[axis]
    if axis == "mlen":
        hi = min(hi, KLEN_MAX - dims["qlen"])
    elif axis == "qlen":
        hi = min(hi, KLEN_MAX - dims["mlen"])
    if -(-lo // steps.get(axis, 1)) > hi // steps.get(axis, 1):
        return dims
    dims[axis] = draw(_multiples(lo, hi, steps.get(axis, 1)))
    dims["bsz"] = max(1, floors.get("bsz", 1))
    if axis != "n_head":
        dims["n_head"] = max(min(dims["n_head"], 2), floors.get("n_head", 1))
    return dims


def _kinds(what: str, kinds: Sequence[str], allowed: Sequence[str]) -> st.SearchStrategy[str]:
    """``kinds`` drawn in their order (shrinking towards the first), each one of ``allowed``."""
    bad = [k for k in kinds if k not in allowed]
    if bad or not kinds:
        raise InvalidArgument(f"{what} kinds must be a non-empty subset of {allowed}, got {kinds}")
    return st.sampled_from(tuple(kinds))


def mask_kinds(kinds: Sequence[str] = MASK_KINDS) -> st.SearchStrategy[str]:
    """Mask kinds; shrinks towards the first (no mask)."""
    return _kinds("mask", kinds, MASK_KINDS)


def value_kinds(kinds: Sequence[str] = VALUE_KINDS) -> st.SearchStrategy[str]:
    """Kinds of float values; shrinks towards dyadic."""
    return _kinds("value", kinds, VALUE_KINDS)


def position_kinds(kinds: Sequence[str] = POSITION_KINDS) -> st.SearchStrategy[str]:
    """Kinds of position ids; shrinks towards the first."""
    return _kinds("position", kinds, POSITION_KINDS)


def _by_kind(enc: Any, name: str, candidates: Sequence[Any]) -> st.SearchStrategy[Any]:
    """One of ``candidates``: a kind first (``Encoding.option_kind``), each as often as
    another, then one of its candidates; shrinks towards the first candidate."""
    kinds: dict[Any, list[Any]] = {}
    for index, candidate in enumerate(candidates):
        kind = enc.option_kind(name, candidate)
        kinds.setdefault(index if kind is None else ("kind", kind), []).append(candidate)
    if len(kinds) == len(candidates):
        return st.sampled_from(candidates)
    return st.sampled_from(list(kinds.values())).flatmap(st.sampled_from)


@st.composite
def draws(
    draw: Any,
    encoding: str,
    size: str = "oracle",
    *,
    masks: Sequence[str] = MASK_KINDS,
    values: Sequence[str] = VALUE_KINDS,
    at_least: Mapping[str, int] | None = None,
    options: Mapping[str, Any] | None = None,
    restrict: Restriction | None = None,
    positions: Sequence[str] = ("default",),
    length_free: bool = False,
) -> Draw:
    """Complete check inputs for ``encoding``: dimensions, every option (from the spec's
    candidates, or fixed by ``options``), optional tensor groups present or not, table
    layouts, a mask kind, a value kind, a seed for the array contents and a kind of position
    ids (from ``positions``, shrinking towards the first; "default" where the library takes
    none); ``restrict`` narrows all of these to what a checked library accepts, and
    ``length_free`` the options to those whose results depend on the positions' differences
    alone (``Encoding.length_free``)."""
    _check_encoding(encoding)
    enc = get_encoding(encoding)
    r = restrict or Restriction()
    floors = dict(at_least or {})
    for name, least in enc.draw_at_least.items():
        if least <= r.at_most.get(name, least):
            floors[name] = max(floors.get(name, least), least)
    dims = draw(
        dimensions(encoding, size, at_least=floors, at_most=r.at_most, multiple_of=r.multiple_of)
    )
    fixed = dict(options or {})
    chosen: dict[str, Any] = {}
    for name, candidates in enc.option_values(dims).items():
        if name in r.options:
            candidates = r.options[name](dims, candidates)
            if not candidates:  # nothing the library accepts at these dimensions
                reject()
        candidates = enc.narrow(name, dims, chosen, candidates)
        if length_free:
            candidates = [c for c in candidates if enc.length_free(name, c)]
        if name in fixed:
            chosen[name] = fixed[name]
            continue
        if not candidates:  # nothing the library accepts at these dimensions
            reject()
        chosen[name] = draw(_by_kind(enc, name, candidates))
    groups = enc.optional_groups or tuple(
        (t.name,)
        for t in enc.tensors
        if not t.required and t.name != "mask" and t.name not in POSITION_TENSORS
    )
    include: tuple[str, ...] = ()
    for group in groups:
        if set(group) & set(r.exclude):
            continue
        if set(group) & set(r.include) or draw(st.booleans()):
            include += group
    layouts = {
        t.name: r.layouts[t.name]
        if t.name in r.layouts
        else draw(st.integers(0, len(t.layouts) - 1))
        for t in enc.tensors
        if len(t.layouts) > 1 and not t.broadcast
    }
    return Draw(
        encoding,
        dims,
        chosen,
        include,
        layouts,
        draw(mask_kinds(masks)),
        draw(value_kinds(values)),
        draw(st.integers(0, 2**32 - 1)),
        draw(position_kinds(positions if r.positions else ("default",))),
    )
