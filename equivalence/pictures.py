"""Pictures of where an implementation differs from the oracle on one input.

For one check input (a property, an implementation, a dtype and a :class:`Draw`), the
implementation runs once and the oracle evaluates the same arguments; every element's error
as a fraction of its bound (:func:`~relpos.equivalence.compare.error_ratio`) is then drawn

- as a heatmap over (query i, key j) for scores and probabilities, and over (query i,
  feature) for outputs, each cell the largest over batch and heads;
- against the distance pos_j - pos_i;
- against the table index each pair reads (a clip row, a bucket, a clamped distance), for
  the encodings that read one (:meth:`relpos.spec.Encoding.table_index`);
- per head.

The shapes say what is wrong: a band off the diagonal is an offset, one triangle is a sign or
a direction, a flat run past some distance is a clip. ``relpos check --html`` and
``relpos explain`` draw them; matplotlib (the ``report`` extra) renders them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from relpos.equivalence.compare import error_ratio
from relpos.equivalence.draws import Draw

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["CaseErrors", "Quantity", "case_errors", "figure", "png", "require_matplotlib"]

#: The quantities compared, in the order drawn.
QUANTITIES = ("scores", "probs", "out")

#: Ratios below this are drawn as this (the bottom of the logarithmic colour scale).
FLOOR = 1e-4
#: The top of the colour scale at most; larger ratios (and inf) are drawn in the over colour.
CEILING = 1e12


def require_matplotlib(flag: str) -> None:
    """Raise ImportError naming ``flag`` and the extra to install when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"{flag} draws its pictures with matplotlib, which is not installed: "
            "pip install 'relpos-conformance[report]'"
        ) from exc


@dataclass
class Quantity:
    """One compared quantity: its name and every element's error / bound, shaped like the
    value ((bsz, n_head, qlen, klen) for scores and probs, (bsz, n_head, qlen, d) for out)."""

    name: str
    ratio: np.ndarray
    #: Which elements the oracle lets through (False: a masked pair), shaped like ``ratio``.
    visible: np.ndarray | None = None

    def shown(self) -> np.ndarray:
        """The ratio, NaN where a masked pair is exactly as the oracle has it (drawn grey),
        so that masked pairs are not read as well computed ones."""
        if self.visible is None:
            return self.ratio
        return np.where(~self.visible & (self.ratio == 0), np.nan, self.ratio)


@dataclass
class CaseErrors:
    """The errors of one input, with the positions that place them."""

    title: str
    quantities: list[Quantity]
    #: pos_j - pos_i of every pair, (B, qlen, klen), B in {1, bsz}.
    distance: np.ndarray
    #: pos_i of every query, (B, qlen).
    query_position: np.ndarray
    #: The named table index of every pair, as the spec reads it, or None.
    index: tuple[str, np.ndarray] | None
    #: Why nothing could be compared (the implementation raised), or "".
    note: str = ""

    @property
    def worst(self) -> float:
        return max((float(np.max(q.ratio, initial=0.0)) for q in self.quantities), default=0.0)


def _arguments(prop: str, draw: Draw, dtype: str) -> dict[str, Any]:
    if prop == "index_tables":  # the probe's own arguments, as the property ran them
        from relpos.equivalence.index_tables import probe_arguments

        return probe_arguments(draw)
    return draw.arguments(dtype)


def case_errors(prop: str, impl: Any, dtype: str, draw: Draw) -> CaseErrors:
    """Run ``impl`` on ``draw`` (as property ``prop`` builds its arguments) in ``dtype`` and
    compare with the oracle element by element. An implementation that raises gives no
    quantities and a ``note`` saying what it raised."""
    from relpos.equivalence.properties import run_implementation
    from relpos.equivalence.reference import expected
    from relpos.spec import _conventions as cv
    from relpos.spec import get_encoding

    args = _arguments(prop, draw, dtype)
    enc = get_encoding(draw.encoding)
    problem = enc.validate(args, check_dtypes=False)
    q_pos, k_pos = cv.positions(problem)
    title = f"{getattr(impl, 'id', impl)} in {dtype}: {prop}, {draw!r}"
    case = CaseErrors(
        title,
        [],
        k_pos[:, None, :] - q_pos[:, :, None],
        q_pos,
        enc.table_index(problem),
    )
    want = expected(draw.encoding, args)
    try:
        got = run_implementation(impl, args, dtype)
    except Exception as exc:
        case.note = f"the implementation raised {type(exc).__name__}: {exc}"
        return case
    bounds = want.bounds(dtype)
    for name in QUANTITIES:
        value = getattr(got, name)
        if value is None:
            continue
        try:
            ratio = error_ratio(value, getattr(want, name), getattr(bounds, name))
        except ValueError as exc:
            case.note += f"{name}: {exc}. "
            continue
        visible = None if name == "out" else np.broadcast_to(want.mask, ratio.shape)
        case.quantities.append(Quantity(name, ratio, visible))
    return case


