"""The abstract encoding: what a spec module declares, and the pieces the generic oracle uses.

A new encoding is one module in ``spec/encodings/`` defining one final subclass of
:class:`Encoding` and one line in ``spec/encodings/__init__.py``. It declares its arguments
(:mod:`relpos.spec._signature`), its SymPy formulas, its citation and conventions, and how its
logits and per-pair values are evaluated from those formulas (:meth:`Encoding.logits`,
:meth:`Encoding.values`). Masking, softmax, outputs, gradients, magnitudes, golden vectors,
rendering and the proof table are generic.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from relpos.spec._arith import Mode
from relpos.spec._profiles import GENERIC_AXES, Axis, Profile
from relpos.spec._signature import Option, Problem, Tensor, validate_arguments

__all__ = ["Case", "Encoding", "Identity", "Proof", "Reference"]


@dataclass(frozen=True)
class Reference:
    """A publication, for the citation and CITATION.cff."""

    authors: str
    title: str
    year: int
    arxiv: str

    def __str__(self) -> str:
        return f"{self.authors} ({self.year}). {self.title}. arXiv:{self.arxiv}"


@dataclass(frozen=True)
class Proof:
    """The outcome of one identity: ``proved`` is True only when the check showed it exactly."""

    proved: bool
    method: str
    detail: str
    seconds: float = 0.0


@dataclass(frozen=True)
class Identity:
    """A statement about the spec and the function that proves it.

    ``check`` returns ``(proved, method, detail)``: ``method`` is "symbolic" (a difference that
    SymPy simplifies to exactly 0) or "exhaustive" (an exact integer identity checked for every
    size up to a stated bound).
    """

    name: str
    statement: str
    check: Callable[[], tuple[bool, str, str]]

    def prove(self) -> Proof:
        start = time.perf_counter()
        try:
            proved, method, detail = self.check()
        except Exception as exc:  # a crash is a failed proof, reported, never hidden
            proved, method, detail = False, "error", f"{type(exc).__name__}: {exc}"
        return Proof(proved, method, detail, time.perf_counter() - start)


@dataclass(frozen=True)
class Case:
    """A golden-vector case: dimensions, options and which optional inputs and layouts to use.

    ``dims`` holds bsz, n_head, qlen, mlen, d_head (and any dimension the encoding's options do
    not determine); ``include`` lists the optional tensors present; ``layouts`` picks a layout
    index for tensors with several; ``mask`` is one of the mask kinds of :mod:`relpos.spec._cases`.
    """

    name: str
    dims: Mapping[str, int]
    options: Mapping[str, Any] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    layouts: Mapping[str, int] = field(default_factory=dict)
    mask: str = "none"
    seed: int = 0


class Encoding(abc.ABC):
    """A relative position encoding, as a specification. Subclasses are final."""

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    references: ClassVar[tuple[Reference, ...]]
    tensors: ClassVar[tuple[Tensor, ...]]
    options: ClassVar[tuple[Option, ...]]
    glossary: ClassVar[tuple[tuple[str, str], ...]]
    conventions: ClassVar[tuple[str, ...]]
    differences: ClassVar[tuple[str, ...]]

    # -- arguments --------------------------------------------------------------------------

    def derived_dims(self, options: Mapping[str, Any]) -> dict[str, int]:
        """Dimensions fixed by option values (a table's row count from a clip range)."""
        return {}

    def dim_note(self, dim: str, options: Mapping[str, Any]) -> str | None:
        """How a derived dimension follows from the options, for error messages."""
        return None

    def check(self, problem: Problem) -> None:  # noqa: B027 - optional hook
        """Cross-argument checks beyond shapes; raise ArgumentError."""

    def validate(self, args: Mapping[str, Any], *, check_dtypes: bool = True) -> Problem:
        return validate_arguments(
            self.name,
            self.tensors,
            self.options,
            args,
            derived_dims=self.derived_dims,
            dim_note=self.dim_note,
            check=self.check,
            check_dtypes=check_dtypes,
        )

    @property
    def float_inputs(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tensors if t.kind == "float")

    # -- the formulas -----------------------------------------------------------------------

    @abc.abstractmethod
    def formulas(self) -> dict[str, sp.Basic]:
        """Named SymPy equations, in reading order, as printed by ``relpos spec show``."""

    @abc.abstractmethod
    def default_scale(self, problem: Problem) -> sp.Expr:
        """The scale used when ``scale`` is None, as an exact SymPy number. It may depend on
        more than d_head: DeBERTa's is 1/sqrt(d_head (1 + the position terms given))."""

    @abc.abstractmethod
    def logits(self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode) -> np.ndarray:
        """Logits e[b, h, i, j] (object array) before masking, evaluated from the formulas.

        ``x`` holds each given float tensor as an object array in ``mode`` (and the other
        tensors as given); ``scale`` is a scalar of the same mode.
        """

    def values(self, problem: Problem, x: Mapping[str, Any], mode: Mode) -> np.ndarray:
        """The value each pair contributes, V[b, h, i, j, :], broadcastable to
        (bsz, n_head, qlen, klen, d_head); o_i = sum_j alpha_ij V_ij. By default v_j itself
        (no relative term on the values); Shaw overrides it."""
        return x["v"][:, :, None, :, :]

    # -- what generic checks need to know ----------------------------------------------------

    #: Dimensions not fixed by q, k, v or the options, with the sizes checks may use.
    free_dims: ClassVar[Mapping[str, tuple[int, ...]]] = MappingProxyType({})
    #: Optional tensors that must be given together (all or none).
    optional_groups: ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: Metamorphic properties that hold for this encoding (names from
    #: ``relpos.equivalence.properties``): "translation", "masked_keys", "batch", "memory_rows",
    #: "zero_tables", "wide_range".
    metamorphic: ClassVar[tuple[str, ...]] = ("translation", "masked_keys", "batch", "memory_rows")
    #: Tensors that, all zero, reduce the encoding to plain scaled dot-product attention.
    zero_tables: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def option_values(self, dims: Mapping[str, int]) -> dict[str, list[Any]]:
        """Candidate values of every option for a problem of these dimensions, simplest
        first (checks sample from them and shrink towards the first)."""

    def widen(
        self, args: Mapping[str, Any], extra: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        """``args`` with the encoding's range (clip, clamp) covering every distance of the
        problem with ``extra`` to spare; new table rows are drawn from ``rng``. Encodings
        without a range return ``args`` unchanged."""
        return dict(args)

    def structural_mask(self, problem: Problem) -> np.ndarray | None:
        """A (qlen, klen) boolean mask the encoding itself imposes (True = may attend)."""
        return None

    # -- library conventions ----------------------------------------------------------------

    #: Conventions libraries choose differently for this encoding (spec._profiles), in the
    #: order their ``to_spec`` maps apply; mask polarity and fully masked rows are generic.
    axes: ClassVar[tuple[Axis, ...]] = ()
    #: Named profiles of known libraries (the spec's own is implicit, named like the encoding).
    profiles: ClassVar[tuple[Profile, ...]] = ()

    def all_axes(self) -> tuple[Axis, ...]:
        return (*self.axes, *GENERIC_AXES)

    def all_profiles(self) -> tuple[Profile, ...]:
        own = Profile(
            self.name, self.name, f"the specification: {self.title}", "this specification"
        )
        return (own, *self.profiles)

    def profile(self, name: str) -> Profile:
        """The profile called ``name`` (the encoding's own name is the spec's profile)."""
        for p in self.all_profiles():
            if p.name == name:
                return p
        from relpos.spec._signature import ArgumentError

        known = ", ".join(repr(p.name) for p in self.all_profiles())
        raise ArgumentError("profile", repr(name), f"must be one of {known} for {self.name}")

    # -- checks and cases -------------------------------------------------------------------

    @abc.abstractmethod
    def identities(self) -> list[Identity]:
        """The identities ``relpos spec prove`` proves."""

    @abc.abstractmethod
    def cases(self) -> list[Case]:
        """Golden-vector cases covering every option of the encoding."""
