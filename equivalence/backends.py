"""Backend adapters: numpy reference data in, each backend's tensors out and back.

Lazy: importing this module imports neither torch nor jax; an adapter imports its backend the
first time it is used. Float inputs are cast to the dtype under test (the strategies already
rounded them to values that dtype represents exactly); masks stay boolean and integer tensors
integer. Results come back as float64 numpy arrays.
"""

from __future__ import annotations

import abc
import importlib
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, final

import numpy as np

__all__ = [
    "DTYPES",
    "Backend",
    "InputChanged",
    "Outputs",
    "backend",
    "backends",
    "device",
    "device_problems",
    "jax_cache_dir",
    "release_compiled_code",
    "set_device",
    "use_device",
]

#: The dtypes every implementation is checked in.
DTYPES = ("float64", "float32", "bfloat16", "float16")

#: The canonical tensor arguments' order when calling an implementation.
_POSITIONAL = ("q", "k", "v")

#: Where the checked code's tensors live: "cpu" (the default), "cuda" or "cuda:N". Kept in the
#: environment, so that worker processes (``-n``, pytest-xdist, a target's worker) use it too.
DEVICE_VARIABLE = "RELPOS_DEVICE"
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def _device_name(name: str, source: str) -> str:
    if not _DEVICE.fullmatch(name):
        raise ValueError(f"{source}={name!r} must be cpu, cuda or cuda:N (N a device index)")
    return name


def device() -> str:
    """The device the backends put tensors on (RELPOS_DEVICE, else cpu)."""
    name = os.environ.get(DEVICE_VARIABLE, "").strip() or "cpu"
    return _device_name(name, DEVICE_VARIABLE)


def set_device(name: str) -> None:
    """Put every later tensor on device ``name`` (cpu, cuda or cuda:N), in this process and
    in the processes it starts from now on."""
    os.environ[DEVICE_VARIABLE] = _device_name(name, "device")


def _index(name: str) -> int:
    return int(name.split(":")[1]) if ":" in name else 0


def device_problems(name: str, names: tuple[str, ...] | None = None) -> dict[str, str]:
    """Why backends ``names`` (default: every one installed here) cannot put tensors on
    ``name``, by backend; empty when they all can. A backend not installed is not asked."""
    _device_name(name, "device")
    problems = {}
    for chosen in backends():
        if (names is not None and chosen.name not in names) or not chosen.available()[0]:
            continue
        why = chosen.device_problem(name)
        if why:
            problems[chosen.name] = why
    return problems


def use_device(name: str, names: tuple[str, ...] | None = None) -> dict[str, str]:
    """Put every later tensor on ``name`` (:func:`set_device`) when backends ``names`` can
    all reach it; otherwise leave the device as it is and return why not, by backend."""
    problems = device_problems(name, names)
    if not problems:
        set_device(name)
    return problems


@dataclass(frozen=True)
class Outputs:
    """An implementation's results as float64 numpy arrays (a third-party target may return
    only ``out``; probabilities and scores are then None)."""

    out: np.ndarray
    probs: np.ndarray | None
    scores: np.ndarray | None


