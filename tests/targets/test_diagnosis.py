"""Diagnosis tries inputs that tell conventions apart: memory where the profile allows it,
three heads or more, and a fully masked row on which zeros, uniform weights and NaN differ."""

from __future__ import annotations

import numpy as np
import pytest

from relpos.equivalence.targets import diagnose, diagnosis_samples, make_target, restriction
from relpos.spec import all_encodings, pair_values
from tests.meta import planted


@pytest.mark.parametrize("enc", all_encodings(), ids=lambda e: e.name)
def test_the_samples_reach_memory_heads_and_a_telling_masked_row(enc):
    samples = diagnosis_samples(enc.name, restriction(enc, enc.profile(enc.name)), 4)
    assert any(d.dims["mlen"] > 0 for d in samples), samples
    assert any(d.dims["n_head"] >= 3 for d in samples), samples
    row = samples[-1]  # the one drawn for the masked-row conventions
    assert row.mask == "fully_masked_row"
    args = row.arguments("float32")
    dead = ~np.broadcast_to(args["mask"], (*args["q"].shape[:3], args["k"].shape[2])).any(-1)
    assert dead.any()
    # uniform weights give the mean of the pair values there: neither zeros nor a tie with them
    mean = pair_values(enc.name, **args).mean(axis=-2)[dead]
    assert row.klen >= 2 and (np.abs(mean) > 0).all()


def test_a_failure_that_needs_memory_is_not_explained_as_conforming():
    pytest.importorskip("torch")
    target = make_target(planted.shaw("no_memory_offset").load(), encoding="shaw")
    said = str(diagnose(target))
    assert "conforms to profile shaw on these inputs" not in said, said
    # the same code without the bug conforms on the same inputs
    correct = make_target(planted.shaw(None).load(), encoding="shaw")
    assert "conforms to profile shaw on these inputs" in str(diagnose(correct))
