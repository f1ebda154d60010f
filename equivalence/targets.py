"""Checking code this project did not write: targets, adapters, profiles and diagnosis.

A *target* is a function computing one encoding's attention. It is called with the canonical
inputs (the spec's arguments, as the bundled implementations take them)::

    target(q, k, v, *, <every other spec argument by name>) -> out

or, when its signature names ``with_weights``, with ``with_weights=True`` and returning
``(out, probs, scores)``. Tensors are the backend's (torch tensors or JAX arrays) in the dtype
under test; q is (bsz, n_head, qlen, d_head), k and v (bsz, n_head, klen, d_head), and out
must be (bsz, n_head, qlen, d_head) in q's dtype. Before the call, the arguments are put into
the conventions of the chosen *profile* (:mod:`relpos.spec._profiles`): a table reversed for a
library that indexes by i - j, a mask inverted for one where True means masked, and so on.

An *adapter* maps that call onto a function with another signature:
``adapter(target, q, k, v, **arguments) -> out`` (or a triple, with ``with_weights``).

An exception inside the target is a finding, reported with the smallest inputs that raise it;
a result of the wrong type, shape or dtype, or fully masked rows that break the profile's
convention, are findings too. When a target fails, :func:`diagnose` tries every combination
of the encoding's conventions on a few inputs and says which one the target satisfies.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
from hypothesis import Phase, given, settings

from relpos.equivalence import tolerance
from relpos.equivalence.adjustments import adjust
from relpos.equivalence.backends import Outputs, backend
from relpos.equivalence.compare import compare
from relpos.equivalence.draws import Draw
from relpos.equivalence.isolation import TargetDied, pool
from relpos.equivalence.properties import PROPERTIES, Finding
from relpos.equivalence.reference import expected
from relpos.equivalence.runner import FAILED, Result
from relpos.equivalence.strategies import Restriction, draws
from relpos.impls import BACKENDS, Implementation
from relpos.spec import ArgumentError, Encoding, get_encoding, pair_values
from relpos.spec._oracle import full_mask
from relpos.spec._profiles import Profile, Value

__all__ = [
    "TARGET_PROPERTIES",
    "Diagnosis",
    "Target",
    "check_implementation",
    "check_target",
    "conventions",
    "diagnose",
    "failure_report",
    "load_callable",
    "make_target",
    "reproduce_target",
    "to_library",
    "to_spec",
]

_POSITIONAL = ("q", "k", "v")


def load_callable(path: str, argument: str = "target") -> Callable[..., Any]:
    """The object ``package.module:attribute`` names (dots after the colon walk attributes)."""
    module_name, colon, attribute = path.partition(":")
    if not colon or not module_name or not attribute:
        raise ArgumentError(argument, repr(path), "must read 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ArgumentError(
            argument, repr(path), f"must name an importable module ({type(exc).__name__}: {exc})"
        ) from exc
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ArgumentError(
                argument, repr(path), f"must name an attribute of {module_name} (no {part!r})"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ArgumentError(argument, repr(path), f"must be callable, got {type(obj).__name__}")
    return obj


def _label(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _infer_backend(*objects: Any) -> str:
    """torch or jax, from the modules the target and adapter come from (torch if unsure)."""
    found = set()
    for obj in objects:
        module = sys.modules.get(getattr(obj, "__module__", "") or "")
        names = {getattr(v, "__name__", "") for v in vars(module).values()} if module else set()
        found |= {b for b in BACKENDS if any(n == b or n.startswith(b + ".") for n in names)}
    return found.pop() if len(found) == 1 else "torch"


# -- conventions -------------------------------------------------------------------------


def conventions(enc: Encoding, profile: Profile) -> dict[str, str]:
    """Every axis's value under ``profile`` (the spec's value where the profile names none)."""
    axes = {a.name: a for a in enc.all_axes()}
    unknown = set(profile.conventions) - set(axes)
    if unknown:
        raise ValueError(f"profile {profile.name} names unknown axes {sorted(unknown)}")
    for name, value in profile.conventions.items():
        axes[name].value(value)
    return {a.name: profile.conventions.get(a.name, a.spec_value) for a in enc.all_axes()}


def _chain(enc: Encoding, chosen: Mapping[str, str]) -> list[Value]:
    return [a.value(chosen[a.name]) for a in enc.all_axes()]


def to_library(chain: Sequence[Value], args: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(args)
    for value in reversed(chain):
        out = value.library(out)
    return out


def to_spec(chain: Sequence[Value], args: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(args)
    for value in chain:
        out = value.to_spec(out)
    return out


def restriction(enc: Encoding, profile: Profile) -> Restriction:
    chain = _chain(enc, conventions(enc, profile))
    options: dict[str, Any] = {}
    for source in [*(v.options for v in chain), profile.options]:
        for name, narrow in source.items():
            before = options.get(name)
            options[name] = (
                narrow
                if before is None
                else (lambda dims, c, a=before, b=narrow: b(dims, a(dims, c)))
            )
    return Restriction(
        options=options,
        include=tuple(n for v in chain for n in v.include) + profile.include,
        exclude=tuple(n for v in chain for n in v.exclude) + profile.exclude,
        layouts=dict(profile.layouts),
        at_most={} if profile.memory else {"mlen": 0},
        multiple_of=dict(profile.multiple_of),
        positions=profile.positions,
    )


# -- the target ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Target(Implementation):
    """A third-party function checked under a profile; runs like a registered implementation
    in every property (``variant`` is its label)."""

    fn: Callable[..., Any] = field(default=lambda: None, repr=False)
    adapter: Callable[..., Any] | None = field(default=None, repr=False)
    profile: Profile = field(default=None, repr=False)  # type: ignore[assignment]
    target_path: str = ""
    adapter_path: str = ""
    #: Whether calls run in a worker process (the target and adapter import by their paths).
    isolated: bool = False

    @property
    def spec(self) -> Encoding:
        return get_encoding(self.encoding)

    # Derived once per target (a frozen dataclass: the profile never changes), not per example.
    @cached_property
    def conventions(self) -> dict[str, str]:
        return conventions(self.spec, self.profile)

    @cached_property
    def chain(self) -> list[Value]:
        return _chain(self.spec, self.conventions)

    @property
    def masked_rows(self) -> str:
        return self.conventions["masked_rows"]

    @property
    def memory(self) -> bool:
        return self.profile.memory

    @property
    def stateful(self) -> bool:
        """Whether the adapter keeps the library's modules between calls
        (:func:`relpos.equivalence.adapters.stateful`)."""
        from relpos.equivalence.adapters import is_stateful

        return is_stateful(self.adapter)

    @cached_property
    def restriction(self) -> Restriction:
        return restriction(self.spec, self.profile)

    def load(self) -> Callable[..., Any]:
        return self.invoke

    # -- calling ------------------------------------------------------------------------

    def invoke(self, q: Any, k: Any, v: Any, **arguments: Any) -> tuple[Any, Any, Any]:
        """Call the target (through the adapter) on library-form backend tensors; return
        (out, probs, scores) with None for what it does not return, checked for type,
        shape and dtype."""
        arguments.pop("with_weights", None)
        outer = self.adapter or self.fn
        if _accepts(outer, "with_weights"):
            arguments["with_weights"] = True
        if self.adapter is not None:
            result = self.adapter(self.fn, q, k, v, **arguments)
        else:
            result = self.fn(q, k, v, **arguments)
        return self._parse(result, q, k, v)

    def out(self, q: Any, k: Any, v: Any, **arguments: Any) -> Any:
        """The target's output alone (what gradients are taken of)."""
        return self.invoke(q, k, v, **arguments)[0]

    def _parse(self, result: Any, q: Any, k: Any, v: Any) -> tuple[Any, Any, Any]:
        who = self.target_path + (f" through {self.adapter_path}" if self.adapter_path else "")
        if isinstance(result, tuple | list):
            if len(result) != 3:
                raise Finding(
                    f"{who} returned a {type(result).__name__} of {len(result)} items; "
                    "expected out, or (out, probs, scores) with with_weights=True"
                )
            out, probs, scores = result
        else:
            out, probs, scores = result, None, None
        bsz, n_head, qlen, _ = tuple(q.shape)
        klen = tuple(k.shape)[2]
        wanted = {
            "out": (bsz, n_head, qlen, tuple(v.shape)[3]),
            "probs": (bsz, n_head, qlen, klen),
            "scores": (bsz, n_head, qlen, klen),
        }
        for name, value in (("out", out), ("probs", probs), ("scores", scores)):
            if value is None and name != "out":
                continue
            if not self._is_tensor(value):
                raise Finding(
                    f"{who} returned {name} of type {type(value).__name__}; expected a "
                    f"{self.backend} tensor of shape {wanted[name]}"
                )
            if tuple(value.shape) != wanted[name]:
                raise Finding(
                    f"{who} returned {name} of shape {tuple(value.shape)}; expected "
                    f"{wanted[name]} (bsz, n_head, qlen, {'d_head' if name == 'out' else 'klen'})"
                )
            if name == "out" and str(value.dtype).split(".")[-1] != str(q.dtype).split(".")[-1]:
                raise Finding(
                    f"{who} returned out of dtype {value.dtype}; expected {q.dtype}, the dtype of q"
                )
        return out, probs, scores

    def _is_tensor(self, value: Any) -> bool:
        if self.backend == "torch":
            return isinstance(value, importlib.import_module("torch").Tensor)
        return isinstance(value, importlib.import_module("jax").Array)

    @property
    def key(self) -> tuple[str, ...]:
        """What a worker process needs to load this target again."""
        return (self.target_path, self.encoding, self.adapter_path, self.backend)

    def outputs(self, args: Mapping[str, Any], dtype: str) -> Outputs:
        """Run on spec-form ``args``: convert to the profile's conventions, call (in the
        backend's worker process when isolated), check the fully masked rows against the
        profile's convention and give them the spec's values."""
        lib = to_library(self.chain, args)
        if self.isolated:
            got = pool(self.backend).run(self.key, self.target_path, "outputs", lib, dtype)
        else:
            got = backend(self.backend).call(self.invoke, lib, dtype)
        return self._normalise_rows(args, got, dtype)

    def output_gradients(
        self,
        args: Mapping[str, Any],
        dtype: str,
        weights: np.ndarray,
        wrt: tuple[str, ...],
    ) -> dict[str, np.ndarray]:
        """Gradients with respect to the inputs the profile's conventions pass unchanged or
        only permute and negate (mapped back with ``to_spec``); inputs a convention extends
        or rescales are left out."""
        changed = {name for value in self.chain for name in value.changes}
        opaque = {n for value in self.chain if not value.permutes for n in value.changes}
        kept = tuple(name for name in wrt if name not in opaque)

        lib = to_library(self.chain, args)
        if self.isolated:
            who = self.target_path
            grads = pool(self.backend).run(self.key, who, "gradients", lib, dtype, weights, kept)
        else:
            grads = backend(self.backend).gradients(self.out, lib, dtype, weights, kept)
        permuted = [name for name in kept if name in changed]
        if permuted:  # an orthogonal map's adjoint is its inverse: to_spec
            mapped = to_spec(self.chain, {**lib, **{n: grads[n] for n in permuted}})
            grads.update({n: np.asarray(mapped[n]) for n in permuted})
        return grads

    def _normalise_rows(self, args: Mapping[str, Any], got: Outputs, dtype: str) -> Outputs:
        enc = self.spec
        dead = np.logical_not(full_mask(enc, enc.validate(args, check_dtypes=False)).any(-1))
        convention = self.masked_rows
        if convention == "zeros" or not dead.any():
            return got
        index = tuple(int(i) for i in np.argwhere(dead)[0])
        problem = check_masked_rows(convention, args, enc.name, got, dead, dtype)
        if problem:
            raise Finding(
                f"fully masked row {list(index)} of {self.id} in {dtype}: {problem} "
                f"(profile {self.profile.label}: masked rows {convention})"
            )
        out = np.where(dead[..., None], 0.0, got.out)
        probs = None if got.probs is None else np.where(dead[..., None], 0.0, got.probs)
        scores = None if got.scores is None else np.where(dead[..., None], -np.inf, got.scores)
        return Outputs(out, probs, scores)

    def repro(self, prop: str, dtype: str, draw: Draw) -> str:
        adapter = f", adapter={self.adapter_path!r}" if self.adapter_path else ""
        return (
            "from relpos.equivalence.draws import Draw\n"
            "from relpos.equivalence.targets import reproduce_target\n"
            f"reproduce_target({self.target_path!r}, {self.encoding!r}, "
            f"{self.profile.name!r}, {prop!r}, {dtype!r},\n"
            f"                 {draw!r}{adapter}, backend={self.backend!r})"
        )


