"""Study ``long-text``: byte-level language modelling of raw Wikipedia XML, in bits per
character (per byte, as enwik8 counts them).

The seed note's second item: a standard Transformer (absolute sinusoidal positions, a fixed
context of one segment) against Transformer-XL / XLNet-style relative attention with
segment-level recurrence (Dai et al. 2019): each layer keeps the states of the previous
segment, detached, as a memory that the next segment attends to. A third model, XL trained
without a memory, tells the relative positions' part from the recurrence's.

Training: ``streams`` contiguous streams of the training split, read ``segment`` bytes at a
time (XL with recurrence carrying its memory of ``segment`` states from one segment to the
next). Evaluation, on the first ``eval_bytes`` of the test split in ``streams`` contiguous
streams, at each attention span of :attr:`LongSettings.spans` (multiples of the segment):
the absolute model reads segments of that length (positions past the training segment are
positions it never trained on); the XL models read training-length segments with a memory of
span - segment states (relative distances past the training span are distances they never
trained on). Every byte is predicted once, from at most ``span`` bytes before it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from relpos.studies.data import wiki
from relpos.studies.model import LanguageModel, one_thread
from relpos.studies.plots import accuracy_against
from relpos.studies.runs import Job, brief, mean_spread, run_all, write_results

__all__ = ["DEFAULT", "MODELS", "QUICK", "LongSettings", "bits_per_character", "run", "table"]

NAME = "long-text"

#: The models: their scheme and whether they train with a memory.
MODELS = {
    "absolute": ("absolute", False),
    "xl, no memory": ("xl", False),
    "xl, memory": ("xl", True),
}


@dataclass(frozen=True)
class LongSettings:
    """The training segment, the spans evaluated (in segments), the streams, the training
    steps, the evaluation bytes, the model and its optimiser."""

    segment: int = 64
    spans: tuple[int, ...] = (1, 2, 4)
    streams: int = 16
    steps: int = 3000
    evaluations: int = 3
    eval_bytes: int = 65536
    d_model: int = 64
    n_head: int = 4
    layers: int = 2
    lr: float = 2e-3


DEFAULT = LongSettings()
QUICK = LongSettings(steps=150, evaluations=1, eval_bytes=8192)


def _streams(data: bytes, count: int) -> torch.Tensor:
    """(count, len(data) // count) bytes: ``data`` cut into ``count`` contiguous streams."""
    width = len(data) // count
    array = np.frombuffer(data[: count * width], dtype=np.uint8).reshape(count, width)
    return torch.from_numpy(array.astype(np.int64))


def bits_per_character(
    model: LanguageModel, data: torch.Tensor, segment: int, memory: int
) -> float:
    """Mean bits per byte of ``model`` on streams ``data``, read ``segment`` bytes at a time
    with a memory of up to ``memory`` states (0 for the absolute model): each byte predicted
    once, from at most ``segment + memory`` bytes before it within its stream."""
    model.eval()
    total, count = 0.0, 0
    kept = None
    with torch.no_grad():
        for start in range(0, data.shape[1] - 1, segment):
            ids = data[:, start : start + segment + 1]
            if ids.shape[1] < 2:
                break
            logits, kept = model(ids[:, :-1], kept, keep=memory)
            loss = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="sum"
            )
            total += float(loss)
            count += ids[:, 1:].numel()
    return total / count / math.log(2)


