"""Target code runs in a worker process, never in the checker's own.

A third-party target may hang, abort, segfault or exhaust memory. Each call of a target goes
to a persistent worker (one per backend, a ``pebble`` process pool of one), so that imports
and compilations are paid once; the call has a timeout. A call that outlives it, or a worker
that dies, becomes a finding of its own (:class:`TargetDied`, status ``timeout`` or
``crash``), the pool starts a fresh worker, and the run goes on.

Only what can be named crosses the process boundary: the target and its adapter by their
import paths (``package.module:function``), the inputs and outputs as numpy arrays. A target
given as an object that cannot be imported by its name (a closure, a lambda) runs in the
checker's process, and its report says so.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np

from relpos.impls import Implementation

__all__ = [
    "DEFAULT_TIMEOUT",
    "LOAD_TIMEOUT",
    "Isolated",
    "TargetDied",
    "WorkerPool",
    "pool",
    "set_timeout",
    "shutdown",
    "timeout",
]

#: Seconds one call of a target may take (``relpos check --timeout``, RELPOS_TIMEOUT).
DEFAULT_TIMEOUT = 60.0
#: Seconds a fresh worker may take to import a target and its backend.
LOAD_TIMEOUT = 300.0

_timeout = {"call": float(os.environ.get("RELPOS_TIMEOUT") or DEFAULT_TIMEOUT)}


def timeout() -> float:
    """The per-call timeout in force, in seconds."""
    return _timeout["call"]


def set_timeout(seconds: float) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"timeout={seconds!r} must be a positive number of seconds")
    _timeout["call"] = float(seconds)


class TargetDied(BaseException):
    """A target's call hung past the timeout (``status="timeout"``) or its worker died
    (``status="crash"``: an abort, a segfault, the kernel's out-of-memory killer).

    A BaseException, so that Hypothesis does not shrink it: each attempt would cost a timeout
    or a fresh worker. A hang is reported on the input that hung; a crash on the smallest
    input a short search of the runner finds that still crashes."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        #: The property failure the runner made of it (the draw and a repro).
        self.failure: Any = None


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
            if name == "SIGKILL":  # nothing in the worker sends it: the system did
                return "killed by signal SIGKILL, as the out-of-memory killer does"
            return f"killed by signal {name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerPool:
    """One persistent worker process for target calls (spawned, never forked: a forked
    copy of a process that runs torch or JAX threads may deadlock)."""

    def __init__(self) -> None:
        self._pool: Any = None
        self._loaded: set[tuple[str, ...]] = set()
        atexit.register(self.shutdown)

    def _ensure(self) -> Any:
        if self._pool is None or not self._pool.active:
            import pebble

            self._pool = pebble.ProcessPool(
                max_workers=1, context=multiprocessing.get_context("spawn")
            )
            self._loaded.clear()
        return self._pool

    def call(self, who: str, fn: Callable[..., Any], *args: Any, limit: float) -> Any:
        """``fn(*args)`` in the worker within ``limit`` seconds; its exceptions are raised
        here, a hang or a dead worker as :class:`TargetDied`."""
        import pebble

        future = self._ensure().schedule(fn, args=args, timeout=limit)
        try:
            return future.result()
        except FutureTimeout:
            self._loaded.clear()  # pebble replaced the worker
            raise TargetDied(
                "timeout", f"{who} did not return within {limit:g} s (the worker was stopped)"
            ) from None
        except pebble.ProcessExpired as died:
            self._loaded.clear()
            raise TargetDied(
                "crash", f"{who} crashed its worker process ({_describe_exit(died.exitcode)})"
            ) from None

    def run(self, key: tuple[str, ...], who: str, task: str, *args: Any) -> Any:
        """Run ``task`` ("outputs" or "gradients") of the target named by ``key``: the first
        call in a worker loads the target, under :data:`LOAD_TIMEOUT`."""
        if key not in self._loaded:
            # the checker's import path as it is now (a persistent worker was started earlier)
            self.call(who, _load, key, list(sys.path), limit=max(LOAD_TIMEOUT, timeout()))
            self._loaded.add(key)
        from relpos.equivalence.backends import device

        # the checker's device as it is now, like its import path
        return self.call(who, _task, task, device(), key, *args, limit=timeout())

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
            self._pool = None
            self._loaded.clear()


_POOLS: dict[str, WorkerPool] = {}


@dataclass(frozen=True)
class Isolated(Implementation):
    """A bundled implementation whose calls run in its backend's worker process, like a
    target's (``relpos check --isolate``): a hang or a crash in it is a finding, not the end
    of the run. The results, the id and the repro are the implementation's own."""

    @classmethod
    def of(cls, impl: Implementation) -> Isolated:
        return cls(impl.encoding, impl.backend, impl.variant, impl.function)

    @property
    def key(self) -> tuple[str, ...]:
        return (f"{self.module}:{self.function}", self.encoding, "", self.backend)

    def outputs(self, args: Mapping[str, Any], dtype: str) -> Any:
        return pool(self.backend).run(self.key, self.id, "outputs", args, dtype)

    def output_gradients(
        self,
        args: Mapping[str, Any],
        dtype: str,
        weights: np.ndarray,
        wrt: tuple[str, ...],
    ) -> dict[str, np.ndarray]:
        return pool(self.backend).run(self.key, self.id, "gradients", args, dtype, weights, wrt)

    def wrap(self, other: Implementation) -> Isolated:
        """Another implementation (a cross-backend partner) run the same way."""
        return Isolated.of(other)


def pool(backend: str) -> WorkerPool:
    """The worker for ``backend``'s targets (one per backend and checker process)."""
    if backend not in _POOLS:  # one each: a pool registers its own shutdown at exit
        _POOLS[backend] = WorkerPool()
    return _POOLS[backend]


def shutdown() -> None:
    """Stop every worker (they are also stopped when the checker exits)."""
    for worker in _POOLS.values():
        worker.shutdown()


# -- in the worker -------------------------------------------------------------------------

_TARGETS: dict[tuple[str, ...], Any] = {}


def _load(key: tuple[str, ...], path: list[str]) -> None:
    from relpos.equivalence.targets import make_target

    sys.path[:] = path
    # Conventions are converted in the checker: the worker only calls (through the adapter)
    # and checks what comes back, which no profile changes.
    target_path, encoding, adapter_path, backend = key
    _TARGETS[key] = make_target(
        target_path,
        encoding=encoding,
        adapter=adapter_path or None,
        backend=backend,
        isolate=False,
    )


def _outputs(key: tuple[str, ...], args: Mapping[str, Any], dtype: str) -> Any:
    from relpos.equivalence.backends import backend

    target = _TARGETS[key]
    return backend(target.backend).call(target.invoke, args, dtype)


def _gradients(
    key: tuple[str, ...],
    args: Mapping[str, Any],
    dtype: str,
    weights: np.ndarray,
    wrt: tuple[str, ...],
) -> dict[str, np.ndarray]:
    from relpos.equivalence.backends import backend

    target = _TARGETS[key]
    return backend(target.backend).gradients(target.out, args, dtype, weights, wrt)


_TASKS: dict[str, Callable[..., Any]] = {"outputs": _outputs, "gradients": _gradients}


def _task(task: str, device: str, key: tuple[str, ...], *args: Any) -> Any:
    from relpos.equivalence.backends import set_device

    set_device(device)
    return _TASKS[task](key, *args)
