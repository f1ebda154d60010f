"""Every rope_type of transformers' LlamaRotaryEmbedding against the spec's exact inverse
frequencies and attention factor (tox environment interop): the module as a model holds it
after a forward pass over the current positions, so that the dynamic and longrope updates
run. What these find are findings about the library; the tests pin them for the documentation."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relpos.equivalence.frequencies import (
    compare_frequencies,
    compare_rotations,
    mrope_draws,
    scalings,
)
from relpos.spec.rope_scaling import VARIANTS, frequencies

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.interop

from relpos.equivalence.adapters.huggingface import (  # noqa: E402
    llama_rotary_frequencies,
    qwen_vl_rotary,
)


def _verdict(call):
    inverse, factor = llama_rotary_frequencies(**call)
    return compare_frequencies(inverse, factor, frequencies(**call))


def _mscale_alone(call):
    return call["rope_type"] == "yarn" and "mscale" in call and "mscale_all_dim" not in call


@pytest.mark.parametrize("rope_type", list(VARIANTS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_llama_rotary_embedding_computes_the_spec(rope_type, data):
    call = data.draw(scalings([rope_type], max_rotary_dim=64))
    result = _verdict(call)
    if _mscale_alone(call) and call["factor"] > 1 and call.get("attention_factor") is None:
        # finding: without mscale_all_dim, transformers drops mscale (its `if mscale and
        # mscale_all_dim`), where DeepSeek-V2's reference divides by mscale(s, 0) = 1
        assert not result.passed and "attention factor" in result.message
        assert "inverse frequency" not in result.message
    else:
        assert result.passed, result.message


def test_yarn_with_mscale_alone_drops_it():
    call = {
        "rope_type": "yarn",
        "rotary_dim": 8,
        "base": 10000.0,
        "factor": 16.0,
        "original_max_position_embeddings": 4096,
        "mscale": 2.0,
    }
    _, factor = llama_rotary_frequencies(**call)
    spec = frequencies(**call)
    without = frequencies(**{k: v for k, v in call.items() if k != "mscale"})
    assert factor == pytest.approx(float(without.attention_factor), rel=1e-15)
    assert float(spec.attention_factor) != pytest.approx(factor, rel=1e-3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(draw=mrope_draws())
def test_qwen_vl_multimodal_rotary_computes_the_spec(draw):
    """Qwen2-VL (sectioned) and Qwen3-VL (interleaved) text rotary embeddings, for text,
    image-grid and random position ids up to 2^17."""
    kw = {k: draw[k] for k in ("rotary_dim", "base", "section", "layout")}
    cos, sin = qwen_vl_rotary(draw["positions"], **kw)
    expected = frequencies("default", rotary_dim=kw["rotary_dim"], base=kw["base"])
    result = compare_rotations(cos, sin, draw["positions"], expected, kw["section"], kw["layout"])
    assert result.passed, result.message


def test_pixtral_2d_rotary_computes_the_spec_through_the_command(capsys, tmp_path):
    """Pixtral's vision rotary embedding (alternating layout) for patch grids, edge patches
    of grids up to 2^10 per side and random rows and columns up to 2^12, checked by the
    command users run, in a worker process; it ships no split layout (a skip)."""
    import json

    from relpos.equivalence.cli import main

    report = tmp_path / "pixtral.json"
    target = "relpos.equivalence.adapters.huggingface:pixtral_rotary"
    argv = ["rotations", "--target", target, "--layout", "alternating", "--layout", "split"]
    code = main([*argv, "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0 and "1 passed, 0 failed, 1 skipped" in out, out
    saved = {r["layout"]: r for r in json.loads(report.read_text())["results"]}
    assert saved["alternating"]["status"] == "pass" and saved["alternating"]["examples"] >= 100
    assert saved["split"]["status"] == "skip" and "is alternating" in saved["split"]["message"]


def test_pixtral_under_the_split_layout_fails():
    """The two layouts differ in the column's frequencies: checked against split, Pixtral's
    column pairs are off (the check tells the layouts apart)."""
    import numpy as np

    from relpos.equivalence.adapters.huggingface import pixtral_rotary
    from relpos.equivalence.frequencies import compare_axial

    positions = np.array([[0, 3], [1, 5]])
    cos, sin = pixtral_rotary(positions, rotary_dim=8, base=10000.0, layout="alternating")
    assert compare_axial(
        cos, sin, positions, rotary_dim=8, base=10000.0, layout="alternating"
    ).passed
    wrong = compare_axial(cos, sin, positions, rotary_dim=8, base=10000.0, layout="split")
    assert not wrong.passed and "axis C" in wrong.message, wrong.message


# -- Qwen2-VL's multimodal position ids, in the prompt and during generation ------------------


#: The models checked through ``generate`` (``<model>_position_ids`` adapters), and the
#: ``relpos position-ids`` flags their calls take.
MODELS = {"qwen2_vl": [], "qwen2_5_vl": ["--timed"], "qwen3_vl": ["--frames"]}


def _ids_verdict(model, segments, generated, **interval):
    """The model's ids for the prompt against the spec's (``interval``: temporal_interval)."""
    from relpos.equivalence.adapters import huggingface
    from relpos.equivalence.frequencies import compare_position_ids

    got = getattr(huggingface, f"{model}_position_ids")(segments, generated=generated, **interval)
    return compare_position_ids(got, segments, generated=generated, **interval)


def test_qwen2_vl_text_after_a_long_video_starts_inside_it():
    """Finding: after a video of 4 temporal steps over a 2 x 2 merged grid (ids T 2..5),
    the next text starts at 2 + max(h, w) = 4, inside the video's temporal ids; the paper
    starts it at the largest id + 1 = 6."""
    verdict = _ids_verdict("qwen2_vl", [("text", 2), ("video", (4, 2, 2)), ("text", 3)], 2)
    assert not verdict.passed
    assert "token 18 (segment 2 (text 3), its token 0) has ids (T, H, W) = [4, 4, 4], the " \
        "spec's [6, 6, 6] (5 of 23 tokens differ)" in verdict.message, verdict.message  # fmt: skip


@pytest.mark.parametrize("model", sorted(MODELS))
def test_generation_after_a_vision_token_goes_on_per_axis(model):
    """Finding 14, in each model: when the prompt ends in an image, each generated token
    takes the last token's ids + 1 on each axis ((0, 0, 1) -> (1, 1, 2)): the axes disagree
    and the temporal and height ids fall inside the image's; the paper gives (2, 2, 2)."""
    verdict = _ids_verdict(model, [("image", (1, 1, 2))], 1)
    assert not verdict.passed
    assert "token 2 (generated token 0) has ids (T, H, W) = [1, 1, 2], the spec's [2, 2, 2]" in (
        verdict.message
    ), verdict.message


