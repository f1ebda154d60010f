"""The equivalence suite: checks implementations against the oracle and each other.

Importing ``equivalence`` imports neither torch nor jax (backend adapters load their framework
on first use). Entry points: :func:`reproduce` (re-run a failing example from its repro) and
the ``relpos`` command line (``equivalence.cli``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["reproduce"]


def reproduce(prop: str, impl_id: str, dtype: str, draw: Any) -> float:
    """Re-run one example of a property; see :func:`equivalence.runner.reproduce`."""
    from equivalence.runner import reproduce as run

    return run(prop, impl_id, dtype, draw)