def train_model(settings: LongSettings, model_name: str, seed: int) -> dict[str, Any]:
    """Train one model; its training loss and validation bits per character at intervals,
    and its test bits per character at each span (the model of the last step)."""
    scheme, recurrent = MODELS[model_name]
    text = wiki()
    length = settings.segment
    train = _streams(text.train, settings.streams)
    validation = _streams(text.validation[: settings.eval_bytes], settings.streams)
    test = _streams(text.test[: settings.eval_bytes], settings.streams)
    with one_thread():
        torch.manual_seed(seed)
        model = LanguageModel(
            scheme,
            d_model=settings.d_model,
            n_head=settings.n_head,
            layers=settings.layers,
            max_len=length * max(settings.spans),
        )
        optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
        rng = np.random.default_rng(seed)
        # each run starts its streams at an offset of its own, then reads on contiguously
        offset = int(rng.integers(0, length))
        keep = length if recurrent else 0
        rows, losses, kept = [], [], None
        # evaluated after these steps, the last step last
        points = {
            round(settings.steps * (i + 1) / settings.evaluations)
            for i in range(settings.evaluations)
        }
        last = 0
        start = time.perf_counter()
        for step in range(settings.steps):
            at = offset + (step * length) % (train.shape[1] - length - 1 - offset)
            if at < offset + length and step:  # wrapped to the start: memory from elsewhere
                kept = None
            ids = train[:, at : at + length + 1]
            model.train()
            logits, kept = model(ids[:, :-1], kept, keep=keep)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item() / math.log(2))
            if step + 1 in points:
                rows.append(
                    {
                        "step": step + 1,
                        "train_bpc": float(np.mean(losses[last:])),
                        "validation_bpc": bits_per_character(
                            model, validation, length, length if recurrent else 0
                        ),
                    }
                )
                last = len(losses)
        seconds = time.perf_counter() - start
        spans = {}
        for span in settings.spans:
            if scheme == "absolute":
                spans[str(span * length)] = bits_per_character(model, test, span * length, 0)
            else:
                memory = (span - 1) * length
                spans[str(span * length)] = bits_per_character(model, test, length, memory)
    return {
        "seed": seed,
        "data": text.describe(),
        "first_bpc": losses[0],
        "evaluations": rows,
        "test_bpc_by_span": spans,
        "seconds": seconds,
        "train_tokens_per_second": settings.steps * settings.streams * length / seconds,
    }


def run(
    out: Path,
    *,
    quick: bool = False,
    seeds: int = 3,
    workers: int = 1,
    models: Sequence[str] = tuple(MODELS),
    settings: LongSettings | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Every (model, seed) run, trained (over ``workers`` processes) or read back; writes
    ``OUT/long-text/results.json`` (every run), ``results.md`` (the table) and
    ``bpc-by-span.png`` and ``.svg`` (the figure)."""
    chosen = settings or (QUICK if quick else DEFAULT)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"model={unknown[0]!r} must be one of {', '.join(MODELS)}")
    config = {**json.loads(json.dumps(asdict(chosen))), "quick": quick}
    jobs = [
        Job(
            f"{name.replace(', ', '-').replace(' ', '-')}/seed{seed}",
            {**config, "model": name, "seed": seed},
            partial(train_model, chosen, name, seed),
        )
        for name in models
        for seed in range(seeds)
    ]
    runs, resumed = run_all(
        out,
        NAME,
        jobs,
        workers=workers,
        show_progress=show_progress,
        label=lambda r: f"{r['name']}: " + brief(r["test_bpc_by_span"], 3),
    )
    results, folder = write_results(out, NAME, config, runs, resumed, table(runs))
    accuracy_against(
        {f"trained on segments of {chosen.segment} bytes": bpc(runs)},
        folder / "bpc-by-span",
        "Bits per character against the attention span at test",
        xlabel="span (bytes before each predicted byte, at most)",
        ylabel="test bits per character",
        limits=None,
    )
    return results


def bpc(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Test bits per character of ``runs`` by model and span, one value per seed."""
    grouped: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        line = grouped.setdefault(r["config"]["model"], {})
        for span, got in r["test_bpc_by_span"].items():
            line.setdefault(span, []).append(got)
    return grouped


def table(runs: Sequence[dict[str, Any]]) -> str:
    """Markdown: test bits per character as mean ± standard deviation over seeds, a row per
    model and a column per span."""
    grouped = bpc(runs)
    spans = list(dict.fromkeys(s for line in grouped.values() for s in line))
    lines = ["| model | " + " | ".join(f"span {s}" for s in spans) + " |"]
    lines.append("|---|" + "---:|" * len(spans))
    for name, line in grouped.items():
        cells = [mean_spread(line.get(span, []), 3) for span in spans]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    n = sorted({len(got) for line in grouped.values() for got in line.values()})
    lines.append("")
    lines.append(f"Seeds per cell: {', '.join(map(str, n))}.")
    return "\n".join(lines)
