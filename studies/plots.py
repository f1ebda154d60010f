"""Figures of a study's results, with matplotlib (the ``studies`` extra), as PNG and SVG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["accuracy_against", "accuracy_bars"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError as missing:
        raise ModuleNotFoundError(
            "the studies draw their figures with matplotlib: "
            "pip install 'relpos-conformance[studies]'"
        ) from missing
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def accuracy_bars(
    accuracies: Mapping[str, Mapping[str, Sequence[float]]], path: Path, title: str
) -> list[Path]:
    """Test accuracy (%) per scheme, ``accuracies[scheme][dataset]`` one value per seed
    (bars: the mean; error bars: the standard deviation), one group per dataset; written to
    ``path`` with the suffixes .png and .svg."""
    plt = _pyplot()
    datasets = list(next(iter(accuracies.values())))
    width = 0.8 / len(accuracies)
    figure, axes = plt.subplots(figsize=(1.2 + 1.1 * len(datasets) * len(accuracies) / 2, 3.6))
    for i, (scheme, row) in enumerate(accuracies.items()):
        means = [np.mean(got) for got in row.values()]
        spreads = [np.std(got, ddof=1) if len(got) > 1 else 0.0 for got in row.values()]
        at = np.arange(len(datasets)) + (i - (len(accuracies) - 1) / 2) * width
        axes.bar(at, means, width, yerr=spreads, capsize=3, label=scheme)
    axes.set_xticks(np.arange(len(datasets)), datasets)
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title)
    low = min(min(got) for row in accuracies.values() for got in row.values() if got)
    axes.set_ylim(max(0.0, low - 10), 100)
    axes.legend(fontsize="small", ncols=3)
    return _save(plt, figure, path)


def _save(plt: Any, figure: Any, path: Path) -> list[Path]:
    figure.tight_layout()
    written = []
    for suffix in (".png", ".svg"):
        target = path.with_suffix(suffix)
        figure.savefig(target, dpi=150)
        written.append(target)
    plt.close(figure)
    return written


def accuracy_against(
    panels: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
    path: Path,
    title: str,
    *,
    xlabel: str,
    ylabel: str = "test accuracy (%)",
    limits: tuple[float, float] | None = (0, 100),
) -> list[Path]:
    """A measure (test accuracy in % by default) against a setting, one panel per entry of
    ``panels`` and one line per entry of a panel, ``panels[panel][line][setting]`` one value
    per seed (points: the mean; error bars: the standard deviation); the settings are
    categories, in the order the lines first name them. ``limits``: the y axis's (None: the
    data's). Written to ``path`` with the suffixes .png and .svg."""
    plt = _pyplot()
    figure, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False, sharey=True
    )
    for ax, (name, lines) in zip(axes[0], panels.items(), strict=True):
        settings = list(dict.fromkeys(s for line in lines.values() for s in line))
        for label, line in lines.items():
            at = [settings.index(s) for s in line]
            means = [np.mean(got) for got in line.values()]
            spreads = [np.std(got, ddof=1) if len(got) > 1 else 0.0 for got in line.values()]
            ax.errorbar(at, means, yerr=spreads, marker="o", capsize=3, label=label)
        ax.set_xticks(range(len(settings)), settings, rotation=30, ha="right")
        ax.set_xlabel(xlabel)
        ax.set_title(name, fontsize="medium")
        ax.grid(alpha=0.3)
    labels = [list(lines) for lines in panels.values()]
    if len(panels) > 1 and all(named == labels[0] for named in labels):
        # the same lines in every panel: one legend, beside the last, over no data
        axes[0][-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
    else:
        for ax in axes[0]:
            ax.legend(fontsize="small")
    axes[0][0].set_ylabel(ylabel)
    if limits is not None:
        axes[0][0].set_ylim(*limits)
    figure.suptitle(title)
    return _save(plt, figure, path)
