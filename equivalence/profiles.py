"""Hypothesis profiles: the test budget lives here, not in the tests.

``dev`` (the default) is quick; ``ci`` runs a few more examples and is chosen automatically
when the environment variable CI is set; ``thorough`` runs 200 examples per property and dtype.
``HYPOTHESIS_PROFILE`` picks one explicitly. No budget is derandomized: every run draws from a
fresh seed (:func:`run_seed`), says it, and replays from it. Failures are kept in an example
database (:func:`example_database`) that the next run replays first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

__all__ = [
    "PROFILES",
    "RUN_SEED",
    "KeyedDatabase",
    "active_profile",
    "cache_path",
    "example_database",
    "load_profile",
    "run_seed",
    "set_run_seed",
]

# No "explain" phase: it traces every executed line, which the exact oracle's arithmetic makes
# ruinously slow; a failure is explained by its own message and repro instead.
_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)

_COMMON = {
    "deadline": None,
    "phases": _PHASES,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}

# Every profile states ``derandomize``: a profile without it inherits Hypothesis's own default,
# which turns derandomized wherever the environment variable CI is set.
PROFILES: dict[str, dict] = {
    "dev": {"max_examples": 3, "derandomize": False, **_COMMON},
    "ci": {"max_examples": 5, "derandomize": False, **_COMMON},
    "thorough": {"max_examples": 200, "derandomize": False, **_COMMON},
}

for _name, _kwargs in PROFILES.items():
    settings.register_profile(_name, **_kwargs)


#: One seed for every property in a process (unless the profile derandomizes): properties
#: then draw the same inputs, share the oracle's cached evaluations and JAX's compiled shapes.
#: RELPOS_SEED (or ``relpos check --seed``) reproduces a run.
def _seed_from_environment() -> int | None:
    """RELPOS_SEED as a seed, None when unset; a malformed value is refused when the seed is
    first used (:func:`run_seed`), with the variable and what it allows, not at import."""
    text = os.environ.get("RELPOS_SEED", "").strip()
    if not text:
        return int.from_bytes(os.urandom(4), "little")
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 <= value < 2**32 else None


RUN_SEED = _seed_from_environment()
_seed = {"run": RUN_SEED}


def run_seed() -> int:
    """The seed of this run's draws (set by RELPOS_SEED, :func:`set_run_seed`, or fresh)."""
    value = _seed["run"]
    if value is None:
        raise ValueError(
            f"RELPOS_SEED={os.environ.get('RELPOS_SEED')!r} must be an integer in [0, 2**32)"
        )
    return value


def set_run_seed(value: int) -> None:
    """Replay a run: every property after this call draws from ``value``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ValueError(f"seed={value!r} must be an integer in [0, 2**32)")
    _seed["run"] = value


def active_profile() -> str:
    """HYPOTHESIS_PROFILE if set, else ci when CI is set, else dev."""
    name = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    if name not in PROFILES:
        raise ValueError(
            f"HYPOTHESIS_PROFILE={name!r} must be one of {', '.join(PROFILES)} (the budgets)"
        )
    return name


def load_profile(name: str) -> settings:
    if name not in PROFILES:
        raise ValueError(f"budget {name!r} must be one of {', '.join(PROFILES)}")
    return settings.get_profile(name)


def cache_path(variable: str, name: str) -> Path | None:
    """A directory this package keeps between runs: the environment variable ``variable`` if
    set (empty: none), else relpos/``name`` under XDG_CACHE_HOME (~/.cache)."""
    chosen = os.environ.get(variable)
    if chosen is not None:
        return Path(chosen) if chosen else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "relpos" / name


def example_database() -> ExampleDatabase | None:
    """Where failing examples are kept, so that the next run tries them first:
    RELPOS_EXAMPLES if set (empty: nowhere), else relpos/examples under XDG_CACHE_HOME."""
    directory = cache_path("RELPOS_EXAMPLES", "examples")
    return None if directory is None else DirectoryBasedExampleDatabase(directory)


class KeyedDatabase(ExampleDatabase):
    """One check's share of an example database: every key is prefixed with ``name`` (the
    property, implementation and dtype), since the checks are one Hypothesis test function
    run for each, and Hypothesis keys a test's examples by its function."""

    def __init__(self, database: ExampleDatabase, name: str) -> None:
        super().__init__()
        self._database = database
        self._prefix = name.encode() + b"\0"

    def __repr__(self) -> str:
        return f"KeyedDatabase({self._database!r}, {self._prefix[:-1].decode()!r})"

    def save(self, key: bytes, value: bytes) -> None:
        self._database.save(self._prefix + key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        return self._database.fetch(self._prefix + key)

    def delete(self, key: bytes, value: bytes) -> None:
        self._database.delete(self._prefix + key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self._database.move(self._prefix + src, self._prefix + dest, value)
