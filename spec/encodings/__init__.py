"""The registry of encodings: one line per encoding, name -> spec module.

Every other registry (implementations, strategies, tests, the CLI) is derived from this one.
"""

from __future__ import annotations

import importlib
from functools import cache

from relpos.spec._encoding import Encoding

__all__ = ["ENCODINGS", "all_encodings", "get"]

#: Encoding name -> the module that defines its spec (one final Encoding subclass).
ENCODINGS: dict[str, str] = {
    "shaw": "relpos.spec.encodings.shaw",
    "xl": "relpos.spec.encodings.xl",
    "alibi": "relpos.spec.encodings.alibi",
    "t5": "relpos.spec.encodings.t5",
    "rope": "relpos.spec.encodings.rope",
    "deberta": "relpos.spec.encodings.deberta",
}


@cache
def get(name: str) -> Encoding:
    """The spec of encoding ``name``."""
    if name not in ENCODINGS:
        from relpos.spec._signature import ArgumentError

        raise ArgumentError(
            "encoding", repr(name), "must be one of " + ", ".join(repr(n) for n in ENCODINGS)
        )
    module = importlib.import_module(ENCODINGS[name])
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, Encoding)
        and obj is not Encoding
        and obj.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise TypeError(f"{module.__name__} must define exactly one Encoding, found {classes}")
    encoding = classes[0]()
    names = [p.name for p in encoding.all_profiles()]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise TypeError(
            f"{module.__name__}: profile names must be unique and differ from the encoding's "
            f"name {encoding.name!r} (its own profile), got {', '.join(map(repr, clashes))} twice"
        )
    return encoding


def all_encodings() -> list[Encoding]:
    return [get(name) for name in ENCODINGS]
