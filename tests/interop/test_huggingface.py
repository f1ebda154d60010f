"""Hugging Face transformers checked through the bundled adapters (tox environment interop):
the verdicts the documentation publishes. What these find are findings about the library; the tests
pin them so that the documentation stays true, and fail if the library (or the checker) changes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from relpos.equivalence.draws import Draw
from relpos.equivalence.runner import PropertyFailure
from relpos.equivalence.targets import check_target, diagnose, make_target, reproduce_target
from relpos.spec import evaluate

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.interop

XLNET = "transformers.models.xlnet.modeling_xlnet"
W2V = "transformers.models.wav2vec2_bert.modeling_wav2vec2_bert"
ADAPTERS = "relpos.equivalence.adapters.huggingface"

XLNET_TARGETS = {
    "rel_attn_core": (f"{XLNET}:XLNetRelativeAttention.rel_attn_core", "xlnet_rel_attn_core"),
    "module": (f"{XLNET}:XLNetRelativeAttention", "xlnet_relative_attention"),
}


def _target(path, adapter, encoding, profile):
    return make_target(path, encoding=encoding, profile=profile, adapter=f"{ADAPTERS}:{adapter}")


def _status(results):
    return {(r.property, r.dtype): r for r in results}


#: A masked key given weight (the oracle's 0, within 0): an additive mask of finfo.min leaves
#: a key visible when the logits come near float16's range, since finfo.min plus a logit of
#: order 1e4 is finite and may exceed the visible keys' logits.
MASKED_KEY = "but should be 0 (oracle) within 0"


#: What a float16 finding of these libraries may be: a fully masked row (NaN, or weights far
#: from uniform), or NaN (or a row's weights all on one key) from logits that pass float16's
#: range, pass it before their scale (the libraries scale after the product q k^T), or sum
#: terms that pass it.
FLOAT16_FINDINGS = ("fully masked row", "beyond float16's largest finite 65504", MASKED_KEY)


#: The explanation of a NaN from products formed before their scale.
BEFORE_THE_SCALE = "so a product scaled only afterwards overflows"

#: The explanation of a NaN from terms (content, position) that overflow in opposite
#: directions though their sum, the logit, fits.
TERMS_OVERFLOW = "may overflow though their sum fits"


def _passes_or_has_float16_findings(result, kinds=FLOAT16_FINDINGS):
    """A pass, or only the float16 findings above. Whether a run meets one depends on the
    draw (a masked row, large logits), so a fresh seed may see none."""
    if result.status == "pass":
        return
    assert result.status == "fail", result.message
    findings = [line for line in result.message.splitlines() if " of torch-" in line]
    assert findings, result.message
    for finding in findings:
        assert any(kind in finding for kind in kinds), result.message


#: Libraries that form q k^T (and their position terms) in float16 and scale afterwards.
SCALED_AFTERWARDS = {
    "xlnet": (XLNET_TARGETS["rel_attn_core"][0], "xlnet_rel_attn_core", "xl", "xlnet"),
    "wav2vec2-bert": (
        f"{W2V}:Wav2Vec2BertSelfAttention",
        "wav2vec2_bert_self_attention",
        "shaw",
        "hf-wav2vec2-bert-relative-key",
    ),
    "llama": (
        "transformers.models.llama.modeling_llama:LlamaAttention",
        "llama_attention",
        "rope",
        "llama",
    ),
    "deberta-v2": (
        "transformers.models.deberta_v2.modeling_deberta_v2:DisentangledSelfAttention",
        "deberta_v2_self_attention",
        "deberta",
        "hf-deberta-v2",
    ),
}


@pytest.mark.parametrize("library", list(SCALED_AFTERWARDS))
def test_float16_products_before_the_scale_overflow(library):
    # Finding: scores that float16 holds (55% to 95% of its range) come out NaN, since the
    # products are formed before the scale: q k^T for all four, and DeBERTa's c2p and p2c
    # terms (its content term divides the keys first).
    path, adapter, encoding, profile = SCALED_AFTERWARDS[library]
    got = check_target(_target(path, adapter, encoding, profile), properties=["half_range"])
    (result,) = got
    assert result.status == "fail" and BEFORE_THE_SCALE in result.message, result.message
    _passes_or_has_float16_findings(result)


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
    for dtype in ("float32", "bfloat16"):
        assert got["oracle", dtype].status == "pass", got["oracle", dtype].message
    # float16: the finding of the test below, whenever a draw holds a fully masked row
    _passes_or_has_float16_findings(got["oracle", "float16"])
    for prop in ("translation", "memory_rows", "masked_keys", "wide_range"):
        assert got[prop, "float64"].status == "pass", got[prop, "float64"].message
    # Finding: positions and frequencies are built in float32 even in a float64 model, so
    # float64 results are off beyond float64's bound. Whether a run's draws show it depends
    # on them (the sinusoid of small positions can round alike in both), so the finding is
    # pinned on a fixed draw below; a run that meets it reports it in float64.
    wrong = got["oracle", "float64"]
    assert wrong.status == "pass" or (wrong.status == "fail" and "float64" in wrong.message)
    dims = {"bsz": 1, "n_head": 2, "qlen": 4, "mlen": 2, "d_head": 8, "d_model": 8}
    options = {"d_model": None, "attn_type": "bi", "clamp_len": None, "scale": None}
    draw = Draw("xl", dims, {**options, "clamp_style": "symmetric"}, values="normal", seed=1)
    with pytest.raises(PropertyFailure, match=r"in float64 = .* is [0-9.e+]+x the bound"):
        reproduce_target(
            path, "xl", "xlnet", "oracle", "float64", draw, adapter=f"{ADAPTERS}:{adapter}"
        )
    reproduce_target(
        path, "xl", "xlnet", "oracle", "float32", draw, adapter=f"{ADAPTERS}:{adapter}"
    )
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
    # Finding: the float16 mask constant 65500 drives scores below about -16 to -inf (a NaN
    # row), and rounds the others to multiples of 32 (weights far from uniform).
    _passes_or_has_float16_findings(got["masked_rows", "float16"])


@pytest.mark.parametrize("which", list(XLNET_TARGETS))
def test_xlnet_float16_overflows_on_large_logits_before_its_scale(which):
    # Finding: XLNet forms (q + u) k^T + (q + v) r^T in float16 and scales afterwards, so
    # logits of about 1e4 (finite in float16) are inf before the scale, and the row is NaN.
    path, adapter = XLNET_TARGETS[which]
    dims = {"bsz": 1, "n_head": 1, "qlen": 1, "mlen": 1, "d_head": 83, "d_model": 6}
    options = {"d_model": None, "attn_type": "bi", "clamp_len": None, "scale": None}
    draw = Draw("xl", dims, {**options, "clamp_style": "symmetric"}, values="large", seed=1)
    with pytest.raises(PropertyFailure) as failure:
        reproduce_target(
            path, "xl", "xlnet", "oracle", "float16", draw, adapter=f"{ADAPTERS}:{adapter}"
        )
    message = str(failure.value)
    assert "out of torch-xl-XLNetRelativeAttention" in message and "= nan at" in message
    assert "|logit| / scale reaches 1.25e+05" in message, message
    for dtype in ("float32", "bfloat16"):
        reproduce_target(
            path, "xl", "xlnet", "oracle", dtype, draw, adapter=f"{ADAPTERS}:{adapter}"
        )


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
    # fully masked row is NaN rather than uniform; and the products before the scale
    # overflow (test_float16_products_before_the_scale_overflow).
    half = {("oracle", "float16"), ("masked_rows", "float16"), ("half_range", "float16")}
    assert findings <= half, {k: got[k].message for k in findings}
    for prop in ("masked_rows", "oracle", "half_range"):
        _passes_or_has_float16_findings(got[prop, "float16"])


def test_wav2vec2_bert_under_the_spec_profile_is_diagnosed():
    d = diagnose(
        _target(f"{W2V}:Wav2Vec2BertSelfAttention", "wav2vec2_bert_self_attention", "shaw", "shaw")
    )
    assert "hf-wav2vec2-bert-relative-key" in d.profiles, d


# -- T5, Llama and DeBERTa-v2 ------------------------------------------------------------------

T5 = "transformers.models.t5.modeling_t5:T5Attention"
LLAMA = "transformers.models.llama.modeling_llama:LlamaAttention"
DEBERTA_V2 = "transformers.models.deberta_v2.modeling_deberta_v2:DisentangledSelfAttention"


def test_t5_conforms_to_its_profile():
    target = _target(T5, "t5_attention", "t5", "hf-t5")
    got = _status(check_target(target, budget="ci"))
    findings = {key for key, r in got.items() if r.status not in ("pass", "skip")}
    # Finding: as Wav2Vec2-BERT, float16 fully masked rows are NaN (finfo.min plus a negative
    # score is -inf); the oracle meets such a row only when it draws one. With logits near
    # float16's range the same mask leaves a masked key visible (MASKED_KEY).
    # T5 has no scale, so its products cannot overflow before one.
    half = {("oracle", "float16"), ("masked_rows", "float16"), ("half_range", "float16")}
    assert findings <= half, findings
    for prop in ("masked_rows", "oracle", "half_range"):
        _passes_or_has_float16_findings(got[prop, "float16"], ("fully masked row", MASKED_KEY))
    assert got["memory_rows", "float64"].status == "pass"  # the cache path, compute_bias offset


def test_llama_conforms_in_float32_and_below_but_not_in_float64():
    target = _target(LLAMA, "llama_attention", "rope", "llama")
    positional = ["offset", "chunked", "left_padding", "packed"]
    got = _status(
        check_target(target, properties=["oracle", "masked_rows", *positional], budget="ci")
    )
    for dtype in ("float32", "bfloat16"):
        assert got["oracle", dtype].status == "pass", got["oracle", dtype].message
        assert got["masked_rows", dtype].status == "pass", got["masked_rows", dtype].message
    # position ids and the cache, as a decoding model uses them
    for prop in positional:
        assert got[prop, "float32"].status == "pass", got[prop, "float32"].message
    _passes_or_has_float16_findings(got["oracle", "float16"])
    # Findings: angles and the softmax run in float32 in a float64 model (errors about 1e-8,
    # and finfo(float64).min becomes -inf: fully masked rows NaN); float16 fully masked rows
    # attend to the keys whose masked scores rounded highest.
    assert got["oracle", "float64"].status == "fail"
    assert "out = [nan" in got["masked_rows", "float64"].message
    _passes_or_has_float16_findings(got["masked_rows", "float16"])


#: A decoding step of two rows with their own position ids up to 2^17, after a cache of 5.
PER_ROW_ROPE = Draw(
    "rope",
    {"bsz": 2, "n_head": 2, "qlen": 3, "mlen": 5, "d_head": 8},
    {"base": 10000, "rotary_dim": None, "scale": None},
    values="normal",
    seed=2,
    positions="per_row",
)


@pytest.mark.parametrize("kind", ["offset", "per_row", "packed"])
def test_llama_takes_position_ids_as_a_decoding_model_does(kind):
    # position_ids reach LlamaRotaryEmbedding, the memory positions through the cache first
    draw = replace(PER_ROW_ROPE, positions=kind)
    worst = reproduce_target(
        LLAMA, "rope", "llama", "oracle", "float32", draw, adapter=f"{ADAPTERS}:llama_attention"
    )
    assert worst <= 1


def test_the_llama_adapter_refuses_queries_that_are_not_the_newest_keys():
    from transformers.models.llama.modeling_llama import LlamaAttention

    from relpos.equivalence.adapters.huggingface import llama_attention

    args = PER_ROW_ROPE.arguments("float32")
    q, k, v = (torch.from_numpy(args[n]) for n in "qkv")
    k_pos = torch.from_numpy(args["k_pos"])
    with pytest.raises(ValueError, match=r"`q_pos` must equal k_pos\[:, klen - qlen:\]"):
        llama_attention(LlamaAttention, q, k, v, q_pos=k_pos[:, :3], k_pos=k_pos)


def _deberta_inputs(seed, span, length=4, d=2, n_head=2):
    rng = np.random.default_rng(seed)
    shape = (1, n_head, length, d)
    q, k, v = (rng.standard_normal(shape) for _ in range(3))
    tables = {n: rng.standard_normal((2 * span, d)) for n in ("pos_key", "pos_query")}
    return q, k, v, tables


def _deberta_hf(q, k, v, **kw):
    from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention

    from relpos.equivalence.adapters.huggingface import deberta_v2_self_attention

    t = {n: torch.from_numpy(x) for n, x in kw.items() if isinstance(x, np.ndarray)}
    rest = {n: x for n, x in kw.items() if not isinstance(x, np.ndarray)}
    out = deberta_v2_self_attention(
        DisentangledSelfAttention, *(torch.from_numpy(x) for x in (q, k, v)), **t, **rest
    )
    return out.detach().numpy()


def _deberta_spec(q, k, v, **kw):
    return np.asarray(evaluate("deberta", q=q, k=k, v=v, **kw).out, dtype=float)


# Hugging Face computes sqrt(d_head * terms) in float32, so float64 results carry its
# rounding (relative 6e-8 of each logit): 1e-6 bounds that for these unit-sized inputs, and
# the paper's p2c term differs from the code's by order 1.
SCALE_ROUNDING = 1e-6


@pytest.mark.parametrize("max_position", [None, 64])
def test_deberta_v2_p2c_reads_the_c2p_distance_not_the_papers(max_position):
    # Finding: the paper's p2c term is k_j . Q^r[delta(j, i)]; Hugging Face (like
    # microsoft/DeBERTa's code) gathers at delta(i, j): the spec's p2c_distance 'r_ij'.
    q, k, v, tables = _deberta_inputs(1, span=4)
    kw = {"pos_query": tables["pos_query"], "span": 4, "max_position": max_position}
    got = _deberta_hf(q, k, v, **kw)
    np.testing.assert_allclose(
        got, _deberta_spec(q, k, v, p2c_distance="r_ij", **kw), rtol=0, atol=SCALE_ROUNDING
    )
    assert np.abs(got - _deberta_spec(q, k, v, **kw)).max() > 1e-2


def test_deberta_v2_conforms_to_its_profile_below_float64():
    target = _target(DEBERTA_V2, "deberta_v2_self_attention", "deberta", "hf-deberta-v2")
    got = _status(check_target(target, budget="ci"))
    findings = {key for key, r in got.items() if r.status not in ("pass", "skip")}
    # Finding: sqrt(d_head * terms) is taken in float32, so float64 results are off by about
    # 1e-9; masked scores are replaced by finfo.min, so fully masked rows stay uniform even
    # in float16.
    # In float16 the c2p and p2c products overflow before their scale
    # (test_float16_products_before_the_scale_overflow), on "limit" values.
    # history fails in float64 as the oracle does, before any history.
    float64 = {"oracle", "golden", "gradients", "zero_tables", "history"}
    # A fully masked row drawn with "limit" values meets the same overflow, and only it.
    float16 = {(prop, "float16") for prop in ("oracle", "half_range", "masked_rows")}
    assert findings <= {(prop, "float64") for prop in float64} | float16
    assert {("oracle", "float64"), ("golden", "float64")} <= findings
    for prop, _ in float16:
        _passes_or_has_float16_findings(got[prop, "float16"], (BEFORE_THE_SCALE, TERMS_OVERFLOW))


#: A long draw: the rotary frequencies rounded to bfloat16 move the angles at position 600 by
#: far more than float32 rounding does.
LONG_ROPE = Draw(
    "rope",
    {"bsz": 1, "n_head": 2, "qlen": 3, "mlen": 600, "d_head": 8},
    {"base": 10000, "rotary_dim": None, "scale": None},
    values="normal",
    seed=1,
)


def test_a_llama_model_moved_to_bfloat16_keeps_bfloat16_frequencies():
    # Finding: inv_freq is a buffer, so one LlamaAttention model (with its rotary module)
    # moved to bfloat16 and back rotates its float32 calls by frequencies rounded to bfloat16.
    # The adapter that builds a fresh module per call passes the same draw.
    llama = "transformers.models.llama.modeling_llama:LlamaAttention"
    fresh = reproduce_target(
        llama,
        "rope",
        "llama",
        "history",
        "float32",
        LONG_ROPE,
        adapter=f"{ADAPTERS}:llama_attention",
    )
    assert fresh <= 1
    assert make_target(llama, encoding="rope", adapter=f"{ADAPTERS}:llama_attention_kept").stateful
    with pytest.raises(PropertyFailure, match="after a bfloat16 call of the same shapes"):
        reproduce_target(
            llama,
            "rope",
            "llama",
            "history",
            "float32",
            LONG_ROPE,
            adapter=f"{ADAPTERS}:llama_attention_kept",
        )