def check_masked_rows(
    convention: str,
    args: Mapping[str, Any],
    encoding: str,
    got: Outputs,
    dead: np.ndarray,
    dtype: str,
) -> str | None:
    """What is wrong with the fully masked rows of ``got`` under ``convention`` (None if
    nothing): zeros (the spec), NaN, or uniform probabilities over every key."""
    rows = np.argwhere(dead)
    if convention == "zeros":
        bad = [r for r in rows if np.any(got.out[tuple(r)] != 0)]
        return None if not bad else f"out = {got.out[tuple(bad[0])].tolist()}, but should be 0"
    if convention == "nan":
        bad = [r for r in rows if not np.isnan(got.out[tuple(r)]).all()]
        return None if not bad else f"out = {got.out[tuple(bad[0])].tolist()}, but should be NaN"
    values = pair_values(encoding, **args)
    klen = values.shape[3]
    uniform = np.full((*dead.shape, klen), 1.0 / klen)
    b = tolerance.bounds(
        dtype,
        probs=uniform,
        mask=np.ones(uniform.shape, bool),
        magnitude_scores=np.zeros(uniform.shape),
        magnitude_out=np.abs(values).mean(axis=-2),
    )
    want = values.mean(axis=-2)
    for row in rows:
        r = tuple(row)
        if not (np.abs(got.out[r] - want[r]) <= b.out[r]).all():
            return (
                f"out = {got.out[r].tolist()}, but a uniform row gives the mean of the pair "
                f"values {want[r].tolist()} (bound {float(b.out[r].max()):.3g})"
            )
        if got.probs is not None and not (np.abs(got.probs[r] - 1.0 / klen) <= b.probs[r]).all():
            return f"probs = {got.probs[r].tolist()}, but should all be 1/{klen}"
    return None


