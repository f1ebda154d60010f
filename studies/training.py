"""Training and evaluating a classifier over token-id examples, shared by the studies: batches
padded to their longest example (0 is padding), AdamW, accuracy on the validation and test
splits after every epoch, and the test accuracy at the epoch of best validation accuracy.

An example's label is one class (a label per sequence), or a list of one class or
:data:`IGNORED` per token (a label per token, for a model with ``pool="every"``), whose
accuracy counts the labelled tokens."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from relpos.studies.model import Classifier

__all__ = ["IGNORED", "Example", "accuracy", "batches", "fit"]

#: One example: its token ids (no padding) and its label, or its labels per token.
Example = tuple[list[int], int | list[int]]
#: A token's label that neither the loss nor the accuracy counts (and padding's).
IGNORED = -100


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
        if isinstance(chosen[0][1], list):
            labels = torch.full((len(chosen), width), IGNORED, dtype=torch.long)
            for row, (_, per_token) in enumerate(chosen):
                labels[row, : len(per_token)] = torch.tensor(per_token)
            yield ids, labels
        else:
            yield ids, torch.tensor([y for _, y in chosen])


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(
        logits.flatten(0, -2), labels.flatten(), ignore_index=IGNORED
    )


def accuracy(model: Classifier, examples: Sequence[Example], batch: int) -> float:
    """The fraction of ``examples`` (of their labelled tokens, for labels per token) whose
    label is the model's most likely class."""
    model.eval()
    right = total = 0
    with torch.no_grad():
        for ids, labels in batches(examples, batch, None):
            counted = labels != IGNORED
            right += int(((model(ids).argmax(-1) == labels) & counted).sum())
            total += int(counted.sum())
    return right / total


def fit(
    model: Classifier,
    splits: tuple[Sequence[Example], Sequence[Example], Sequence[Example] | None],
    *,
    epochs: int,
    batch: int,
    lr: float,
    rng: np.random.Generator,
    after_epoch: Callable[[bool], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` on the first of ``splits`` (train, validation, test) with AdamW; its
    metrics per epoch, the best epoch by validation accuracy and that epoch's test accuracy
    (none without a test split), the seconds taken and the training tokens per second.
    ``after_epoch(better)`` is called after each epoch: whether it is the best so far."""
    train, validation, test = splits
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    rows, best = [], None
    start = time.perf_counter()
    tokens = 0
    for epoch in range(epochs):
        model.train()
        losses = []
        for ids, labels in batches(train, batch, rng):
            loss = _loss(model(ids), labels)
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
        }
        if test is not None:
            row["test_accuracy"] = accuracy(model, test, batch)
        rows.append(row)
        better = best is None or row["validation_accuracy"] > best["validation_accuracy"]
        if better:
            best = row
        if after_epoch is not None:
            after_epoch(better)
    assert best is not None  # epochs >= 1
    seconds = time.perf_counter() - start
    found: dict[str, Any] = {"epochs": rows, "best_epoch": best["epoch"]}
    if test is not None:
        found["test_accuracy"] = best["test_accuracy"]
    return {**found, "seconds": seconds, "train_tokens_per_second": tokens / seconds}
