"""The one argument check every implementation shares, written once.

Each variant keeps its explicit keyword signature (the spec's argument names, visible to
``help()`` and ``inspect.signature``) and declares the spec's :class:`~relpos.spec.Problem` as
its first parameter. :func:`validated` binds a call to the rest of that signature, fills the
defaults, validates the arguments with :func:`relpos.spec.validate` (shapes, dtypes, options;
no formula) and hands the body the resulting Problem, so that no body rebuilds the argument
dict and every implementation raises the same :class:`~relpos.spec.ArgumentError` text.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

from relpos.spec import ArgumentError, validate
from relpos.spec._signature import nonfinite

__all__ = ["CALLING_CONVENTION", "Framework", "guarded", "validated"]

#: Parameters of the calling convention that are not arguments of any encoding.
CALLING_CONVENTION = frozenset({"with_weights"})


def validated(encoding: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``body(problem, q, k, v, *, <options>, with_weights=False)`` as the variant
    ``fn(q, k, v, *, <options>, with_weights=False)`` of ``encoding``.

    Keywords that the signature does not name go to the spec, which rejects them with the list
    of the encoding's arguments (rather than Python's bare TypeError)."""

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        full = inspect.signature(body)
        params = list(full.parameters.values())
        if not params or params[0].name != "problem":
            raise TypeError(f"{body.__qualname__} must take `problem` as its first parameter")
        public = full.replace(parameters=params[1:])
        names = frozenset(public.parameters)

        @functools.wraps(body)
        def call(*args: Any, **kwargs: Any) -> Any:
            unknown = {name: kwargs.pop(name) for name in list(kwargs) if name not in names}
            bound = public.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = {
                name: value
                for name, value in bound.arguments.items()
                if name not in CALLING_CONVENTION
            }
            problem = validate(encoding, {**arguments, **unknown})
            for name, value in problem.options.items():  # numpy scalars as Python numbers
                if name in bound.arguments:
                    bound.arguments[name] = value
            return body(problem, *bound.args, **bound.kwargs)

        call.__signature__ = public  # type: ignore[attr-defined]
        return call

    return decorate


@dataclasses.dataclass(frozen=True)
class Framework:
    """What :func:`guarded` needs to know of a backend's tensors."""

    #: Whether a value is a tensor this backend computes on, and the words for what it takes.
    accepts: Callable[[Any], bool]
    kind: str
    #: The first NaN or infinite element (index, value) of a tensor, or None.
    first_nonfinite: Callable[[Any], tuple[tuple[int, ...], float] | None]
    #: The device a tensor lives on, by name ("cpu", "cuda:0", "meta"); None where the
    #: framework places it itself (it is then never a mismatch).
    device: Callable[[Any], str | None]
    #: Devices whose tensors hold no data (torch's "meta").
    dataless: frozenset[str]
    #: Whether a tensor is a half type, and how to convert one to float32 and back.
    is_half: Callable[[Any], bool]
    to_float32: Callable[[Any], Any]
    cast: Callable[[Any, Any], Any]


def guarded(framework: Framework) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator (below :func:`validated`) for a backend's variants. It first refuses, with
    the spec's ArgumentError rather than an error from deep inside the framework, a tensor the
    backend cannot compute on, a tensor on a device that holds no data, a tensor on another
    device than q's, and a NaN or infinite input element (the spec's text). It then runs the
    body in float32 when the inputs are a half type: the logits, the softmax and the sums are
    float32, so a score that float32 holds stays finite even where the half type would
    overflow, and the output is rounded to the half type (the probabilities and scores stay
    float32). Other dtypes run unchanged."""
    f = framework

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(body)
        def call(problem: Any, *args: Any, **kwargs: Any) -> Any:
            home: str | None = None
            first = ""
            for name, tensor in problem.tensors.items():
                if tensor is None:
                    continue
                if not f.accepts(tensor):
                    kind_of = f"{type(tensor).__module__}.{type(tensor).__qualname__}"
                    raise ArgumentError(name, f"{name} of type {kind_of}", f"must be {f.kind}")
                device = f.device(tensor)
                if device in f.dataless:
                    raise ArgumentError(
                        name,
                        f"{name} on device {device}",
                        f"must hold data (a tensor on {device} has none)",
                    )
                if home is None:
                    home, first = device, name
                elif device is not None and device != home:
                    raise ArgumentError(
                        name, f"{name} on device {device}", f"must be on {first}'s device {home}"
                    )
                found = f.first_nonfinite(tensor)
                if found is not None:
                    raise nonfinite(name, *found)
            q = problem.tensors["q"]
            if not f.is_half(q):
                return body(problem, *args, **kwargs)
            half = q.dtype

            def up(t: Any) -> Any:
                return f.to_float32(t) if f.is_half(t) else t

            tensors = {name: up(t) for name, t in problem.tensors.items()}
            problem = dataclasses.replace(problem, tensors=tensors)
            result = body(problem, *map(up, args), **{n: up(x) for n, x in kwargs.items()})
            if isinstance(result, tuple):
                return (f.cast(result[0], half), *result[1:])
            return f.cast(result, half)

        return call

    return decorate
