"""Study ``text-classification``: Shaw's relative positions (key and value tables) against
absolute sinusoidal positions, no positions and the other encodings, on MR sentence polarity
and TREC question classes; accuracy on the fixed test split, at the epoch of best validation
accuracy, as mean and standard deviation over seeds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from relpos.studies.data import DATASETS, Dataset, load, tokenize
from relpos.studies.model import SCHEMES, Classifier, one_thread
from relpos.studies.plots import accuracy_bars
from relpos.studies.runs import Job, mean_spread, run_all, write_results
from relpos.studies.training import Example, fit

__all__ = ["DEFAULT", "QUICK", "Settings", "accuracies", "run", "table"]

NAME = "text-classification"


@dataclass(frozen=True)
class Settings:
    """What a run trains: the model's size, the tokens per example, the epochs, and at most
    ``train_limit`` training examples (None: all)."""

    epochs: int = 4
    train_limit: int | None = None
    d_model: int = 64
    n_head: int = 4
    layers: int = 2
    max_len: int = 64
    batch: int = 64
    lr: float = 1e-3
    vocab: int = 10000
    clip: tuple[int, int] = (-16, 16)


DEFAULT = Settings()
QUICK = Settings(epochs=1, train_limit=1500)


def _vocabulary(rows: Sequence[tuple[str, int]], size: int) -> dict[str, int]:
    """Tokens seen twice or more in the training split, most frequent first: ids from 2
    (0 padding, 1 unknown)."""
    counts = Counter(token for text, _ in rows for token in tokenize(text))
    kept = [t for t, c in counts.most_common(size) if c >= 2]
    return {token: i + 2 for i, token in enumerate(kept)}


def _encode(rows: Sequence[tuple[str, int]], vocab: dict[str, int], max_len: int) -> list[Example]:
    return [([vocab.get(t, 1) for t in tokenize(text)][:max_len] or [1], y) for text, y in rows]


def train_one(
    data: Dataset, scheme: str, seed: int, settings: Settings, *, tables: str = "both"
) -> dict[str, Any]:
    """Train one classifier; its metrics per epoch, and the test accuracy at the epoch of
    best validation accuracy. ``tables``: Shaw's tables (see :class:`Classifier`)."""
    with one_thread():
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        rows = data.train[: settings.train_limit]
        vocab = _vocabulary(rows, settings.vocab)
        train, validation, test = (
            _encode(part, vocab, settings.max_len) for part in (rows, data.validation, data.test)
        )
        model = Classifier(
            len(vocab) + 2,
            len(data.classes),
            scheme,
            d_model=settings.d_model,
            n_head=settings.n_head,
            layers=settings.layers,
            max_len=settings.max_len,
            clip=settings.clip,
            tables=tables,
        )
        metrics = fit(
            model,
            (train, validation, test),
            epochs=settings.epochs,
            batch=settings.batch,
            lr=settings.lr,
            rng=rng,
        )
    return {"seed": seed, "data": data.describe(), "vocabulary": len(vocab), **metrics}


def train_named(
    dataset: str, scheme: str, seed: int, settings: Settings, *, tables: str = "both"
) -> dict[str, Any]:
    """:func:`train_one` on the dataset of that name: what a worker process is sent."""
    return train_one(load(dataset), scheme, seed, settings, tables=tables)


def config_of(settings: Settings, quick: bool) -> dict[str, Any]:
    """``settings`` as a run's JSON records them (lists, not tuples, as JSON reads them
    back, so that a finished run is recognised)."""
    return {**asdict(settings), "clip": list(settings.clip), "quick": quick}


def run(
    out: Path,
    *,
    quick: bool = False,
    seeds: int = 3,
    workers: int = 1,
    datasets: Sequence[str] = DATASETS,
    schemes: Sequence[str] = SCHEMES,
    settings: Settings | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Every (dataset, scheme, seed) run, trained (over ``workers`` processes) or read back
    (:func:`run_all`); writes ``OUT/text-classification/results.json`` (every run),
    ``results.md`` (the table) and ``accuracy.png`` and ``.svg`` (the figure)."""
    chosen = settings or (QUICK if quick else DEFAULT)
    config = config_of(chosen, quick)
    jobs = [
        Job(
            f"{name}/{scheme}/seed{seed}",
            {**config, "dataset": name, "scheme": scheme, "seed": seed},
            partial(train_named, name, scheme, seed, chosen),
        )
        for name in datasets
        for scheme in schemes
        for seed in range(seeds)
    ]
    runs, resumed = run_all(
        out, NAME, jobs, workers=workers, show_progress=show_progress, label=_label
    )
    results, folder = write_results(out, NAME, config, runs, resumed, table(runs))
    accuracy_bars(accuracies(runs), folder / "accuracy", "text classification: test accuracy")
    return results


def _label(record: dict[str, Any]) -> str:
    return f"{record['name']}: {record['test_accuracy']:.3f}"


def accuracies(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Test accuracy (%) of ``runs`` by scheme, then dataset (in the order the runs first
    name them), one value per seed."""
    grouped: dict[str, dict[str, list[float]]] = {}
    datasets = list(dict.fromkeys(r["config"]["dataset"] for r in runs))
    for r in runs:
        row = grouped.setdefault(r["config"]["scheme"], {name: [] for name in datasets})
        row[r["config"]["dataset"]].append(100 * r["test_accuracy"])
    return grouped


def table(runs: Sequence[dict[str, Any]]) -> str:
    """Markdown: test accuracy (%) as mean ± standard deviation over seeds, a row per
    scheme and a column per dataset."""
    grouped = accuracies(runs)
    datasets = list(next(iter(grouped.values())))
    lines = ["| scheme | " + " | ".join(datasets) + " |", "|---|" + "---:|" * len(datasets)]
    for scheme, row in grouped.items():
        cells = []
        for got in row.values():
            cells.append(f"{mean_spread(got)} (n = {len(got)})" if got else "-")
        lines.append(f"| {scheme} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