def make_target(
    fn: Callable[..., Any] | str,
    *,
    encoding: str,
    profile: str | None = None,
    adapter: Callable[..., Any] | str | None = None,
    backend: str | None = None,
    isolate: bool = True,
    allow: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Target:
    """A :class:`Target` from a function (or 'package.module:function'), an encoding, a
    profile name (default: the spec's own) and an optional adapter. With ``isolate`` (the
    default) its calls run in a worker process (:mod:`relpos.equivalence.isolation`) when
    the target and adapter import by their names; else in this process. ``allow`` and
    ``exclude`` adjust the profile for this target (:mod:`relpos.equivalence.adjustments`)."""
    enc = get_encoding(encoding)
    chosen = enc.profile(profile or enc.name)
    if allow or exclude:
        chosen = adjust(enc, chosen, allow, exclude)
    target_path = fn if isinstance(fn, str) else _label(fn)
    function = load_callable(fn, "target") if isinstance(fn, str) else fn
    adapter_path = "" if adapter is None else (adapter if isinstance(adapter, str) else "")
    adapt = load_callable(adapter, "adapter") if isinstance(adapter, str) else adapter
    if adapt is not None and not adapter_path:
        adapter_path = _label(adapt)
    if not callable(function):
        raise ArgumentError("target", repr(fn), "must be callable")
    if adapt is not None and not callable(adapt):
        raise ArgumentError("adapter", repr(adapter), "must be callable")
    chosen_backend = backend or _infer_backend(function, adapt)
    if chosen_backend not in BACKENDS:
        raise ArgumentError(
            "backend", repr(chosen_backend), f"must be one of {', '.join(BACKENDS)}"
        )
    return Target(
        encoding,
        chosen_backend,
        target_path.rsplit(":", 1)[-1],
        target_path,
        fn=function,
        adapter=adapt,
        profile=chosen,
        target_path=target_path,
        adapter_path=adapter_path,
        isolated=isolate
        and _importable(target_path, function)
        and (adapt is None or _importable(adapter_path, adapt)),
    )


def _importable(path: str, obj: Any) -> bool:
    """Whether ``path`` imports as ``obj`` itself, so a worker process can load it by name."""
    try:
        return load_callable(path) is obj
    except ArgumentError:
        return False


def reproduce_target(
    target: str,
    encoding: str,
    profile: str,
    prop: str,
    dtype: str,
    draw: Draw,
    *,
    adapter: str | None = None,
    backend: str | None = None,
) -> float:
    """Re-run one failing example of a target; raises AssertionError if it still fails."""
    from relpos.equivalence.runner import _check

    t = make_target(target, encoding=encoding, profile=profile, adapter=adapter, backend=backend)
    return _check(PROPERTIES[prop], t, draw, dtype)


# -- running ------------------------------------------------------------------------------

#: Properties a target is checked for by default: every one that needs no second backend.
TARGET_PROPERTIES = tuple(name for name, p in PROPERTIES.items() if not p.needs_partner)


def _names(argument: str, given: Iterable[str] | None) -> list[str] | None:
    """A list of names from ``given`` (None: every one); one string or an empty list is an
    error, not every character or every name."""
    if given is None:
        return None
    if isinstance(given, str):
        raise ArgumentError(
            argument, repr(given), f"must be a list of names, such as [{given!r}], not a string"
        )
    names = list(given)
    if not names:
        raise ArgumentError(argument, "[]", "must name at least one, or be None for every one")
    return names


def check_target(
    target: Target,
    *,
    properties: Iterable[str] | None = None,
    dtypes: Iterable[str] | None = None,
    budget: str | settings | None = None,
    on_result: Callable[[Result], None] | None = None,
    workers: int = 1,
) -> list[Result]:
    """Run the properties on a target; each result's ``extra`` names the target and profile.
    With ``workers`` > 1 the checks are spread over that many processes (every one drawing
    from this run's seed), which needs a target that imports by its name."""
    from relpos.equivalence.backends import DTYPES
    from relpos.equivalence.parallel import run_jobs
    from relpos.equivalence.profiles import run_seed

    properties, dtypes = _names("properties", properties), _names("dtypes", dtypes)
    unknown = [d for d in dtypes or () if d not in DTYPES]
    if unknown:
        raise ArgumentError("dtypes", repr(unknown), f"must be among {', '.join(DTYPES)}")
    jobs = []
    for name in properties or TARGET_PROPERTIES:
        if name not in PROPERTIES:
            raise ArgumentError("property", repr(name), f"must be one of {', '.join(PROPERTIES)}")
        for dtype in PROPERTIES[name].dtypes:
            if dtypes is None or dtype in dtypes:
                jobs.append((target, name, dtype))
    if not jobs:
        raise ArgumentError(
            "dtypes", repr(list(dtypes or ())), "must include a dtype the chosen properties run in"
        )
    if workers > 1 and not isinstance(budget, str | None):
        raise ArgumentError("budget", repr(budget), "must be a budget's name with workers > 1")

    def named(result: Result) -> None:
        result.extra.update(
            target=target.target_path, adapter=target.adapter_path, profile=target.profile.name
        )
        if on_result is not None:
            on_result(result)

    seed = run_seed() if workers > 1 else None
    return run_jobs(jobs, budget=budget, workers=workers, seed=seed, on_result=named)


# -- diagnosis ----------------------------------------------------------------------------


@dataclass
class Diagnosis:
    """Which conventions a target satisfies on a few small inputs (float64)."""

    encoding: str
    asked: str
    examples: int
    matches: list[dict[str, str]]
    profiles: list[str]
    differences: dict[str, str]
    #: What the target raised, when it raised under every combination tried.
    raised: str | None = None

    def __str__(self) -> str:
        head = f"diagnosis ({self.examples} small inputs per combination, {DIAGNOSIS_DTYPE})"
        if self.raised:
            return (
                f"{head}: the target raised under every combination of the {self.encoding} "
                f"conventions ({self.raised}), so no convention explains its failures"
            )
        if not self.matches:
            return (
                f"{head}: conforms to no combination of the {self.encoding} conventions the "
                "checker knows (relpos profiles lists them)"
            )
        if not self.differences:
            return (
                f"{head}: conforms to profile {self.asked} on these inputs, so the failures "
                "lie in another dtype, in larger inputs, or in a property beyond the values"
            )
        said = ", ".join(f"{axis} {value}" for axis, value in self.differences.items())
        named = f": profile {', '.join(self.profiles)}" if self.profiles else ": no named profile"
        others = len(self.matches) - 1
        also = f" ({others} other combinations fit these inputs too)" if others else ""
        return f"{head}: conforms to {self.encoding} with {said}{named}{also}"


def diagnosis_samples(encoding: str, restrict: Restriction, n: int) -> list[Draw]:
    """The inputs diagnosis tries a combination on: ``n`` tiny ones, one with three heads or
    more (and memory, where ``restrict`` allows it), and one with a fully masked row
    that tells the masked-row conventions apart (two keys or more and normal values, so
    zeros, uniform weights and NaN give three different outputs)."""
    masked = draws(
        encoding,
        "tiny",
        masks=("fully_masked_row",),
        values=("normal",),
        at_least={"qlen": 2},
        restrict=restrict,
    )
    wide = {"n_head": 3} if restrict.at_most.get("mlen") == 0 else {"n_head": 3, "mlen": 1}
    return [
        *_sample(draws(encoding, "tiny", restrict=restrict), n),
        *_sample(draws(encoding, "oracle", at_least=wide, restrict=restrict), 1),
        *_sample(masked, 1),
    ]


def _sample(strategy: Any, n: int) -> list[Draw]:
    found: list[Draw] = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
    )
    @given(strategy)
    def collect(draw: Draw) -> None:
        found.append(draw)

    collect()
    return found[:n]


