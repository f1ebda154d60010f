"""relpos-conformance specification: the SymPy definition of each relative position encoding
and the oracle that evaluates it exactly or in high precision.

Entry points: :func:`evaluate` (scores, probabilities, outputs), :func:`gradients`,
:func:`magnitudes`, :func:`validate` (the argument checks every implementation shares),
:func:`get_encoding` (formulas, identities, golden cases) and :data:`SPEC_VERSION`.
Importing ``relpos.spec`` imports neither torch nor jax.
"""

from __future__ import annotations

from typing import Any

from relpos.spec._arith import DPS
from relpos.spec._encoding import Case, Encoding, Identity, Proof, Reference
from relpos.spec._oracle import (
    Evaluation,
    approximate,
    evaluate,
    float_logits,
    gradient_magnitudes,
    gradients,
    magnitudes,
    pair_values,
    underflow_sensitivities,
)
from relpos.spec._signature import DIMENSIONS, ArgumentError, Problem
from relpos.spec.encodings import ENCODINGS, all_encodings
from relpos.spec.encodings import get as get_encoding

__all__ = [
    "DIMENSIONS",
    "DPS",
    "ENCODINGS",
    "SPEC_VERSION",
    "ArgumentError",
    "Case",
    "Encoding",
    "Evaluation",
    "Identity",
    "Problem",
    "Proof",
    "Reference",
    "all_encodings",
    "approximate",
    "evaluate",
    "float_logits",
    "get_encoding",
    "gradient_magnitudes",
    "gradients",
    "magnitudes",
    "pair_values",
    "underflow_sensitivities",
    "validate",
]

#: Version of the specification (formulas and conventions), recorded in golden vectors and
#: reports. Bumped whenever a formula or convention changes meaning.
SPEC_VERSION = "1.1.0"


def validate(encoding: str, args: dict[str, Any], *, check_dtypes: bool = True) -> Problem:
    """Check the arguments of a call to ``encoding`` (shapes, dtypes, option values) without
    computing anything; raise :class:`ArgumentError` naming the argument, its value and what
    is allowed. Every implementation calls this first, so errors read the same everywhere."""
    return get_encoding(encoding).validate(args, check_dtypes=check_dtypes)
