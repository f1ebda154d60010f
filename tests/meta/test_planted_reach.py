"""Bugs planted in the bundled implementations (one function patched at a time) that hide
from small random draws: wrong only for head counts that are not powers of two, beyond
max_distance, in DeBERTa's log buckets, from position 256 on, or for keys more than clamp_len
ahead of their query, only under a wide clip, or only with a partial rotary width of 4 or
more, or with position ids (keys read at their index, rotation angles cached per length and
reused at other positions). Each is caught by ``relpos check`` at its
default budget (the golden property runs every golden case and the long-position case; the
index_tables property probes every option set on a long range), not only by the test suite."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from relpos.equivalence.cli import main
from relpos.impls._integers import deberta_rows, t5_buckets
from relpos.spec import get_encoding

torch = pytest.importorskip("torch")
alibi, deberta, rope, shaw, t5, xl = (
    pytest.importorskip(f"relpos.impls.torch.{name}")
    for name in ("alibi", "deberta", "rope", "shaw", "t5", "xl")
)


def _naive_slopes(n_head: int, rule: str) -> list[float]:
    """2^(-8h/n) for every head count: the paper's rule only when n is a power of two."""
    return [2.0 ** (-8.0 * (h + 1) / n_head) for h in range(n_head)]


def _t5_far(klen, num_buckets, max_distance, bidirectional):
    """One bucket too low for distances at or beyond max_distance."""
    table = t5_buckets(klen, num_buckets, max_distance, bidirectional)
    return tuple(
        b - 1 if abs(n) >= max_distance else b
        for n, b in zip(range(1 - klen, klen), table, strict=True)
    )


def _deberta_log(klen, span, max_position):
    """Log buckets one row nearer the centre (a floor where the paper takes a ceiling)."""
    rows = deberta_rows(klen, span, max_position)
    if max_position is None:
        return rows
    mid = span // 2
    return tuple(
        row - 1 if r > mid and row < 2 * span - 1 else row + 1 if r < -mid and row > 0 else row
        for r, row in zip(range(1 - klen, klen), rows, strict=True)
    )


_ANGLES = rope._angles


def _bfloat16_positions(positions, theta):
    """Positions rounded to bfloat16 first: exact up to 256, wrong from 257 on."""
    return _ANGLES(positions.to(torch.bfloat16).to(positions.dtype), theta)


_CLIPPED = shaw.clipped_rows


def _wide_clip_short(q_pos, k_pos, clip):
    """Clips of 32 or more lose their last row: wrong only for far keys under a wide clip."""
    lo, hi = clip
    return _CLIPPED(q_pos, k_pos, (lo, hi - 1 if hi >= 32 else hi))


_FREQUENCIES = rope._frequencies


