"""A conformance run as one self-contained HTML page (``relpos check --html FILE``).

The page needs nothing beyond itself (no scripts, no fonts, no external files; the pictures
are PNG data in the page), so it can be mailed, archived or attached to CI runs. It holds:

- the conformance matrix, one row per implementation and one column per property, each cell
  coloured by its worst error as a fraction of its bound (over every dtype, listed in the
  cell's tooltip);
- the coverage of the run (the one-line summary and a table per encoding);
- each failure: the checker's message (the worst element, the bound, how an overflow explains
  it), the diagnosis of a third-party target, the repro, and the pictures of the smallest
  failing input (:mod:`relpos.equivalence.pictures`);
- the input that came closest to its bound in each encoding, pictured the same way, so that a
  passing run shows how close it came.
"""

from __future__ import annotations

import base64
import html
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from relpos.equivalence.coverage import summary
from relpos.equivalence.draws import Draw
from relpos.equivalence.report import cell, coverage_by_encoding
from relpos.equivalence.runner import FAILED, Result

__all__ = ["Picture", "draw_pictures", "picture", "pictured", "render", "write_html"]

SMALLEST = "the smallest failing input"
FOUND = "the first failing input found, before shrinking"
GROWN = "the smallest failing input grown (its options, mask kind, values and seed kept)"
CLOSEST = "the passing input closest to its bound"
GIVEN = "the given input"

#: The properties whose ratio is the pictured comparison itself (one call of the input
#: against the oracle); the others compare calls with calls, gradients, or rows.
AGAINST_THE_ORACLE = ("oracle", "half_range", "golden", "index_tables")

#: A short name of each kind of pictured input, for file names.
SLUGS = {
    SMALLEST: "smallest",
    GROWN: "grown",
    FOUND: "found",
    CLOSEST: "closest",
    GIVEN: "given",
}

#: Statuses whose input may be run again to picture it: a wrong value. An implementation that
#: raised has no values, and a target that hung or crashed would again.
_RERUN = ("fail",)


@dataclass
class Picture:
    """One pictured input: the result it belongs to, the draw, what it is, and the PNG
    (empty, with ``note`` saying why, when it could not be drawn)."""

    result: Result
    draw: Draw
    #: What this input is: one of SMALLEST, GROWN, FOUND, CLOSEST, GIVEN.
    kind: str
    png: bytes = b""
    note: str = ""
    worst: dict[str, float] | None = None

    @property
    def failed(self) -> bool:
        """Whether it pictures a failure (not a closest call or a given input)."""
        return self.kind not in (CLOSEST, GIVEN)


def pictured(results: Sequence[Result]) -> list[tuple[Result, Draw, str]]:
    """The inputs a report pictures, each with what it is: every failure's smallest failing
    input that can be run again and, when it differs, the first failing input found before
    shrinking (larger, so a pattern shows); then the passing input closest to its bound in
    each encoding."""
    chosen: list[tuple[Result, Draw, str]] = []
    for r in results:
        if r.status not in _RERUN or r.draw is None:
            continue
        chosen.append((r, r.draw, SMALLEST))
        if r.found_draw is not None and r.found_draw != r.draw:
            chosen.append((r, r.found_draw, FOUND))
    closest: dict[str, Result] = {}
    for r in results:
        if r.status != "pass" or r.worst_draw is None or not math.isfinite(r.worst_ratio):
            continue
        if r.property not in AGAINST_THE_ORACLE:  # its ratio is not of what is pictured
            continue
        best = closest.get(r.encoding)
        if best is None or r.worst_ratio > best.worst_ratio:
            closest[r.encoding] = r
    for r in closest.values():
        assert r.worst_draw is not None
        chosen.append((r, r.worst_draw, CLOSEST))
    return chosen


def draw_pictures(
    results: Sequence[Result], implementation: Callable[[Result], Any]
) -> list[Picture]:
    """The pictures of :func:`pictured`'s inputs; ``implementation`` gives the
    implementation (or target) that produced a result, run again on its input."""
    found = []
    for result, draw, kind in pictured(results):
        try:
            impl = implementation(result)
        except Exception as exc:  # an implementation that cannot be rebuilt: say so
            found.append(Picture(result, draw, kind, note=f"{exc}"))
            continue
        found.append(picture(result, impl, draw, kind))
        if kind == SMALLEST:
            larger = grown(draw, getattr(impl, "restriction", None))
            if larger is not None:
                found.append(picture(result, impl, larger, GROWN))
    return found


