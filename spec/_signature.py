"""Argument declarations and the one validator that the oracle and every implementation share.

An encoding declares its arguments (tensors with their allowed layouts in the shared dimension
vocabulary, and options with their allowed values); :func:`validate` checks concrete arguments
against that declaration using only shapes, dtypes and option values, never any formula. The
oracle and every backend call it before computing anything, so bad input raises the same
:class:`ArgumentError` text everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "DIMENSIONS",
    "ArgumentError",
    "Option",
    "Problem",
    "Tensor",
    "first_nonfinite",
    "nonfinite",
    "validate_arguments",
]

#: The shared dimension vocabulary (the names of the Transformer-XL code), defined once.
DIMENSIONS: dict[str, str] = {
    "bsz": "batch size",
    "n_head": "number of attention heads",
    "qlen": "number of queries (the current segment)",
    "klen": "number of keys and values, memory included (klen = mlen + qlen)",
    "mlen": "number of memory positions preceding the queries",
    "d_head": "width of one head's query, key and value vectors",
}

Kind = Literal["float", "int", "bool"]

_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_KIND_TEXT = {"float": "a floating dtype", "int": "an integer dtype", "bool": "a boolean dtype"}


class ArgumentError(ValueError):
    """A bad argument: names the argument, the value it got and what is allowed."""

    def __init__(self, argument: str, got: str, allowed: str) -> None:
        self.argument = argument
        self.got = got
        self.allowed = allowed
        super().__init__(f"`{argument}` {allowed}, got {got}")


@dataclass(frozen=True)
class Tensor:
    """A tensor argument.

    ``layouts`` lists the allowed shapes, each a tuple of dimension names (from the shared
    vocabulary or declared by the encoding) or integers. A ``broadcast`` tensor may instead have
    any shape that broadcasts (numpy rules) to its first layout.
    """

    name: str
    layouts: tuple[tuple[str | int, ...], ...]
    kind: Kind
    doc: str
    required: bool = True
    broadcast: bool = False


@dataclass(frozen=True)
class Option:
    """A non-tensor argument; ``check`` returns ``None`` when the value is allowed, otherwise
    the text that says what is allowed ("must be one of 'bi', 'uni'")."""

    name: str
    doc: str
    default: Any
    check: Callable[[Any], str | None]


@dataclass(frozen=True)
class Problem:
    """A validated call: the encoding's name, every dimension, every option (defaults filled)
    and the tensors as given (``None`` for absent optional ones)."""

    encoding: str
    dims: Mapping[str, int]
    options: Mapping[str, Any]
    tensors: Mapping[str, Any]
    layouts: Mapping[str, tuple[str | int, ...]] = field(default_factory=dict)


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in value.shape)


def dtype_name(value: Any) -> str:
    """The backend-neutral name of a tensor's dtype: 'float32', 'bfloat16', 'bool', 'int64'..."""
    name = str(value.dtype)
    return name.removeprefix("torch.")


def _kind_of(dtype: str) -> str:
    if dtype in _FLOAT_DTYPES:
        return "float"
    if dtype == "bool":
        return "bool"
    if dtype.startswith(("int", "uint")):
        return "int"
    return dtype


def _layout_text(layout: tuple[str | int, ...], dims: Mapping[str, int]) -> str:
    names = ", ".join(str(d) for d in layout)
    bound = [str(dims[d]) if isinstance(d, str) and d in dims else str(d) for d in layout]
    return (
        f"({names}) = ({', '.join(bound)})"
        if any(isinstance(d, str) for d in layout)
        else (f"({names})")
    )


def _match(shape: tuple[int, ...], layout: tuple[str | int, ...], dims: dict[str, int]) -> bool:
    if len(shape) != len(layout):
        return False
    new: dict[str, int] = {}
    for size, dim in zip(shape, layout, strict=True):
        if isinstance(dim, int):
            if size != dim:
                return False
        elif dim in dims or dim in new:
            if (dims.get(dim) if dim in dims else new[dim]) != size:
                return False
        else:
            new[dim] = size
    dims.update(new)
    return True


def first_nonfinite(array: np.ndarray) -> tuple[tuple[int, ...], float] | None:
    """The first NaN or infinite element of a float array (its index and value), or None."""
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return index, float(array[index])


def nonfinite(name: str, index: tuple[int, ...], value: float) -> ArgumentError:
    """The error for a NaN or infinite input element, the same text from the oracle and every
    implementation: the spec defines attention on finite inputs only."""
    where = ", ".join(map(str, index))
    return ArgumentError(name, f"{name}[{where}] = {value}", "must be finite (no NaN or inf)")


def plain(value: Any) -> Any:
    """An option value with numpy scalars as the Python numbers they equal (np.int64(2) is
    2, np.float32(0.5) is 0.5, np.bool_(True) is True), in tuples and lists too; every other
    value as it is. Options are checked, and computed with, as Python numbers."""
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, tuple | list) and any(isinstance(v, np.generic) for v in value):
        return type(value)(plain(v) for v in value)
    return value


