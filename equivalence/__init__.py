"""The equivalence suite: checks implementations against the oracle and each other.

Importing ``relpos.equivalence`` imports neither torch nor jax (backend adapters load their
framework on first use). Entry points: :func:`check_implementation` (check a function we did not
write, under a convention profile), :func:`reproduce` (re-run a failing example from its repro), the
``relpos`` command line (``relpos.equivalence.cli``) and the pytest plugin (``--relpos-target``)."""

from __future__ import annotations

from typing import Any

__all__ = ["check_implementation", "reproduce"]


def check_implementation(fn: Any, *, encoding: str, profile: str | None = None, **kw: Any) -> Any:
    """Check ``fn`` (or 'package.module:function') against the spec of ``encoding`` under a
    convention profile; raise AssertionError with the report, repros and a diagnosis if any
    property fails. See :func:`relpos.equivalence.targets.check_implementation` for the options
    (adapter, backend, properties, dtypes, budget)."""
    from relpos.equivalence.targets import check_implementation as check

    return check(fn, encoding=encoding, profile=profile, **kw)


def reproduce(prop: str, impl_id: str, dtype: str, draw: Any) -> float:
    """Re-run one example of a property; see :func:`relpos.equivalence.runner.reproduce`."""
    from relpos.equivalence.runner import reproduce as run

    return run(prop, impl_id, dtype, draw)