#: Conventions change results by O(1); float32 tells them apart and forgives a target whose
#: only fault is float32 arithmetic inside a float64 run.
DIAGNOSIS_DTYPE = "float32"


def _conforms(target: Target, examples: Sequence[Draw]) -> tuple[bool, str | None]:
    """Whether ``target`` (under its profile) agrees with the oracle on every example in
    :data:`DIAGNOSIS_DTYPE`: outputs within the bound, fully masked rows as its profile
    says; and, when it does not because it raised, what it raised."""
    for draw in examples:
        args = draw.arguments(DIAGNOSIS_DTYPE)
        try:
            got = target.outputs(args, DIAGNOSIS_DTYPE)
        except Finding:  # a wrong masked row: an answer, not this convention's
            return False, None
        except Exception as exc:  # raising on its own convention's inputs: not this one
            return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        want = expected(target.encoding, args)
        if not compare("out", got.out, want.out, want.bounds(DIAGNOSIS_DTYPE).out, who="").ok:
            return False, None
    return True, None


def _default_scale(options: Mapping[str, Any]) -> dict[str, Any]:
    """A profile's option narrowing with scale drawn as the default (None) wherever the
    profile and its conventions leave that free; a convention that fixes the scale (such as
    x-transformers' 1/sqrt(d_head)) keeps it, else that profile could never be recognised."""
    own = options.get("scale")

    def narrow(dims: Mapping[str, int], candidates: list[Any]) -> list[Any]:
        left = candidates if own is None else own(dims, candidates)
        return [None] if None in left else left[:1]

    return {**options, "scale": narrow}


