"""Golden test vectors: every golden case of every encoding as a self-contained JSON file.

File format (one file per case, ``<encoding>-<case>.json``)::

    spec_version   the SPEC_VERSION the values were derived under
    encoding       "shaw", "xl", ...
    case           the case name
    params         every option of the encoding by its argument name (defaults filled in)
    dims           bsz, n_head, qlen, klen, mlen, d_head and the encoding's own dimensions
    inputs         every tensor by its argument name: float tensors as nested lists of exact
                   decimal strings (the inputs are dyadic, so the strings are exact), masks as
                   nested booleans (True = may attend), integer tensors as nested integers;
                   absent optional tensors are omitted
    digits         significant digits of the expected values: DIGITS, or LARGE_DIGITS for the
                   long-position cases (``export(large=True)``, evaluated in balls), which
                   would otherwise take tens of MB each
    expected       scores, probs, out as nested decimal strings of ``digits`` significant
                   digits; masked scores are "-inf"
    tolerance      {dtype: {scores, probs, out}}: a suggested absolute tolerance per dtype,
                   the largest per-element bound of the tolerance model

``manifest.json`` lists the files. :func:`verify` re-derives every file from the oracle and
reports each value that differs beyond the stated digits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import mpmath
import numpy as np

from relpos.spec import _arith
from relpos.spec._arith import DPS
from relpos.spec._cases import case_inputs
from relpos.spec._encoding import Case, Encoding
from relpos.spec._oracle import Evaluation, evaluate
from relpos.spec.encodings import all_encodings, get

__all__ = ["DIGITS", "LARGE_DIGITS", "Difference", "export", "load", "verify"]

#: Significant digits of the expected values (LARGE_DIGITS in the long-position cases).
DIGITS = 40
LARGE_DIGITS = 24
#: Two expected values agree when they differ by at most 10^-(digits - AGREE_MARGIN) relative
#: to max(1, |value|): the last digits of a stored value are its rounding.
AGREE_MARGIN = 6

#: (dtype -> {"scores", "probs", "out"} -> tolerance), given an encoding, args and evaluation.
ToleranceFn = Callable[[Encoding, Mapping[str, Any], Evaluation], dict[str, dict[str, float]]]


@dataclass(frozen=True)
class Difference:
    """One disagreement found by :func:`verify`."""

    file: str
    field: str
    index: tuple[int, ...]
    stored: str
    derived: str

    def __str__(self) -> str:
        where = f"[{', '.join(map(str, self.index))}]" if self.index else ""
        return (
            f"{self.file}: {self.field}{where}={self.stored}, but the oracle gives {self.derived}"
        )


def _decimal(x: Any) -> str:
    """The exact decimal expansion of a float-representable number."""
    as_float = float(x)
    if Fraction(as_float) != Fraction(x):
        raise ValueError(f"golden inputs must be exactly representable as float64, got {x!r}")
    return str(Decimal(as_float))


def _encode_input(value: Any) -> Any:
    arr = np.asarray(value)
    if arr.dtype == bool:
        return arr.tolist()
    if arr.dtype.kind in "iu":
        return arr.astype(int).tolist()
    return np.vectorize(_decimal, otypes=[object])(arr).tolist()


def _encode_value(x: Any, digits: int = DIGITS) -> str:
    value = _arith.value_of(x)  # a ball's midpoint: its radius is below 1e-50
    if value == mpmath.ninf:
        return "-inf"
    with mpmath.workdps(DPS):
        return mpmath.nstr(value, digits, strip_zeros=False)


def _params(encoding: Encoding, case: Case) -> dict[str, Any]:
    params = {o.name: o.default for o in encoding.options} | dict(case.options)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def case_document(
    encoding: Encoding,
    case: Case,
    spec_version: str,
    tolerance: ToleranceFn | None,
    digits: int = DIGITS,
) -> dict[str, Any]:
    """The JSON document of one case."""
    args = case_inputs(encoding, case)
    result = evaluate(encoding, **args)
    encode = np.frompyfunc(lambda x: _encode_value(x, digits), 1, 1)
    tensors = {t.name for t in encoding.tensors}
    doc: dict[str, Any] = {
        "spec_version": spec_version,
        "encoding": encoding.name,
        "case": case.name,
        "params": _params(encoding, case),
        "dims": dict(result.problem.dims),
        "inputs": {k: _encode_input(v) for k, v in args.items() if k in tensors},
        "digits": digits,
        "expected": {
            name: encode(getattr(result, name)).tolist() for name in ("scores", "probs", "out")
        },
    }
    if tolerance is not None:
        doc["tolerance"] = tolerance(encoding, args, result)
    return doc


def export(
    out: str | Path,
    *,
    encodings: Iterable[str] | None = None,
    tolerance: ToleranceFn | None = None,
    large: bool = False,
) -> list[Path]:
    """Write every golden case of the chosen encodings (all by default) under ``out``; with
    ``large``, also each encoding's long-position cases (:meth:`Encoding.large_cases`)."""
    from relpos.spec import SPEC_VERSION

    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    chosen = all_encodings() if encodings is None else [get(n) for n in encodings]
    written = []
    for enc in chosen:
        chosen_cases = [(c, DIGITS) for c in enc.cases()]
        chosen_cases += [(c, LARGE_DIGITS) for c in enc.large_cases()] if large else []
        for case, digits in chosen_cases:
            path = directory / f"{enc.name}-{case.name}.json"
            doc = case_document(enc, case, SPEC_VERSION, tolerance, digits)
            path.write_text(json.dumps(doc, indent=1) + "\n")
            written.append(path)
    manifest = {"spec_version": SPEC_VERSION, "files": [p.name for p in written]}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return written


