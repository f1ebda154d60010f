"""Runs a property on an implementation with Hypothesis and reports the outcome.

Used by the pytest suite, ``relpos check`` and third-party checks alike. A failure keeps
Hypothesis's smallest failing example; its message names the property, the implementation,
the dtype, the worst error and where it is, the allowed bound, and a repro snippet.
"""

from __future__ import annotations

import builtins
import re
import time
import traceback
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import given, reject, seed, settings
from hypothesis.errors import Unsatisfiable, UnsatisfiedAssumption

from relpos.equivalence.backends import InputChanged
from relpos.equivalence.compare import Verdict
from relpos.equivalence.coverage import Coverage
from relpos.equivalence.draws import Draw
from relpos.equivalence.isolation import TargetDied
from relpos.equivalence.profiles import (
    KeyedDatabase,
    active_profile,
    example_database,
    load_profile,
    run_seed,
)
from relpos.equivalence.properties import PROPERTIES, Finding, Inapplicable, Property, applicable
from relpos.impls import Implementation, get

__all__ = ["FAILED", "Result", "reproduce", "run_property"]


@dataclass
class Result:
    """One (implementation, property, dtype) outcome; ``status`` is pass, skip, or one of
    :data:`FAILED` (fail, crash, timeout, error)."""

    encoding: str
    backend: str
    variant: str
    property: str
    dtype: str
    status: str
    examples: int = 0
    worst_ratio: float = 0.0
    seconds: float = 0.0
    message: str = ""
    repro: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: The smallest failing input Hypothesis found (fail and error only).
    draw: Draw | None = field(default=None, repr=False, compare=False)
    #: The passing input with the largest worst_ratio (what a report pictures when the
    #: check passed).
    worst_draw: Draw | None = field(default=None, repr=False, compare=False)
    #: The first failing input found, before Hypothesis shrank it (fail and error only): a
    #: larger input than ``draw``, where a pattern of errors shows.
    found_draw: Draw | None = field(default=None, repr=False, compare=False)
    #: What the checked draws reached (sizes, positions, heads, options, regions).
    coverage: Coverage = field(default_factory=Coverage, repr=False, compare=False)

    @builtins.property  # the field `property` shadows the builtin in this class body
    def implementation(self) -> str:
        return f"{self.backend}-{self.encoding}-{self.variant}"


def repro_snippet(prop: str, impl: Implementation, dtype: str, draw: Draw) -> str:
    own = getattr(impl, "repro", None)
    if own is not None:  # a third-party target says how to rebuild itself
        return str(own(prop, dtype, draw))
    return (
        "from relpos.equivalence import reproduce\n"
        "from relpos.equivalence.draws import Draw\n"
        f"reproduce({prop!r}, {impl.id!r}, {dtype!r},\n"
        f"          {draw!r})"
    )


#: The coverage of the run in progress, which every checked draw is added to. It is set around
#: the Hypothesis test rather than recorded in its body: a derandomized budget seeds its draws
#: from the test function's source, and the report must not change what is drawn.
_RECORDING: ContextVar[Coverage | None] = ContextVar("relpos_coverage", default=None)


class PropertyFailure(AssertionError):
    """A property failed on a draw; carries the repro. ``status`` is "fail" (a wrong value),
    "error" (the implementation raised), "timeout" or "crash" (a target's worker hung or
    died)."""

    def __init__(
        self,
        message: str,
        repro: str,
        draw: Draw,
        status: str = "fail",
        worst: float = float("inf"),
    ) -> None:
        super().__init__(f"{message}\nrepro:\n{repro}")
        self.repro = repro
        self.draw = draw
        self.status = status
        #: The largest error as a fraction of its bound (inf when no value could be compared).
        self.worst = worst


_KINDS: dict[frozenset[tuple[str, str]], type[PropertyFailure]] = {}