@st.composite
def _prompts_ending_in_text(draw):
    """Prompts where neither finding applies: vision segments each followed by text, and
    videos no longer in time than in space (t <= max(h, w))."""
    segments = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            segments.append(("text", draw(st.integers(1, 3))))
        h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        t = draw(st.integers(1, max(h, w))) if draw(st.booleans()) else 1
        segments.append(("video" if t > 1 or draw(st.booleans()) else "image", (t, h, w)))
        segments.append(("text", draw(st.integers(1, 3))))
    return {"segments": segments, "generated": draw(st.integers(0, 3))}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=_prompts_ending_in_text())
def test_qwen2_vl_prompts_ending_in_text_compute_the_spec(call):
    """Outside the two findings, Qwen2-VL's ids are the paper's, during generation too."""
    verdict = _ids_verdict("qwen2_vl", call["segments"], call["generated"])
    assert verdict.passed, verdict.message


@pytest.mark.parametrize("model", sorted(MODELS))
def test_position_ids_fail_through_the_command(capsys, model):
    """The command users run finds a finding in each model, with the smallest call."""
    from relpos.equivalence.cli import main

    target = f"relpos.equivalence.adapters.huggingface:{model}_position_ids"
    code = main(["position-ids", "--target", target, *MODELS[model]])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "position ids: M-RoPE position ids of" in out
    assert "generated token 0) has ids" in out or "(text " in out, out
    assert f"smallest call: {target}(**{{'segments': [(" in out
    assert ("temporal_interval" in out) == (model == "qwen2_5_vl"), out


