"""Hugging Face transformers checked through the bundled adapters (tox environment interop):
the verdicts the README publishes. What these find are findings about the library; the tests
pin them so that the README stays true, and fail if the library (or the checker) changes."""

from __future__ import annotations

import pytest

from equivalence.targets import check_target, diagnose, make_target

pytest.importorskip("transformers")
pytestmark = pytest.mark.interop

XLNET = "transformers.models.xlnet.modeling_xlnet"
W2V = "transformers.models.wav2vec2_bert.modeling_wav2vec2_bert"
ADAPTERS = "equivalence.adapters.huggingface"

XLNET_TARGETS = {
    "rel_attn_core": (f"{XLNET}:XLNetRelativeAttention.rel_attn_core", "xlnet_rel_attn_core"),
    "module": (f"{XLNET}:XLNetRelativeAttention", "xlnet_relative_attention"),
}


def _target(path, adapter, encoding, profile):
    return make_target(path, encoding=encoding, profile=profile, adapter=f"{ADAPTERS}:{adapter}")


def _status(results):
    return {(r.property, r.dtype): r for r in results}


@pytest.mark.parametrize("which", list(XLNET_TARGETS))
def test_xlnet_conforms_to_its_profile_up_to_a_float32_sinusoid(which):
    path, adapter = XLNET_TARGETS[which]
    target = _target(path, adapter, "xl", "xlnet")
    got = _status(
        check_target(
            target,
            properties=["oracle", "translation", "memory_rows", "masked_keys", "wide_range"],
            budget="ci",
        )
    )
    for dtype in ("float32", "bfloat16", "float16"):
        assert got["oracle", dtype].status == "pass", got["oracle", dtype].message
    for prop in ("translation", "memory_rows", "masked_keys", "wide_range"):
        assert got[prop, "float64"].status == "pass", got[prop, "float64"].message
    # Finding: positions and frequencies are built in float32 even in a float64 model, so
    # float64 results are off by about 1e-11, beyond float64's bound.
    wrong = got["oracle", "float64"]
    assert wrong.status == "fail" and "float64" in wrong.message
    assert str(diagnose(target)).endswith(
        "conforms to profile xlnet on these inputs, so the failures lie in another dtype, "
        "in larger inputs, or in a property beyond the values"
    )


@pytest.mark.parametrize("which", list(XLNET_TARGETS))
def test_xlnet_float16_fully_masked_rows_are_nan(which):
    path, adapter = XLNET_TARGETS[which]
    target = _target(path, adapter, "xl", "xlnet")
    got = _status(check_target(target, properties=["masked_rows"], budget="ci"))
    for dtype in ("float64", "float32", "bfloat16"):
        assert got["masked_rows", dtype].status == "pass", got["masked_rows", dtype].message
    # Finding: the float16 mask constant 65500 drives scores below about -16 to -inf.
    assert got["masked_rows", "float16"].status == "fail"
    assert "out = [nan]" in got["masked_rows", "float16"].message


def test_xlnet_under_the_spec_profile_is_diagnosed_as_xlnet():
    path, adapter = XLNET_TARGETS["rel_attn_core"]
    d = diagnose(_target(path, adapter, "xl", "xl"))
    assert "xlnet" in d.profiles
    assert d.differences == {"clamp": "symmetric", "mask": "hide", "masked_rows": "uniform"}


def test_wav2vec2_bert_conforms_to_its_profile():
    target = _target(
        f"{W2V}:Wav2Vec2BertSelfAttention",
        "wav2vec2_bert_self_attention",
        "shaw",
        "hf-wav2vec2-bert-relative-key",
    )
    got = _status(check_target(target, budget="ci"))
    findings = {key for key, r in got.items() if r.status not in ("pass", "skip")}
    # Finding: in float16 the additive mask finfo.min plus a negative score is -inf, so a
    # fully masked row is NaN rather than uniform.
    assert findings == {("masked_rows", "float16")}, {k: got[k].message for k in findings}
    assert "out = [nan]" in got["masked_rows", "float16"].message


def test_wav2vec2_bert_under_the_spec_profile_is_diagnosed():
    d = diagnose(
        _target(f"{W2V}:Wav2Vec2BertSelfAttention", "wav2vec2_bert_self_attention", "shaw", "shaw")
    )
    assert "hf-wav2vec2-bert-relative-key" in d.profiles, d