def _distinct(failed: list[Verdict]) -> type[PropertyFailure]:
    """The failure type for these verdicts: one per set of (what was wrong, how), such as
    out with NaN or probs beyond the bound. Hypothesis tells bugs apart by the type and place
    of what they raise, so each kind is shrunk and reported on its own instead of the first
    found hiding the others."""
    signature = frozenset((v.message.split(" of ", 1)[0], v.kind) for v in failed)
    if signature not in _KINDS:
        _KINDS[signature] = type("PropertyFailure", (PropertyFailure,), {})
    return _KINDS[signature]


def _check(prop: Property, impl: Implementation, draw: Draw, dtype: str) -> float:
    try:
        verdicts = prop.check(impl, draw, dtype)
    except TargetDied as died:  # not shrunk by Hypothesis (see _smaller_crash)
        died.failure = PropertyFailure(
            f"property {prop.name}: {died.message}",
            repro_snippet(prop.name, impl, dtype, draw),
            draw,
            status=died.status,
        )
        raise
    except Inapplicable:
        reject()
    except (Finding, InputChanged) as exc:  # caught before comparison (shape, rows, inputs)
        raise PropertyFailure(
            f"property {prop.name} failed for {impl.id} ({impl.encoding}) in {dtype}:\n{exc}",
            repro_snippet(prop.name, impl, dtype, draw),
            draw,
        ) from exc
    except Exception as exc:  # raised inside the implementation (or its call): a finding
        raise PropertyFailure(
            f"property {prop.name}: {impl.id} raised {type(exc).__name__}: {exc}\n"
            f"  at {_raised_at(exc)}",
            repro_snippet(prop.name, impl, dtype, draw),
            draw,
            status="error",
        ) from exc
    failed = [v for v in verdicts if not v.ok]
    if failed:
        header = f"property {prop.name} failed for {impl.id} ({impl.encoding}) in {dtype}:"
        raise _distinct(failed)(
            "\n".join([header, *(v.message for v in failed)]),
            repro_snippet(prop.name, impl, dtype, draw),
            draw,
            worst=max(v.worst_ratio for v in failed),
        )
    coverage = _RECORDING.get()
    if coverage is not None:
        coverage.add(draw)
    return max((v.worst_ratio for v in verdicts), default=0.0)


#: A frame of a formatted traceback: file, line, function.
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def _raised_at(exc: BaseException) -> str:
    """Where ``exc`` was raised: its innermost frame, in the worker process when it was raised
    there (the worker pool keeps that traceback as text beside the exception)."""
    remote = getattr(exc, "traceback", None)
    frames = _FRAME.findall(remote) if isinstance(remote, str) else []
    if frames:
        filename, line, name = frames[-1]
        return f"{filename}:{line} in {name}"
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{where.filename}:{where.lineno} in {where.name}"


def database_key(prop_name: str, impl: Implementation, dtype: str) -> str:
    """Where a check's failures are kept in the example database: the property, the
    implementation and the dtype, and for a target also its profile (with the run's
    adjustments) and adapter, whose draws differ, so that one profile's failures are never
    replayed as another's."""
    key = f"{prop_name}/{impl.id}/{dtype}"
    profile = getattr(impl, "profile", None)
    if profile is not None:
        key += f"/{profile.label}/{getattr(impl, 'adapter_path', '')}"
    return key


