"""Spreading a check over worker processes (``relpos check -n N``).

Jobs (implementation, property, dtype) are grouped so that what a group shares stays in one
process: one encoding's draws (the same seed everywhere, so the oracle's cached evaluations
serve every implementation of it) and one kind of precision (float64, or float32 with the half
types, which run in float32 and reuse its JAX compilations). Groups go to a pool of spawned
processes (JAX and torch do not survive a fork once started), each process drawing from the
run's seed, and the results come back in the order of the jobs.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from relpos.equivalence.adjustments import recorded
from relpos.equivalence.isolation import shutdown, timeout
from relpos.equivalence.runner import Result, run_property

__all__ = ["run_jobs"]

Job = tuple[Any, str, str]  # (implementation, property name, dtype)


def _group(job: Job) -> tuple[str, bool]:
    impl, prop, dtype = job
    if getattr(impl, "target_path", ""):  # one target: its properties go apart
        return prop, dtype == "float64"
    return impl.encoding, dtype == "float64"


def _recipe(impl: Any) -> tuple[Any, ...]:
    """What a worker process needs to build ``impl`` again: a target by its import paths,
    profile and adjustments; a bundled implementation by its id (isolated or not)."""
    if getattr(impl, "target_path", ""):
        if not impl.isolated:
            raise ValueError(
                f"{impl.target_path} does not import by its name, so it cannot be checked "
                "in other processes (-n)"
            )
        profile = impl.profile
        named = profile.name
        return (
            "target",
            impl.target_path,
            impl.encoding,
            named,
            impl.adapter_path or None,
            impl.backend,
            *recorded(profile.adjustments),
        )
    return ("isolated" if getattr(impl, "wrap", None) else "bundled", impl.id)


def _rebuild(recipe: tuple[Any, ...]) -> Any:
    kind, *rest = recipe
    if kind == "target":
        from relpos.equivalence.targets import make_target

        path, encoding, profile, adapter, backend, allow, exclude = rest
        return make_target(
            path,
            encoding=encoding,
            profile=profile,
            adapter=adapter,
            backend=backend,
            allow=allow,
            exclude=exclude,
        )
    from relpos.equivalence.isolation import Isolated
    from relpos.impls import get

    backend, encoding, variant = rest[0].split("-", 2)
    impl = get(encoding, backend, variant)
    return Isolated.of(impl) if kind == "isolated" else impl


def run_jobs(
    jobs: Sequence[Job],
    *,
    budget: Any,
    workers: int = 1,
    seed: int | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run every job under ``budget`` (a budget's name, or settings when ``workers`` is 1);
    with ``workers`` > 1 in that many processes."""
    if workers < 1:
        raise ValueError(f"workers={workers} must be at least 1")
    if workers == 1:
        results = []
        for impl, prop, dtype in jobs:
            results.append(run_property(prop, impl, dtype, profile=budget))
            if on_result is not None:
                on_result(results[-1])
        return results
    groups: dict[tuple[str, bool], list[int]] = {}
    for n, job in enumerate(jobs):
        groups.setdefault(_group(job), []).append(n)
    found: dict[int, Result] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(
                _run_group,
                [(_recipe(jobs[n][0]), jobs[n][1], jobs[n][2]) for n in members],
                budget,
                seed,
                timeout(),
            ): members
            for members in groups.values()
        }
        for future in as_completed(futures):
            for n, result in zip(futures[future], future.result(), strict=True):
                found[n] = result
                if on_result is not None:
                    on_result(result)
    return [found[n] for n in range(len(jobs))]


def _run_group(
    jobs: list[tuple[tuple[Any, ...], str, str]], budget: Any, seed: int | None, limit: float
) -> list[Result]:
    """One group in a worker: the run's seed and call timeout, then each job in order (a
    target's or an isolated implementation's calls in a worker process of this one's own)."""
    from relpos.equivalence.isolation import set_timeout
    from relpos.equivalence.profiles import set_run_seed

    if seed is not None:
        set_run_seed(seed)
    set_timeout(limit)
    built: dict[tuple[Any, ...], Any] = {}
    results = []
    try:
        for recipe, prop, dtype in jobs:
            if recipe not in built:
                built[recipe] = _rebuild(recipe)
            results.append(run_property(prop, built[recipe], dtype, profile=budget))
    finally:
        # A process of this pool ends without running atexit, and would wait forever on
        # the target workers it started: they are stopped here.
        shutdown()
    return results
