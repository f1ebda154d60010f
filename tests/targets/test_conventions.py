"""The convention maps mean what they say. For every axis value and every named profile, the
arguments ``to_library`` produces, computed the way the convention defines (a small numpy
model of a library written here from the definitions, not from the maps), give the spec's
attention; and ``to_spec`` reads them back as the same attention."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relpos.equivalence.draws import MASK_KINDS
from relpos.equivalence.reference import expected
from relpos.equivalence.strategies import draws
from relpos.equivalence.targets import _chain, conventions, restriction, to_library, to_spec
from relpos.spec import all_encodings, get_encoding
from relpos.spec._profiles import Profile

LIVE_ROWS = tuple(k for k in MASK_KINDS if k != "fully_masked_row")


def _softmax_out(logits, values, visible):
    logits = np.where(visible, logits, -np.inf)
    top = np.max(logits, axis=-1, keepdims=True)
    weights = np.where(visible, np.exp(logits - np.where(np.isfinite(top), top, 0)), 0.0)
    probs = weights / np.maximum(weights.sum(-1, keepdims=True), 1e-300)
    return np.einsum("bhij,bhijd->bhid", probs, values)


def _visible(a, c, shape):
    mask = a.get("mask")
    if mask is None:
        return np.ones(shape, bool)
    mask = np.broadcast_to(mask, shape)
    return ~mask if c["mask"] == "hide" else mask


def _per_head(table, n_head):
    return table if table.ndim == 3 else np.broadcast_to(table, (n_head, *table.shape))


def shaw_library(a, c):
    """Shaw as a library with conventions ``c`` computes it from its own arguments."""
    q, k, v = a["q"], a["k"], a["v"]
    bsz, n_head, qlen, d = q.shape
    klen = k.shape[2]
    pos_i, pos_j = klen - qlen + np.arange(qlen), np.arange(klen)
    delta = pos_j[None] - pos_i[:, None]
    if c["distance"] == "query_minus_key":
        delta = -delta
    lo, hi = a["clip"]
    inside = (delta >= lo) & (delta <= hi)
    if c["clipping"] == "none":
        assert inside.all(), "a table without a clip must cover every distance"
    clipped = np.clip(delta, lo, hi)
    rows = clipped - lo if c["rows"] == "ascending" else hi - clipped

    def gather(table):
        out = _per_head(table, n_head)[:, rows]  # (h, i, j, d)
        return np.where(inside[None, ..., None], out, 0.0) if c["clipping"] == "zero" else out

    key_query = a["key_query"] if c["terms"] == "any" else c["terms"] == "key_query"
    use_values = c["terms"] in ("any", "key_value")
    rel = gather(a["rel_k"])
    logits = np.einsum("bhid,bhjd->bhij", q, k) + np.einsum("bhid,hijd->bhij", q, rel)
    if key_query:
        logits = logits + np.einsum("bhjd,hijd->bhij", k, rel)
    scale = 1 / np.sqrt(d) if a["scale"] is None else a["scale"]
    values = np.broadcast_to(v[:, :, None], (bsz, n_head, qlen, klen, d))
    if use_values and a.get("rel_v") is not None:
        values = values + gather(a["rel_v"])[None]
    shape = (bsz, n_head, qlen, klen)
    return _softmax_out(scale * logits, values, _visible(a, c, shape))


def xl_library(a, c):
    """Transformer-XL / XLNet as a library with conventions ``c`` computes it."""
    q, k, v, w_r = a["q"], a["k"], a["v"], a["w_r"]
    bsz, n_head, qlen, d = q.shape
    klen, width = k.shape[2], w_r.shape[-1]
    pos_i, pos_j = klen - qlen + np.arange(qlen), np.arange(klen)
    delta = pos_i[:, None] - pos_j[None]
    if c["distance"] == "key_minus_query":
        delta = -delta
    style = a["clamp_style"] if c["clamp"] == "any" else c["clamp"]
    if a["clamp_len"] is not None:
        low = -a["clamp_len"] if style == "symmetric" else None
        delta = np.clip(delta, low, a["clamp_len"])
    angle = delta[..., None] * 10000.0 ** (-np.arange(0, width, 2) / width)
    if c["sinusoid"] == "concatenated":
        R = np.concatenate([np.sin(angle), np.cos(angle)], axis=-1)
    else:
        R = np.stack([np.sin(angle), np.cos(angle)], axis=-1).reshape(*angle.shape[:-1], width)
    r = np.einsum("ijm,hdm->hijd", R, w_r)
    u, vb = a["r_w_bias"][None, :, None], a["r_r_bias"][None, :, None]
    logits = np.einsum("bhid,bhjd->bhij", q + u, k) + np.einsum("bhid,hijd->bhij", q + vb, r)
    if a.get("seg_embed") is not None:
        seg = a["seg_ids"]
        different = (seg[:, klen - qlen :, None] != seg[:, None, :]).astype(int)  # (b, i, j)
        S = a["seg_embed"][different]  # (b, i, j, h, d)
        logits = logits + np.einsum("bhid,bijhd->bhij", q + a["r_s_bias"][None, :, None], S)
    scale = 1 / np.sqrt(d) if a["scale"] is None else a["scale"]
    shape = (bsz, n_head, qlen, klen)
    visible = _visible(a, c, shape)
    if a["attn_type"] == "uni":
        visible = visible & (pos_j[None] <= pos_i[:, None])
    values = np.broadcast_to(v[:, :, None], (bsz, n_head, qlen, klen, d))
    return _softmax_out(scale * logits, values, visible)


def t5_library(a, c):
    """T5's bias as a library with conventions ``c`` adds it: unscaled to scale q.k, or
    times sqrt(d_head) to q.k / sqrt(d_head)."""
    from relpos.spec.encodings.t5 import bucket

    q, k, v = a["q"], a["k"], a["v"]
    bsz, n_head, qlen, d = q.shape
    klen = k.shape[2]
    distance = (klen - qlen + np.arange(qlen))[:, None] - np.arange(klen)[None]
    options = (a["num_buckets"], a["max_distance"], a["bidirectional"])
    buckets = np.vectorize(lambda n: bucket(int(n), *options))(distance)
    bias = np.moveaxis(a["rel_bias"][buckets], -1, 0)[None]  # (1, h, i, j)
    content = np.einsum("bhid,bhjd->bhij", q, k)
    if c["bias_scale"] == "sqrt_d":
        logits = content / np.sqrt(d) + np.sqrt(d) * bias
    else:
        logits = content * (1.0 if a["scale"] is None else a["scale"]) + bias
    values = np.broadcast_to(v[:, :, None], (bsz, n_head, qlen, klen, d))
    return _softmax_out(logits, values, _visible(a, c, (bsz, n_head, qlen, klen)))


def rope_library(a, c):
    """RoPE as a library with layout ``c['layout']`` rotates: pairs (2t, 2t+1), or
    (t, t + r/2) as rotate_half does."""
    q, k, v = a["q"], a["k"], a["v"]
    bsz, n_head, qlen, d = q.shape
    klen = k.shape[2]
    r = d - d % 2 if a["rotary_dim"] is None else a["rotary_dim"]
    theta = float(a["base"]) ** (-np.arange(0, r, 2) / r)

    def rotate(x, positions):
        angle = positions[:, None] * theta[None]
        if c["layout"] == "half":
            first, second = x[..., : r // 2], x[..., r // 2 : r]
        else:
            first, second = x[..., 0:r:2], x[..., 1:r:2]
        new_first = first * np.cos(angle) - second * np.sin(angle)
        new_second = first * np.sin(angle) + second * np.cos(angle)
        out = x.copy()
        if c["layout"] == "half":
            out[..., : r // 2], out[..., r // 2 : r] = new_first, new_second
        else:
            out[..., 0:r:2], out[..., 1:r:2] = new_first, new_second
        return out

    qr = rotate(q, klen - qlen + np.arange(qlen))
    kr = rotate(k, np.arange(klen))
    scale = 1 / np.sqrt(d) if a["scale"] is None else a["scale"]
    logits = scale * np.einsum("bhid,bhjd->bhij", qr, kr)
    values = np.broadcast_to(v[:, :, None], (bsz, n_head, qlen, klen, d))
    return _softmax_out(logits, values, _visible(a, c, (bsz, n_head, qlen, klen)))


LIBRARY = {"shaw": shaw_library, "xl": xl_library, "t5": t5_library, "rope": rope_library}


def generic_library(encoding):
    """An encoding that declares no axes of its own differs from libraries only in the
    generic ones: the spec with the mask read in the library's polarity."""
    assert not get_encoding(encoding).axes, f"{encoding} declares axes: write its library model"

    def model(a, c):
        mask = a.get("mask")
        if mask is not None and c["mask"] == "hide":
            a = {**a, "mask": ~np.asarray(mask)}
        return expected(encoding, a).out

    return model


