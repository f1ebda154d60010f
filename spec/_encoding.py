"""The abstract encoding: what a spec module declares, and the pieces the generic oracle uses.

A new encoding is one module in ``spec/encodings/`` defining one final subclass of
:class:`Encoding` and one line in ``spec/encodings/__init__.py``. It declares its arguments
(:mod:`relpos.spec._signature`), its SymPy formulas, its citation and conventions, and how its
logits and per-pair values take their operands (:meth:`Encoding.logit_operands`,
:meth:`Encoding.value_operands`): which row of which table each pair reads. The formulas are
then evaluated generically, exactly or in ball arithmetic. Masking, softmax, outputs,
gradients, magnitudes, golden vectors, rendering and the proof table are generic.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, final

import numpy as np
import sympy as sp

from relpos.spec import _conventions as cv
from relpos.spec._arith import Mode
from relpos.spec._pairs import PairFormula, keys
from relpos.spec._profiles import GENERIC_AXES, Axis, Profile
from relpos.spec._signature import Option, Problem, Tensor, validate_arguments

__all__ = ["Case", "Encoding", "Identity", "Proof", "Reference"]

_V_J = sp.MatrixSymbol("v_j", 1, cv.d_head)
_VALUE_OF_KEY = PairFormula(_V_J, (_V_J,), vector=True)


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
    index for tensors with several; ``mask`` is one of the mask kinds of :mod:`relpos.spec._cases`,
    ``positions`` one of its position kinds (``"default"``: no position ids).
    """

    name: str
    dims: Mapping[str, int]
    options: Mapping[str, Any] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    layouts: Mapping[str, int] = field(default_factory=dict)
    mask: str = "none"
    seed: int = 0
    positions: str = "default"


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
            check=self._check_all,
            check_dtypes=check_dtypes,
        )

    @final
    def _check_all(self, problem: Problem) -> None:
        cv.check_positions(problem)
        self.check(problem)

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
    def logit_operands(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> tuple[PairFormula, tuple[Any, ...]]:
        """The logit formula and its operands, in the formula's argument order: a
        :class:`~relpos.spec._pairs.Rows` (where each pair reads its row) for every per-pair
        symbol, a scalar of ``mode`` for a symbol that every pair shares (the scale).

        ``x`` holds each given float tensor as an object array in ``mode`` (and the other
        tensors as given); ``scale`` is a scalar of the same mode.
        """

    def value_operands(
        self, problem: Problem, x: Mapping[str, Any], mode: Mode
    ) -> tuple[PairFormula, tuple[Any, ...]]:
        """The value formula V_ij (o_i = sum_j alpha_ij V_ij) and its operands, as
        :meth:`logit_operands`. By default v_j itself (no relative term on the values)."""
        return _VALUE_OF_KEY, (keys(x["v"], problem.dims["qlen"], "v"),)

    def magnitude_operands(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> list[tuple[int, tuple[PairFormula, tuple[Any, ...]]]]:
        """The logits' magnitude (the abs modes) as a signed sum of formula evaluations: by
        default the logit formula itself on absolute values. An encoding whose operands on
        both sides of a product carry a rounding spread (RoPE's rotations) adds the spreads
        one side at a time, so that the magnitude stays first order in them."""
        return [(1, self.logit_operands(problem, x, scale, mode))]

    def phase_free_magnitude_operands(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> list[tuple[int, tuple[PairFormula, tuple[Any, ...]]]] | None:
        """The logits' magnitude without what rounding a phase adds (RoPE's angles p
        theta_t), as :meth:`magnitude_operands`; None for an encoding without one. The
        difference is the phase's part of the magnitude, which the tolerance model scales
        by the unit roundoff the phase is computed in."""
        return None

    @final
    def phase_magnitude(
        self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode
    ) -> np.ndarray | None:
        """The phase's part of the logits' magnitude in an abs mode (the magnitude less its
        phase-free form, >= 0), None without a phase."""
        plain = self.phase_free_magnitude_operands(problem, x, scale, mode)
        if plain is None:
            return None
        total = self._signed_sum(problem, self.magnitude_operands(problem, x, scale, mode))
        return np.asarray(total) - np.asarray(self._signed_sum(problem, plain))

    def _signed_sum(
        self, problem: Problem, parts: list[tuple[int, tuple[PairFormula, tuple[Any, ...]]]]
    ) -> Any:
        d = problem.dims
        pairs = (d["bsz"], d["n_head"], d["qlen"], d["klen"])
        total: Any = None
        for sign, (formula, operands) in parts:
            part = np.asarray(formula.on_pairs({"d_head": d["d_head"]}, pairs, *operands))
            total = part if total is None else total + sign * part
        return total

    @final
    def logits(self, problem: Problem, x: Mapping[str, Any], scale: Any, mode: Mode) -> np.ndarray:
        """Logits e[b, h, i, j] before masking, evaluated from the formula of
        :meth:`logit_operands` (object array; float64 in the float modes); in the abs modes
        the magnitude of :meth:`magnitude_operands`."""
        d = problem.dims
        pairs = (d["bsz"], d["n_head"], d["qlen"], d["klen"])
        if mode in ("abs", "abs_float"):
            return np.asarray(
                self._signed_sum(problem, self.magnitude_operands(problem, x, scale, mode))
            )
        formula, operands = self.logit_operands(problem, x, scale, mode)
        if mode == "ball":
            return formula.balls(pairs, *operands)
        return np.asarray(formula.on_pairs({"d_head": d["d_head"]}, pairs, *operands))

    @final
    def values(self, problem: Problem, x: Mapping[str, Any], mode: Mode) -> np.ndarray:
        """The value each pair contributes, V[b, h, i, j, :] of shape (bsz, n_head, qlen,
        klen, d_head), from the formula of :meth:`value_operands` (not in ball mode, where the
        oracle sums the values with the weights directly: :meth:`weighted_values`)."""
        formula, operands = self.value_operands(problem, x, mode)
        d = problem.dims
        pairs = (d["bsz"], d["n_head"], d["qlen"], d["klen"])
        entries = formula.on_pairs({"d_head": d["d_head"]}, pairs, *operands)
        return np.stack([np.broadcast_to(e, pairs) for e in entries], axis=-1)

    @final
    def weighted_values(
        self, problem: Problem, x: Mapping[str, Any], weights: np.ndarray
    ) -> np.ndarray:
        """o[b, h, i, :] = sum_j weights[b, h, i, j] V_ij in ball arithmetic."""
        formula, operands = self.value_operands(problem, x, "ball")
        d = problem.dims
        pairs = (d["bsz"], d["n_head"], d["qlen"], d["klen"])
        return formula.weighted_sums(pairs, weights, *operands)

    # -- what generic checks need to know ----------------------------------------------------

    #: Dimensions not fixed by q, k, v or the options, with the sizes checks may use.
    free_dims: ClassVar[Mapping[str, tuple[int, ...]]] = MappingProxyType({})
    #: The least size of a dimension in drawn problems (never in golden cases), where a
    #: smaller one leaves nothing of the encoding to check: RoPE's d_head 1 rotates no pair.
    draw_at_least: ClassVar[Mapping[str, int]] = MappingProxyType({})
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

    def narrow(
        self, name: str, dims: Mapping[str, int], chosen: Mapping[str, Any], candidates: list[Any]
    ) -> list[Any]:
        """The candidates of option ``name`` that go with the options drawn before it
        (``chosen``, in the order of :meth:`option_values`); by default all of them."""
        return candidates

    def option_kind(self, name: str, value: Any) -> Any:
        """The kind of option ``name``'s candidate ``value``: draws pick a kind first, each as
        often as another, then one of its candidates, so that a kind with many parameter
        sets is not drawn more often than one with few. By default every candidate is its own
        kind (its position among the candidates)."""
        return None

    def length_free(self, name: str, value: Any) -> bool:
        """Whether option ``name`` at ``value`` keeps the encoding a function of the
        positions' differences alone, so that calls of other lengths or shifted positions
        agree (translation, decoding in steps, packed rows); by default every value does."""
        return True

    def widen(
        self, args: Mapping[str, Any], extra: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        """``args`` with the encoding's range (clip, clamp) covering every distance of the
        problem with ``extra`` to spare; new table rows are drawn from ``rng``. Encodings
        without a range return ``args`` unchanged."""
        return dict(args)

    def regions(self, problem: Problem) -> frozenset[str]:
        """The regions of the encoding that this problem's pairs reach (a clip range's inside
        and both clipped sides, T5's exact and log buckets...), for coverage reports."""
        return frozenset()

    def table_index(self, problem: Problem) -> tuple[str, np.ndarray] | None:
        """The integer index each pair reads from the encoding's table (a clip row, a bucket,
        a clamped distance), named: (name, (B, qlen, klen) int64 with B in {1, bsz}); None
        for an encoding that reads no table by index. Reports plot errors against it."""
        return None

    def structural_mask(self, problem: Problem) -> np.ndarray | None:
        """A (B, qlen, klen) boolean mask the encoding itself imposes (True = may attend), B
        in {1, bsz}: a causal mask compares the positions, pos_j <= pos_i."""
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
            self.name,
            self.name,
            f"the specification: {self.title}",
            "this specification",
            positions=True,
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

    def variants(self) -> list[str]:
        """Lines describing the encoding's variants as shipped (formula, parameters, source),
        printed by ``relpos spec show``; none by default."""
        return []

    @abc.abstractmethod
    def own_cases(self) -> list[Case]:
        """Golden-vector cases covering every option of the encoding (default positions)."""

    #: Options under which the encoding imposes a causal mask (XLNet's attn_type "uni"),
    #: for the position-id golden case with repeated positions; empty when it has none.
    causal_options: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    @final
    def cases(self) -> list[Case]:
        """Every golden case: :meth:`own_cases`, then the position-id cases (the first case's
        options on two batch rows after memory: a large common offset, sorted random ids per
        row up to 2^17, and two packed sequences per row with repeated positions, under the
        causal mask where the encoding has one)."""
        own = self.own_cases()
        first = own[0]
        dims = {**first.dims, "bsz": 2, "mlen": 3}
        found = [
            dataclasses.replace(first, name="positions_offset", dims=dims, positions="offset"),
            dataclasses.replace(first, name="positions_per_row", dims=dims, positions="per_row"),
            dataclasses.replace(first, name="positions_packed", dims=dims, positions="packed"),
        ]
        if self.causal_options:
            found.append(
                dataclasses.replace(
                    first,
                    name="positions_packed_causal",
                    dims=dims,
                    options={**first.options, **self.causal_options},
                    positions="packed",
                )
            )
        return [*own, *found]

    #: Options of the long-position golden case (:meth:`large_cases`), chosen to reach the
    #: encoding's far regions: wide clips and clamps, log buckets, many heads.
    large_options: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    #: Dimensions of the long-position golden case beyond qlen and mlen.
    large_dims: ClassVar[Mapping[str, int]] = MappingProxyType({})

    @final
    def large_cases(self) -> list[Case]:
        """The long-position golden case (``relpos vectors export --large``, evaluated in
        balls): one head, 256 queries after 768 memory positions, so positions reach 1023,
        with the first case's tensors and :attr:`large_options` and :attr:`large_dims`."""
        first = self.cases()[0]
        dims = {**first.dims, "bsz": 1, "n_head": 1, "qlen": 256, "mlen": 768, **self.large_dims}
        options = {**first.options, **self.large_options}
        return [dataclasses.replace(first, name=f"large_{first.name}", dims=dims, options=options)]