# -- Qwen2.5-VL: temporal ids stepped by a video's interval -----------------------------------


def test_qwen2_5_vl_text_after_a_video_starts_inside_it_sooner_with_a_longer_interval():
    """Finding 13 in Qwen2.5-VL: the next segment starts at max(h, w) after the video's, so
    with 2 temporal ids per step (2 frames per second) a video of 2 steps over a 2 x 2 grid
    (temporal ids 2 and 4) is already followed inside it: the text starts at 4, not 5."""
    segments = [("text", 2), ("video", (2, 2, 2)), ("text", 3)]
    assert _ids_verdict("qwen2_5_vl", segments, 0, temporal_interval=Fraction(1)).passed
    verdict = _ids_verdict("qwen2_5_vl", segments, 0, temporal_interval=Fraction(2))
    assert not verdict.passed
    assert "token 10 (segment 2 (text 3), its token 0) has ids (T, H, W) = [4, 4, 4], the " \
        "spec's [5, 5, 5] (3 of 13 tokens differ)" in verdict.message, verdict.message  # fmt: skip


@st.composite
def _timed_prompts_outside_the_findings(draw):
    """Prompts where neither finding applies: vision segments each followed by text, and
    videos whose largest temporal id floor((t - 1) x interval) lies below max(h, w)."""
    from relpos.equivalence.frequencies import temporal_intervals

    interval = draw(temporal_intervals())
    segments = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            segments.append(("text", draw(st.integers(1, 3))))
        h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        longest = max(h, w)  # steps of the video: (t - 1) x interval below it
        t = draw(st.integers(1, min(8, math.ceil(longest / interval))))
        segments.append(("video", (t, h, w)))
        segments.append(("text", draw(st.integers(1, 3))))
    return {"segments": segments, "generated": draw(st.integers(0, 3)), "interval": interval}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=_timed_prompts_outside_the_findings())
def test_qwen2_5_vl_videos_step_their_temporal_ids_by_the_interval(call):
    """Outside the two findings, Qwen2.5-VL's ids are the spec's at every drawn interval,
    the shipped ones (4 / fps) among them: its float32 seconds per temporal patch truncated
    after the product floor as the exact interval does at these lengths."""
    verdict = _ids_verdict(
        "qwen2_5_vl", call["segments"], call["generated"], temporal_interval=call["interval"]
    )
    assert verdict.passed, verdict.message


# -- Qwen3-VL: videos one frame at a time, each after its timestamp ---------------------------


def test_qwen3_vl_refuses_a_video_of_several_frames_by_name():
    from relpos.equivalence.adapters.huggingface import qwen3_vl_position_ids
    from relpos.spec import ArgumentError

    with pytest.raises(ArgumentError, match=r"segments\[1\]=\('video', \(2, 1, 1\)\)"):
        qwen3_vl_position_ids([("text", 1), ("video", (2, 1, 1))], generated=0)


@st.composite
def _framed_prompts_ending_in_text(draw):
    """Frames and images, each followed by text (a timestamp, or the prompt's text)."""
    segments = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            segments.append(("text", draw(st.integers(1, 3))))
        kind = draw(st.sampled_from(["image", "video"]))
        segments.append((kind, (1, draw(st.integers(1, 4)), draw(st.integers(1, 4)))))
        segments.append(("text", draw(st.integers(1, 3))))
    return {"segments": segments, "generated": draw(st.integers(0, 3))}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=_framed_prompts_ending_in_text())
def test_qwen3_vl_framed_prompts_ending_in_text_compute_the_spec(call):
    """One frame at a time, no video is longer in time than in space, so finding 13 cannot
    occur; outside finding 14, Qwen3-VL's ids are the spec's."""
    verdict = _ids_verdict("qwen3_vl", call["segments"], call["generated"])
    assert verdict.passed, verdict.message


