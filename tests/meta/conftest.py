"""Meta tests plant bugs: what their checks find is kept in a database of their own, never
replayed by a later run of the real implementations."""

import pytest


@pytest.fixture(autouse=True)
def _planted_failures_stay_here(tmp_path, monkeypatch):
    monkeypatch.setenv("RELPOS_EXAMPLES", str(tmp_path / "examples"))
