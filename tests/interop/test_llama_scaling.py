"""transformers' LlamaAttention configured with each rope_type (profile hf-llama-scaled,
tox environment interop) against the spec's scaled RoPE attention. The golden cases hold
each variant where its bugs show; the ones it fails are findings about the library, pinned
here for the verdicts page (docs/verdicts.md)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")
pytestmark = pytest.mark.interop

from relpos.equivalence.targets import check_target, make_target  # noqa: E402

LLAMA = "transformers.models.llama.modeling_llama:LlamaAttention"
ADAPTER = "relpos.equivalence.adapters.huggingface:llama_attention"

#: Findings (docs/verdicts.md): dynamic and longrope rotate the keys a KV cache
#: holds by the frequencies of the call that cached them (within L0), and the queries' call
#: by those of its own length (past L0); dynamic takes one length for the whole batch, its
#: largest position, so a shorter row is rotated by a longer row's base.
FINDINGS = {"dynamic_past_L0", "longrope_memory", "dynamic_rows"}


def _target():
    return make_target(LLAMA, encoding="rope", profile="hf-llama-scaled", adapter=ADAPTER)


def _failed(result):
    return set(result.message.split("(", 1)[1].split(")", 1)[0].split(", "))


def test_llama_attention_fails_the_cached_and_batched_length_cases_in_float32():
    (result,) = check_target(_target(), properties=["golden"], dtypes=["float32"])
    assert result.status == "fail", result.message
    assert _failed(result) == FINDINGS, result.message


KEPT = "relpos.equivalence.adapters.huggingface:llama_attention_kept"


def _dynamic_call(qlen: int):
    """A call of qlen queries and no memory, so that every position gets the frequencies of
    the call's own length (a cache would add finding 15)."""
    from relpos.equivalence.draws import Draw

    scaling = {"rope_type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 8}
    return Draw(
        encoding="rope",
        dims={"bsz": 1, "n_head": 3, "qlen": qlen, "mlen": 0, "d_head": 8},
        options={"base": 5000, "rotary_dim": None, "scaling": scaling, "scale": None},
        seed=16,
    )


def _conforms(target, draw) -> bool:
    from relpos.equivalence.properties import check_oracle

    return all(v.ok for v in check_oracle(target, draw, "float32"))


def test_dynamic_keeps_a_longer_calls_base_until_a_call_shorter_than_L0():
    """Finding: one LlamaRotaryEmbedding kept across calls (as in a model) grows its base for
    a call past L0 = 8 and keeps it for every later call of length L0 or more, so a shorter
    call past L0 is rotated by the longer call's base; only a call shorter than L0 resets
    it. All in float32, so finding 8 (frequencies rounded by a move between dtypes) plays no
    part."""
    from relpos.equivalence.properties import run_implementation

    target = make_target(LLAMA, encoding="rope", profile="hf-llama-scaled", adapter=KEPT)
    short, longer, below = _dynamic_call(12), _dynamic_call(48), _dynamic_call(6)
    assert _conforms(target, short)  # klen 12: its own base, on its own
    run_implementation(target, longer.arguments("float32"), "float32")
    assert not _conforms(target, short)  # the same call, now with klen 48's base
    assert _conforms(target, below)  # klen 6 < L0 resets the base
    assert _conforms(target, short)