def check_int(value: Any, *, minimum: int | None = None) -> str | None:
    """The common option check for an integer, optionally bounded below."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if minimum is None:
        return None if ok else "must be an integer"
    return None if ok and value >= minimum else f"must be an integer >= {minimum}"


def check_bool(value: Any) -> str | None:
    """The common option check for a flag."""
    return None if isinstance(value, bool) else "must be True or False"


def check_scale(value: Any) -> str | None:
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and math.isfinite(value) and value > 0:
        return None
    return "must be None (the encoding's default) or a finite positive number"


def validate_arguments(
    encoding: str,
    tensors: tuple[Tensor, ...],
    options: tuple[Option, ...],
    args: Mapping[str, Any],
    *,
    derived_dims: Callable[[Mapping[str, Any]], dict[str, int]],
    dim_note: Callable[[str, Mapping[str, Any]], str | None],
    check: Callable[[Problem], None],
    check_dtypes: bool,
) -> Problem:
    """Check ``args`` against a declaration; return the :class:`Problem` or raise
    :class:`ArgumentError`.

    Order: unknown names, missing required tensors, option values, shapes (binding dimensions
    from the first tensor that names them), ``mlen >= 0``, dtypes, then the encoding's own
    cross-argument ``check``.
    """
    allowed_names = [t.name for t in tensors] + [o.name for o in options]
    for name in args:
        if name not in allowed_names:
            raise ArgumentError(
                name,
                f"{name}=...",
                f"is not an argument of {encoding!r}; the arguments are "
                + ", ".join(allowed_names),
            )
    opts: dict[str, Any] = {}
    for opt in options:
        value = plain(args.get(opt.name, opt.default))
        problem = opt.check(value)
        if problem is not None:
            raise ArgumentError(opt.name, f"{opt.name}={value!r}", problem)
        opts[opt.name] = value

    dims: dict[str, int] = dict(derived_dims(opts))
    given: dict[str, Any] = {}
    layouts: dict[str, tuple[str | int, ...]] = {}
    for t in tensors:
        value = args.get(t.name)
        if value is None:
            if t.required:
                raise ArgumentError(t.name, "None", "is required")
            given[t.name] = None
            continue
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            raise ArgumentError(
                t.name,
                f"an object of type {type(value).__name__}",
                "must be an array or tensor (with .shape and .dtype)",
            )
        shape = _shape(value)
        if 0 in shape:
            raise ArgumentError(
                t.name,
                f"{t.name}.shape={shape}",
                "must have no empty dimension (attention is defined over at least one batch "
                "element, head, query, key and feature)",
            )
        if t.broadcast:
            _check_broadcast(t, shape, dims)
            layouts[t.name] = t.layouts[0]
        else:
            for layout in t.layouts:
                if _match(shape, layout, dims):
                    layouts[t.name] = layout
                    break
            else:
                wanted = " or ".join(_layout_text(lay, dims) for lay in t.layouts)
                notes = [
                    note
                    for dim in dict.fromkeys(d for lay in t.layouts for d in lay)
                    if isinstance(dim, str) and (note := dim_note(dim, opts))
                ]
                if notes:
                    wanted += " (" + "; ".join(notes) + ")"
                raise ArgumentError(t.name, f"{t.name}.shape={shape}", f"must have shape {wanted}")
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            found = first_nonfinite(value)
            if found is not None:
                raise nonfinite(t.name, *found)
        given[t.name] = value

    if "klen" in dims and "qlen" in dims:
        mlen = dims["klen"] - dims["qlen"]
        if mlen < 0:
            raise ArgumentError(
                "k",
                f"klen={dims['klen']} < qlen={dims['qlen']}",
                "must hold at least as many positions as the queries (klen = mlen + qlen, "
                "mlen >= 0)",
            )
        dims["mlen"] = mlen

    if check_dtypes:
        _check_dtypes(tensors, given)
    else:
        for t in tensors:
            value = given[t.name]
            if value is not None and t.kind != "float":
                kind = _kind_of(dtype_name(value))
                if kind != t.kind:
                    raise ArgumentError(
                        t.name, f"dtype {dtype_name(value)}", f"must have {_KIND_TEXT[t.kind]}"
                    )
    result = Problem(encoding, dims, opts, given, layouts)
    check(result)
    return result


def _check_broadcast(t: Tensor, shape: tuple[int, ...], dims: Mapping[str, int]) -> None:
    target = t.layouts[0]
    sizes = [dims[d] if isinstance(d, str) else d for d in target]
    ok = len(shape) <= len(target) and all(
        s in (1, n) for s, n in zip(reversed(shape), reversed(sizes), strict=False)
    )
    if not ok:
        raise ArgumentError(
            t.name,
            f"{t.name}.shape={shape}",
            f"must be broadcastable to {_layout_text(target, dims)}",
        )


def _check_dtypes(tensors: tuple[Tensor, ...], given: Mapping[str, Any]) -> None:
    float_dtype: tuple[str, str] | None = None
    for t in tensors:
        value = given[t.name]
        if value is None:
            continue
        dtype = dtype_name(value)
        kind = _kind_of(dtype)
        if t.kind == "float":
            if kind != "float":
                raise ArgumentError(
                    t.name,
                    f"dtype {dtype}",
                    "must have a floating dtype, one of " + ", ".join(_FLOAT_DTYPES),
                )
            if float_dtype is None:
                float_dtype = (t.name, dtype)
            elif dtype != float_dtype[1]:
                raise ArgumentError(
                    t.name,
                    f"dtype {dtype}",
                    f"must have the same dtype as `{float_dtype[0]}` ({float_dtype[1]})",
                )
        elif kind != t.kind:
            raise ArgumentError(t.name, f"dtype {dtype}", f"must have {_KIND_TEXT[t.kind]}")