# -- the vision towers' 2D rotary: each patch rotated by its own row and column ---------------


def test_qwen2_vl_vision_rotary_computes_the_spec_through_the_command(capsys):
    """Qwen2-VL's vision rotary embedding, split layout (the row on the first r/4 pairs, the
    column on the next, each 1D RoPE of width r/2), through the command; it ships no
    alternating layout (a skip)."""
    from relpos.equivalence.cli import main

    target = "relpos.equivalence.adapters.huggingface:qwen2_vl_vision_rotary"
    code = main(["rotations", "--target", target, "--layout", "split", "--layout", "alternating"])
    out = capsys.readouterr().out
    assert code == 0 and "1 passed, 0 failed, 1 skipped" in out, out


FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


def _patch_verdict(family, rows, cols):
    """The vision tower's rotation of every patch against the spec's split 2D RoPE at the
    patch's own (row, column), read back through the whole chain; and whether every patch
    of the grid came through once."""
    from relpos.equivalence.adapters.huggingface import VISION_HEAD_DIM, qwen_vl_vision_rotations
    from relpos.equivalence.frequencies import compare_axial

    positions, cos, sin = qwen_vl_vision_rotations(family, rows, cols)
    every = sorted(map(tuple, positions.T.tolist())) == [
        (r, c) for r in range(rows) for c in range(cols)
    ]
    verdict = compare_axial(
        cos, sin, positions, rotary_dim=VISION_HEAD_DIM, base=10000.0, layout="split"
    )
    return every, verdict


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    family=st.sampled_from(FAMILIES),
    rows=st.integers(1, 7).map(lambda n: 2 * n),
    cols=st.integers(1, 7).map(lambda n: 2 * n),
)
def test_qwen_vl_vision_towers_rotate_each_patch_by_its_own_row_and_column(family, rows, cols):
    """Image processor, patch order, Qwen2.5-VL's windows (of 2 x 2 merged patches here, so
    that grids of up to 7 x 7 merged patches end in partial windows) and the rotary embedding
    agree: every patch gets the rotation of its own (row, column)."""
    every, verdict = _patch_verdict(family, rows, cols)
    assert every and verdict.passed, verdict.message


def test_position_ids_in_raster_order_rotate_patches_at_the_wrong_place(monkeypatch):
    """Planted: Qwen2-VL's vision position ids in raster order, not in the 2 x 2 merge
    blocks the processor emits patches in. A grid one block wide hides it; a wider one
    fails."""
    import transformers.models.qwen2_vl.modeling_qwen2_vl as qwen2_vl

    def raster(grid_thw, spatial_merge_size, **kw):
        (t, h, w), *_ = grid_thw.tolist()
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        return torch.stack([rows.flatten(), cols.flatten()], dim=-1).repeat(t, 1)

    monkeypatch.setattr(qwen2_vl, "get_vision_position_ids", raster)
    assert _patch_verdict("qwen2_vl", 4, 2)[1].passed
    every, verdict = _patch_verdict("qwen2_vl", 4, 4)
    assert every and not verdict.passed, verdict.message


def test_rotations_left_out_of_the_window_order_rotate_patches_at_the_wrong_place(monkeypatch):
    """Planted: Qwen2.5-VL's window order applied to the patches but not to their rotations.
    One window hides it; a grid of several windows fails."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel as Tower,
    )

    from relpos.equivalence.adapters.huggingface import VISION_HEAD_DIM

    permute = Tower.permute_input_for_window_attn

    def rotations_unpermuted(self, tensor, window_index, seq_len):
        if tensor.shape[-1] == VISION_HEAD_DIM:  # cos or sin, not the patch features
            return tensor
        return permute(self, tensor, window_index, seq_len)

    monkeypatch.setattr(Tower, "permute_input_for_window_attn", rotations_unpermuted)
    assert _patch_verdict("qwen2_5_vl", 4, 4)[1].passed  # one window of 2 x 2 merged patches
    every, verdict = _patch_verdict("qwen2_5_vl", 4, 8)
    assert every and not verdict.passed, verdict.message