def run_property(
    prop_name: str, impl: Implementation, dtype: str, *, profile: str | settings | None = None
) -> Result:
    """Run one property on one implementation in one dtype under a Hypothesis profile: a
    profile name, a ``hypothesis.settings`` object, or by default the active budget
    (HYPOTHESIS_PROFILE, ci under CI, else dev)."""
    prop = PROPERTIES[prop_name]
    result = Result(impl.encoding, impl.backend, impl.variant, prop_name, dtype, "pass")
    ok, why = applicable(prop, impl)
    if not ok:
        result.status, result.message = "skip", why
        return result
    if dtype not in prop.dtypes:
        result.status, result.message = "skip", f"{prop_name} runs in {', '.join(prop.dtypes)}"
        return result
    state: dict[str, Any] = {"examples": 0, "worst": 0.0, "draw": None, "found": None}

    if isinstance(profile, settings):  # a caller's own settings, database included
        chosen = profile
    else:
        # the project's budgets, never Hypothesis's defaults (100 examples, a 200 ms deadline)
        chosen = load_profile(profile or active_profile())
        # failures are kept per check, and the next run replays them first
        # (none at all when RELPOS_EXAMPLES is empty: never Hypothesis's default directory,
        # where every check, one test function, would share one key)
        database = example_database()
        kept = (
            None
            if database is None
            else KeyedDatabase(database, database_key(prop_name, impl, dtype))
        )
        chosen = settings(chosen, database=kept)

    @given(draw=prop.strategy(impl.encoding, getattr(impl, "restriction", None)))
    def property_holds(draw: Draw) -> None:
        state["examples"] += 1
        try:
            ratio = _check(prop, impl, draw, dtype)
        except PropertyFailure:
            if state["found"] is None:
                state["found"] = draw
            raise
        if state["draw"] is None or ratio > state["worst"]:
            state["worst"], state["draw"] = ratio, draw

    if not chosen.derandomize:
        property_holds = seed(run_seed())(property_holds)
    # The settings go on last: @seed drops the database from any settings already applied.
    property_holds = settings(chosen)(property_holds)

    start = time.perf_counter()
    recording = _RECORDING.set(result.coverage)
    if prop.cases is not None:
        try:
            _run_cases(prop, impl, dtype, result)
        finally:
            _RECORDING.reset(recording)
        result.seconds = time.perf_counter() - start
        return result
    try:
        property_holds()
    except Unsatisfiable:
        result.status = "skip"
        result.message = f"no drawn input could be checked on {impl.id}"
    except (PropertyFailure, BaseExceptionGroup, TargetDied) as caught:
        if isinstance(caught, TargetDied):
            failure = caught.failure
            if caught.status == "crash":
                failure = _smaller_crash(prop, impl, dtype, failure)
            failures = [failure]
        else:
            failures = _failures(caught)
        result.status = _worst(failures)
        shown = failures[:_SHOWN]
        more = len(failures) - len(shown)
        result.message = "\n\n".join(str(f) for f in shown)
        if more:
            result.message += f"\n\n... and {more} more distinct failures of {prop_name}"
        result.repro = failures[0].repro
        result.draw = failures[0].draw
        result.found_draw = state["found"]
        state["worst"] = max(state["worst"], *(f.worst for f in failures))
    finally:
        _RECORDING.reset(recording)
    result.seconds = time.perf_counter() - start
    result.examples, result.worst_ratio = int(state["examples"]), state["worst"]
    result.worst_draw = state["draw"]
    return result


#: How many smaller inputs that crash again a crash's search may meet (each costs a fresh
#: worker), and how many it tries in all.
CRASH_SHRINK_CRASHES = 16
CRASH_SHRINK_TRIES = 64


