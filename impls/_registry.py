"""The one registry of implementations, keyed by (encoding, backend, variant).

Discovery is by convention and static: for every encoding of :data:`relpos.spec.ENCODINGS` and every
backend of :data:`BACKENDS`, the module ``impls/<backend>/<encoding>.py`` declares
``VARIANTS = {"reference": "<function>", "fast": "<function>", ...}``. The registry reads that
literal without importing the module, so it is complete (and test ids are stable) even where a
backend is not installed; :meth:`Implementation.load` imports it on demand.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["BACKENDS", "Implementation", "backend_available", "get", "registry"]

#: Backend name -> the module that must import for the backend to be available.
BACKENDS: dict[str, str] = {"torch": "torch", "jax": "jax"}

_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Implementation:
    """One registered implementation; ``id`` reads like ``torch-shaw-fast``."""

    encoding: str
    backend: str
    variant: str
    function: str

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.encoding}-{self.variant}"

    @property
    def module(self) -> str:
        return f"relpos.impls.{self.backend}.{self.encoding}"

    def available(self) -> tuple[bool, str]:
        """Whether the backend imports here, and if not, why."""
        return backend_available(self.backend)

    def load(self) -> Callable[..., Any]:
        """The implementation's function (imports the backend)."""
        return getattr(importlib.import_module(self.module), self.function)


@cache
def backend_available(backend: str) -> tuple[bool, str]:
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        return False, f"{backend} is not installed (pip install 'relpos-conformance[{backend}]')"
    return True, ""


def _variants(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "VARIANTS"
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                return value
    raise TypeError(f"{path} must declare VARIANTS = {{variant: function name}} as a literal")


@cache
def registry() -> tuple[Implementation, ...]:
    """Every registered implementation, in (encoding, backend, variant) order."""
    from relpos.spec import ENCODINGS

    found: list[Implementation] = []
    for encoding in ENCODINGS:
        for backend in BACKENDS:
            path = _ROOT / backend / f"{encoding}.py"
            if path.exists():
                found.extend(
                    Implementation(encoding, backend, variant, function)
                    for variant, function in _variants(path).items()
                )
    return tuple(found)


def get(encoding: str, backend: str, variant: str) -> Implementation:
    for impl in registry():
        if (impl.encoding, impl.backend, impl.variant) == (encoding, backend, variant):
            return impl
    known = ", ".join(impl.id for impl in registry())
    raise ValueError(f"no implementation {backend}-{encoding}-{variant}; registered: {known}")
