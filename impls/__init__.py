"""Hand-written PyTorch and JAX implementations of every encoding, independent of the oracle.

Each ``impls/<backend>/<encoding>.py`` defines at least a ``reference`` variant (the definition
written plainly) and a ``fast`` one, with the spec's argument names. They share only the
argument validation of :func:`relpos.spec.validate` (shapes, dtypes, options; no formula),
applied by one decorator (``relpos.impls._validated``), so a bad argument raises the same
:class:`relpos.spec.ArgumentError` everywhere. Importing ``relpos.impls`` imports neither torch
nor jax.
"""

from relpos.impls._registry import BACKENDS, Implementation, backend_available, get, registry

__all__ = ["BACKENDS", "Implementation", "backend_available", "get", "registry"]
