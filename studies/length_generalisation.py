"""Study ``length-generalisation``: trained at one length, tested up to four times longer.

Every encoding, plus absolute sinusoidal positions and none, on three seeded synthetic tasks,
each a label per token for a causal model (each token sees itself and the tokens before it):

- ``copy``: m distinct symbols, a separator, then the same symbols again; at the separator and
  at each symbol of the second copy, the label is the next symbol to copy. The model finds the
  current symbol in the first copy and reads the one after it (an induction head), at a
  distance that grows with m;
- ``recall`` (associative recall): pairs (key, value), each key bound to one value in the
  sequence; at each key seen before, the label is its value;
- ``flip-flop``: writes, ignores and reads, each write and ignore with a bit; at each read, the
  label is the bit of the last write (Liu et al. 2023), however many ignores came between.

A run trains at length ``train_length`` and reports accuracy over the labelled tokens of test
sequences at each of ``test_lengths``, from a seed of the data's own (never a run's): the same
test sequences for every scheme. Absolute positions get a sinusoid for every test position,
so the longer tests are positions they never trained on, not positions they lack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from relpos.studies.model import SCHEMES, Classifier, one_thread
from relpos.studies.plots import accuracy_against
from relpos.studies.runs import Job, brief, mean_spread, run_all, write_results
from relpos.studies.training import IGNORED, Example, accuracy, fit

__all__ = ["DEFAULT", "QUICK", "TASKS", "LengthSettings", "run", "sequences", "table"]

NAME = "length-generalisation"

#: Token ids: 0 padding (1 unused), 2 copy's separator, tasks' own tokens from 3.
SEPARATOR = 2
_FIRST = 3


def _copy(rng: np.random.Generator, length: int, symbols: int) -> Example:
    m = length // 2
    chosen = (rng.permutation(symbols)[:m] + _FIRST).tolist()
    ids = [*chosen, SEPARATOR, *chosen[:-1]]
    labels = [IGNORED] * m + [s - _FIRST for s in chosen]
    return ids, labels


def _recall(rng: np.random.Generator, length: int, symbols: int) -> Example:
    keys = symbols // 2  # keys from _FIRST, values after them
    binding = rng.integers(0, symbols - keys, size=keys)
    ids, labels, seen = [], [], set()
    for key in rng.integers(0, keys, size=length // 2).tolist():
        ids += [_FIRST + key, _FIRST + keys + int(binding[key])]
        labels += [int(binding[key]) if key in seen else IGNORED, IGNORED]
        seen.add(key)
    return ids, labels


#: flip-flop's instructions: write, ignore (each with a bit) and read, and how often each is
#: drawn after the first instruction, always a write.
_WRITE, _IGNORE, _READ = _FIRST, _FIRST + 2, _FIRST + 4
_FLIP_FLOP = (0.1, 0.7, 0.2)


def _flip_flop(rng: np.random.Generator, length: int, symbols: int) -> Example:
    bit = int(rng.integers(2))
    ids, labels = [_WRITE + bit], [IGNORED]
    for kind in rng.choice(3, size=length - 1, p=_FLIP_FLOP).tolist():
        if kind == 2:
            ids.append(_READ)
            labels.append(bit)
            continue
        drawn = int(rng.integers(2))
        if kind == 0:
            bit = drawn
        ids.append((_WRITE if kind == 0 else _IGNORE) + drawn)
        labels.append(IGNORED)
    return ids, labels


#: Each task: how it makes one sequence of a length, and its number of classes given the
#: symbols.
TASKS: dict[str, tuple[Callable[[np.random.Generator, int, int], Example], Callable[[int], int]]]
TASKS = {
    "copy": (_copy, lambda symbols: symbols),
    "recall": (_recall, lambda symbols: symbols - symbols // 2),
    "flip-flop": (_flip_flop, lambda symbols: 2),
}


@dataclass(frozen=True)
class LengthSettings:
    """The tasks, the training length and the test lengths, the symbols (copy draws up to
    the longest test length's half of them without repeats), the examples, the model and
    its training."""

    tasks: tuple[str, ...] = tuple(TASKS)
    train_length: int = 24
    test_lengths: tuple[int, ...] = (24, 48, 72, 96)
    symbols: int = 64
    train: int = 6000
    validation: int = 300
    test: int = 300
    epochs: int = 3
    d_model: int = 64
    n_head: int = 4
    layers: int = 2
    batch: int = 32
    lr: float = 2e-3


DEFAULT = LengthSettings()
QUICK = LengthSettings(train=1500, test=100, validation=100, epochs=2, test_lengths=(24, 48, 96))


def sequences(
    task: str, length: int, count: int, symbols: int, seed: int | Sequence[int]
) -> tuple[list[Example], str]:
    """``count`` sequences of ``task`` at ``length`` from ``seed``, and their sha256."""
    if task not in TASKS:
        raise ValueError(f"task={task!r} must be one of {', '.join(TASKS)}")
    make = TASKS[task][0]
    if task == "copy" and length // 2 > symbols:
        raise ValueError(f"length={length} needs symbols >= {length // 2}, got {symbols}")
    rng = np.random.default_rng(seed)
    examples = [make(rng, length, symbols) for _ in range(count)]
    digest = hashlib.sha256(json.dumps(examples).encode()).hexdigest()
    return examples, digest


def _data_seed(task: str, split: str, length: int) -> list[int]:
    return [2023, list(TASKS).index(task), ("train", "validation", "test").index(split), length]


def train_task(settings: LengthSettings, task: str, scheme: str, seed: int) -> dict[str, Any]:
    """Train one model on ``task`` at the training length; its metrics per epoch, and its
    accuracy at each test length at the epoch of best validation accuracy (the model of
    that epoch is kept)."""
    n, s = settings.train_length, settings.symbols
    train, train_sha = sequences(task, n, settings.train, s, _data_seed(task, "train", n))
    validation, _ = sequences(task, n, settings.validation, s, _data_seed(task, "validation", n))
    tests = {
        length: sequences(task, length, settings.test, s, _data_seed(task, "test", length))
        for length in settings.test_lengths
    }
    with one_thread():
        torch.manual_seed(seed)
        model = Classifier(
            _FIRST + s,
            TASKS[task][1](s),
            scheme,
            d_model=settings.d_model,
            n_head=settings.n_head,
            layers=settings.layers,
            max_len=max(settings.test_lengths),
            pool="every",
            causal=True,
        )
        kept: dict[str, Any] = {}

        def keep(better: bool) -> None:
            if better:
                kept["state"] = {k: v.clone() for k, v in model.state_dict().items()}

        metrics = fit(
            model,
            (train, validation, None),
            epochs=settings.epochs,
            batch=settings.batch,
            lr=settings.lr,
            rng=np.random.default_rng(seed),
            after_epoch=keep,
        )
        model.load_state_dict(kept["state"])
        by_length = {
            str(length): accuracy(model, examples, settings.batch)
            for length, (examples, _) in tests.items()
        }
    return {
        "seed": seed,
        "data": {
            "task": task,
            "train_sha256": train_sha,
            "test_sha256": {str(length): digest for length, (_, digest) in tests.items()},
        },
        **metrics,
        "accuracy_by_length": by_length,
    }


def run(
    out: Path,
    *,
    quick: bool = False,
    seeds: int = 3,
    workers: int = 1,
    schemes: Sequence[str] = SCHEMES,
    settings: LengthSettings | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Every (task, scheme, seed) run, trained (over ``workers`` processes) or read back;
    writes ``OUT/length-generalisation/results.json`` (every run), ``results.md`` (the table)
    and ``accuracy-by-length.png`` and ``.svg`` (the figure)."""
    chosen = settings or (QUICK if quick else DEFAULT)
    unknown = [t for t in chosen.tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"task={unknown[0]!r} must be one of {', '.join(TASKS)}")
    config = {**json.loads(json.dumps(asdict(chosen))), "quick": quick}
    jobs = [
        Job(
            f"{task}/{scheme}/seed{seed}",
            {**config, "task": task, "scheme": scheme, "seed": seed},
            partial(train_task, chosen, task, scheme, seed),
        )
        for task in chosen.tasks
        for scheme in schemes
        for seed in range(seeds)
    ]
    runs, resumed = run_all(
        out,
        NAME,
        jobs,
        workers=workers,
        show_progress=show_progress,
        label=lambda r: f"{r['name']}: " + brief(r["accuracy_by_length"], 3),
    )
    results, folder = write_results(out, NAME, config, runs, resumed, table(runs))
    accuracy_against(
        accuracies(runs),
        folder / "accuracy-by-length",
        f"Trained at length {chosen.train_length}: accuracy against test length",
        xlabel="test length",
    )
    return results


def accuracies(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Accuracy (%) of ``runs`` by task, scheme and test length, one value per seed."""
    grouped: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in runs:
        line = grouped.setdefault(r["config"]["task"], {}).setdefault(r["config"]["scheme"], {})
        for length, got in r["accuracy_by_length"].items():
            line.setdefault(length, []).append(100 * got)
    return grouped


def table(runs: Sequence[dict[str, Any]]) -> str:
    """Markdown: a table per task, a row per scheme and a column per test length, accuracy
    (%) as mean ± standard deviation over seeds."""
    out = []
    for task, lines in accuracies(runs).items():
        lengths = list(dict.fromkeys(length for line in lines.values() for length in line))
        out.append(f"**{task}**")
        out.append("")
        out.append("| scheme | " + " | ".join(f"n = {n}" for n in lengths) + " |")
        out.append("|---|" + "---:|" * len(lengths))
        for scheme, line in lines.items():
            cells = [mean_spread(line.get(length, [])) for length in lengths]
            out.append(f"| {scheme} | " + " | ".join(cells) + " |")
        out.append("")
    seeds = sorted({len(g) for lines in accuracies(runs).values() for line in lines.values()
                    for g in line.values()})  # fmt: skip
    out.append(f"Seeds per cell: {', '.join(map(str, seeds))}.")
    return "\n".join(out)