#: Convention values whose maps multiply by an irrational factor (rounded in float64).
RESCALING = {("t5", "bias_scale", "sqrt_d")}

CASES = [
    (enc.name, Profile(f"{axis.name}={value.name}", enc.name, "", "", {axis.name: value.name}))
    for enc in all_encodings()
    for axis in enc.all_axes()
    if axis.name != "masked_rows"
    for value in axis.values
] + [(enc.name, p) for enc in all_encodings() for p in enc.all_profiles()]


@pytest.mark.parametrize(("encoding", "profile"), CASES, ids=[f"{e}:{p.name}" for e, p in CASES])
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_library_form_arguments_give_the_spec_attention(encoding, profile, data):
    enc = get_encoding(encoding)
    r = restriction(enc, profile)
    # RoPE's scaling changes its frequencies, not its conventions: plain RoPE here (the
    # scaling variants are checked against the oracle in test_scaling)
    fixed = {"scaling": None} if encoding == "rope" else None
    draw = data.draw(draws(encoding, "tiny", masks=LIVE_ROWS, restrict=r, options=fixed))
    args = draw.arguments("float64")
    want = expected(encoding, args)
    live = want.mask.any(-1)[..., None]
    chain = _chain(enc, conventions(enc, profile))
    library_args = to_library(chain, args)
    model = LIBRARY.get(encoding) or generic_library(encoding)
    got = model(library_args, conventions(enc, profile))
    bound = want.bounds("float64").out
    assert (np.abs(np.where(live, got - want.out, 0)) <= bound).all(), (draw, got, want.out)
    back = expected(encoding, to_spec(chain, library_args))
    assert (np.abs(back.out - want.out) <= bound).all()
    chosen = conventions(enc, profile)
    if not any((encoding, axis, value) in RESCALING for axis, value in chosen.items()):
        # reversed, permuted, negated, extended or zeroed tables: the same numbers exactly
        np.testing.assert_array_equal(back.out, want.out)


