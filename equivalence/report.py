"""Reports of a conformance run: the matrix printed by ``relpos check`` and its JSON form.

JSON schema (``relpos check --json FILE``)::

    {
      "spec_version": "1.1.0",
      "environment": {"python", "platform", "sympy", "hypothesis", "numpy", "torch", "jax"},
      "budget": "dev" | "ci" | "thorough",          (the Hypothesis profile)
      "target", "adapter", "profile", "backend"     (a third-party target only)
      "results": [
        {"encoding", "backend", "variant", "property", "dtype",
         "status": "pass" | "fail" | "error" | "crash" | "timeout" | "skip",
         "examples", "worst_ratio", "seconds",
         "message" (fail, error, skip), "repro" (fail, error),
         "draw" (the smallest failing input, as Draw(...)),
         "found_draw" (the first failing input, before it was shrunk),
         "worst_draw" (the passing input closest to its bound, as Draw(...)),
         "coverage" (what the draws reached),
         "target", "adapter", "profile" (a third-party target only)}
      ]
    }

``worst_ratio`` is the largest error seen as a fraction of its allowed bound (<= 1 passes).
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import textwrap
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from relpos.equivalence.coverage import Coverage, summary
from relpos.equivalence.draws import Draw
from relpos.equivalence.runner import FAILED, Result

__all__ = [
    "cell",
    "environment",
    "matrix",
    "result_from_row",
    "result_row",
    "to_json",
    "write_json",
]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    from relpos.equivalence.backends import device

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device(),
        **{
            name: _version(name)
            for name in (
                "sympy",
                "mpmath",
                "numpy",
                "hypothesis",
                "torch",
                "jax",
                "jaxlib",
                "transformers",
            )
        },
    }


def _ratio(value: float) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else value


def to_json(
    results: Iterable[Result],
    *,
    budget: str,
    extra: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The report: ``seed`` is the run's seed (None when the budget derandomizes)."""
    from relpos.spec import SPEC_VERSION

    results = list(results)
    rows = [result_row(r) for r in results]
    return {
        "spec_version": SPEC_VERSION,
        "environment": environment(),
        "budget": budget,
        "seed": seed,
        **dict(extra or {}),
        "coverage": {name: c.to_json() for name, c in coverage_by_encoding(results).items()},
        "results": rows,
    }


def result_row(r: Result) -> dict[str, Any]:
    """One result as a row of the JSON report (see the module's schema)."""
    row: dict[str, Any] = {
        "encoding": r.encoding,
        "backend": r.backend,
        "variant": r.variant,
        "property": r.property,
        "dtype": r.dtype,
        "status": r.status,
        "examples": r.examples,
        "worst_ratio": _ratio(r.worst_ratio),
        "seconds": round(r.seconds, 3),
    }
    if r.status != "pass":
        row["message"] = r.message
    if r.status in FAILED:
        row["repro"] = r.repro
    if r.draw is not None:
        row["draw"] = repr(r.draw)
    if r.found_draw is not None:
        row["found_draw"] = repr(r.found_draw)
    if r.worst_draw is not None:
        row["worst_draw"] = repr(r.worst_draw)
    row["coverage"] = r.coverage.to_json()
    row.update(r.extra)
    return row


#: The inputs a row keeps, each as its Draw(...) repr.
_DRAWS = ("draw", "found_draw", "worst_draw")

#: The keys of a row that are not fields of a Result's ``extra``.
_ROW_KEYS = frozenset(
    {"encoding", "backend", "variant", "property", "dtype", "status", "examples"}
    | {"worst_ratio", "seconds", "message", "repro", "coverage", *_DRAWS}
)


def result_from_row(row: Mapping[str, Any]) -> Result:
    """A result again from its JSON row (:func:`result_row`): draws parsed back, coverage
    restored; a ``worst_ratio`` of null (inf or NaN) reads as inf."""
    ratio = row.get("worst_ratio")
    return Result(
        row["encoding"],
        row["backend"],
        row["variant"],
        row["property"],
        row["dtype"],
        row["status"],
        int(row.get("examples", 0)),
        math.inf if ratio is None else float(ratio),
        float(row.get("seconds", 0.0)),
        row.get("message", ""),
        row.get("repro", ""),
        {k: v for k, v in row.items() if k not in _ROW_KEYS},
        **{name: Draw.parse(row[name]) if row.get(name) else None for name in _DRAWS},
        coverage=Coverage.from_json(row.get("coverage") or {}),
    )


def coverage_by_encoding(results: Iterable[Result]) -> dict[str, Coverage]:
    """Every result's coverage merged per encoding, in the results' order."""
    merged: dict[str, Coverage] = {}
    for r in results:
        merged[r.encoding] = merged.get(r.encoding, Coverage()).merge(r.coverage)
    return merged


def write_json(path: str | Path, document: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=1) + "\n")


def cell(results: list[Result]) -> str:
    """A matrix cell of these results (one implementation, one property, every dtype)."""
    ran = [r for r in results if r.status != "skip"]
    if not ran:
        return "skip"
    examples = sum(r.examples for r in ran)
    worst = max(r.worst_ratio for r in ran)
    failed = {r.status for r in ran if r.status in FAILED}
    if "error" in failed:
        status = "ERROR"
    elif failed:
        status = min(failed, key=FAILED.index).upper()
    else:
        status = "pass"
    shown = "inf" if math.isinf(worst) else f"{worst:.2g}"
    return f"{status} {examples}/{shown}"


def matrix(results: list[Result], width: int | None = None) -> str:
    """One row per implementation, one column per property; a cell is the status, the
    examples run over every dtype, and the worst error as a fraction of the bound.

    The columns are wrapped into panels that each fit ``width`` characters (default: the
    terminal's width, 100 when there is no terminal), each panel repeating the implementation
    column; a single column wider than ``width`` still gets a panel of its own."""
    if width is None:
        width = shutil.get_terminal_size((100, 24)).columns
    impls = list(dict.fromkeys(r.implementation for r in results))
    props = list(dict.fromkeys(r.property for r in results))
    cells = {
        (i, p): cell([r for r in results if r.implementation == i and r.property == p])
        for i in impls
        for p in props
    }
    first = max(len("implementation"), *(len(i) for i in impls))
    column = {p: max(len(p), *(len(cells[i, p]) for i in impls)) for p in props}
    panels: list[list[str]] = []
    for p in props:
        used = first + sum(2 + column[q] for q in panels[-1]) if panels else 0
        if panels and used + 2 + column[p] <= width:
            panels[-1].append(p)
        else:
            panels.append([p])
    lines: list[str] = []
    for panel in panels:
        widths = [first, *(column[p] for p in panel)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        if lines:
            lines.append("")
        rows = [("implementation", *panel), tuple("-" * w for w in widths)]
        rows += [(i, *(cells[i, p] for p in panel)) for i in impls]
        lines += [fmt.format(*row).rstrip() for row in rows]
    lines.append(
        textwrap.fill(
            "cell: status examples/worst error as a fraction of its bound (<= 1 passes), "
            "over every dtype the property runs in",
            width=max(width, 40),
        )
    )
    lines.append(textwrap.fill(summary(coverage_by_encoding(results)), width=max(width, 40)))
    return "\n".join(lines) + "\n"
