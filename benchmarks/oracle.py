"""The oracle's speed: ball evaluation of every encoding against numpy float64 computing the
same attention, side by side in one run (``relpos bench --oracle``).

The numpy baselines are efficient ones, the way one would write them to be fast: Shaw
gathers q rel_k^T by clipped distance and computes the value term as a batched matmul per
query row; Transformer-XL computes the sinusoid once over the klen + qlen - 1 distances; every
other encoding forms its bias once and adds it to q k^T. Each baseline's output is compared
with the oracle's midpoints, so the table also says both computed the same attention. The
gradients row runs Shaw's forward and analytic backward in numpy against the oracle's ball
gradients, at qlen = klen = 128, d_head 32.
"""

from __future__ import annotations

import functools
import json
import platform
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from relpos import spec
from relpos.spec._balls import midpoints, radii

__all__ = ["CASES", "main", "run"]


def _softmax(scores: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores - top)
    return weights / weights.sum(axis=-1, keepdims=True)


def _distances(qlen: int, klen: int) -> np.ndarray:
    """pos_j - pos_i for every (i, j) (memory first)."""
    return np.arange(klen)[None, :] - (klen - qlen + np.arange(qlen))[:, None]


def _shaw(a: dict[str, Any]) -> np.ndarray:
    q, k, v, rel_k, rel_v = (a[n] for n in ("q", "k", "v", "rel_k", "rel_v"))
    lo, hi = a["clip"]
    rows = np.clip(_distances(q.shape[2], k.shape[2]), lo, hi) - lo
    qr = q @ rel_k.T  # (b, h, qlen, P)
    scores = (q @ k.swapaxes(-1, -2) + np.take_along_axis(qr, rows[None, None], -1)) / np.sqrt(
        q.shape[-1]
    )
    p = _softmax(scores)
    return p @ v + (p[..., :, None, :] @ rel_v[rows][None, None])[..., 0, :]


def _xl(a: dict[str, Any]) -> np.ndarray:
    q, k, v, w_r = (a[n] for n in ("q", "k", "v", "w_r"))
    qlen, klen, d_model = q.shape[2], k.shape[2], w_r.shape[-1]
    distance = np.arange(klen - 1, -qlen, -1)  # column c holds distance klen - 1 - c
    freq = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)
    angle = distance[:, None] * freq[None, :]
    R = np.concatenate([np.sin(angle), np.cos(angle)], axis=-1)  # (2L-1, d_model)
    r = R @ w_r.swapaxes(-1, -2)  # (h, 2L-1, d_head)
    u, vb = a["r_w_bias"][:, None, :], a["r_r_bias"][:, None, :]
    ac = (q + u) @ k.swapaxes(-1, -2)
    bd_all = (q + vb) @ r.swapaxes(-1, -2)  # (b, h, qlen, 2L-1)
    mlen = klen - qlen
    column = (klen - 1) - ((mlen + np.arange(qlen))[:, None] - np.arange(klen)[None, :])
    bd = np.take_along_axis(bd_all, column[None, None], -1)
    return _softmax((ac + bd) / np.sqrt(q.shape[-1])) @ v


def _t5(a: dict[str, Any]) -> np.ndarray:
    from relpos.impls._integers import t5_buckets

    q, k, v, rel_bias = (a[n] for n in ("q", "k", "v", "rel_bias"))
    qlen, klen = q.shape[2], k.shape[2]
    table = np.asarray(t5_buckets(klen, a["num_buckets"], a["max_distance"], True))
    buckets = table[-_distances(qlen, klen) + klen - 1]
    bias = np.moveaxis(rel_bias[buckets], -1, 0)  # (h, qlen, klen)
    return _softmax(q @ k.swapaxes(-1, -2) + bias[None]) @ v


def _alibi(a: dict[str, Any]) -> np.ndarray:
    q, k, v = (a[n] for n in ("q", "k", "v"))
    n_head = q.shape[1]
    slopes = 2.0 ** (-8.0 * np.arange(1, n_head + 1) / n_head)
    bias = -np.abs(_distances(q.shape[2], k.shape[2]))[None] * slopes[:, None, None]
    return _softmax(q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1]) + bias[None]) @ v