def picture(result: Result, impl: Any, draw: Draw, kind: str) -> Picture:
    """``impl`` run on ``draw`` as ``result``'s property builds its arguments, in its dtype,
    compared with the oracle and drawn; a note instead when the oracle refuses the input."""
    from relpos.equivalence.pictures import case_errors, figure, png, summary

    shown = Picture(result, draw, kind)
    try:
        case = case_errors(result.property, impl, result.dtype, draw)
    except Exception as exc:  # the oracle refused the input: say so in the page
        shown.note = f"could not be pictured: {type(exc).__name__}: {exc}"
    else:
        shown.png = png(figure(case))
        shown.note = case.note
        shown.worst = dict(summary(case))
    return shown


#: The size a small failing input is grown to (queries; memory where it had some), so that
#: the pattern of its errors shows.
GROWN_QLEN = 16
GROWN_MLEN = 8


def grown(draw: Draw, restriction: Any = None) -> Draw | None:
    """``draw`` with GROWN_QLEN queries (and GROWN_MLEN memory positions where it had
    memory), the rest (options, mask kind, values, seed) kept; None when it is that large
    already, or when the target's restriction or the spec does not admit it."""
    from dataclasses import replace

    from relpos.spec import ArgumentError, validate

    dims = dict(draw.dims)
    if dims["qlen"] >= GROWN_QLEN:
        return None
    dims["qlen"] = GROWN_QLEN
    if dims.get("mlen", 0):
        dims["mlen"] = max(dims["mlen"], GROWN_MLEN)
    larger = replace(draw, dims=dims)
    if restriction is not None and not restriction.admits(larger):
        return None
    try:
        validate(draw.encoding, larger.arguments("float64"), check_dtypes=False)
    except (ArgumentError, ValueError):
        return None
    return larger


