"""Adapters for libraries this project checks (``relpos check --adapter``).

An adapter maps the canonical call ``(q, k, v, **arguments)`` (already in the profile's
conventions) onto a library's own function and returns ``out``, or ``(out, probs, scores)``
when it takes ``with_weights``. See :mod:`relpos.equivalence.targets` for the contract and
:mod:`relpos.equivalence.adapters.huggingface` for worked examples.

An adapter that keeps the library's module between calls (one per configuration, reused
across dtypes, shapes and positions, as one model is) declares it with :func:`stateful`:
the checker then says so when it starts, and the ``history`` property exercises that state.
An adapter that builds a fresh module per call exercises only the state a library keeps
outside its modules (module globals, class attributes, caches).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["is_stateful", "stateful"]

F = TypeVar("F", bound=Callable[..., Any])


def stateful(adapter: F) -> F:
    """Declare that ``adapter`` keeps library state between calls (a module per
    configuration, reused)."""
    adapter.stateful = True  # type: ignore[attr-defined]
    return adapter


def is_stateful(adapter: Callable[..., Any] | None) -> bool:
    """Whether ``adapter`` was declared with :func:`stateful`."""
    return bool(getattr(adapter, "stateful", False))
