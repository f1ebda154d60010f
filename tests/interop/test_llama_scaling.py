"""transformers' LlamaAttention configured with each rope_type (profile hf-llama-scaled,
tox environment interop) against the spec's scaled RoPE attention. The golden cases hold
each variant where its bugs show; the ones it fails are findings about the library, pinned
here for the README's verdict table."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")
pytestmark = pytest.mark.interop

from relpos.equivalence.targets import check_target, make_target  # noqa: E402

LLAMA = "transformers.models.llama.modeling_llama:LlamaAttention"
ADAPTER = "relpos.equivalence.adapters.huggingface:llama_attention"

#: Findings (README, Hugging Face verdicts): dynamic and longrope rotate the keys a KV cache
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
