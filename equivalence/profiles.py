"""Hypothesis profiles: the test budget lives here, not in the tests.

``dev`` (the default) is quick; ``ci`` is derandomized with no deadline and is chosen
automatically when the environment variable CI is set; ``thorough`` runs at least ten times
the examples of ``ci``. ``HYPOTHESIS_PROFILE`` picks one explicitly.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

__all__ = ["PROFILES", "RUN_SEED", "active_profile", "load_profile"]

# No "explain" phase: it traces every executed line, which the exact oracle's arithmetic makes
# ruinously slow; a failure is explained by its own message and repro instead.
_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)

_COMMON = {
    "deadline": None,
    "phases": _PHASES,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}

PROFILES: dict[str, dict] = {
    "dev": {"max_examples": 3, **_COMMON},
    "ci": {"max_examples": 5, "derandomize": True, **_COMMON},
    "thorough": {"max_examples": 50, **_COMMON},
}

for _name, _kwargs in PROFILES.items():
    settings.register_profile(_name, **_kwargs)


#: One seed for every property in a process (unless the profile derandomizes): properties
#: then draw the same inputs, share the oracle's cached evaluations and JAX's compiled shapes.
#: RELPOS_SEED reproduces a run.
RUN_SEED = int(os.environ.get("RELPOS_SEED") or int.from_bytes(os.urandom(4), "little"))


def active_profile() -> str:
    """HYPOTHESIS_PROFILE if set, else ci when CI is set, else dev."""
    name = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    if name not in PROFILES:
        raise ValueError(f"HYPOTHESIS_PROFILE must be one of {', '.join(PROFILES)}, got {name!r}")
    return name


def load_profile(name: str) -> settings:
    if name not in PROFILES:
        raise ValueError(f"`profile` must be one of {', '.join(PROFILES)}, got {name!r}")
    return settings.get_profile(name)
