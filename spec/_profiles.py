"""Convention profiles: how a real library's conventions map onto the spec.

A library computes an encoding with its own conventions: which distance it takes (key minus
query or query minus key), how its table rows are ordered, how it clips, which terms it has,
how it lays out a sinusoid, what its mask means and what a query with no visible key returns.
Each such choice is a value on an :class:`Axis`. An axis value knows two maps between the
spec's arguments and the library's:

``to_library(args)``
    spec arguments -> arguments in the library's convention that make the library compute the
    same attention (used to call a target checked under a profile);
``to_spec(args)``
    arguments as a library with this convention reads them -> the spec arguments of the same
    computation (used to interpret a target's results, and for diagnosis). It raises
    :class:`NotApplicable` when the spec cannot state that computation (a library that fails
    past its table, given distances beyond it).

Tensors are only permuted, reversed, negated, extended, zeroed or rescaled by these maps;
where a map is a signed permutation (``Value.permutes``) the gradient with respect to a spec
tensor is ``to_spec`` applied to the gradient with respect to the library's tensor.

A :class:`Profile` names one value per axis (unnamed axes take the spec's value, the first),
plus restrictions on the inputs the library accepts (fixed options, tables shared by heads,
no memory). Encodings declare their own axes and profiles (``Encoding.axes``,
``Encoding.profiles``); the two generic axes, mask polarity and fully masked rows, are here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "MASK",
    "MASKED_ROWS",
    "Axis",
    "NotApplicable",
    "Profile",
    "Value",
    "fixed",
    "identity",
]

Args = dict[str, Any]
Candidates = Callable[[Mapping[str, int], list[Any]], list[Any]]


class NotApplicable(Exception):
    """The spec cannot state what a library with this convention computes on these inputs."""


def identity(args: Mapping[str, Any]) -> Args:
    return dict(args)


@dataclass(frozen=True)
class Value:
    """One convention on an axis.

    ``options`` restricts the inputs drawn for a profile with this value (option name ->
    function of the dimensions and the spec's candidates, returning the allowed candidates);
    ``include`` and ``exclude`` name optional tensors always or never given. ``changes``
    names the float tensors the maps alter; ``permutes`` says the maps only permute and
    negate their entries (an orthogonal map: the spec's gradient is ``to_spec`` of the
    library's), otherwise those tensors' gradients are not compared.
    """

    name: str
    doc: str
    to_spec: Callable[[Mapping[str, Any]], Args] = identity
    to_library: Callable[[Mapping[str, Any]], Args] | None = None
    options: Mapping[str, Candidates] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    permutes: bool = False

    def library(self, args: Mapping[str, Any]) -> Args:
        return (self.to_library or self.to_spec)(args)


@dataclass(frozen=True)
class Axis:
    """A convention that libraries choose differently; ``values[0]`` is the spec's."""

    name: str
    doc: str
    values: tuple[Value, ...]

    def value(self, name: str) -> Value:
        for v in self.values:
            if v.name == name:
                return v
        known = ", ".join(v.name for v in self.values)
        raise ValueError(f"axis {self.name!r} has no value {name!r}; it has {known}")

    @property
    def spec_value(self) -> str:
        return self.values[0].name


def fixed(*allowed: Any) -> Candidates:
    """An option restriction: only these values (in this order)."""
    return lambda dims, candidates: list(allowed)


def _invert_mask(args: Mapping[str, Any]) -> Args:
    out = dict(args)
    if out.get("mask") is not None:
        out["mask"] = ~np.asarray(out["mask"], dtype=bool)
    return out


#: Mask polarity: what True in the mask argument means.
MASK = Axis(
    "mask",
    "what True in the boolean mask means (adapters turn it into a library's additive or "
    "float mask)",
    (
        Value("keep", "True = may attend (Hugging Face attention_mask, FlexAttention)"),
        Value("hide", "True = masked (Transformer-XL, XLNet's float masks)", _invert_mask),
    ),
)

#: What a query with no visible key returns. The maps are identities; the checker compares
#: such rows with the value's expectation instead of the spec's zeros.
MASKED_ROWS = Axis(
    "masked_rows",
    "what a query with no visible key gets",
    (
        Value("zeros", "probabilities 0 and output 0 (the spec)"),
        Value(
            "uniform",
            "probabilities 1/klen over every key, output the mean of the pair values "
            "(a large negative constant swamps every score)",
        ),
        Value("nan", "NaN (every score is -inf before the softmax)"),
    ),
)

GENERIC_AXES: tuple[Axis, ...] = (MASK, MASKED_ROWS)


@dataclass(frozen=True)
class Profile:
    """A library's conventions for one encoding.

    ``conventions`` maps axis names to value names (axes not named take the spec's value);
    ``options``, ``layouts``, ``include``, ``exclude``, ``memory``, ``positions`` and
    ``multiple_of``
    restrict the inputs the library accepts (on top of what the chosen values restrict);
    ``source`` says where the conventions were read.
    """

    name: str
    encoding: str
    title: str
    source: str
    conventions: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Candidates] = field(default_factory=dict)
    layouts: Mapping[str, int] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    memory: bool = True
    #: Whether the library takes position ids (q_pos, k_pos): drawn only when it does.
    positions: bool = False
    #: Dimensions the library needs to be multiples of a number (``{"d_head": 2}``).
    multiple_of: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: Changes a user made to the named profile for one run (``allow clamp_len=0``), shown
    #: wherever the profile is named.
    adjustments: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The name, with the run's adjustments if any: ``xlnet (allow clamp_len=0)``."""
        return f"{self.name} ({'; '.join(self.adjustments)})" if self.adjustments else self.name

    @property
    def all_notes(self) -> list[str]:
        """The notes, and what the profile's restrictions say: no memory, required multiples."""
        found = list(self.notes)
        if not self.memory:
            found.append("no memory positions (qlen = klen)")
        found += [f"{name} a multiple of {step}" for name, step in self.multiple_of.items()]
        return found

    def __post_init__(self) -> None:
        object.__setattr__(self, "conventions", MappingProxyType(dict(self.conventions)))
        object.__setattr__(self, "multiple_of", MappingProxyType(dict(self.multiple_of)))