class InputChanged(Exception):
    """An implementation changed some of its input tensors in place: what the caller holds
    is then no longer what it passed, and every later use of it would be wrong."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"changed its input{'s' if len(names) > 1 else ''} {', '.join(names)} in place "
            "(an implementation must leave its inputs as it got them)"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a worker process, reported here
        return (InputChanged, (self.names,))


class Backend(abc.ABC):
    """A framework the implementations run on."""

    name: str

    def available(self) -> tuple[bool, str]:
        """Whether the backend imports here, and if not, why (the impls registry decides)."""
        from relpos.impls import backend_available

        return backend_available(self.name)

    @abc.abstractmethod
    def version(self) -> str: ...

    @abc.abstractmethod
    def tensor(self, value: np.ndarray, dtype: str) -> Any:
        """A numpy array as this backend's tensor: float arrays in ``dtype``."""

    @abc.abstractmethod
    def to_numpy(self, value: Any) -> np.ndarray:
        """A backend tensor as a float64 (or bool/int) numpy array."""

    def convert(self, args: Mapping[str, Any], dtype: str) -> dict[str, Any]:
        return {
            name: self.tensor(v, dtype) if isinstance(v, np.ndarray) else v
            for name, v in args.items()
        }

    #: Whether this backend's tensors can be changed in place (a JAX array cannot).
    mutable = True

    def call(self, fn: Callable[..., Any], args: Mapping[str, Any], dtype: str) -> Outputs:
        """Run ``fn`` on ``args`` in ``dtype``; return out, probs and scores. Every call gets
        tensors of its own (never views of ``args``), and a call that changes one of them in
        place is reported (:class:`InputChanged`)."""
        converted = self.convert(args, dtype)
        before = (
            {n: self.to_numpy(t) for n, t in converted.items() if isinstance(args[n], np.ndarray)}
            if self.mutable
            else {}
        )
        called = dict(converted)
        positional = [called.pop(name) for name in _POSITIONAL]
        out, probs, scores = fn(*positional, with_weights=True, **called)
        changed = [
            name
            for name, was in before.items()
            if not np.array_equal(self.to_numpy(converted[name]), was, equal_nan=True)
        ]
        if changed:
            raise InputChanged(changed)
        return Outputs(
            self.to_numpy(out),
            None if probs is None else self.to_numpy(probs),
            None if scores is None else self.to_numpy(scores),
        )

    @abc.abstractmethod
    def gradients(
        self,
        fn: Callable[..., Any],
        args: Mapping[str, Any],
        dtype: str,
        weights: np.ndarray,
        wrt: tuple[str, ...],
    ) -> dict[str, np.ndarray]:
        """d sum(weights * out) / d x for every x in ``wrt``, as float64 numpy arrays."""

    @abc.abstractmethod
    def plain_attention(
        self,
        q: np.ndarray,
        k: np.ndarray,
        v: np.ndarray,
        mask: np.ndarray | None,
        scale: float,
        dtype: str,
    ) -> np.ndarray:
        """The framework's own scaled dot-product attention (no relative term), float64."""

    def plain_attention_dtype(self, dtype: str) -> str:
        """The dtype whose unit roundoff bounds :meth:`plain_attention` for ``dtype`` input."""
        return dtype

    @abc.abstractmethod
    def device_problem(self, name: str) -> str:
        """Why this backend cannot put tensors on device ``name``, or "" when it can."""

    def release(self, *, force: bool = False) -> bool:
        """Drop code this backend compiled and keeps, if it keeps any: always when ``force``,
        else only when the process's memory mappings crowd the kernel's limit. Returns whether
        anything was dropped. Nothing to drop by default."""
        return False


