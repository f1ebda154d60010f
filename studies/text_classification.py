"""Study ``text-classification``: Shaw's relative positions (key and value tables) against
absolute sinusoidal positions, no positions and the other encodings, on MR sentence polarity
and TREC question classes; accuracy on the fixed test split, at the epoch of best validation
accuracy, as mean and standard deviation over seeds."""

from __future__ import annotations

import json
import time
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
from relpos.studies.runs import progress, run_once

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


def _encode(
    rows: Sequence[tuple[str, int]], vocab: dict[str, int], max_len: int
) -> list[tuple[list[int], int]]:
    return [([vocab.get(t, 1) for t in tokenize(text)][:max_len] or [1], y) for text, y in rows]


def _batches(examples: Sequence[tuple[list[int], int]], size: int, rng: np.random.Generator | None):
    order = np.arange(len(examples)) if rng is None else rng.permutation(len(examples))
    for start in range(0, len(order), size):
        chosen = [examples[i] for i in order[start : start + size]]
        width = max(len(ids) for ids, _ in chosen)
        ids = torch.zeros(len(chosen), width, dtype=torch.long)
        for row, (tokens, _) in enumerate(chosen):
            ids[row, : len(tokens)] = torch.tensor(tokens)
        yield ids, torch.tensor([y for _, y in chosen])


def _accuracy(model: Classifier, examples, batch: int) -> float:
    model.eval()
    right = 0
    with torch.no_grad():
        for ids, labels in _batches(examples, batch, None):
            right += int((model(ids).argmax(-1) == labels).sum())
    return right / len(examples)


def train_one(data: Dataset, scheme: str, seed: int, settings: Settings) -> dict[str, Any]:
    """Train one classifier; its metrics per epoch, and the test accuracy at the epoch of
    best validation accuracy."""
    with one_thread():
        return _train(data, scheme, seed, settings)


def _train(data: Dataset, scheme: str, seed: int, settings: Settings) -> dict[str, Any]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    rows = data.train[: settings.train_limit]
    vocab = _vocabulary(rows, settings.vocab)
    train = _encode(rows, vocab, settings.max_len)
    validation = _encode(data.validation, vocab, settings.max_len)
    test = _encode(data.test, vocab, settings.max_len)
    model = Classifier(
        len(vocab) + 2,
        len(data.classes),
        scheme,
        d_model=settings.d_model,
        n_head=settings.n_head,
        layers=settings.layers,
        max_len=settings.max_len,
        clip=settings.clip,
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
    epochs, best = [], None
    start = time.perf_counter()
    tokens = 0
    for epoch in range(settings.epochs):
        model.train()
        losses = []
        for ids, labels in _batches(train, settings.batch, rng):
            loss = torch.nn.functional.cross_entropy(model(ids), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            tokens += int((ids != 0).sum())
        row = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "first_loss": losses[0],
            "validation_accuracy": _accuracy(model, validation, settings.batch),
            "test_accuracy": _accuracy(model, test, settings.batch),
        }
        epochs.append(row)
        if best is None or row["validation_accuracy"] > best["validation_accuracy"]:
            best = row
    assert best is not None
    seconds = time.perf_counter() - start
    return {
        "seed": seed,
        "data": data.describe(),
        "vocabulary": len(vocab),
        "epochs": epochs,
        "best_epoch": best["epoch"],
        "test_accuracy": best["test_accuracy"],
        "seconds": seconds,
        "train_tokens_per_second": tokens / seconds,
    }


def run(
    out: Path,
    *,
    quick: bool = False,
    seeds: int = 3,
    datasets: Sequence[str] = DATASETS,
    schemes: Sequence[str] = SCHEMES,
    settings: Settings | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Every (dataset, scheme, seed) run, trained or read back (:func:`run_once`); writes
    ``OUT/text-classification/results.json`` (every run), ``results.md`` (the table) and
    ``accuracy.png`` and ``.svg`` (the figure)."""
    chosen = settings or (QUICK if quick else DEFAULT)
    # as JSON reads it back (lists, not tuples), so that a finished run is recognised
    config = {**asdict(chosen), "clip": list(chosen.clip), "quick": quick}
    runs, resumed = [], 0
    jobs = [(d, s, seed) for d in datasets for s in schemes for seed in range(seeds)]
    with progress(len(jobs), NAME, show_progress) as bar:
        for name, scheme, seed in jobs:
            data = load(name)
            record, again = run_once(
                out,
                NAME,
                f"{name}/{scheme}/seed{seed}",
                {**config, "dataset": name, "scheme": scheme, "seed": seed},
                partial(train_one, data, scheme, seed, chosen),
            )
            runs.append(record)
            resumed += again
            bar.set_postfix_str(f"{name} {scheme} seed {seed}: {record['test_accuracy']:.3f}")
            bar.update()
    results = {"study": NAME, "config": config, "runs": runs, "resumed": resumed}
    folder = out / NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (folder / "results.md").write_text(table(runs) + "\n")
    accuracy_bars(accuracies(runs), folder / "accuracy", "text classification: test accuracy")
    return results


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
            spread = f" ± {np.std(got, ddof=1):.1f}" if len(got) > 1 else ""
            cells.append(f"{np.mean(got):.1f}{spread} (n = {len(got)})" if got else "-")
        lines.append(f"| {scheme} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