def _rope(a: dict[str, Any]) -> np.ndarray:
    q, k, v = (a[n] for n in ("q", "k", "v"))
    d = q.shape[-1]
    theta = 10000.0 ** (-np.arange(0, d, 2) / d)

    def rotate(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        angle = positions[:, None] * theta[None, :]
        c, s = np.cos(angle), np.sin(angle)
        even, odd = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = even * c - odd * s, even * s + odd * c
        return out

    qlen, klen = q.shape[2], k.shape[2]
    qr, kr = rotate(q, klen - qlen + np.arange(qlen)), rotate(k, np.arange(klen))
    return _softmax(qr @ kr.swapaxes(-1, -2) / np.sqrt(d)) @ v


def _deberta(a: dict[str, Any]) -> np.ndarray:
    q, k, v, pos_key, pos_query = (a[n] for n in ("q", "k", "v", "pos_key", "pos_query"))
    span = a["span"]
    qlen, klen = q.shape[2], k.shape[2]
    r = -_distances(qlen, klen)  # pos_i - pos_j
    c2p_rows = np.clip(r, -span, span - 1) + span
    p2c_rows = np.clip(-r, -span, span - 1) + span  # the paper's r_ji
    c2p = np.take_along_axis(q @ pos_key.T, c2p_rows[None, None], -1)
    kq = k @ pos_query.T  # (b, h, klen, 2k)
    p2c = np.take_along_axis(kq, p2c_rows.T[None, None], -1).swapaxes(-1, -2)
    scores = (q @ k.swapaxes(-1, -2) + c2p + p2c) / np.sqrt(3 * q.shape[-1])
    return _softmax(scores) @ v


def _per_row(values: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """(b, h, qlen, n_rows): values (b, h, qlen, klen) summed per table row rows[i, j]."""
    b, h, qlen, _ = values.shape
    flat = (np.arange(qlen)[:, None] * n_rows + rows).ravel()
    out = np.empty((b, h, qlen, n_rows))
    for n in np.ndindex(b, h):
        out[n] = np.bincount(flat, values[n].ravel(), qlen * n_rows).reshape(qlen, n_rows)
    return out


def _shaw_gradients(a: dict[str, Any], w: np.ndarray) -> dict[str, np.ndarray]:
    """Shaw's forward and analytic backward for the loss sum(w * out), numpy float64."""
    q, k, v, rel_k, rel_v = (a[n] for n in ("q", "k", "v", "rel_k", "rel_v"))
    lo, hi = a["clip"]
    n_rows = hi - lo + 1
    rows = np.clip(_distances(q.shape[2], k.shape[2]), lo, hi) - lo
    s = 1 / np.sqrt(q.shape[-1])
    scores = (q @ k.swapaxes(-1, -2) + np.take_along_axis(q @ rel_k.T, rows[None, None], -1)) * s
    p = _softmax(scores)
    d_p = w @ v.swapaxes(-1, -2) + np.take_along_axis(w @ rel_v.T, rows[None, None], -1)
    d_s = p * (d_p - (p * d_p).sum(-1, keepdims=True)) * s
    d_s_rows = _per_row(d_s, rows, n_rows)
    return {
        "q": d_s @ k + d_s_rows @ rel_k,
        "k": d_s.swapaxes(-1, -2) @ q,
        "v": p.swapaxes(-1, -2) @ w,
        "rel_k": np.einsum("bhir,bhid->rd", d_s_rows, q),
        "rel_v": np.einsum("bhir,bhid->rd", _per_row(p, rows, n_rows), w),
    }


def run_gradients(L: int = 128, n_head: int = 2, d_head: int = 32, rounds: int = 3) -> dict:
    """Shaw's gradients in balls against numpy float64's forward and backward at L."""
    encoding, extra, _ = CASES["shaw-clip64"]
    rng = np.random.default_rng(0)
    args = {**_inputs(rng, L, n_head, d_head), **extra(rng, L, d_head)}
    w = rng.standard_normal(args["q"].shape)
    oracle_s, grads = _median_time(
        functools.partial(spec.gradients, encoding, w, method="ball", **args), max(1, rounds - 1)
    )
    numpy_s, expected = _median_time(functools.partial(_shaw_gradients, args, w), rounds)
    difference = max(float(np.abs(midpoints(grads[n]) - expected[n]).max()) for n in expected)
    radius = max(float(radii(g).max()) for g in grads.values())
    shape = {"L": L, "n_head": n_head, "d_head": d_head}
    return _row("shaw-clip64 gradients", encoding, shape, oracle_s, numpy_s, difference, radius)


def _row(
    case: str,
    encoding: str,
    shape: dict[str, int],
    oracle_s: float,
    numpy_s: float,
    difference: float,
    radius: float,
) -> dict[str, Any]:
    """One line of the table (and of the JSON)."""
    return {
        "case": case,
        "encoding": encoding,
        **shape,
        "oracle_s": oracle_s,
        "numpy_s": numpy_s,
        "ratio": oracle_s / numpy_s,
        "max_abs_difference": difference,
        "max_radius_out": radius,
    }


def _inputs(rng: np.random.Generator, L: int, n_head: int, d_head: int) -> dict[str, Any]:
    q, k, v = (rng.standard_normal((1, n_head, L, d_head)) for _ in range(3))
    return {"q": q, "k": k, "v": v}


#: name -> (encoding, extra arguments of (rng, L, d_head), numpy baseline).
CASES: dict[str, tuple[str, Callable[..., dict[str, Any]], Callable[..., np.ndarray]]] = {
    "shaw-clip64": (
        "shaw",
        lambda rng, L, d: {
            "rel_k": rng.standard_normal((129, d)),
            "rel_v": rng.standard_normal((129, d)),
            "clip": (-64, 64),
        },
        _shaw,
    ),
    "xl": (
        "xl",
        lambda rng, L, d: {
            "w_r": rng.standard_normal((2, d, d)) / 8,
            "r_w_bias": rng.standard_normal((2, d)),
            "r_r_bias": rng.standard_normal((2, d)),
        },
        _xl,
    ),
    "t5": (
        "t5",
        lambda rng, L, d: {
            "rel_bias": rng.standard_normal((32, 2)),
            "num_buckets": 32,
            "max_distance": 128,
        },
        _t5,
    ),
    "alibi": ("alibi", lambda rng, L, d: {}, _alibi),
    "rope": ("rope", lambda rng, L, d: {}, _rope),
    "deberta": (
        "deberta",
        lambda rng, L, d: {
            "pos_key": rng.standard_normal((128, d)),
            "pos_query": rng.standard_normal((128, d)),
            "span": 64,
        },
        _deberta,
    ),
}


def _median_time(fn: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def run(L: int = 512, n_head: int = 2, d_head: int = 64, rounds: int = 3) -> list[dict[str, Any]]:
    """Every case at qlen = klen = L: the oracle's ball path and the numpy baseline timed
    side by side (medians of ``rounds``), their ratio, and the largest difference between the
    baseline and the oracle's midpoints."""
    rows = []
    for name, (encoding, extra, baseline) in CASES.items():
        rng = np.random.default_rng(0)
        args = {**_inputs(rng, L, n_head, d_head), **extra(rng, L, d_head)}
        spec.evaluate(encoding, method="ball", **_small(args))  # warm up: formula compilation
        oracle_s, result = _median_time(
            functools.partial(spec.evaluate, encoding, method="ball", **args), max(1, rounds - 1)
        )
        numpy_s, expected = _median_time(functools.partial(baseline, args), rounds)
        difference = float(np.abs(result.as_float64("out") - expected).max())
        shape = {"L": L, "n_head": n_head, "d_head": d_head}
        radius = float(result.radius("out").max())
        rows.append(_row(name, encoding, shape, oracle_s, numpy_s, difference, radius))
    return rows


def _small(args: dict[str, Any]) -> dict[str, Any]:
    return {k: (v[:, :, :4] if k in ("q", "k", "v") else v) for k, v in args.items()}


def _markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# Oracle speed: ball evaluation against numpy float64",
        "",
        f"Machine: {platform.machine()}, {platform.python_version()}, {date.today()}. "
        f"Command: `{command}`. Medians in seconds; the ratio is oracle / numpy, measured side "
        "by side in one run. `difference` is the largest |numpy - oracle midpoint| over the "
        "outputs; `radius` the oracle's largest certified radius on them (plus rounding to "
        "float64). The gradients row is forward and backward against numpy's, its difference "
        "and radius over every input's gradient.",
        "",
        "| case | L | n_head | d_head | oracle (s) | numpy (s) | ratio | difference | radius |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['case']} | {r['L']} | {r['n_head']} | {r['d_head']} | {r['oracle_s']:.2f} | "
        f"{r['numpy_s']:.3f} | {r['ratio']:.1f}x | {r['max_abs_difference']:.1e} | "
        f"{r['max_radius_out']:.1e} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def main(L: int, rounds: int, out: Path, command: str) -> int:
    rows = [*run(L=L, rounds=rounds), run_gradients(rounds=rounds)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "oracle.json").write_text(json.dumps(rows, indent=1) + "\n")
    table = _markdown(rows, command)
    (out / "oracle.md").write_text(table)
    print(table)
    return 0
