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

from relpos.equivalence.runner import Result, run_property

__all__ = ["run_jobs"]

Job = tuple[Any, str, str]  # (implementation, property name, dtype)


def _group(job: Job) -> tuple[str, bool]:
    impl, _, dtype = job
    return impl.encoding, dtype == "float64"


def run_jobs(
    jobs: Sequence[Job],
    *,
    budget: str,
    workers: int = 1,
    seed: int | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run every job under ``budget``; with ``workers`` > 1 in that many processes."""
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
                [(jobs[n][0].id, jobs[n][1], jobs[n][2]) for n in members],
                budget,
                seed,
                [bool(getattr(jobs[n][0], "wrap", None)) for n in members],
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
    jobs: list[tuple[str, str, str]], budget: str, seed: int | None, isolated: list[bool]
) -> list[Result]:
    """One group in a worker: the run's seed, then each job in order (an isolated one's
    calls in a worker process of this process's own)."""
    from relpos.equivalence.isolation import Isolated
    from relpos.equivalence.profiles import set_run_seed
    from relpos.impls import get

    if seed is not None:
        set_run_seed(seed)
    results = []
    for (impl_id, prop, dtype), apart in zip(jobs, isolated, strict=True):
        backend, encoding, variant = impl_id.split("-", 2)
        impl = get(encoding, backend, variant)
        impl = Isolated.of(impl) if apart else impl
        results.append(run_property(prop, impl, dtype, profile=budget))
    return results
