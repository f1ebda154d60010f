"""Scaled RoPE frequencies computed as shipped code computes them (float32 numpy, each
variant's published formula), with the bugs public trackers report planted one at a time:
the correct code passes every drawn call, and the search of :func:`scalings` finds a call
that each planted bug fails."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import find as hypothesis_find

from relpos.equivalence.frequencies import (
    axial_draws,
    boundaries,
    compare_frequencies,
    mrope_draws,
    multimodal_prompts,
    scalings,
)
from relpos.spec.rope_scaling import frequencies

F32 = np.float32


def _powers(base, r, denominator=None):
    n = r if denominator is None else denominator
    return F32(base) ** (np.arange(0, r, 2, dtype=np.int64).astype(F32) / F32(n))


def _mscale(s, m=1.0):
    return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0


def shipped(call, bug=None):
    """(inverse frequencies, attention factor) of ``call`` in float32, ``bug`` planted."""
    c = dict(call)
    t, r, base, n = c.pop("rope_type"), c.pop("rotary_dim"), c.pop("base"), c.pop("seq_len")
    one = 1.0
    if t == "default":
        return F32(1) / _powers(base, r), one
    if t == "linear":
        return F32(1) / _powers(base, r) / F32(c["factor"]), one
    if t == "proportional":
        denominator = r if bug == "proportional_uses_r" else c["head_dim"]
        return F32(1) / _powers(base, r, denominator) / F32(c["factor"]), one
    L0 = c["original_max_position_embeddings"]
    if t == "dynamic":
        f = c["factor"]
        L = L0 if bug == "dynamic_is_static" else max(n or L0, L0)
        grown = base * ((f * L / L0) - (f - 1)) ** (r / (r - 2))
        return F32(1) / _powers(grown, r), one
    if t == "yarn":
        f = c["factor"]

        def dim(beta):
            return (r * math.log(L0 / (beta * 2 * math.pi))) / (2 * math.log(base))

        low, high = dim(c["beta_fast"]), dim(c["beta_slow"])
        if c["truncate"]:
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, r - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(r // 2, dtype=F32) - F32(low)) / F32(high - low), 0, 1)
        keep = F32(1) - ramp
        powers = _powers(base, r)
        inv = (F32(1) / (F32(f) * powers)) * (F32(1) - keep) + (F32(1) / powers) * keep
        if c.get("attention_factor") is not None and bug != "yarn_explicit_ignored":
            factor = c["attention_factor"]
        else:
            factor = _mscale(f, c.get("mscale", 1.0)) / _mscale(f, c.get("mscale_all_dim", 0.0))
        if bug == "yarn_factor_squared":
            factor *= factor
        return inv, factor
    if t == "longrope":
        long = n is not None and (n >= L0 if bug == "longrope_switch_at_L0" else n > L0)
        ext = np.asarray(c["long_factor"] if long else c["short_factor"], dtype=F32)
        f = c["max_position_embeddings"] / L0
        factor = 1.0 if f <= 1 else math.sqrt(1 + math.log(f) / math.log(L0))
        return F32(1) / (ext * _powers(base, r)), factor
    assert t == "llama3"
    inv = F32(1) / _powers(base, r)
    if bug == "llama3_unscaled":
        return inv, one
    f, lo, hi = c["factor"], c["low_freq_factor"], c["high_freq_factor"]
    wavelength = F32(2 * math.pi) / inv
    scaled = np.where(wavelength > F32(L0 / lo), inv / F32(f), inv)
    smooth = (F32(L0) / wavelength - F32(lo)) / F32(hi - lo)
    blended = (F32(1) - smooth) * scaled / F32(f) + smooth * scaled
    medium = ~(wavelength < F32(L0 / hi)) & ~(wavelength > F32(L0 / lo))
    return np.where(medium, blended, scaled), one


def verdict(call, bug=None):
    inv, factor = shipped(call, bug)
    return compare_frequencies(inv, factor, frequencies(**call))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=scalings())
def test_shipped_frequencies_pass(call):
    result = verdict(call)
    assert result.passed, result.message


PLANTED = {
    "llama3_unscaled": "llama3",
    "yarn_factor_squared": "yarn",
    "yarn_explicit_ignored": "yarn",
    "dynamic_is_static": "dynamic",
    "longrope_switch_at_L0": "longrope",
    "proportional_uses_r": "proportional",
}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_the_search_finds_each_planted_bug(bug):
    failing = hypothesis_find(
        scalings([PLANTED[bug]]),
        lambda call: not verdict(call, bug).passed,
        settings=settings(max_examples=400, deadline=None, database=None),
    )
    message = verdict(failing, bug).message
    assert PLANTED[bug] in message and "bound" in message


@pytest.mark.parametrize("rope_type", sorted({t for t in PLANTED.values()} | {"default"}))
def test_the_switch_point_calls_pass_shipped_code(rope_type):
    for call in boundaries(rope_type):
        result = verdict(call)
        assert result.passed, result.message


@pytest.mark.parametrize("bug", ["longrope_switch_at_L0", "dynamic_is_static"])
def test_the_switch_point_calls_catch_the_bugs_at_L0_whatever_the_search_draws(bug):
    """A run's draws are correlated: one run in seven of 100 longrope draws had no seq_len at
    L0 itself. The switch-point calls, run before every search, catch it in every run."""
    assert any(not verdict(call, bug).passed for call in boundaries(PLANTED[bug]))


# -- the same bugs through `relpos frequencies`, the command users run ---------------------


def shipped_target(**call):
    return shipped(call)


def _planted_target(bug):
    def target(**call):
        return shipped(call, bug)

    target.__name__ = target.__qualname__ = f"planted_{bug}"
    return target


for _bug in PLANTED:
    globals()[f"planted_{_bug}"] = _planted_target(_bug)


def raises_for_longrope(**call):
    if call["rope_type"] == "longrope":
        raise RuntimeError("no long factors here")
    return shipped(call)


def _run(capsys, *argv):
    from relpos.equivalence.cli import main

    code = main(["frequencies", *argv])
    return code, capsys.readouterr()


def test_the_command_passes_shipped_code(capsys):
    code, out = _run(capsys, "--target", f"{__name__}:shipped_target", "--budget", "ci")
    assert code == 0, out.out
    assert "7 passed, 0 failed" in out.out and out.out.startswith("seed ")


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_the_command_catches_each_planted_bug(capsys, bug):
    rope_type = PLANTED[bug]
    code, out = _run(capsys, "--target", f"{__name__}:planted_{bug}", "--rope-type", rope_type)
    assert code == 1
    assert f"fail {rope_type}: {rope_type}:" in out.out
    assert f"smallest call: {__name__}:planted_{bug}(**{{'rope_type': '{rope_type}'" in out.out


def test_a_target_that_raises_is_an_error_with_its_call(capsys, tmp_path):
    report = tmp_path / "r.json"
    code, out = _run(capsys, "--target", f"{__name__}:raises_for_longrope", "--json", str(report))
    assert code == 1
    assert "error longrope: " in out.out and "RuntimeError: no long factors here" in out.out
    import json

    saved = json.loads(report.read_text())
    statuses = {r["rope_type"]: r["status"] for r in saved["results"]}
    assert statuses.pop("longrope") == "error" and set(statuses.values()) == {"pass"}
    assert saved["seed"] == int(out.out.split()[1])


def test_an_oracle_failure_is_never_blamed_on_the_target(monkeypatch):
    """An exception of the spec's side propagates as the checker's own, so that no target
    is reported in error for it."""
    from relpos.equivalence import frequencies as module

    def broken(**call):
        raise OverflowError("the oracle's own")

    monkeypatch.setattr(module, "frequencies", broken)
    with pytest.raises(OverflowError, match="the oracle's own"):
        module.check_frequencies(
            f"{__name__}:shipped_target", ["default"], budget="dev", isolate=False
        )


def test_a_bad_target_is_refused_by_name(capsys):
    code, out = _run(capsys, "--target", "no_such_module:f")
    assert code == 2
    assert "`target` must name an importable module" in out.err


# -- M-RoPE: position ids split over frequency sections ---------------------------------------


def shipped_mrope(draw, bug=None):
    """cos and sin (L, r/2) of M-RoPE in float32 as shipped code computes them."""
    r, base, (s_t, s_h, s_w) = draw["rotary_dim"], draw["base"], draw["section"]
    ids = draw["positions"]
    inv = F32(1) / _powers(base, r)
    n = r // 2
    if draw["layout"] == "sectioned":
        if bug == "height_width_swapped":
            s_h, s_w = s_w, s_h
        axis = np.repeat([0, 1, 2], [s_t, s_h, s_w])
        if bug == "height_width_swapped":
            axis = np.where(axis == 1, 2, np.where(axis == 2, 1, 0))
    else:
        if bug == "sectioned_for_interleaved":
            axis = np.repeat([0, 1, 2], [s_t, s_h, s_w])
        else:
            axis = np.zeros(n, dtype=np.int64)
            start = 0 if bug == "interleave_offset" else 1
            axis[start : 3 * s_h : 3] = 1
            axis[2 : 3 * s_w : 3] = 2
    angle = ids[axis, :].T.astype(F32) * inv[None, :]
    return np.cos(angle), np.sin(angle)


def mrope_verdict(draw, bug=None):
    from relpos.equivalence.frequencies import compare_rotations

    cos, sin = shipped_mrope(draw, bug)
    expected = frequencies("default", rotary_dim=draw["rotary_dim"], base=draw["base"])
    return compare_rotations(cos, sin, draw["positions"], expected, draw["section"], draw["layout"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(draw=mrope_draws())
def test_shipped_mrope_passes(draw):
    result = mrope_verdict(draw)
    assert result.passed, result.message


@pytest.mark.parametrize(
    "bug", ["height_width_swapped", "interleave_offset", "sectioned_for_interleaved"]
)
def test_the_search_finds_each_planted_mrope_bug(bug):
    failing = hypothesis_find(
        mrope_draws(),
        lambda draw: not mrope_verdict(draw, bug).passed,
        settings=settings(max_examples=400, deadline=None, database=None),
    )
    message = mrope_verdict(failing, bug).message
    assert "M-RoPE" in message and "bound" in message and "axis" in message


# -- through the command: relpos rotations ---------------------------------------------------


def shipped_mrope_target(positions, *, rotary_dim, base, section, layout, bug=None):
    """:func:`shipped_mrope` with the calling convention of ``relpos rotations``."""
    draw = {"rotary_dim": rotary_dim, "base": base, "section": section, "layout": layout}
    return shipped_mrope({**draw, "positions": np.asarray(positions)}, bug)


# -- 2D axial RoPE: rows and columns of image patches ----------------------------------------


def shipped_axial(positions, *, rotary_dim, base, layout, bug=None):
    """cos and sin (L, r/2) of 2D axial RoPE in float32 as shipped vision code computes
    them, ``bug`` planted."""
    ids = np.asarray(positions)
    r, quarter = rotary_dim, rotary_dim // 4
    if layout == "split":
        width = r if bug == "split_over_full_width" else r // 2
        inv = (F32(1) / _powers(base, width))[:quarter]
        inv = np.concatenate([inv, inv])
    else:
        full = F32(1) / _powers(base, r)
        column = full[0::2] if bug == "column_on_even_frequencies" else full[1::2]
        inv = np.concatenate([full[0::2], column])
    axis = np.repeat([0, 1], quarter)
    if bug == "rows_and_columns_swapped":
        axis = 1 - axis
    at = ids[axis, :].T
    if bug == "positions_in_float16":
        at = at.astype(np.float16)
    angle = at.astype(F32) * inv[None, :]
    return np.cos(angle), np.sin(angle)


def axial_verdict(draw, bug=None):
    from relpos.equivalence.frequencies import compare_axial

    kw = {k: v for k, v in draw.items() if k != "positions"}
    cos, sin = shipped_axial(draw["positions"], **kw, bug=bug)
    return compare_axial(cos, sin, draw["positions"], **kw)


AXIAL_BUGS = {
    "split_over_full_width": "split",
    "column_on_even_frequencies": "alternating",
    "rows_and_columns_swapped": "split",
    "positions_in_float16": "alternating",
}

for _bug in AXIAL_BUGS:
    globals()[f"planted_axial_{_bug}"] = (
        lambda b: lambda positions, **kw: shipped_axial(positions, **kw, bug=b)
    )(_bug)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(draw=axial_draws())
def test_shipped_axial_passes(draw):
    result = axial_verdict(draw)
    assert result.passed, result.message


@pytest.mark.parametrize("bug", sorted(AXIAL_BUGS))
def test_the_search_finds_each_planted_axial_bug(bug):
    failing = hypothesis_find(
        axial_draws(),
        lambda draw: not axial_verdict(draw, bug).passed,
        settings=settings(max_examples=400, deadline=None, database=None),
    )
    message = axial_verdict(failing, bug).message
    assert message.startswith("2D axial RoPE (") and "bound" in message and "axis" in message


def test_the_rotations_command_passes_shipped_code(capsys):
    from relpos.equivalence.cli import main

    argv = ["rotations", "--target", f"{__name__}:shipped_axial", "--budget", "dev"]
    code = main([*argv, "--layout", "split", "--layout", "alternating"])
    out = capsys.readouterr().out
    assert code == 0 and "2 passed, 0 failed, 0 skipped (budget dev)" in out, out
    code = main(["rotations", "--target", f"{__name__}:shipped_mrope_target", "--layout",
                 "sectioned", "--layout", "interleaved", "--budget", "dev"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "2 passed, 0 failed" in out, out


@pytest.mark.parametrize("bug", sorted(AXIAL_BUGS))
def test_the_rotations_command_catches_each_planted_axial_bug(capsys, bug):
    from relpos.equivalence.cli import main

    layout = AXIAL_BUGS[bug]
    target = f"{__name__}:planted_axial_{bug}"
    code = main(["rotations", "--target", target, "--layout", layout])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"fail {layout}: 2D axial RoPE ({layout}, r = " in out
    assert f"smallest call: {target}(**{{'rotary_dim': " in out


def test_the_rotations_command_catches_a_planted_mrope_bug(capsys):
    from relpos.equivalence.cli import main

    code = main(["rotations", "--target", f"{__name__}:planted_mrope_interleave_offset",
                 "--layout", "interleaved"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "fail interleaved: M-RoPE (interleaved, section " in out, out


def planted_mrope_interleave_offset(positions, **kw):
    return shipped_mrope_target(positions, **kw, bug="interleave_offset")


# -- multimodal position ids: prompts of text, images and videos, then generation -------------


def shipped_position_ids(segments, *, generated, temporal_interval=1, bug=None):
    """M-RoPE position ids (3, L + generated) as a multimodal model computes them: each
    segment from the largest id before it + 1, vision tokens in (t, h, w) raster order, a
    video's temporal ids floor(i x temporal_interval) (integer arithmetic on the exact
    Fraction), generated tokens on from the largest id + 1; ``bug`` planted."""
    ids = [[], [], []]
    start = 0
    for kind, size in segments:
        if kind == "text":
            for axis in ids:
                axis.extend(range(start, start + size))
            start += size
            continue
        t, h, w = size
        grid = np.stack(np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij"))
        grid = grid.reshape(3, -1)
        interval = Fraction(temporal_interval)
        if bug == "interval_ignored":
            interval = Fraction(1)
        steps = grid[0] * interval.numerator
        # floor, or to the nearest integer (half up), as code that rounds a float would
        if bug == "interval_rounded":
            steps = steps + interval.denominator // 2
        grid[0] = steps // interval.denominator
        if bug == "height_and_width_swapped":
            grid = grid[[0, 2, 1]]
        for axis, row in zip(ids, grid, strict=True):
            axis.extend((row + start).tolist())
        # the spatial extent alone (transformers 5.24's rule), or the largest id + 1
        start = (
            start + max(h, w)
            if bug == "next_after_the_spatial_extent"
            else (max(max(axis) for axis in ids) + 1)
        )
    last = [axis[-1] for axis in ids]
    for k in range(generated):
        for a, axis in enumerate(ids):
            # each axis on from the prompt's last token (generation's rule), or from the start
            axis.append(last[a] + 1 + k if bug == "generation_from_the_last_token" else start + k)
    return np.asarray(ids)


POSITION_BUGS = (
    "height_and_width_swapped",
    "next_after_the_spatial_extent",
    "generation_from_the_last_token",
)

#: Bugs of a video's temporal interval (``relpos position-ids --timed``): ignored, or the
#: temporal ids rounded to the nearest integer instead of floored.
TIMED_BUGS = ("interval_ignored", "interval_rounded")

for _bug in POSITION_BUGS + TIMED_BUGS:
    globals()[f"planted_ids_{_bug}"] = (
        lambda b: lambda segments, **kw: shipped_position_ids(segments, **kw, bug=b)
    )(_bug)


@settings(max_examples=100, deadline=None)
@given(call=multimodal_prompts())
def test_shipped_position_ids_pass(call):
    from relpos.equivalence.frequencies import compare_position_ids

    got = shipped_position_ids(call["segments"], generated=call["generated"])
    result = compare_position_ids(got, call["segments"], generated=call["generated"])
    assert result.passed, result.message


@pytest.mark.parametrize("bug", POSITION_BUGS)
def test_the_position_ids_command_catches_each_planted_bug(capsys, bug):
    from relpos.equivalence.cli import main

    target = f"{__name__}:planted_ids_{bug}"
    code = main(["position-ids", "--target", target])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "fail position ids: M-RoPE position ids of [(" in out and "the spec's [" in out
    assert f"smallest call: {target}(**{{'segments': [(" in out


def test_the_position_ids_command_passes_shipped_code(capsys):
    from relpos.equivalence.cli import main

    code = main(["position-ids", "--target", f"{__name__}:shipped_position_ids"])
    out = capsys.readouterr().out
    assert code == 0 and "\npass (budget " in out, out


@settings(max_examples=100, deadline=None)
@given(call=multimodal_prompts(timed=True))
def test_shipped_timed_position_ids_pass(call):
    from relpos.equivalence.frequencies import compare_position_ids

    got = shipped_position_ids(**call)
    assert compare_position_ids(got, **call).passed


@pytest.mark.parametrize("bug", TIMED_BUGS)
def test_the_timed_position_ids_command_catches_each_planted_bug(capsys, bug):
    from relpos.equivalence.cli import main

    target = f"{__name__}:planted_ids_{bug}"
    assert main(["position-ids", "--target", f"{__name__}:shipped_position_ids", "--timed"]) == 0
    code = main(["position-ids", "--target", target, "--timed"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "fail timed position ids: M-RoPE position ids of [(" in out and "interval" in out
    assert "'temporal_interval': Fraction(" in out, out


@settings(max_examples=100, deadline=None)
@given(call=multimodal_prompts(frames=True))
def test_framed_prompts_give_videos_one_frame_at_a_time_after_text(call):
    segments = call["segments"]
    assert all(size[0] == 1 for kind, size in segments if kind == "video")
    for before, after in itertools.pairwise(segments):
        assert not (before[0] == after[0] == "video"), segments
