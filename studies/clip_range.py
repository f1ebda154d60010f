"""Study ``clip-range``: how Shaw's clip range [p_min, p_max] changes what a model can do.

Shaw et al. 2018 clip the distance j - i to [-k, k] and learn a key table and a value table over
the clipped distances. Their ablation (English-German translation) found performance flat for
k >= 2, and the value table mattering less than the key table. This study varies k over
:data:`KS` and unclipped, two one-sided ranges (past only, future only) and the two tables
(key only, value only at k = 16), on two kinds of data:

- the text-classification data (MR polarity, TREC question classes), with the
  text-classification study's model and training (:mod:`relpos.studies.text_classification`):
  its k = 16 run with both tables is that study's ``shaw`` run, number for number;
- a synthetic probe: a first token that marks the sequence, then ``length - 1`` symbols drawn
  uniformly; the label is the symbol at ``offset`` from the first token, which the model
  reads (one layer, ``pool="first"``). Inside the range, distance ``offset`` has a row of its
  own; outside it, every distance from the edge on shares one row, and the first token cannot
  single out the symbol at ``offset``. A model without positions (``none``) is the probe's
  floor: above chance, since the bag of symbols says something about the label.

A symmetric k with k >= length - 1 gives every distance its own row, the unclipped model, and is
left out at that length.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from relpos.studies.data import DATASETS
from relpos.studies.model import Classifier, one_thread
from relpos.studies.plots import accuracy_against
from relpos.studies.runs import Job, mean_spread, run_all, write_results
from relpos.studies.text_classification import DEFAULT as TEXT_DEFAULT
from relpos.studies.text_classification import QUICK as TEXT_QUICK
from relpos.studies.text_classification import Settings, config_of, train_named
from relpos.studies.training import Example, fit

__all__ = [
    "DEFAULT",
    "KS",
    "QUICK",
    "ClipSettings",
    "ProbeSettings",
    "Variant",
    "probe_data",
    "run",
    "table",
    "train_probe",
    "variants",
]

NAME = "clip-range"
#: The symmetric ranges [-k, k], besides unclipped.
KS = (0, 1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class ProbeSettings:
    """The probe: sequences of ``length`` tokens over ``symbols`` symbols, the label at each of
    ``offsets``; the examples per split; the model and its training."""

    length: int = 64
    symbols: int = 8
    offsets: tuple[int, ...] = (3, 12, 40)
    train: int = 3000
    validation: int = 500
    test: int = 1000
    epochs: int = 3
    d_model: int = 32
    n_head: int = 2
    layers: int = 1
    batch: int = 64
    lr: float = 3e-3


@dataclass(frozen=True)
class ClipSettings:
    """The whole study: the text runs' settings (their ``clip`` is each variant's), the
    probe's, the symmetric ks, the one-sided ranges and the k of the one-table runs."""

    text: Settings = TEXT_DEFAULT
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    ks: tuple[int, ...] = KS
    one_sided: tuple[tuple[int, int], ...] = ((-16, 0), (0, 16))
    tables_k: int = 16


DEFAULT = ClipSettings()
# shorter probe sequences learn their offset within 2,000 examples; fewer ks
QUICK = ClipSettings(
    text=replace(TEXT_QUICK, train_limit=1000),
    probe=ProbeSettings(length=32, offsets=(3, 12), train=2000, validation=300, test=500),
    ks=(0, 2, 8),
    tables_k=8,
    one_sided=((-8, 0), (0, 8)),
)


@dataclass(frozen=True)
class Variant:
    """One model of the study: Shaw with ``clip`` (None: unclipped) and ``tables``, or the
    model without positions (``scheme`` "none")."""

    label: str
    clip: tuple[int, int] | None
    tables: str = "both"
    scheme: str = "shaw"

    def range_at(self, length: int) -> tuple[int, int]:
        """The clip range for sequences of up to ``length`` tokens."""
        return self.clip if self.clip is not None else (1 - length, length - 1)

    def slug(self) -> str:
        if self.scheme != "shaw":
            return self.scheme
        lo, hi = self.clip if self.clip is not None else ("inf", "inf")
        return f"clip{lo}_{hi}-{self.tables}"


def variants(settings: ClipSettings, length: int, *, floor: bool = False) -> list[Variant]:
    """The study's models at sequences of up to ``length`` tokens (with ``floor``: the model
    without positions first)."""
    out = [Variant("none", None, scheme="none")] if floor else []
    out += [Variant(f"k = {k}", (-k, k)) for k in settings.ks if k < length - 1]
    out.append(Variant("unclipped", None))
    out += [Variant(f"[{lo}, {hi}]", (lo, hi)) for lo, hi in settings.one_sided]
    k = settings.tables_k
    out += [Variant(f"key only, k = {k}", (-k, k), tables="key")]
    out += [Variant(f"value only, k = {k}", (-k, k), tables="value")]
    return out


def probe_data(
    probe: ProbeSettings, offset: int
) -> tuple[tuple[list[Example], list[Example], list[Example]], dict[str, Any]]:
    """The probe's splits at ``offset`` (from a seed of their own, never a run's) and what a
    run records of them. Token ids: 0 padding (none here), 2 the first token, symbols from 3."""
    if not 1 <= offset < probe.length:
        raise ValueError(f"offset={offset!r} must be in [1, length - 1 = {probe.length - 1}]")
    rng = np.random.default_rng([20180, offset])
    sizes = {"train": probe.train, "validation": probe.validation, "test": probe.test}
    splits: list[list[Example]] = []
    digest = hashlib.sha256()
    for count in sizes.values():
        ids = rng.integers(3, 3 + probe.symbols, size=(count, probe.length))
        ids[:, 0] = 2
        digest.update(ids.astype(np.int64).tobytes())
        splits.append([(row.tolist(), int(row[offset]) - 3) for row in ids])
    described = {
        "name": f"probe{offset}",
        "task": "the symbol at offset from the first token",
        "offset": offset,
        "length": probe.length,
        "symbols": probe.symbols,
        "sizes": sizes,
        "sha256": digest.hexdigest(),
    }
    return (splits[0], splits[1], splits[2]), described