def test_no_profile_of_a_library_that_reads_clamp_len_0_as_no_clamp_draws_it():
    """Transformer-XL and XLNet code clamp only when clamp_len > 0: the spec's clamp_len=0
    (every distance clamped to 0) has no counterpart there."""
    from relpos.equivalence.targets import restriction
    from relpos.spec import get_encoding

    enc = get_encoding("xl")
    dims = {"bsz": 1, "n_head": 1, "qlen": 4, "mlen": 2, "d_head": 2, "klen": 6}
    for name in ("transformer-xl", "xlnet"):
        allowed = restriction(enc, enc.profile(name)).options["clamp_len"]
        candidates = enc.option_values(dims)["clamp_len"]
        assert 0 in candidates and 0 not in allowed(dims, candidates), name


NAMED = [p for enc in all_encodings() for p in enc.all_profiles()]


@pytest.mark.parametrize("profile", NAMED, ids=[p.name for p in NAMED])
def test_a_named_profile_without_memory_or_position_ids_says_why(profile):
    """A profile that forbids memory, or draws no position ids, leaves out the cache and
    position paths of its library: its notes say why (``no memory``, ``no position ids``),
    so that a reader can tell a library limit from an untested path."""
    text = " ".join(profile.notes)
    if not profile.memory:
        assert "no memory" in text, profile.notes
    if not profile.positions:
        assert "no position ids" in text, profile.notes
