"""The oracle against a brute-force float64 evaluation written here, independently: plain loops
over (b, h, i, j) straight from the papers' definitions, no SymPy, no shared helpers."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from relpos.spec import evaluate, get_encoding
from relpos.spec._cases import case_inputs


def _softmax_rows(logits: np.ndarray, visible: np.ndarray) -> np.ndarray:
    probs = np.zeros_like(logits)
    for index in np.ndindex(*logits.shape[:-1]):
        row, keep = logits[index], visible[index]
        if keep.any():
            top = row[keep].max()
            w = np.where(keep, np.exp(row - top), 0.0)
            probs[index] = w / w.sum()
    return probs


def _mask(args: dict, shape: tuple[int, ...]) -> np.ndarray:
    m = args.get("mask")
    return np.ones(shape, bool) if m is None else np.broadcast_to(m, shape).copy()


def _pos(args: dict, bsz: int, qlen: int, klen: int) -> tuple[np.ndarray, np.ndarray]:
    """Position ids per batch row: the given ones, else query i at klen - qlen + i, key j at j."""
    qp, kp = args.get("q_pos"), args.get("k_pos")
    qp = np.arange(klen - qlen, klen) if qp is None else np.asarray(qp)
    kp = np.arange(klen) if kp is None else np.asarray(kp)
    return np.broadcast_to(qp, (bsz, qlen)), np.broadcast_to(kp, (bsz, klen))


def brute_shaw(args: dict, sign: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q, k, v, rk = args["q"], args["k"], args["v"], args["rel_k"]
    rv = args.get("rel_v")
    lo, hi = args["clip"]
    bsz, n_head, qlen, d = q.shape
    klen = k.shape[2]
    qp, kp = _pos(args, bsz, qlen, klen)
    scale = args.get("scale") or 1 / math.sqrt(d)
    logits = np.zeros((bsz, n_head, qlen, klen))
    vals = np.zeros((bsz, n_head, qlen, klen, d))
    for b in range(bsz):
        for h in range(n_head):
            for i in range(qlen):
                for j in range(klen):
                    dist = sign * int(kp[b, j] - qp[b, i])
                    row = min(max(dist, lo), hi) - lo
                    ak = rk[h, row] if rk.ndim == 3 else rk[row]
                    e = q[b, h, i] @ (k[b, h, j] + ak)
                    if args.get("key_query"):
                        e += k[b, h, j] @ ak
                    logits[b, h, i, j] = scale * e
                    av = 0 if rv is None else (rv[h, row] if rv.ndim == 3 else rv[row])
                    vals[b, h, i, j] = v[b, h, j] + av
    visible = _mask(args, logits.shape)
    probs = _softmax_rows(logits, visible)
    return logits, probs, np.einsum("bhij,bhijd->bhid", probs, vals)


def brute_xl(args: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q, k, v, w_r = args["q"], args["k"], args["v"], args["w_r"]
    u, vb = args["r_w_bias"], args["r_r_bias"]
    bsz, n_head, qlen, d = q.shape
    klen = k.shape[2]
    mlen = klen - qlen
    qp, kp = _pos(args, bsz, qlen, klen)
    d_model = w_r.shape[-1]
    scale = args.get("scale") or 1 / math.sqrt(d)
    clamp, style = args.get("clamp_len"), args.get("clamp_style", "upper")
    with mpmath.workdps(30):
        freqs = [mpmath.mpf(10000) ** (-mpmath.mpf(n) / d_model) for n in range(0, d_model, 2)]
    logits = np.zeros((bsz, n_head, qlen, klen))
    visible = _mask(args, logits.shape)
    for b in range(bsz):
        for h in range(n_head):
            for i in range(qlen):
                for j in range(klen):
                    dist = int(qp[b, i] - kp[b, j])
                    if clamp is not None:
                        dist = (
                            min(dist, clamp) if style == "upper" else max(min(dist, clamp), -clamp)
                        )
                    # angles in 30 digits: at distances near 2^17 a float64 angle is off by
                    # ~1e-11, more than the comparison allows
                    with mpmath.workdps(30):
                        angles = [dist * f for f in freqs]
                        sinusoid = np.array(
                            [float(mpmath.sin(x)) for x in angles]
                            + [float(mpmath.cos(x)) for x in angles]
                        )
                    r = w_r[h] @ sinusoid
                    e = (q[b, h, i] + u[h]) @ k[b, h, j] + (q[b, h, i] + vb[h]) @ r
                    if args.get("seg_ids") is not None:
                        seg = args["seg_ids"]
                        s = int(seg[b, mlen + i] != seg[b, j])
                        e += (q[b, h, i] + args["r_s_bias"][h]) @ args["seg_embed"][s, h]
                    logits[b, h, i, j] = scale * e
                    if args.get("attn_type") == "uni" and kp[b, j] > qp[b, i]:
                        visible[b, h, i, j] = False
    probs = _softmax_rows(logits, visible)
    return logits, probs, np.einsum("bhij,bhjd->bhid", probs, v)


BRUTE = {"shaw": brute_shaw, "xl": brute_xl}


@pytest.mark.parametrize(
    ("encoding", "case"),
    [(name, c) for name in BRUTE for c in get_encoding(name).cases()],
    ids=lambda x: x if isinstance(x, str) else x.name,
)
def test_oracle_matches_brute_force_float64(encoding, case):
    args = case_inputs(get_encoding(encoding), case)
    result = evaluate(encoding, **args)
    logits, probs, out = BRUTE[encoding](args)
    scores = result.as_float64("scores")
    visible = np.isfinite(scores)
    assert (visible == result.mask).all()
    # float64 loops over a handful of dyadic terms: a few ulps of the magnitudes involved.
    np.testing.assert_allclose(scores[visible], logits[visible], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.as_float64("probs"), probs, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(result.as_float64("out"), out, rtol=1e-11, atol=1e-13)


def test_brute_force_would_see_a_wrong_sign():
    """The comparison above can fail: the same brute force with the distance sign flipped
    (i - j, as Hugging Face BERT) differs from the oracle on an asymmetric clip."""
    enc = get_encoding("shaw")
    args = case_inputs(enc, next(c for c in enc.cases() if c.name == "asymmetric"))
    _, _, out_flipped = brute_shaw(args, sign=-1)
    assert not np.allclose(evaluate("shaw", **args).as_float64("out"), out_flipped, atol=1e-6)
