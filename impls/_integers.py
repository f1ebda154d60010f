"""Integer index arithmetic every backend shares: T5's buckets and DeBERTa's rows.

Plain Python integers, exact at every boundary (the floors and ceilings of the papers' log
forms are found by comparing powers, never by rounding a logarithm). Written from the papers'
definitions; nothing here evaluates a spec formula.
"""

from __future__ import annotations

import math
from functools import lru_cache

__all__ = ["deberta_rows", "t5_buckets"]


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

    def row(r: int) -> int:
        b = r if max_position is None else _log_bucket(r, span, max_position)
        return min(max(b, -span), span - 1) + span

    return tuple(row(r) for r in range(1 - klen, klen))