def _smaller_crash(
    prop: Property, impl: Implementation, dtype: str, failure: PropertyFailure
) -> PropertyFailure:
    """The crash on the smallest input a short search finds. Hypothesis does not shrink a
    crash, since each attempt that crashes costs a fresh worker; this search spends few of them.
    For each dimension in turn it climbs from the least value (least, +1, +3, +7, ...: inputs
    that pass are cheap) to the first that crashes again, then bisects between it and the
    largest that did not; passes repeat while one lowers a dimension. An input the target's
    profile does not admit is not tried. It meets at most :data:`CRASH_SHRINK_CRASHES` crashes
    and tries :data:`CRASH_SHRINK_TRIES` inputs."""
    admits = getattr(getattr(impl, "restriction", None), "admits", lambda d: True)
    floors = {"mlen": 0}
    spent = {"tries": 0, "crashes": 0}
    current: Draw = failure.draw
    smallest: PropertyFailure = failure

    def crashes_at(name: str, value: int) -> bool | None:
        """Whether the current draw with ``name`` set to ``value`` crashes (kept when it
        does); None when the budget is spent or the input is not admitted."""
        nonlocal current, smallest
        if spent["tries"] >= CRASH_SHRINK_TRIES or spent["crashes"] >= CRASH_SHRINK_CRASHES:
            return None
        candidate = replace(current, dims={**current.dims, name: value})
        if not admits(candidate):
            return None
        spent["tries"] += 1
        try:
            _check(prop, impl, candidate, dtype)
        except TargetDied as died:
            spent["crashes"] += 1
            if died.status == "crash":
                current, smallest = candidate, died.failure
                return True
        except Exception:  # passes, fails otherwise, or is not a valid input
            pass
        return False

    improved = True
    while improved:
        improved = False
        for name in list(current.dims):
            size = current.dims[name]
            passed, step = floors.get(name, 1) - 1, 1  # the largest value known not to crash
            crashed = None
            while passed + step < size:  # climb
                outcome = crashes_at(name, passed + step)
                if outcome is None:
                    break
                if outcome:
                    crashed = passed + step
                    break
                passed, step = passed + step, step * 2
            while crashed is not None and crashed - passed > 1:  # bisect
                middle = (passed + crashed) // 2
                outcome = crashes_at(name, middle)
                if outcome is None:
                    break
                passed, crashed = (passed, middle) if outcome else (middle, crashed)
            improved |= current.dims[name] < size
    return smallest


def _run_cases(prop: Property, impl: Implementation, dtype: str, result: Result) -> None:
    """A property over fixed cases: every case is checked (none shrinks), and a failure
    names each failing case, the first in full."""
    assert prop.cases is not None
    failed: list[tuple[str, PropertyFailure]] = []
    for name, draw in prop.cases(impl.encoding, getattr(impl, "restriction", None)):
        try:
            worst = _check(prop, impl, draw, dtype)
        except UnsatisfiedAssumption:  # this case cannot be checked on this implementation
            continue
        except PropertyFailure as failure:
            failed.append((name, failure))
            continue
        except TargetDied as died:
            failed.append((name, died.failure))
            continue
        result.examples += 1
        if result.worst_draw is None or worst > result.worst_ratio:
            result.worst_ratio, result.worst_draw = worst, draw
    if not result.examples and not failed:
        result.status = "skip"
        result.message = f"no {prop.name} case can be checked on {impl.id}"
    elif failed:
        name, first = failed[0]
        names = ", ".join(n for n, _ in failed)
        result.status = _worst([f for _, f in failed])
        result.message = f"{len(failed)} {prop.name} cases failed ({names}); case {name}:\n{first}"
        result.repro, result.draw = first.repro, first.draw
        result.examples += len(failed)
        result.worst_ratio = max(result.worst_ratio, *(f.worst for _, f in failed))


#: How many distinct failures of one check its message spells out.
_SHOWN = 4

#: The statuses of a check that did not hold, from the most telling: a wrong value, a target
#: that crashed its worker, one that hung past the timeout, one that raised.
FAILED = ("fail", "crash", "timeout", "error")


def _worst(failures: list[PropertyFailure]) -> str:
    return min((f.status for f in failures), key=FAILED.index)


def _failures(caught: BaseException) -> list[PropertyFailure]:
    """The property failures in what Hypothesis raised (one, or a group of distinct ones)."""
    if isinstance(caught, PropertyFailure):
        return [caught]
    if isinstance(caught, BaseExceptionGroup):
        found = [f for sub in caught.exceptions for f in _failures(sub)]
        if found:
            return found
    raise caught


def reproduce(prop_name: str, impl_id: str, dtype: str, draw: Draw) -> float:
    """Re-run one failing example; raises AssertionError with the report if it still fails,
    returns the worst error as a fraction of its bound otherwise."""
    backend, encoding, variant = impl_id.split("-", 2)
    return _check(PROPERTIES[prop_name], get(encoding, backend, variant), draw, dtype)
