"""The budgets mean the same thing on a laptop and on CI."""

import os
import subprocess
import sys

import pytest

from relpos.equivalence.profiles import PROFILES


@pytest.mark.parametrize("ci", ["", "1"])
def test_only_the_ci_budget_is_derandomized_wherever_it_runs(ci):
    code = (
        "from relpos.equivalence.profiles import PROFILES, load_profile\n"
        "print(' '.join(f'{n}={load_profile(n).derandomize}' for n in PROFILES))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = ci
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [f"{name}={name == 'ci'}" for name in PROFILES]