def diagnose(target: Target, *, n: int = 4) -> Diagnosis:
    """Check ``target`` under every named profile of its encoding and every combination of
    the encoding's conventions, each on ``n`` small inputs drawn for it, one with three heads
    or more, and one with a fully masked row whose conventions differ (two keys or more,
    normal values: zeros, uniform weights and NaN all give different outputs); report what
    it satisfies and the named profiles among them.

    The inputs carry tables shared by heads and the default scale, which every library
    accepts, and memory where the profile allows it; a combination keeps the restrictions of
    the profile asked for, a named profile its own."""
    enc = target.spec
    layouts = {t.name: 0 for t in enc.tensors if len(t.layouts) > 1}
    candidates = [
        replace(p, options=_default_scale(p.options), layouts=layouts) for p in enc.all_profiles()
    ]
    for combo in itertools.product(*(a.values for a in enc.all_axes())):
        chosen = {a.name: v.name for a, v in zip(enc.all_axes(), combo, strict=True)}
        candidates.append(
            replace(
                target.profile,
                name="",
                conventions=chosen,
                options=_default_scale(target.profile.options),
                layouts=layouts,
            )
        )
    samples: dict[Any, list[Draw]] = {}
    raised: list[str | None] = []  # per combination tried: what it raised, if it did
    matches: list[dict[str, str]] = []
    named: list[str] = []
    for candidate in candidates:
        trial = replace(target, profile=candidate)
        chosen = conventions(enc, candidate)
        if not candidate.name and chosen in matches:
            continue
        r = trial.restriction
        key = (candidate.name, tuple(sorted((k, v) for k, v in chosen.items() if k != "mask")))
        if key not in samples:
            samples[key] = diagnosis_samples(enc.name, r, n)
        ok, error = _conforms(trial, samples[key])
        raised.append(error)
        if ok:
            if candidate.name:
                named.append(candidate.name)
            if chosen not in matches:
                matches.append(chosen)
    asked = target.conventions
    differences: dict[str, str] = {}
    if matches and asked not in matches:
        profiles = [conventions(enc, p) for p in enc.all_profiles() if p.name in named]
        best = min(
            matches,
            key=lambda m: (m not in profiles, sum(m[a] != asked[a] for a in m)),
        )
        differences = {a: v for a, v in best.items() if v != asked[a]}
    always = raised[0] if raised and all(raised) else None
    return Diagnosis(enc.name, target.profile.label, n + 2, matches, named, differences, always)