def load(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The encoding name and the call arguments of a vector file (exact Fractions)."""
    doc = json.loads(Path(path).read_text())
    enc = get(doc["encoding"])
    kinds = {t.name: t.kind for t in enc.tensors}
    args: dict[str, Any] = {}
    for name, value in doc["params"].items():
        args[name] = tuple(value) if isinstance(value, list) else value
    for name, value in doc["inputs"].items():
        kind = kinds.get(name)
        if kind == "float":
            args[name] = np.vectorize(Fraction, otypes=[object])(np.array(value, dtype=object))
        elif kind == "bool":
            args[name] = np.array(value, dtype=bool)
        else:
            args[name] = np.array(value, dtype=np.int64)
    return doc["encoding"], args


def verify(directory: str | Path) -> tuple[int, list[Difference]]:
    """Re-derive every vector file under ``directory``; return the number of files checked
    and every difference (spec version, shapes or values)."""
    from relpos.spec import SPEC_VERSION

    files = sorted(p for p in Path(directory).glob("*.json") if p.name != "manifest.json")
    differences: list[Difference] = []
    for path in files:
        doc = json.loads(path.read_text())
        if doc.get("spec_version") != SPEC_VERSION:
            differences.append(
                Difference(
                    path.name, "spec_version", (), str(doc.get("spec_version")), SPEC_VERSION
                )
            )
        encoding, args = load(path)
        result = evaluate(encoding, **args)
        digits = int(doc.get("digits", DIGITS))
        for name in ("scores", "probs", "out"):
            stored = np.array(doc["expected"][name], dtype=object)
            derived = getattr(result, name)
            if stored.shape != derived.shape:
                differences.append(
                    Difference(
                        path.name, f"{name}.shape", (), str(stored.shape), str(derived.shape)
                    )
                )
                continue
            for index in np.ndindex(*derived.shape):
                s, d = str(stored[index]), derived[index]
                if not _agree(s, d, digits):
                    differences.append(
                        Difference(path.name, name, index, s, _encode_value(d, digits))
                    )
    return len(files), differences


def _agree(stored: str, derived: Any, digits: int) -> bool:
    derived = _arith.value_of(derived)
    if stored == "-inf" or derived == mpmath.ninf:
        return stored == "-inf" and derived == mpmath.ninf
    with mpmath.workdps(DPS):
        a = mpmath.mpf(stored)
        allowed = mpmath.mpf(10) ** -(digits - AGREE_MARGIN)
        return bool(abs(a - derived) <= allowed * max(1, abs(derived)))