def train_probe(probe: ProbeSettings, offset: int, variant: Variant, seed: int) -> dict[str, Any]:
    """Train one probe model; its metrics per epoch and the test accuracy at the epoch of best
    validation accuracy."""
    splits, described = probe_data(probe, offset)
    with one_thread():
        torch.manual_seed(seed)
        model = Classifier(
            3 + probe.symbols,
            probe.symbols,
            variant.scheme,
            d_model=probe.d_model,
            n_head=probe.n_head,
            layers=probe.layers,
            max_len=probe.length,
            clip=variant.range_at(probe.length),
            tables=variant.tables,
            pool="first",
        )
        metrics = fit(
            model,
            splits,
            epochs=probe.epochs,
            batch=probe.batch,
            lr=probe.lr,
            rng=np.random.default_rng(seed),
        )
    return {"seed": seed, "data": described, **metrics}


def _jobs(settings: ClipSettings, quick: bool, seeds: int, datasets: Sequence[str]) -> list[Job]:
    jobs = []
    text = settings.text
    for name in datasets:
        for variant in variants(settings, text.max_len):
            chosen = replace(text, clip=variant.range_at(text.max_len))
            config = {**config_of(chosen, quick), "tables": variant.tables}
            for seed in range(seeds):
                jobs.append(
                    Job(
                        f"{name}/{variant.slug()}/seed{seed}",
                        {**config, "dataset": name, "variant": variant.label, "seed": seed},
                        partial(train_named, name, "shaw", seed, chosen, tables=variant.tables),
                    )
                )
    probe = settings.probe
    base = {**asdict(probe), "offsets": None, "quick": quick}
    for offset in probe.offsets:
        for variant in variants(settings, probe.length, floor=True):
            config = {**base, "offset": offset, "scheme": variant.scheme}
            config |= {"clip": list(variant.range_at(probe.length)), "tables": variant.tables}
            config |= {"dataset": f"probe{offset}", "variant": variant.label}
            for seed in range(seeds):
                jobs.append(
                    Job(
                        f"probe{offset}/{variant.slug()}/seed{seed}",
                        {**config, "seed": seed},
                        partial(train_probe, probe, offset, variant, seed),
                    )
                )
    return jobs


def run(
    out: Path,
    *,
    quick: bool = False,
    seeds: int = 3,
    workers: int = 1,
    datasets: Sequence[str] = DATASETS,
    settings: ClipSettings | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Every (data, variant, seed) run, trained (over ``workers`` processes) or read back;
    writes ``OUT/clip-range/results.json`` (every run), ``results.md`` (the table) and
    ``accuracy-by-k.png`` and ``.svg`` (the figure)."""
    chosen = settings or (QUICK if quick else DEFAULT)
    jobs = _jobs(chosen, quick, seeds, datasets)
    runs, resumed = run_all(
        out,
        NAME,
        jobs,
        workers=workers,
        show_progress=show_progress,
        label=lambda r: f"{r['name']}: {r['test_accuracy']:.3f}",
    )
    config = {"settings": json.loads(json.dumps(asdict(chosen))), "quick": quick}
    results, folder = write_results(out, NAME, config, runs, resumed, table(runs))
    symmetric = {"none", "unclipped"} | {f"k = {k}" for k in chosen.ks}
    grouped = accuracies(runs)
    panels = {
        kind: {
            data: {v: got for v, got in row.items() if v in symmetric}
            for data, row in grouped.items()
            if data.startswith("probe") == (kind == "probe")
        }
        for kind in ("text", "probe")
    }
    accuracy_against(
        {
            title: lines
            for title, lines in (
                ("classification data", panels["text"]),
                ("probe: the symbol at an offset", panels["probe"]),
            )
            if lines
        },
        folder / "accuracy-by-k",
        "Shaw's clip range: test accuracy against k",
        xlabel="clip range [-k, k]",
    )
    return results


def accuracies(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Test accuracy (%) of ``runs`` by data (MR, TREC, probe3, ...), then variant, in the
    order the runs first name them, one value per seed."""
    grouped: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        row = grouped.setdefault(r["config"]["dataset"], {})
        row.setdefault(r["config"]["variant"], []).append(100 * r["test_accuracy"])
    return grouped


def table(runs: Sequence[dict[str, Any]]) -> str:
    """Markdown: test accuracy (%) as mean ± standard deviation over seeds, a row per variant
    and a column per dataset or probe offset ("-": not run there)."""
    grouped = accuracies(runs)
    columns = list(grouped)
    rows = list(dict.fromkeys(v for row in grouped.values() for v in row))
    # the floor first, as the probe lists it
    rows.sort(key=lambda v: v != "none")
    heads = [f"probe, offset {c[5:]}" if c.startswith("probe") else c for c in columns]
    lines = ["| model | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(columns)]
    for variant in rows:
        cells = []
        for column in columns:
            cells.append(mean_spread(grouped[column].get(variant, [])))
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    n = sorted({len(got) for row in grouped.values() for got in row.values()})
    lines.append("")
    lines.append(f"Seeds per cell: {', '.join(map(str, n))}.")
    return "\n".join(lines)