def check_implementation(
    fn: Callable[..., Any] | str,
    *,
    encoding: str,
    profile: str | None = None,
    adapter: Callable[..., Any] | str | None = None,
    backend: str | None = None,
    properties: Iterable[str] | None = None,
    dtypes: Iterable[str] | None = None,
    budget: str | settings | None = None,
) -> list[Result]:
    """Check a function against the spec under a convention profile. Returns the results
    when every property holds; raises AssertionError with the report, the repros and a
    diagnosis otherwise."""
    target = make_target(fn, encoding=encoding, profile=profile, adapter=adapter, backend=backend)
    results = check_target(target, properties=properties, dtypes=dtypes, budget=budget)
    bad = [r for r in results if r.status in FAILED]
    if bad:
        raise AssertionError(failure_report(target, results))
    return results


def diagnosis_text(target: Target, results: Sequence[Result]) -> str:
    """The diagnosis of a target whose ``results`` failed, or why there is none."""
    if any(r.status in ("timeout", "crash") for r in results):
        return "no diagnosis: the target hung or crashed, and would again"
    try:
        return str(diagnose(target))
    except TargetDied as died:
        return f"no diagnosis: {died.message}"


def failure_report(target: Target, results: Sequence[Result], diagnosis: str | None = None) -> str:
    """The failed and raised results of a target, with repros, and the diagnosis (made here
    unless given)."""
    bad = [r for r in results if r.status in FAILED]
    lines = [
        f"{target.target_path} does not conform to {target.encoding} under profile "
        f"{target.profile.label}: {len(bad)} of {len(results)} checks failed"
    ]
    for r in bad:
        lines += ["", f"{r.status.upper()}: {r.property} {r.dtype}", r.message]
    lines += ["", diagnosis if diagnosis is not None else diagnosis_text(target, bad)]
    return "\n".join(lines)
