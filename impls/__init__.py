"""Hand-written PyTorch and JAX implementations of every encoding, independent of the oracle.

Each ``impls/<backend>/<encoding>.py`` defines at least a ``reference`` variant (the definition
written plainly) and a ``fast`` one, with the spec's argument names. They share only the
argument validation of :func:`spec.validate` (shapes, dtypes, options; no formula), so a bad
argument raises the same :class:`spec.ArgumentError` everywhere. Importing ``impls`` imports
neither torch nor jax.
"""

from impls._registry import BACKENDS, Implementation, backend_available, get, registry

__all__ = ["BACKENDS", "Implementation", "backend_available", "get", "registry"]
