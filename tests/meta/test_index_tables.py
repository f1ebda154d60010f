"""The index-table probes measure what they claim: on every probe the oracle's scores are the
spec's own integer tables (clip rows, buckets) or the functions of the distance the module
docstring names, and the probes reach past every range they are drawn with."""

from __future__ import annotations

import numpy as np
import pytest

from relpos.equivalence.index_tables import PROBED, index_cases, probe_arguments
from relpos.equivalence.reference import expected
from relpos.spec import ENCODINGS, get_encoding
from relpos.spec.encodings import t5


def _problem(draw):
    enc = get_encoding(draw.encoding)
    return enc.validate(probe_arguments(draw), check_dtypes=False)


def _scores(draw):
    return expected(draw.encoding, probe_arguments(draw)).scores


def test_every_encoding_with_a_table_is_probed_and_the_others_are_not():
    assert set(PROBED) == set(ENCODINGS) - {"rope"}
    assert index_cases("rope") == []


@pytest.mark.parametrize("encoding", sorted(PROBED))
def test_probes_are_valid_and_distinct(encoding):
    cases = index_cases(encoding)
    assert len(cases) >= 20
    assert len({name for name, _ in cases}) == len(cases)
    assert all(draw.options["scale"] == 1.0 for _, draw in cases)


def test_shaw_scores_are_the_clip_rows():
    shaw = get_encoding("shaw")
    for name, draw in index_cases("shaw"):
        got = _scores(draw)[0, 0]
        if draw.seed % 2 == 0:  # the query side reads rel_k at c_ij
            assert np.array_equal(got, shaw.row_index(_problem(draw))[0]), name
        elif not draw.options["key_query"]:  # nothing on the key side reads a table
            assert (got == 0).all(), name


def test_t5_scores_are_the_buckets():
    for name, draw in index_cases("t5"):
        o = draw.options
        d = _problem(draw).dims
        pos_i = d["mlen"] + np.arange(d["qlen"])
        n = pos_i[:, None] - np.arange(d["klen"])[None, :]
        args = (o["num_buckets"], o["max_distance"], o["bidirectional"])
        buckets = np.vectorize(lambda x, args=args: t5.bucket(int(x), *args))(n)
        assert np.array_equal(_scores(draw)[0, 0], buckets), name


def test_deberta_scores_are_the_rows_of_each_table():
    deberta = get_encoding("deberta")
    for name, draw in index_cases("deberta"):
        problem = _problem(draw)
        reverse = draw.seed % 2 == 1 and draw.options["p2c_distance"] == "r_ji"
        want = deberta.rows(problem, reverse)[0]
        assert np.array_equal(_scores(draw)[0, 0], want), name


def test_xl_scores_are_sine_and_cosine_of_the_clamped_distance():
    for name, draw in index_cases("xl"):
        problem = _problem(draw)
        scores = _scores(draw)[0]
        distance = get_encoding("xl").distance_index(problem)[0]
        live = np.isfinite(scores[0])
        assert np.allclose(scores[0][live], np.sin(distance)[live], atol=1e-12), name
        assert np.allclose(scores[1][live], np.cos(distance)[live], atol=1e-12), name


def test_the_long_range_reaches_past_the_options_drawn():
    _, draw = index_cases("t5")[0]
    d = draw.dims
    assert d["mlen"] + d["qlen"] - 1 > 128 and d["qlen"] - 1 > 64
    clips = {c["clip"] for _, c in ((n, dr.options) for n, dr in index_cases("shaw"))}
    assert (-64, 64) in clips
    heads = {dr.dims["n_head"] for _, dr in index_cases("alibi")}
    assert heads == set(range(1, 17))


@pytest.mark.parametrize("encoding", ["shaw", "t5", "deberta"])
def test_the_table_index_the_reports_plot_is_the_row_the_oracle_reads(encoding):
    """Encoding.table_index (what reports plot errors against) names, for every pair, the row
    the oracle's probe reads: its scores are the row numbers."""
    enc = get_encoding(encoding)
    query_side = [d for _, d in index_cases(encoding) if d.seed % 2 == 0]
    assert query_side
    for draw in query_side:
        args = probe_arguments(draw)
        _, index = enc.table_index(enc.validate(args, check_dtypes=False))
        assert np.array_equal(expected(encoding, args).scores[0, 0], index[0]), draw


def test_the_xl_table_index_is_the_clamped_distance():
    from relpos.equivalence.draws import Draw

    enc = get_encoding("xl")
    draw = Draw(
        "xl",
        {"bsz": 1, "n_head": 1, "qlen": 6, "mlen": 3, "d_head": 2, "d_model": 4},
        {"clamp_len": 2, "clamp_style": "symmetric", "attn_type": "bi", "d_model": None},
    )
    name, index = enc.table_index(enc.validate(draw.arguments(), check_dtypes=False))
    distance = (3 + np.arange(6))[:, None] - np.arange(9)[None, :]  # pos_i - pos_j
    assert name.startswith("clamped distance")
    assert np.array_equal(index[0], np.clip(distance, -2, 2))
