"""Runs of a study, recorded and resumable: each run is one JSON file (its configuration, seed,
versions and metrics per epoch) written when it finishes; a run whose file says it finished
with the same configuration is read back instead of trained again."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Job",
    "brief",
    "mean_spread",
    "progress",
    "record_path",
    "run_all",
    "run_once",
    "versions",
    "write_results",
]


def versions() -> dict[str, str]:
    """Python, torch and this package, as a run records them."""
    from importlib import metadata

    import torch

    try:
        ours = metadata.version("relpos-conformance")
    except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        ours = "checkout"
    return {"python": platform.python_version(), "torch": torch.__version__, "relpos": ours}


def record_path(out: Path, study: str, name: str) -> Path:
    return out / study / "runs" / f"{name.replace('/', '-')}.json"


def run_once(
    out: Path, study: str, name: str, config: dict[str, Any], train: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """The record of run ``name`` of ``study`` with ``config``, and whether it was read back:
    from its file when a finished run of the same configuration wrote it, else by calling
    ``train`` (its metrics) and writing the record, atomically."""
    kept = _finished(out, study, name, config)
    if kept is not None:
        return kept, True
    return _trained(out, study, name, config, train), False


def _trained(
    out: Path, study: str, name: str, config: dict[str, Any], train: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The record of run ``name``, trained now (``train``) and written atomically."""
    path = record_path(out, study, name)
    record: dict[str, Any] = {"study": study, "name": name, "config": config}
    record["versions"] = versions()
    record.update(train())
    record["finished"] = True
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(partial, path)
    return record


def _finished(out: Path, study: str, name: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a finished run ``name`` with ``config``, or None."""
    path = record_path(out, study, name)
    if path.exists():
        kept: dict[str, Any] = json.loads(path.read_text())
        if kept.get("finished") and kept.get("config") == config:
            return kept
    return None


@dataclass(frozen=True)
class Job:
    """One run of a study: its name, its configuration (what a record must match to be read
    back) and the call that trains it, which a worker process must be able to unpickle (a
    module-level function, or a ``functools.partial`` of one)."""

    name: str
    config: dict[str, Any]
    train: Callable[[], dict[str, Any]]


def _train_job(out: Path, study: str, job: Job) -> dict[str, Any]:
    return _trained(out, study, job.name, job.config, job.train)


def run_all(
    out: Path,
    study: str,
    jobs: Sequence[Job],
    *,
    workers: int = 1,
    show_progress: bool = True,
    label: Callable[[dict[str, Any]], str] = lambda record: record["name"],
) -> tuple[list[dict[str, Any]], int]:
    """The records of ``jobs``, in their order, and how many were read back: finished runs
    are read back, the others trained (as :func:`run_once` would) in this process (``workers`` 1) or
    in up to ``workers`` spawned processes. A run's numbers do not depend on the process that
    trains it: each is seeded and runs torch on one thread."""
    records: list[dict[str, Any] | None] = [
        _finished(out, study, job.name, job.config) for job in jobs
    ]
    resumed = sum(record is not None for record in records)
    pending = [i for i, record in enumerate(records) if record is None]
    with progress(len(jobs), study, show_progress) as bar:
        bar.update(resumed)

        def done(i: int, record: dict[str, Any]) -> None:
            records[i] = record
            bar.set_postfix_str(label(record))
            bar.update()

        if workers == 1 or len(pending) <= 1:
            for i in pending:
                done(i, _train_job(out, study, jobs[i]))
        else:
            context = multiprocessing.get_context("spawn")  # no forked torch state
            with ProcessPoolExecutor(min(workers, len(pending)), mp_context=context) as pool:
                futures = {pool.submit(_train_job, out, study, jobs[i]): i for i in pending}
                for future in as_completed(futures):
                    done(futures[future], future.result())
    return [record for record in records if record is not None], resumed


def write_results(
    out: Path,
    study: str,
    config: dict[str, Any],
    runs: list[dict[str, Any]],
    resumed: int,
    table: str,
) -> tuple[dict[str, Any], Path]:
    """The study's results (its configuration, every run, how many were read back), written
    to ``OUT/STUDY/results.json`` beside ``table`` as ``results.md``; and that folder, for
    the figures."""
    results = {"study": study, "config": config, "runs": runs, "resumed": resumed}
    folder = out / study
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (folder / "results.md").write_text(table + "\n")
    return results, folder


def brief(values: Mapping[str, float], digits: int) -> str:
    """Measures by setting in a progress bar's few characters: "64: 2.906, 128: 3.915"."""
    return ", ".join(f"{name}: {value:.{digits}f}" for name, value in values.items())


def mean_spread(values: Sequence[float], digits: int = 1) -> str:
    """A table cell: the mean of ``values`` (one per seed) ± their standard deviation (the
    mean alone for one value, "-" for none)."""
    if not values:
        return "-"
    spread = f" ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else ""
    return f"{np.mean(values):.{digits}f}{spread}"


def progress(total: int, description: str, enabled: bool = True) -> Any:
    """A tqdm bar (the ``studies`` extra), or a silent one when ``enabled`` is False."""
    try:
        from tqdm.auto import tqdm
    except ModuleNotFoundError as missing:
        raise ModuleNotFoundError(
            "the studies show their progress with tqdm: pip install 'relpos-conformance[studies]'"
        ) from missing
    return tqdm(total=total, desc=description, disable=not enabled, leave=False)
