"""Integer index arithmetic every backend shares: T5's buckets and DeBERTa's rows.

Plain Python integers, exact at every boundary (the floors and ceilings of the papers' log
forms are found by comparing powers, never by rounding a logarithm). Written from the papers'
definitions; nothing here evaluates a spec formula.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["deberta_rows", "deberta_rows_of", "t5_buckets", "t5_buckets_of"]


def _t5_bucket(n: int, num_buckets: int, max_distance: int, bidirectional: bool) -> int:
    """The bucket of a query-minus-key distance n: exact buckets below E = N // 2, then
    floor(log(a/E) / log(max_distance/E) (N - E)) as the largest t with
    max_distance^t E^(N-E) <= a^(N-E) E^t."""
    half = num_buckets // 2 if bidirectional else num_buckets
    exact = half // 2
    offset = half if bidirectional and n < 0 else 0
    a = abs(n) if bidirectional else max(n, 0)
    if a < exact:
        return offset + a
    k = half - exact
    t = 0
    while t < k and max_distance ** (t + 1) * exact**k <= a**k * exact ** (t + 1):
        t += 1
    return offset + min(half - 1, exact + t)


@lru_cache(maxsize=64)
def t5_buckets(klen: int, num_buckets: int, max_distance: int, bidirectional: bool):
    """Entry n + klen - 1 is the bucket of the distance n, for n in [-(klen - 1), klen - 1]
    (every pos_i - pos_j of klen keys)."""
    args = (num_buckets, max_distance, bidirectional)
    return tuple(_t5_bucket(n, *args) for n in range(1 - klen, klen))


def t5_buckets_of(
    distances: np.ndarray, num_buckets: int, max_distance: int, bidirectional: bool
) -> np.ndarray:
    """The bucket of every distance pos_i - pos_j of an integer array (any shape, any
    range: position ids), each distinct distance computed once; int64, the same shape."""
    distinct, where = np.unique(np.asarray(distances, dtype=np.int64), return_inverse=True)
    args = (num_buckets, max_distance, bidirectional)
    table = np.array([_t5_bucket(int(n), *args) for n in distinct], dtype=np.int64)
    return table[where].reshape(np.shape(distances))


def _log_bucket(r: int, size: int, max_position: int) -> int:
    """DeBERTa-v2: r when |r| <= size // 2, else sign(r) (mid + the smallest t with
    (M - 1)^t mid^(mid-1) >= |r|^(mid-1) mid^t)."""
    mid = size // 2
    a = abs(r)
    if a <= mid:
        return r
    k = mid - 1

    def reaches(t: int) -> bool:
        return (max_position - 1) ** t * mid**k >= a**k * mid**t

    # start from a float estimate, then step exactly
    t = max(0, math.ceil(k * math.log(a / mid) / math.log((max_position - 1) / mid)))
    while t > 0 and reaches(t - 1):
        t -= 1
    while not reaches(t):
        t += 1
    return (mid + t) if r > 0 else -(mid + t)


@lru_cache(maxsize=64)
def deberta_rows(klen: int, span: int, max_position: int | None):
    """Entry r + klen - 1 is the table row of the distance r, r in [-(klen - 1), klen - 1]:
    clip(bucket(r), -span, span - 1) + span."""
    return tuple(_deberta_row(r, span, max_position) for r in range(1 - klen, klen))


def _deberta_row(r: int, span: int, max_position: int | None) -> int:
    b = r if max_position is None else _log_bucket(r, span, max_position)
    return min(max(b, -span), span - 1) + span


def deberta_rows_of(r: np.ndarray, span: int, max_position: int | None) -> np.ndarray:
    """The table row of every distance of an integer array (any shape, any range: position
    ids), each distinct distance computed once; int64, the same shape."""
    distinct, where = np.unique(np.asarray(r, dtype=np.int64), return_inverse=True)
    table = np.array([_deberta_row(int(d), span, max_position) for d in distinct], np.int64)
    return table[where].reshape(np.shape(r))
