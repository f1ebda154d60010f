"""Targets that attack the checker: they hang, abort or segfault. Each must become a finding
of its own while the checker survives (they run in a worker process)."""

from __future__ import annotations

import ctypes
import os
import time

from relpos.impls.torch.shaw import shaw_reference


def correct(q, k, v, **arguments):
    """The bundled reference: passes."""
    return shaw_reference(q, k, v, **arguments)


def hangs(q, k, v, **arguments):
    time.sleep(3600)
    return shaw_reference(q, k, v, **arguments)


def aborts(q, k, v, **arguments):
    os.abort()


def segfaults(q, k, v, **arguments):
    ctypes.string_at(0)


def scales_q_in_place(q, k, v, **arguments):
    """Right answer, but q is doubled afterwards: the caller's tensor is corrupted."""
    out = shaw_reference(q, k, v, **arguments)
    q.mul_(2)
    return out