def _mapping_count() -> int | None:
    """How many memory mappings this process holds (Linux: lines of /proc/self/maps)."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            return maps.read().count(b"\n")
    except OSError:
        return None


@cache
def _mapping_limit() -> int | None:
    """The kernel's limit on one process's memory mappings (vm.max_map_count)."""
    try:
        with open("/proc/sys/vm/max_map_count") as limit:
            return int(limit.read())
    except (OSError, ValueError):
        return None


def _crowded() -> bool:
    """Whether this process holds more than half the memory mappings the kernel allows."""
    count, limit = _mapping_count(), _mapping_limit()
    return count is not None and limit is not None and 2 * count > limit


def release_compiled_code(*, force: bool = False) -> list[str]:
    """Release compiled code kept by every backend already imported (see
    :meth:`Backend.release`); returns the names of those that dropped some. The test suite
    calls it after every test, so that a long run stays within the mapping limit even where
    tests call implementations directly."""
    return [b.name for b in _BACKENDS.values() if b.release(force=force)]


@final
class TorchBackend(Backend):
    name = "torch"

    @property
    def torch(self) -> Any:
        return importlib.import_module("torch")

    def version(self) -> str:
        return str(self.torch.__version__)

    def tensor(self, value: np.ndarray, dtype: str) -> Any:
        torch = self.torch
        # Copies, never views of ``value``: a target that writes into its inputs must not
        # write into the checker's arrays.
        if value.dtype.kind == "f":
            return torch.tensor(
                np.asarray(value, dtype=np.float64), dtype=getattr(torch, dtype), device=device()
            )
        return torch.tensor(np.asarray(value), device=device())

    def device_problem(self, name: str) -> str:
        if name == "cpu":
            return ""
        cuda = self.torch.cuda
        if not cuda.is_available():
            return "torch sees no CUDA device (torch.cuda.is_available() is False)"
        count = cuda.device_count()
        if _index(name) >= count:
            return f"torch sees {count} CUDA device{'s' * (count != 1)}: cuda:0 to cuda:{count - 1}"
        return ""

    def to_numpy(self, value: Any) -> np.ndarray:
        # Always a copy: a float64 CPU tensor's numpy() shares its memory, and a target may
        # write into what it returned (or was given) later.
        value = value.detach()
        if value.is_floating_point():
            value = value.to(self.torch.float64)
        return np.array(value.cpu().numpy(), copy=True)

    def gradients(self, fn, args, dtype, weights, wrt):
        torch = self.torch
        converted = self.convert(args, dtype)
        for name in wrt:
            converted[name] = converted[name].detach().requires_grad_(True)
        leaves = {name: converted[name] for name in wrt}
        positional = [converted.pop(name) for name in _POSITIONAL]
        out = fn(*positional, **converted)
        loss = (out.to(torch.float64) * torch.from_numpy(weights).to(out.device)).sum()
        grads = torch.autograd.grad(loss, [leaves[n] for n in wrt], allow_unused=True)
        return {
            name: (np.zeros(args[name].shape) if g is None else self.to_numpy(g))
            for name, g in zip(wrt, grads, strict=True)
        }

    def plain_attention(self, q, k, v, mask, scale, dtype):
        torch = self.torch
        sdpa = torch.nn.functional.scaled_dot_product_attention
        t = [self.tensor(x, dtype) for x in (q, k, v)]
        attn_mask = (
            None if mask is None else torch.tensor(np.asarray(mask, dtype=bool), device=device())
        )
        return self.to_numpy(sdpa(*t, attn_mask=attn_mask, scale=scale))


def jax_cache_dir() -> Path | None:
    """Where JAX keeps compiled code between runs: RELPOS_JAX_CACHE if set (empty: nowhere),
    else relpos/jax under XDG_CACHE_HOME (~/.cache)."""
    from relpos.equivalence.profiles import cache_path

    return cache_path("RELPOS_JAX_CACHE", "jax")


@final
class JaxBackend(Backend):
    """JAX with 64-bit types enabled (float64 is one of the dtypes under test)."""

    name = "jax"
    mutable = False

    #: Calls between two looks at the process's memory mappings (:meth:`release`).
    CHECK_EVERY = 16

    def __init__(self) -> None:
        self._calls = 0

    @property
    def jax(self) -> Any:
        jax = importlib.import_module("jax")
        jax.config.update("jax_enable_x64", True)
        directory = jax_cache_dir()
        if directory is not None and jax.config.jax_compilation_cache_dir != str(directory):
            # Compilations kept on disk: a later run (or process) reuses them.
            jax.config.update("jax_compilation_cache_dir", str(directory))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        return jax

    def version(self) -> str:
        return str(self.jax.__version__)

    # Conversions happen in numpy (ml_dtypes carries bfloat16), and arrays reach the device
    # with device_put: a JAX astype, and jnp.asarray of a host array, are each a jitted
    # operation of their own, compiled once per shape, and a run draws thousands of shapes.
    def tensor(self, value: np.ndarray, dtype: str) -> Any:
        jax = self.jax
        if value.dtype.kind == "f":
            with np.errstate(over="ignore"):  # beyond the dtype's range: inf, as a cast gives
                host = np.asarray(value, dtype=np.float64).astype(getattr(jax.numpy, dtype))
            return jax.device_put(host, self._device())
        return jax.device_put(np.asarray(value), self._device())

    def _device(self) -> Any:
        """The device to put arrays on; None (JAX's default, uncommitted) for cpu."""
        name = device()
        return None if name == "cpu" else self.jax.devices("gpu")[_index(name)]

    def device_problem(self, name: str) -> str:
        if name == "cpu":
            return ""
        try:
            found = self.jax.devices("gpu")
        except RuntimeError as exc:  # no GPU backend in this jaxlib, or none initialised
            return f"JAX has no GPU backend here ({str(exc).splitlines()[0]})"
        if _index(name) >= len(found):
            return f"JAX sees {len(found)} GPU device{'s' * (len(found) != 1)}"
        return ""

    def to_numpy(self, value: Any) -> np.ndarray:
        host = np.asarray(value)
        if self.jax.numpy.issubdtype(host.dtype, self.jax.numpy.floating):
            return host.astype(np.float64)
        return host

    def call(self, fn: Callable[..., Any], args: Mapping[str, Any], dtype: str) -> Outputs:
        self._compiled()
        return super().call(fn, args, dtype)

    def _compiled(self) -> None:
        """Count a call that may compile; every CHECK_EVERY calls, release if crowded."""
        self._calls += 1
        if self._calls % self.CHECK_EVERY == 0:
            self.release()

    def release(self, *, force: bool = False) -> bool:
        """JAX keeps every executable it compiled, one per shape and static option, each
        holding several memory mappings. A run over thousands of drawn shapes would reach the
        kernel's limit (vm.max_map_count, 65530 by default), where the next allocation fails and
        the process dies with SIGSEGV or SIGABRT. Clearing JAX's caches past half the limit
        unmaps them; the shapes still in use recompile once."""
        if "jax" not in sys.modules or not (force or _crowded()):
            return False
        sys.modules["jax"].clear_caches()
        return True

    def gradients(self, fn, args, dtype, weights, wrt):
        self._compiled()
        jax = self.jax
        jnp = jax.numpy
        converted = self.convert(args, dtype)
        fixed = {k: v for k, v in converted.items() if k not in wrt}
        w = jax.device_put(np.asarray(weights), self._device())

        def loss(leaves: dict[str, Any]) -> Any:
            call = {**fixed, **leaves}
            positional = [call.pop(name) for name in _POSITIONAL]
            return jnp.sum(fn(*positional, **call).astype(jnp.float64) * w)

        grads = jax.grad(loss)({name: converted[name] for name in wrt})
        return {name: self.to_numpy(grads[name]) for name in wrt}

    def plain_attention(self, q, k, v, mask, scale, dtype):
        self._compiled()
        jnp = self.jax.numpy
        # jax.nn.dot_product_attention takes (batch, length, heads, d_head).
        t = [jnp.swapaxes(self.tensor(x, dtype), 1, 2) for x in (q, k, v)]
        m = None if mask is None else self.jax.device_put(np.asarray(mask), self._device())
        out = self.jax.nn.dot_product_attention(*t, mask=m, scale=scale)
        return self.to_numpy(jnp.swapaxes(out, 1, 2))

    def plain_attention_dtype(self, dtype: str) -> str:
        # Its softmax runs in float32 even for float64 inputs.
        return "float32" if dtype == "float64" else dtype


_BACKENDS: dict[str, Backend] = {"torch": TorchBackend(), "jax": JaxBackend()}


@cache
def backend(name: str) -> Backend:
    """The adapter of backend ``name``."""
    if name not in _BACKENDS:
        raise ValueError(f"`backend` must be one of {', '.join(_BACKENDS)}, got {name!r}")
    return _BACKENDS[name]


def backends() -> list[Backend]:
    return list(_BACKENDS.values())
