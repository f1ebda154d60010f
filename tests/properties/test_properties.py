"""Every property on every registered implementation in every dtype it runs in, under the
active Hypothesis profile. Ids read like ``torch-shaw-fast-oracle-float32``."""

from __future__ import annotations

import pytest

from relpos.equivalence.properties import PROPERTIES, applicable
from relpos.equivalence.runner import run_property
from relpos.impls import registry


def _params():
    params = []
    for impl in registry():
        for prop in PROPERTIES.values():
            ok, why = applicable(prop, impl)
            for dtype in prop.dtypes:
                marks = [] if ok else [pytest.mark.skip(reason=why)]
                if prop.needs_partner:
                    marks.append(pytest.mark.cross_backend)
                params.append(
                    pytest.param(
                        impl, prop.name, dtype, marks=marks, id=f"{impl.id}-{prop.name}-{dtype}"
                    )
                )
    return params


@pytest.mark.parametrize(("impl", "prop", "dtype"), _params())
def test_property(impl, prop, dtype):
    result = run_property(prop, impl, dtype)
    assert result.status == "pass", result.message
    assert result.examples > 0
