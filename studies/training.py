"""Training and evaluating a classifier over token-id examples, shared by the studies: batches
padded to their longest example (0 is padding), AdamW, accuracy on the validation and test
splits after every epoch, and the test accuracy at the epoch of best validation accuracy."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from relpos.studies.model import Classifier

__all__ = ["Example", "accuracy", "batches", "fit"]

#: One example: its token ids (no padding) and its label.
Example = tuple[list[int], int]


def batches(
    examples: Sequence[Example], size: int, rng: np.random.Generator | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(ids, labels) of ``size`` examples at a time, in the order of a permutation drawn from
    ``rng`` (None: in order), each batch padded with 0 to its longest example."""
    order = np.arange(len(examples)) if rng is None else rng.permutation(len(examples))
    for start in range(0, len(order), size):
        chosen = [examples[i] for i in order[start : start + size]]
        width = max(len(ids) for ids, _ in chosen)
        ids = torch.zeros(len(chosen), width, dtype=torch.long)
        for row, (tokens, _) in enumerate(chosen):
            ids[row, : len(tokens)] = torch.tensor(tokens)
        yield ids, torch.tensor([y for _, y in chosen])


def accuracy(model: Classifier, examples: Sequence[Example], batch: int) -> float:
    """The fraction of ``examples`` whose label is the model's most likely class."""
    model.eval()
    right = 0
    with torch.no_grad():
        for ids, labels in batches(examples, batch, None):
            right += int((model(ids).argmax(-1) == labels).sum())
    return right / len(examples)


def fit(
    model: Classifier,
    splits: tuple[Sequence[Example], Sequence[Example], Sequence[Example]],
    *,
    epochs: int,
    batch: int,
    lr: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Train ``model`` on the first of ``splits`` (train, validation, test) with AdamW; its
    metrics per epoch, the best epoch by validation accuracy and that epoch's test accuracy,
    the seconds taken and the training tokens per second."""
    train, validation, test = splits
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    rows, best = [], None
    start = time.perf_counter()
    tokens = 0
    for epoch in range(epochs):
        model.train()
        losses = []
        for ids, labels in batches(train, batch, rng):
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
            "validation_accuracy": accuracy(model, validation, batch),
            "test_accuracy": accuracy(model, test, batch),
        }
        rows.append(row)
        if best is None or row["validation_accuracy"] > best["validation_accuracy"]:
            best = row
    assert best is not None  # epochs >= 1
    seconds = time.perf_counter() - start
    return {
        "epochs": rows,
        "best_epoch": best["epoch"],
        "test_accuracy": best["test_accuracy"],
        "seconds": seconds,
        "train_tokens_per_second": tokens / seconds,
    }