def _frequencies_over_d_head(problem, r, base, dtype, device):
    """theta_t = base^(-2t/d_head) for the first r/2 pairs: right only when r = d_head."""
    d = problem.dims["d_head"]
    theta, m = _FREQUENCIES(problem, d - d % 2 if r else 0, base, dtype, device)
    return theta[:, : r // 2], m


_CLAMP = xl.clamp_distance


def _symmetric_upper(distance, clamp_len, style):
    """Every clamp symmetric: keys more than clamp_len ahead are clamped under "upper" too."""
    return _CLAMP(distance, clamp_len, "symmetric")


def _factor_squared(problem, r, base, dtype, device):
    """The attention factor applied twice over (m^2 on cos and sin, m^4 on the logit)."""
    theta, m = _FREQUENCIES(problem, r, base, dtype, device)
    return theta, m * m


_INVERSE = rope.inverse_frequencies


def _longrope_from_L0(rope_type, *, seq_len=None, **kw):
    """longrope's long factors from seq_len >= L0 on (the spec: seq_len > L0)."""
    if rope_type == "longrope" and seq_len is not None:
        seq_len += 1
    return _INVERSE(rope_type, seq_len=seq_len, **kw)


def _dynamic_never_grown(rope_type, *, seq_len=None, **kw):
    """'dynamic' scaling whose base stays at the original length's: static."""
    return _INVERSE(rope_type, seq_len=None if rope_type == "dynamic" else seq_len, **kw)


_POSITIONS = shaw.positions


def _keys_by_index(problem, device):
    """k_pos ignored: keys placed at 0..klen-1 whatever the call's position ids say (the
    query side keeps its ids)."""
    q_pos, _ = _POSITIONS(problem, device)
    return q_pos, torch.arange(problem.dims["klen"], device=device)[None]


_POSITION_ANGLES = rope._position_angles
_TABLES: dict = {}


def _angles_cached_per_length(problem, r, base, dtype, device):
    """Rotation angles cached by (qlen, klen) alone, reused at any positions."""
    key = (problem.dims["qlen"], problem.dims["klen"], r, base, dtype)
    if key not in _TABLES:
        _TABLES[key] = _POSITION_ANGLES(problem, r, base, dtype, device)
    return _TABLES[key]


#: name -> (encoding, module, attribute, planted replacement, the property that catches it)
PLANTS: dict[str, tuple[str, object, str, Callable, str]] = {
    "alibi_slopes_non_power_of_two": ("alibi", alibi, "slopes_for", _naive_slopes, "golden"),
    "t5_buckets_beyond_max_distance": ("t5", t5, "t5_buckets", _t5_far, "golden"),
    "deberta_log_buckets": ("deberta", deberta, "deberta_rows", _deberta_log, "golden"),
    "rope_positions_in_bfloat16": ("rope", rope, "_angles", _bfloat16_positions, "golden"),
    "xl_upper_clamp_as_symmetric": ("xl", xl, "clamp_distance", _symmetric_upper, "golden"),
    "alibi_slopes_by_index": ("alibi", alibi, "slopes_for", _naive_slopes, "index_tables"),
    "t5_buckets_by_index": ("t5", t5, "t5_buckets", _t5_far, "index_tables"),
    "deberta_log_buckets_by_index": (
        "deberta",
        deberta,
        "deberta_rows",
        _deberta_log,
        "index_tables",
    ),
    "shaw_wide_clip_by_index": ("shaw", shaw, "clipped_rows", _wide_clip_short, "index_tables"),
    "rope_frequencies_over_d_head": (
        "rope",
        rope,
        "_frequencies",
        _frequencies_over_d_head,
        "golden",
    ),
    "shaw_ignores_k_pos": ("shaw", shaw, "positions", _keys_by_index, "packed"),
    "rope_attention_factor_squared": ("rope", rope, "_frequencies", _factor_squared, "golden"),
    "rope_longrope_from_L0": ("rope", rope, "inverse_frequencies", _longrope_from_L0, "golden"),
    "rope_dynamic_never_grown": (
        "rope",
        rope,
        "inverse_frequencies",
        _dynamic_never_grown,
        "golden",
    ),
    "rope_tables_cached_per_length": (
        "rope",
        rope,
        "_position_angles",
        _angles_cached_per_length,
        "history",
    ),
}


def _check(encoding: str, capsys, prop: str = "golden") -> tuple[int, str]:
    code = main(
        [
            "check",
            "--encoding",
            encoding,
            "--backend",
            "torch",
            "--property",
            prop,
            "--dtype",
            "float64",
            "--budget",
            "dev",
        ]
    )
    return code, capsys.readouterr().out


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_planted_bug_is_caught_by_the_default_check(plant, monkeypatch, capsys):
    encoding, module, attribute, replacement, prop = PLANTS[plant]
    _TABLES.clear()
    monkeypatch.setattr(module, attribute, replacement)
    code, out = _check(encoding, capsys, prop)
    assert code == 1, out
    assert f"FAIL: torch-{encoding}-fast {prop} float64" in out
    assert f"FAIL: torch-{encoding}-reference {prop} float64" in out


@pytest.mark.parametrize(("encoding", "prop"), sorted({(p[0], p[4]) for p in PLANTS.values()}))
def test_without_a_plant_the_check_passes(encoding, prop, capsys):
    code, out = _check(encoding, capsys, prop)
    assert code == 0, out


def test_the_plants_differ_from_the_originals_only_where_they_say():
    assert _naive_slopes(8, "paper") == alibi.slopes_for(8, "paper")
    assert not math.isclose(_naive_slopes(6, "paper")[5], alibi.slopes_for(6, "paper")[5])
    assert _t5_far(8, 32, 128, True) == t5_buckets(8, 32, 128, True)
    assert _deberta_log(4, 8, None) == deberta_rows(4, 8, None)
    from relpos.spec import validate
    from relpos.spec._cases import case_inputs

    enc = get_encoding("shaw")
    for case in enc.cases():  # k_pos differs only where the call gives position ids
        args = {
            name: torch.from_numpy(value) if name.endswith("_pos") else value
            for name, value in case_inputs(enc, case).items()
        }
        problem = validate("shaw", args, check_dtypes=False)
        bsz = problem.dims["bsz"]
        planted = _keys_by_index(problem, "cpu")[1].expand(bsz, -1)
        assert torch.equal(planted, _POSITIONS(problem, "cpu")[1].expand(bsz, -1)) == (
            case.positions == "default"
        )
    near = torch.arange(258)[None]
    theta = 10000.0 ** (-torch.arange(0, 4, 2, dtype=torch.float32) / 4)[None]
    planted, right = _bfloat16_positions(near, theta), _ANGLES(near, theta)
    assert torch.equal(planted[:, :257], right[:, :257])
    assert not torch.equal(planted[:, 257], right[:, 257])


@pytest.mark.parametrize("encoding", ["shaw", "xl", "deberta"])
def test_a_half_type_product_before_its_scale_is_caught_by_the_default_check(
    encoding, monkeypatch, capsys
):
    """The torch guard's float32 upcast switched off: the reference variants form q k^T in
    float16 and scale afterwards (XLNet's bug). half_range draws logits at 55% to 95% of
    float16's range with d_head >= 8 and a scale below 1, so those products pass the range
    on every draw, and the finding says why."""
    from relpos.impls.torch import _common

    monkeypatch.setitem(_common.FRAMEWORK.__dict__, "is_half", lambda t: False)
    code = main(["check", "--encoding", encoding, "--backend", "torch", "--property", "half_range"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"FAIL: torch-{encoding}-reference half_range float16" in out
    assert "so a product scaled only afterwards overflows" in out


@pytest.mark.parametrize("prop", ["golden"])
def test_positions_rounded_to_a_half_type_are_caught_in_it(prop, monkeypatch, capsys):
    """The angle's allowance is float32's (angles come from integer positions at float32 or
    better in every dtype), so positions rounded to bfloat16 fail in bfloat16 itself, by the
    golden long-position case (half-type inputs reach the
    implementation upcast to float32, so the plant rounds to bfloat16 explicitly)."""
    monkeypatch.setattr(rope, "_angles", _bfloat16_positions)
    code = main(
        [
            "check",
            "--encoding",
            "rope",
            "--backend",
            "torch",
            "--property",
            prop,
            "--dtype",
            "bfloat16",
            "--budget",
            "dev",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"FAIL: torch-rope-reference {prop} bfloat16" in out
