"""The documented check_implementation example, on every bundled implementation, with the
default budget: each is its own spec-conformant target."""

from __future__ import annotations

import pytest

from relpos.equivalence import check_implementation
from tests.conftest import implementation_params


@pytest.mark.parametrize("impl", implementation_params())
def test_the_readme_example_passes_on_a_bundled_implementation(impl):
    results = check_implementation(
        f"{impl.module}:{impl.function}",
        encoding=impl.encoding,
        properties=["oracle", "repeatability"],
        dtypes=["float64"],
    )
    assert {r.status for r in results} == {"pass"}