# -- the page ----------------------------------------------------------------------------

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 120em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.45em; text-align: left; }
th { background: #f2f2f2; }
td.cell { font-family: monospace; white-space: nowrap; }
td.cell a { color: inherit; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em;
      white-space: pre-wrap; }
img { max-width: 100%; border: 1px solid #ddd; }
.legend span { display: inline-block; padding: 0.2em 0.6em; font-family: monospace;
               font-size: 0.8em; border: 1px solid #ccc; }
.meta td:first-child { font-weight: bold; }
.failed { color: #b00020; } .passed { color: #1b5e20; }
"""

#: Why a failure of each status that is not a wrong value has no pictures.
_WHY_NO_PICTURES = {
    "error": "the implementation raised, so there are no values to compare",
    "crash": "the target crashed its worker process, and would again",
    "timeout": "the target hung, and would again",
}

#: Cells of checks that did not produce a wrong value but raised, hung or crashed.
_RAISED_COLOUR = "#6a1b9a"
_SKIP_COLOUR = "#eeeeee"


def _colour(ratio: float) -> str:
    """A cell's colour for its worst error / bound: green far below the bound, yellow at it,
    red beyond (logarithmic from 1e-3 to 1e3)."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm, to_hex

    norm = LogNorm(vmin=1e-3, vmax=1e3, clip=True)
    value = 1e3 if math.isinf(ratio) or math.isnan(ratio) else max(ratio, 1e-3)
    return str(to_hex(colormaps["RdYlGn_r"](norm(value))))


def _text_colour(background: str) -> str:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(background)
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "#fff"


def _anchor(r: Result) -> str:
    return f"{r.implementation}-{r.property}-{r.dtype}"


def _matrix(results: Sequence[Result]) -> str:
    impls = list(dict.fromkeys(r.implementation for r in results))
    props = list(dict.fromkeys(r.property for r in results))
    rows = ["<table><tr><th>implementation</th>"]
    rows += [f"<th>{html.escape(p)}</th>" for p in props]
    rows.append("</tr>")
    for i in impls:
        rows.append(f"<tr><th>{html.escape(i)}</th>")
        for p in props:
            group = [r for r in results if r.implementation == i and r.property == p]
            rows.append(_matrix_cell(group))
        rows.append("</tr>")
    rows.append("</table>")
    legend = " ".join(
        f'<span style="background:{_colour(x)};color:{_text_colour(_colour(x))}">{x:g}</span>'
        for x in (1e-3, 1e-2, 0.1, 1, 10, 100, 1e3)
    )
    legend += (
        f' <span style="background:{_RAISED_COLOUR};color:#fff">raised, hung or crashed</span>'
        f' <span style="background:{_SKIP_COLOUR}">skipped</span>'
    )
    return (
        "\n".join(rows)
        + '<p class="legend">worst error / bound (&le; 1 passes): '
        + legend
        + "</p><p>A cell: status, examples over every dtype, worst error as a fraction of its "
        "bound. Hover for each dtype; a failed cell links to its failure.</p>"
    )


def _matrix_cell(group: list[Result]) -> str:
    if not group:
        return "<td></td>"
    ran = [r for r in group if r.status != "skip"]
    text = cell(group)
    if not ran:
        background = _SKIP_COLOUR
    elif any(r.status in FAILED and r.status != "fail" for r in ran):
        background = _RAISED_COLOUR
    else:
        background = _colour(max(r.worst_ratio for r in ran))
    tip = "\n".join(
        f"{r.dtype}: {r.status}, {r.examples} examples, worst {r.worst_ratio:.3g}"
        + (f" ({r.message.splitlines()[0]})" if r.status == "skip" and r.message else "")
        for r in group
    )
    bad = [r for r in group if r.status in FAILED]
    shown = html.escape(text)
    if bad:
        shown = f'<a href="#{html.escape(_anchor(bad[0]))}">{shown}</a>'
    return (
        f'<td class="cell" style="background:{background};color:{_text_colour(background)}" '
        f'title="{html.escape(tip)}">{shown}</td>'
    )


def _coverage(results: Sequence[Result]) -> str:
    merged = coverage_by_encoding(results)
    head = (
        "<tr><th>encoding</th><th>examples</th><th>qlen &le;</th><th>klen &le;</th>"
        "<th>positions &le;</th><th>n_head</th><th>d_head &le;</th><th>regions</th></tr>"
    )
    rows = [
        f"<tr><td>{html.escape(name)}</td><td>{c.examples}</td><td>{c.qlen}</td>"
        f"<td>{c.klen}</td><td>{c.position}</td>"
        f"<td>{html.escape(_heads(c.n_head))}</td><td>{c.d_head}</td>"
        f"<td>{html.escape(', '.join(sorted(c.regions)))}</td></tr>"
        for name, c in merged.items()
    ]
    return (
        f"<p>{html.escape(summary(merged))}</p><table>{head}{''.join(rows)}</table>"
        if merged
        else "<p>no example ran</p>"
    )


def _heads(heads: Iterable[int]) -> str:
    ordered = sorted(heads)
    if not ordered:
        return "-"
    return f"{ordered[0]}-{ordered[-1]} ({len(ordered)} distinct)"


def _figure(picture: Picture) -> str:
    parts = []
    if picture.worst:
        said = ", ".join(f"{name} {value:.3g}" for name, value in picture.worst.items())
        parts.append(f"<p>Largest error / bound on this input: {html.escape(said)}.</p>")
    if picture.note:
        parts.append(f"<p>{html.escape(picture.note)}</p>")
    if picture.png:
        data = base64.b64encode(picture.png).decode("ascii")
        alt = f"error / bound of {picture.result.implementation} against the oracle"
        parts.append(
            f'<img class="errors" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        )
    return "\n".join(parts)


def _failure(r: Result, pictures: Sequence[Picture]) -> str:
    parts = [
        f'<section class="failure" id="{html.escape(_anchor(r))}">',
        f"<h3>{r.status.upper()}: {html.escape(r.implementation)} {html.escape(r.property)} "
        f"{html.escape(r.dtype)}</h3>",
        f"<pre>{html.escape(r.message)}</pre>",
    ]
    if r.repro:
        parts.append(f"<p>Repro:</p><pre>{html.escape(r.repro)}</pre>")
    if pictures and r.property not in AGAINST_THE_ORACLE:
        parts.append(
            f"<p>{html.escape(r.property)} compares more than this input's one call with the "
            "oracle (see the message); the pictures show that call, which may be right on its "
            "own.</p>"
        )
    for picture in pictures:
        parts.append(
            f"<h4>{html.escape(picture.kind[0].upper() + picture.kind[1:])}</h4>"
            f"<pre>{html.escape(repr(picture.draw))}</pre>"
            "<p>Run again and compared with the oracle element by element (error / bound; the "
            "dashed line and the white tick on the colour bar are the bound).</p>"
        )
        parts.append(_figure(picture))
    if not pictures and r.status in _WHY_NO_PICTURES:
        parts.append(f"<p>No pictures: {_WHY_NO_PICTURES[r.status]}.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _meta(
    results: Sequence[Result], budget: str, seed: int | None, subject: str, environment: Any
) -> str:
    from relpos.spec import SPEC_VERSION

    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    versions = ", ".join(
        f"{k} {v}" for k, v in environment.items() if v and k not in ("platform", "python")
    )
    rows = [
        ("checked", subject),
        ("outcome", ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))),
        ("budget", budget),
        ("seed", "derandomized" if seed is None else f"{seed} (--seed {seed} replays this run)"),
        ("spec", SPEC_VERSION),
        ("environment", f"Python {environment['python']}, {environment['platform']}; {versions}"),
        ("command", " ".join(sys.argv)),
        ("written", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    cells = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f'<table class="meta">{cells}</table>'


def render(
    results: Sequence[Result],
    pictures: Sequence[Picture],
    *,
    budget: str,
    seed: int | None,
    subject: str,
    diagnosis: str = "",
) -> str:
    """The page for these results and pictures (see the module docstring)."""
    from relpos.equivalence.report import environment

    bad = [r for r in results if r.status in FAILED]
    of_failure: dict[int, list[Picture]] = {}
    for p in pictures:
        if p.failed:
            of_failure.setdefault(id(p.result), []).append(p)
    closest = [p for p in pictures if not p.failed]
    verdict = (
        f'<p class="failed">{len(bad)} of {len(results)} checks failed.</p>'
        if bad
        else f'<p class="passed">Every one of {len(results)} checks passed or was skipped.</p>'
    )
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>relpos check: {html.escape(subject)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>relpos check: {html.escape(subject)}</h1>",
        verdict,
        _meta(results, budget, seed, subject, environment()),
        "<h2>Conformance matrix</h2>",
        _matrix(results),
        "<h2>Coverage</h2>",
        _coverage(results),
    ]
    if bad:
        body.append(f'<h2 id="failures">Failures ({len(bad)})</h2>')
        if diagnosis:
            body.append(f"<p>Diagnosis:</p><pre>{html.escape(diagnosis)}</pre>")
        body += [_failure(r, of_failure.get(id(r), [])) for r in bad]
    if closest:
        body.append('<h2 id="closest">Closest to the bound</h2>')
        body.append(
            "<p>In each encoding, the passing input whose error came closest to its bound, "
            "compared with the oracle element by element.</p>"
        )
        for p in closest:
            r = p.result
            body.append(
                f"<h3>{html.escape(r.implementation)} {html.escape(r.property)} "
                f"{html.escape(r.dtype)}: {r.worst_ratio:.3g} of the bound</h3>"
            )
            body.append(f"<pre>{html.escape(repr(p.draw))}</pre>")
            body.append(_figure(p))
    body.append("</body></html>")
    return "\n".join(body) + "\n"


def write_html(
    path: str | Path,
    results: Sequence[Result],
    implementation: Callable[[Result], Any],
    *,
    budget: str,
    seed: int | None,
    subject: str,
    diagnosis: str = "",
) -> None:
    """Picture the results (:func:`draw_pictures`) and write the page to ``path``."""
    pictures = draw_pictures(results, implementation)
    page = render(results, pictures, budget=budget, seed=seed, subject=subject, diagnosis=diagnosis)
    Path(path).write_text(page, encoding="utf-8")
