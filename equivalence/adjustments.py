"""Adjusting a named profile for one run: ``--allow NAME[=VALUES]`` and
``--exclude NAME[=VALUES]``.

A profile states what its library accepts. A user who knows better for their version, or who
needs to step around an option value that crashes the library, adjusts it without writing a
profile:

``NAME=VALUES`` (an option of the encoding)
    ``exclude`` never draws these values; ``allow`` draws them too, beside those the profile
    allows. VALUES are Python literals separated by commas (``clamp_len=0,1``,
    ``attn_type=uni``, ``clip=(-2, 2)``); a word that is not a literal is a string.
``memory``
    ``allow`` draws memory (mlen > 0), ``exclude`` never does.
``positions``
    ``allow`` draws position ids (``q_pos``, ``k_pos``), ``exclude`` never does.
``TENSOR`` (an optional tensor, such as ``rel_v``)
    ``allow`` may give it, ``exclude`` never does.

Each adjustment is checked against the encoding (the name, and each value with the option's
own check) and shown with the profile's name in the report.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from relpos.spec import ArgumentError
from relpos.spec._conventions import POSITION_TENSORS
from relpos.spec._encoding import Encoding
from relpos.spec._profiles import Candidates, Profile

__all__ = ["KINDS", "adjust", "help_text", "parse", "recorded"]

#: The two adjustments and what each does to the values it names.
KINDS = {"allow": "draw these values too", "exclude": "never draw them"}


def help_text(kind: str) -> str:
    """The command-line help of ``--allow`` or ``--exclude`` (the CLI's and the plugin's)."""
    return (
        f"adjust the profile: {KINDS[kind]} (an option NAME=V1,V2; memory; positions; or "
        "an optional tensor); repeatable"
    )


def recorded(adjustments: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The allow and exclude texts of a profile's recorded adjustments (``allow clamp_len=0``),
    to apply them again elsewhere (a worker process, a report read back)."""
    split = [a.split(" ", 1) for a in adjustments]
    return (
        tuple(text for kind, text in split if kind == "allow"),
        tuple(text for kind, text in split if kind == "exclude"),
    )


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text.strip()


def _values(text: str) -> list[Any]:
    """``0,1`` -> [0, 1]; ``(-2, 2),(-1, 1)`` -> two pairs; ``uni`` -> ['uni']."""
    try:
        parsed = ast.literal_eval(f"[{text}]")
    except (ValueError, SyntaxError):
        return [_literal(part) for part in text.split(",")]
    return list(parsed)


def parse(kind: str, text: str) -> tuple[str, list[Any] | None]:
    """One ``--allow`` or ``--exclude`` argument: (name, values), values None for a bare name."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not name or (sep and not rest.strip()):
        raise ArgumentError(kind, repr(text), "must be NAME or NAME=VALUE[,VALUE...]")
    return name, (_values(rest) if sep else None)


def _names(enc: Encoding) -> tuple[list[str], list[str]]:
    options = [o.name for o in enc.options]
    tensors = [
        t.name
        for t in enc.tensors
        if not t.required and t.name != "mask" and t.name not in POSITION_TENSORS
    ]
    return options, tensors


def adjust(
    enc: Encoding,
    profile: Profile,
    allow: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Profile:
    """``profile`` with the ``allow`` and ``exclude`` adjustments applied, in that order, and
    recorded in ``adjustments``."""
    options, tensors = _names(enc)
    checks = {o.name: o.check for o in enc.options}
    narrowing: dict[str, Candidates] = dict(profile.options)
    memory, include, excluded = profile.memory, list(profile.include), list(profile.exclude)
    positions = profile.positions
    said: list[str] = []
    for kind, texts in zip(KINDS, (allow, exclude), strict=True):
        for text in texts:
            name, values = parse(kind, text)
            if name in ("memory", "positions") or name in tensors:
                if values is not None:
                    raise ArgumentError(
                        kind, repr(text), f"takes no values for {name} (say {kind} {name})"
                    )
                if name == "memory":
                    memory = kind == "allow"
                elif name == "positions":
                    positions = kind == "allow"
                elif kind == "allow":
                    excluded = [n for n in excluded if n != name]
                else:
                    include = [n for n in include if n != name]
                    excluded.append(name)
                said.append(f"{kind} {name}")
                continue
            if name not in options:
                known = ", ".join([*options, "memory", "positions", *tensors])
                raise ArgumentError(kind, repr(text), f"must name one of {known} for {enc.name}")
            if values is None:
                raise ArgumentError(kind, repr(text), f"must give the values: {name}=VALUE,...")
            for value in values:
                problem = checks[name](value)
                if problem:
                    raise ArgumentError(f"{kind} {name}", repr(value), problem)
            narrowing[name] = _narrowed(narrowing.get(name), kind, values)
            said.append(f"{kind} {name}={','.join(map(repr, values))}")
    return replace(
        profile,
        options=narrowing,
        memory=memory,
        positions=positions,
        include=tuple(include),
        exclude=tuple(dict.fromkeys(excluded)),
        adjustments=(*profile.adjustments, *said),
    )


def _narrowed(before: Candidates | None, kind: str, values: list[Any]) -> Candidates:
    def narrow(dims: Mapping[str, int], candidates: list[Any]) -> list[Any]:
        left = candidates if before is None else before(dims, candidates)
        if kind == "exclude":
            return [c for c in left if c not in values]
        return [*left, *(v for v in values if v not in left)]

    return narrow
