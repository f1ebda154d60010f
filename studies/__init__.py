"""Studies: what relative positions do to small trained models, reproducibly on CPU
(``relpos study list``, ``relpos study run NAME``). The models' attention is the bundled torch
``fast`` implementations, so the attention a study trains is the one the suite checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["STUDIES", "Study", "run_study"]


@dataclass(frozen=True)
class Study:
    name: str
    summary: str
    module: str

    def runner(self) -> Callable[..., dict[str, Any]]:
        import importlib

        run: Callable[..., dict[str, Any]] = importlib.import_module(self.module).run
        return run


STUDIES = {
    study.name: study
    for study in (
        Study(
            "text-classification",
            "Shaw (key and value tables) against absolute, none and the other encodings on MR "
            "polarity and TREC question classes: test accuracy, mean ± std over seeds",
            "relpos.studies.text_classification",
        ),
        Study(
            "clip-range",
            "Shaw's clip range: k from 0 to unclipped, one-sided ranges, key or value table "
            "only; on MR and TREC, and on a probe whose label lies at an offset inside or "
            "outside the range",
            "relpos.studies.clip_range",
        ),
        Study(
            "long-text",
            "byte-level language modelling of Wikipedia XML: absolute positions with a fixed "
            "context against Transformer-XL's relative attention with and without recurrence, "
            "bits per character at spans up to four training segments",
            "relpos.studies.long_text",
        ),
        Study(
            "length-generalisation",
            "every encoding, absolute positions and none on copy, associative recall and "
            "flip-flop: trained at one length, accuracy at up to four times that length",
            "relpos.studies.length_generalisation",
        ),
    )
}


def run_study(
    name: str, out: Path, *, quick: bool = False, seeds: int = 3, workers: int = 1, **kw: Any
) -> dict[str, Any]:
    """Run study ``name`` (see :data:`STUDIES`), its records under ``out``, its runs spread
    over ``workers`` processes."""
    if name not in STUDIES:
        raise ValueError(f"study={name!r} must be one of {', '.join(STUDIES)}")
    for argument, value in (("seeds", seeds), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{argument}={value!r} must be an integer >= 1")
    return STUDIES[name].runner()(out, quick=quick, seeds=seeds, workers=workers, **kw)