def _largest_by(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``keys`` and the largest value at each (both flat), NaN values left out."""
    keys, values = keys.ravel(), values.ravel()
    kept = ~np.isnan(values)
    keys, values = keys[kept], values[kept]
    distinct, where = np.unique(keys, return_inverse=True)
    largest = np.full(distinct.shape, -np.inf)
    np.maximum.at(largest, where, values)
    return distinct, largest


def _shown(ratio: np.ndarray, top: float) -> np.ndarray:
    """Ratios as drawn: at least :data:`FLOOR`, and anything above the scale's top (inf
    included) just above it, in the over colour; NaN stays NaN (masked, drawn grey)."""
    with np.errstate(invalid="ignore"):
        return np.where(ratio > top, top * 2, np.maximum(ratio, FLOOR))


def _against(ax: Any, keys: np.ndarray, ratio: np.ndarray, top: float, label: str) -> None:
    from matplotlib.ticker import MaxNLocator

    x, y = _largest_by(keys, ratio)
    beyond = y > top
    ax.plot(x[~beyond], np.maximum(y[~beyond], FLOOR), ".", markersize=4, color="tab:blue")
    if beyond.any():
        ax.plot(x[beyond], np.full(beyond.sum(), top * 2), "^", markersize=4, color="red")
        ax.text(
            0.01,
            0.02,
            "red: beyond the scale, or inf/NaN",
            transform=ax.transAxes,
            fontsize=7,
            va="bottom",
            color="red",
        )
    ax.axhline(1.0, color="tab:red", linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylim(FLOOR / 2, top * 4)
    ax.set_xlabel(label)
    if len(x) <= 10:
        ax.xaxis.set_ticks(x)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("largest error / bound")
    ax.grid(True, alpha=0.3)


def figure(case: CaseErrors) -> Figure:
    """The pictures of one case: a row per quantity, with its heatmap, its error against
    distance and against the table index (scores and probs; out against the query's position),
    and its largest error per head. The dashed line is the bound."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    columns = 4 if case.index is not None else 3
    rows = max(len(case.quantities), 1)
    fig = Figure(figsize=(4.2 * columns, 3.4 * rows + 0.6), layout="constrained")
    fig.suptitle(_wrapped(case.title), fontsize=8, ha="left", x=0.01)
    if not case.quantities:
        ax = fig.add_subplot(1, 1, 1)
        ax.axis("off")
        ax.text(0.5, 0.5, case.note or "nothing to compare", ha="center", wrap=True)
        return fig
    finite = [q.ratio[np.isfinite(q.ratio)] for q in case.quantities]
    top = min(max(10.0, *(float(f.max(initial=0.0)) for f in finite)), CEILING)
    norm = LogNorm(vmin=FLOOR, vmax=top)
    axes = fig.subplots(rows, columns, squeeze=False)
    for row, quantity in zip(axes, case.quantities, strict=False):
        ratio = quantity.shown()
        with np.errstate(invalid="ignore"):
            per_pair = np.fmax.reduce(ratio, axis=1)  # (bsz, qlen, klen or d); NaN: masked
        heat_values = np.fmax.reduce(per_pair, axis=0)
        heat = row[0].imshow(
            _shown(heat_values, top),
            norm=norm,
            cmap=_colours(),
            aspect="auto",
            interpolation="nearest",
            origin="upper",
        )
        row[0].set_title(
            f"{quantity.name}: error / bound (max over batch, heads; grey: masked)"
            if quantity.visible is not None
            else f"{quantity.name}: error / bound (max over batch, heads)",
            fontsize=9,
        )
        row[0].set_ylabel("query i")
        _integer_ticks(row[0].xaxis, heat_values.shape[1])
        _integer_ticks(row[0].yaxis, heat_values.shape[0])
        row[0].set_xlabel("key j" if quantity.name != "out" else "feature")
        bar = fig.colorbar(heat, ax=row[0], extend="max")
        bar.ax.axhline(1.0, color="white", linewidth=1.5)
        if quantity.name == "out":
            query = np.broadcast_to(case.query_position[:, :, None], per_pair.shape)
            _against(row[1], query, per_pair, top, "query position pos_i")
            row[1].set_title("out against the query's position", fontsize=9)
        else:
            distance = np.broadcast_to(case.distance, per_pair.shape)
            _against(row[1], distance, per_pair, top, "distance pos_j - pos_i")
            row[1].set_title(f"{quantity.name} against distance", fontsize=9)
        column = 2
        if case.index is not None:
            name, index = case.index
            if quantity.name == "out":
                row[column].axis("off")
            else:
                _against(row[column], np.broadcast_to(index, per_pair.shape), per_pair, top, name)
                row[column].set_title(f"{quantity.name} against the {name}", fontsize=9)
            column += 1
        heads = ratio.shape[1]
        per_head = np.nan_to_num(
            np.fmax.reduce(np.moveaxis(ratio, 1, 0).reshape(heads, -1), axis=1), nan=0.0
        )
        ax = row[column]
        ax.bar(np.arange(heads), _shown(per_head, top), color="tab:blue")
        ax.axhline(1.0, color="tab:red", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylim(FLOOR / 2, top * 4)
        ax.set_xlabel("head")
        _integer_ticks(ax.xaxis, heads)
        ax.set_title(f"{quantity.name}: largest error per head", fontsize=9)
    return fig


def _integer_ticks(axis: Any, n: int) -> None:
    """Ticks at whole indices 0..n-1 only (every one up to 16, else spaced)."""
    from matplotlib.ticker import MaxNLocator

    if n <= 16:
        axis.set_ticks(range(n))
    else:
        axis.set_major_locator(MaxNLocator(integer=True))


def _colours() -> Any:
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(over="red", bad="lightgrey")


def _wrapped(text: str, width: int = 160) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def png(fig: Figure, dpi: int = 72) -> bytes:
    """The figure as PNG bytes, reduced to a 256-colour palette (a third of the size, and a
    report holds many)."""
    from PIL import Image  # matplotlib's own dependency

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    palette = Image.open(buffer).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small = io.BytesIO()
    palette.save(small, format="png", optimize=True)
    return small.getvalue()


def summary(case: CaseErrors) -> Mapping[str, float]:
    """The largest error / bound of each quantity."""
    return {q.name: float(np.max(q.ratio, initial=0.0)) for q in case.quantities}
