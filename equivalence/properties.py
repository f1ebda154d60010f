"""The properties every implementation is checked for, as plain functions.

Each :class:`Property` draws inputs with a strategy, runs the implementation (and, for some,
a second run or another backend), and returns :class:`~equivalence.compare.Verdict` values;
pytest (``tests/properties``), ``relpos check`` and third-party checks all run these same
functions through :mod:`relpos.equivalence.runner`. A property applies to an implementation when its
encoding declares it (the metamorphic ones, ``Encoding.metamorphic``) or always (the rest).

1. ``oracle``: scores, probabilities and outputs agree with the oracle (every dtype).
2. ``cross_backend``: the same variant on the other backend agrees, on sequences up to 128.
3. ``gradients``: gradients with respect to every float input agree with the oracle's;
   ``gradients_cross_backend``: and with the other backend's.
4. metamorphic: ``translation``, ``masked_keys``, ``batch``, ``memory_rows``,
   ``zero_tables``, ``wide_range`` (see each function); positions: ``offset``, ``chunked``,
   ``left_padding``, ``packed``. translation, chunked and packed compare calls of other
   lengths or shifted positions, so they draw only options under which an encoding depends
   on the positions' differences alone (``Encoding.length_free``: not RoPE's dynamic or
   longrope scaling, whose frequencies follow the sequence length; the oracle and history
   check those).
5. ``masked_rows``: rows with no visible key give zeros and no NaN, forward and backward.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from relpos.equivalence import tolerance
from relpos.equivalence.backends import DTYPES, Outputs, backend
from relpos.equivalence.compare import Verdict, compare
from relpos.equivalence.draws import MASK_KINDS, Draw
from relpos.equivalence.dtypes import representable
from relpos.equivalence.reference import (
    Expected,
    approximate,
    expected,
    expected_gradients,
    overflow_note,
)
from relpos.equivalence.strategies import KLEN_MAX, Restriction, draws
from relpos.impls import Implementation, registry
from relpos.spec import get_encoding
from relpos.spec._cases import POSITION_KINDS

__all__ = ["PROPERTIES", "Finding", "Inapplicable", "Property", "applicable", "run_implementation"]

Check = Callable[[Implementation, Draw, str], list[Verdict]]


class Finding(Exception):
    """A wrong result noticed while running an implementation, before any comparison: a
    result of the wrong shape or dtype, or masked rows that break the profile's convention.
    Reported as a failure, like a wrong value."""


class Inapplicable(Exception):
    """This input cannot be checked on this implementation (a third-party target whose
    profile defines no gradient through fully masked rows); the example is discarded."""


@dataclass(frozen=True)
class Property:
    """A checkable property: its strategy (per encoding), the dtypes it runs in, and the
    check itself."""

    name: str
    doc: str
    dtypes: tuple[str, ...]
    strategy: Callable[[str, Restriction | None], st.SearchStrategy[Draw]]
    check: Check
    metamorphic: bool = False
    needs_partner: bool = False
    needs_memory: bool = False
    #: The property passes position ids: only for implementations that take them.
    needs_positions: bool = False
    #: Fixed inputs checked one by one instead of drawn: (name, draw) pairs per encoding
    #: (``strategy`` is then unused).
    cases: Callable[[str, Restriction | None], list[tuple[str, Draw]]] | None = None
    #: The encodings the property has something to check on (None: every encoding).
    encodings: Callable[[], frozenset[str]] | None = None


# -- helpers -------------------------------------------------------------------------------


def _who(impl: Implementation, dtype: str) -> str:
    return f"{impl.id} in {dtype}"


#: The key lengths each implementation (by id) was called with in this process: the history
#: property checks a call at a length no earlier call had, so that a table cached per
#: length is built by the call it means to test.
_LENGTHS: dict[str, set[int]] = {}


def run_implementation(impl: Implementation, args: Mapping[str, Any], dtype: str) -> Outputs:
    """Run an implementation; one that is not registered (a third-party target) supplies its
    own ``outputs`` (conventions converted, results checked)."""
    _LENGTHS.setdefault(impl.id, set()).add(int(np.shape(args["k"])[2]))
    own = getattr(impl, "outputs", None)
    if own is not None:
        return own(args, dtype)
    return backend(impl.backend).call(impl.load(), args, dtype)


def _gradients(
    impl: Implementation,
    args: Mapping[str, Any],
    dtype: str,
    weights: np.ndarray,
    wrt: tuple[str, ...],
) -> dict[str, np.ndarray]:
    _LENGTHS.setdefault(impl.id, set()).add(int(np.shape(args["k"])[2]))
    own = getattr(impl, "output_gradients", None)
    if own is not None:
        return own(args, dtype, weights, wrt)
    return backend(impl.backend).gradients(impl.load(), args, dtype, weights, wrt)


def _masked_rows(impl: Implementation) -> str:
    """What the implementation's fully masked rows hold: the spec's zeros unless a target's
    profile says otherwise (its rows were then checked and set to zeros by ``outputs``)."""
    return getattr(impl, "masked_rows", "zeros")


def _round(args: Mapping[str, Any], dtype: str) -> dict[str, Any]:
    return {
        k: representable(v, dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
        for k, v in args.items()
    }


def partner(impl: Implementation) -> Implementation | None:
    """The same encoding and variant on the other backend, if registered (run the way
    ``impl`` runs: in a worker process when it does)."""
    wrap = getattr(impl, "wrap", None)
    for other in registry():
        if (other.encoding, other.variant) == (impl.encoding, impl.variant) and (
            other.backend != impl.backend
        ):
            return other if wrap is None else wrap(other)
    return None


def _full_mask(args: Mapping[str, Any]) -> np.ndarray:
    b, h, qlen, _ = args["q"].shape
    shape = (b, h, qlen, args["k"].shape[2])
    mask = args.get("mask")
    return np.ones(shape, bool) if mask is None else np.broadcast_to(mask, shape).copy()


def _axis_tensors(encoding: str, dim: str) -> dict[str, int]:
    """Tensor name -> the axis of dimension ``dim`` in its (first) layout."""
    out = {}
    for t in get_encoding(encoding).tensors:
        layout = t.layouts[0]
        if dim in layout and t.name != "mask":
            out[t.name] = layout.index(dim)
    return out


def _random_like(value: np.ndarray, rng: np.random.Generator, dtype: str) -> np.ndarray:
    if value.dtype.kind == "f":
        return representable(rng.standard_normal(value.shape), dtype)
    if value.dtype == bool:
        return rng.random(value.shape) < 0.5
    return rng.integers(0, 3, size=value.shape).astype(value.dtype)


# -- 1. the oracle ------------------------------------------------------------------------


def _explained(verdicts: list[Verdict], got: Outputs, want: Expected, dtype: str) -> list[Verdict]:
    """Failures with the overflow that explains them, when there is one (the logits, the
    logits before their scale, or the products they sum, beyond ``dtype``'s range:
    :func:`~relpos.equivalence.reference.overflow_note`): inf or NaN that the oracle does not
    hold, anywhere, or a finite value out of bound in a query row whose logits overflow."""
    note = overflow_note(want, dtype)
    spurious = False
    for name in ("scores", "probs", "out"):
        array = getattr(got, name)
        if note and array is not None:
            wanted = np.isfinite(getattr(want, name))
            spurious |= bool((~np.isfinite(np.asarray(array, dtype=np.float64)) & wanted).any())
    explained = []
    for v in verdicts:
        why = note if spurious else ""
        if not why and v.kind == "bound" and len(v.index) >= 3:
            why = overflow_note(want, dtype, row=v.index[:3])
        explained.append(v if v.ok or not why else replace(v, message=f"{v.message}; {why}"))
    return explained


def check_oracle(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    args = draw.arguments(dtype)
    want = expected(impl.encoding, args)
    got = run_implementation(impl, args, dtype)
    b = want.bounds(dtype)
    verdicts = [
        compare(
            name, getattr(got, name), getattr(want, name), getattr(b, name), who=_who(impl, dtype)
        )
        for name in ("scores", "probs", "out")
        if getattr(got, name) is not None
    ]
    return _explained(verdicts, got, want, dtype)


def _index_cases(encoding: str, restrict: Restriction | None) -> list[tuple[str, Draw]]:
    from relpos.equivalence.index_tables import index_cases

    return index_cases(encoding, restrict)


def _probed() -> frozenset[str]:
    from relpos.equivalence.index_tables import PROBED

    return frozenset(PROBED)


def golden_cases(encoding: str, restrict: Restriction | None = None) -> list[tuple[str, Draw]]:
    """Every golden case of the spec and its long-position case (queries after 768 memory
    positions), as draws with the case's own inputs (dyadic values from its seed), less those
    a library's restriction rules out."""
    enc = get_encoding(encoding)
    found = []
    for case in [*enc.cases(), *enc.large_cases()]:
        draw = Draw(
            encoding,
            dict(case.dims),
            dict(case.options),
            tuple(case.include),
            dict(case.layouts),
            case.mask,
            "dyadic",
            case.seed,
            case.positions,
        )
        if restrict is None or restrict.admits(draw):
            found.append((case.name, draw))
    return found


def check_index_tables(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """The probe of :mod:`relpos.equivalence.index_tables`: each score is the row, bucket
    or distance the implementation read, against the oracle's."""
    from relpos.equivalence.index_tables import probe_arguments

    args = probe_arguments(draw)
    want = expected(impl.encoding, args)
    got = run_implementation(impl, args, dtype)
    if got.scores is None:
        raise Inapplicable("the implementation returns no scores")
    return [
        compare(
            "scores (the rows read)",
            got.scores,
            want.scores,
            want.bounds(dtype).scores,
            who=_who(impl, dtype),
        )
    ]


# -- 2. between backends -------------------------------------------------------------------


def check_cross_backend(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    other = partner(impl)
    assert other is not None
    args = draw.arguments(dtype)
    b = approximate(impl.encoding, args).bounds(dtype)
    mine, theirs = run_implementation(impl, args, dtype), run_implementation(other, args, dtype)
    return [
        compare(
            name,
            getattr(mine, name),
            getattr(theirs, name),
            2 * getattr(b, name),
            who=_who(impl, dtype),
            against=other.id,
        )
        for name in ("scores", "probs", "out")
    ]


# -- 3. gradients --------------------------------------------------------------------------


def _weights(draw: Draw) -> np.ndarray:
    d = draw.dims
    rng = np.random.default_rng(draw.seed ^ 0x5EED)
    return rng.integers(-4, 5, size=(d["bsz"], d["n_head"], d["qlen"], d["d_head"])) / 4


def _wrt(encoding: str, args: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(n for n in get_encoding(encoding).float_inputs if args.get(n) is not None)


def _dims(encoding: str, args: Mapping[str, Any]) -> Mapping[str, int]:
    return get_encoding(encoding).validate(args, check_dtypes=False).dims


def _gradient_bounds(
    encoding: str, args: Mapping[str, Any], dtype: str, w: np.ndarray
) -> dict[str, np.ndarray]:
    _, magnitude, underflow = expected_gradients(encoding, args, w)
    forward = expected(encoding, args).bounds(dtype)
    dims = _dims(encoding, args)
    return tolerance.gradient_bounds(dtype, magnitude, dims, forward, underflow)


def check_gradients(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    args, w = draw.arguments(dtype), _weights(draw)
    exact = expected_gradients(impl.encoding, args, w)[0]
    bounds = _gradient_bounds(impl.encoding, args, dtype, w)
    wrt = _wrt(impl.encoding, args)
    if _masked_rows(impl) != "zeros" and not expected(impl.encoding, args).mask.any(-1).all():
        raise Inapplicable("the profile defines no gradient through fully masked rows")
    got = _gradients(impl, args, dtype, w, wrt)
    return [
        compare(f"d/d{name}", got[name], exact[name], bounds[name], who=_who(impl, dtype))
        for name in wrt
        if name in got
    ]


def check_gradients_cross_backend(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    other = partner(impl)
    assert other is not None
    args, w = draw.arguments(dtype), _weights(draw)
    bounds = _gradient_bounds(impl.encoding, args, dtype, w)
    wrt = _wrt(impl.encoding, args)
    mine = _gradients(impl, args, dtype, w, wrt)
    theirs = _gradients(other, args, dtype, w, wrt)
    return [
        compare(
            f"d/d{name}",
            mine[name],
            theirs[name],
            2 * bounds[name],
            who=_who(impl, dtype),
            against=other.id,
        )
        for name in wrt
    ]


# -- 4. metamorphic ------------------------------------------------------------------------


def check_translation(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """Prepending t memory positions that every query is masked from shifts every absolute
    position by t and must change nothing: scores depend on positions only through their
    difference."""
    args = draw.arguments(dtype)
    rng = np.random.default_rng(draw.seed + 1)
    t = 1 + draw.seed % 3
    shifted = dict(args)
    for name, axis in _axis_tensors(impl.encoding, "klen").items():
        if args.get(name) is not None:
            pad_shape = list(args[name].shape)
            pad_shape[axis] = t
            extra = _random_like(np.empty(pad_shape, args[name].dtype), rng, dtype)
            shifted[name] = np.concatenate([extra, args[name]], axis=axis)
    mask = _full_mask(args)
    shifted["mask"] = np.concatenate([np.zeros((*mask.shape[:-1], t), bool), mask], axis=-1)
    bound = 2 * expected(impl.encoding, args).bounds(dtype).out
    return [
        compare(
            f"out with {t} masked memory positions prepended",
            run_implementation(impl, shifted, dtype).out,
            run_implementation(impl, args, dtype).out,
            bound,
            who=_who(impl, dtype),
            against="the unshifted run",
        )
    ]


def check_masked_keys(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """Keys hidden from every query (the last r) may hold any content: changing their k and
    v must not change the output. (Per-position tensors such as segment ids also describe
    the queries at those positions, so they stay.)"""
    args = draw.arguments(dtype)
    rng = np.random.default_rng(draw.seed + 2)
    klen = args["k"].shape[2]
    hidden = max(1, draw.seed % klen) if klen > 1 else 1
    masked = dict(args, mask=_full_mask(args) & (np.arange(klen) < klen - hidden))
    changed = dict(masked)
    for name, axis in (("k", 2), ("v", 2)):
        value = args[name].copy()
        index = [slice(None)] * value.ndim
        index[axis] = slice(klen - hidden, klen)
        value[tuple(index)] = _random_like(value[tuple(index)], rng, dtype)
        changed[name] = value
    bound = 2 * expected(impl.encoding, masked).bounds(dtype).out
    return [
        compare(
            f"out with the last {hidden} hidden keys changed",
            run_implementation(impl, changed, dtype).out,
            run_implementation(impl, masked, dtype).out,
            bound,
            who=_who(impl, dtype),
            against="the run before the change",
        )
    ]


def check_batch(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """Batch elements are independent: changing every other element leaves element 0."""
    args = draw.arguments(dtype)
    rng = np.random.default_rng(draw.seed + 3)
    changed = dict(args)
    for name, axis in _axis_tensors(impl.encoding, "bsz").items():
        if args.get(name) is None or axis != 0:
            continue
        value = args[name].copy()
        value[1:] = _random_like(value[1:], rng, dtype)
        changed[name] = value
    mask = args.get("mask")
    if mask is not None and mask.ndim == 4 and mask.shape[0] > 1:
        changed["mask"] = mask.copy()
        changed["mask"][1:] = rng.random(mask[1:].shape) < 0.5
    bound = 2 * expected(impl.encoding, args).bounds(dtype).out[:1]
    return [
        compare(
            "out of batch element 0 after changing the others",
            run_implementation(impl, changed, dtype).out[:1],
            run_implementation(impl, args, dtype).out[:1],
            bound,
            who=_who(impl, dtype),
            against="the unchanged batch",
        )
    ]


def check_memory_rows(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """A run with mlen memory positions equals the last qlen rows of a run in which the
    memory positions are queries too (mlen = 0, qlen = klen)."""
    args = draw.arguments(dtype)
    rng = np.random.default_rng(draw.seed + 4)
    mlen = args["k"].shape[2] - args["q"].shape[2]
    full = dict(args)
    full["q"] = np.concatenate(
        [
            representable(
                rng.standard_normal((*args["q"].shape[:2], mlen, args["q"].shape[3])), dtype
            ),
            args["q"],
        ],
        axis=2,
    )
    mask = _full_mask(args)
    top = np.ones((*mask.shape[:2], mlen, mask.shape[3]), bool)
    full["mask"] = np.concatenate([top, mask], axis=2)
    bound = 2 * expected(impl.encoding, args).bounds(dtype).out
    return [
        compare(
            f"out rows {mlen}.. of the full-length run",
            run_implementation(impl, full, dtype).out[:, :, mlen:],
            run_implementation(impl, args, dtype).out,
            bound,
            who=_who(impl, dtype),
            against="the run with memory",
        )
    ]


def check_zero_tables(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """With every relative table zero the encoding is plain attention: the framework's own
    (torch scaled_dot_product_attention, jax.nn.dot_product_attention) must agree on every
    query with a visible key."""
    args = draw.arguments(dtype)
    enc = get_encoding(impl.encoding)
    zeroed = dict(args)
    for name in enc.zero_tables:
        if args.get(name) is not None:
            zeroed[name] = np.zeros_like(args[name])
    adapter = backend(impl.backend)
    problem = enc.validate(zeroed, check_dtypes=False)
    scale = problem.options["scale"]
    scale = float(enc.default_scale(problem)) if scale is None else scale
    mask = _full_mask(zeroed)
    live = np.asarray(mask.any(axis=-1))[..., None]
    plain = adapter.plain_attention(
        zeroed["q"],
        zeroed["k"],
        zeroed["v"],
        None if zeroed.get("mask") is None else mask,
        scale,
        dtype,
    )
    mine = run_implementation(impl, zeroed, dtype).out
    b = expected(impl.encoding, zeroed)
    bound = b.bounds(dtype).out + b.bounds(adapter.plain_attention_dtype(dtype)).out
    name = (
        "scaled_dot_product_attention"
        if impl.backend == "torch"
        else ("jax.nn.dot_product_attention")
    )
    return [
        compare(
            "out with zero tables",
            np.where(live, mine, 0.0),
            np.where(live, plain, 0.0),
            bound,
            who=_who(impl, dtype),
            against=name,
        )
    ]


def check_wide_range(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """Once the range (clip, clamp) covers every distance, widening it further (with any
    values in new table rows) changes nothing."""
    enc = get_encoding(impl.encoding)
    rng = np.random.default_rng(draw.seed + 5)
    covering = _round(enc.widen(draw.arguments(dtype), 0, rng), dtype)
    wider = _round(enc.widen(covering, 1 + draw.seed % 4, rng), dtype)
    bound = 2 * expected(impl.encoding, covering).bounds(dtype).out
    return [
        compare(
            "out with a wider range",
            run_implementation(impl, wider, dtype).out,
            run_implementation(impl, covering, dtype).out,
            bound,
            who=_who(impl, dtype),
            against="the covering range",
        )
    ]


# -- 4b. positions ------------------------------------------------------------------------


def _sliced(
    encoding: str,
    args: Mapping[str, Any],
    *,
    rows: slice = slice(None),
    queries: slice = slice(None),
    keys: slice = slice(None),
) -> dict[str, Any]:
    """``args`` restricted to some batch rows, queries and keys: every tensor along its bsz,
    qlen and klen axes (position ids included), the mask made full first."""
    out = dict(args)
    for dim, chosen in (("bsz", rows), ("qlen", queries), ("klen", keys)):
        for name, axis in _axis_tensors(encoding, dim).items():
            value = out.get(name)
            if value is None:
                continue
            index = [slice(None)] * np.ndim(value)
            index[axis] = chosen
            out[name] = np.ascontiguousarray(np.asarray(value)[tuple(index)])
    out["mask"] = np.ascontiguousarray(_full_mask(args)[rows][:, :, queries][..., keys])
    return out


def _parts_agree(
    impl: Implementation,
    dtype: str,
    whole: Mapping[str, Any],
    parts: Sequence[tuple[tuple[slice, slice], Mapping[str, Any]]],
    what: str,
    against: str,
) -> list[Verdict]:
    """The output of one call on ``whole`` against separate calls: each part's (rows,
    queries) of the whole output equals that part's own output, within twice the part's
    bound."""
    out = run_implementation(impl, whole, dtype).out
    verdicts = []
    for (rows, queries), part in parts:
        verdicts.append(
            compare(
                what,
                out[rows][:, :, queries],
                run_implementation(impl, part, dtype).out,
                2 * expected(impl.encoding, part).bounds(dtype).out,
                who=_who(impl, dtype),
                against=against,
            )
        )
    return verdicts


def check_offset(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """Every position shifted by one large constant (2^16 to 2^17, the draw's "offset"
    position ids) agrees with the oracle: no relative score changes (the spec proves it), and
    RoPE's rotations at such positions stay within the tolerance model (the oracle is exact
    there, the bound grows with the angle)."""
    shift = int(draw.arguments("float64")["k_pos"][0, 0])
    return [
        v if v.ok else replace(v, message=f"with every position shifted by {shift}: {v.message}")
        for v in check_oracle(impl, draw, dtype)
    ]


def check_chunked(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """Decoding in steps: under a causal mask (and the draw's), a prefill of some queries,
    then steps of one to three queries, each attending to every key so far (its memory),
    with the draw's position ids sliced alike; the steps' outputs together equal the rows of
    one call."""
    args = draw.arguments(dtype)
    rng = np.random.default_rng(draw.seed + 7)
    qlen, mlen = draw.dims["qlen"], draw.dims["mlen"]
    # a decoder: query i sees the keys up to its own (key mlen + i), and the draw's mask
    args["mask"] = _full_mask(args) & (
        np.arange(draw.klen)[None, :] <= mlen + np.arange(qlen)[:, None]
    )
    cuts = [int(rng.integers(1, qlen + 1))]
    while cuts[-1] < qlen:
        cuts.append(min(qlen, cuts[-1] + int(rng.integers(1, 4))))
    parts = []
    start = 0
    for stop in cuts:
        step = _sliced(impl.encoding, args, queries=slice(start, stop), keys=slice(0, mlen + stop))
        parts.append(((slice(None), slice(start, stop)), step))
        start = stop
    sizes = "+".join(str(b - a) for a, b in zip([0, *cuts], cuts, strict=False))
    return _parts_agree(
        impl,
        dtype,
        args,
        parts,
        f"out of decoding steps of {sizes} queries",
        "the rows of one call",
    )


def check_left_padding(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """Rows padded on the left: row b's first p_b keys are padding, masked, and its real
    keys and queries carry positions counted from its first real key (padding at 0). Each
    row's output equals the call on that row alone without its padding (default
    positions). Row 0 is unpadded and the last row padded by the whole memory, so a
    position vector shared by every row shows."""
    args = draw.arguments(dtype)
    rng = np.random.default_rng(draw.seed + 8)
    bsz, qlen, mlen, klen = draw.dims["bsz"], draw.dims["qlen"], draw.dims["mlen"], draw.klen
    pads = rng.integers(0, mlen + 1, size=bsz)
    pads[0], pads[-1] = 0, mlen
    padded = dict(args)
    padded["k_pos"] = np.maximum(np.arange(klen)[None, :] - pads[:, None], 0)
    padded["q_pos"] = mlen + np.arange(qlen)[None, :] - pads[:, None]
    padded["mask"] = (
        _full_mask(args) & (np.arange(klen)[None, :] >= pads[:, None])[:, None, None, :]
    )
    parts = [
        (
            (slice(b, b + 1), slice(None)),
            _sliced(impl.encoding, args, rows=slice(b, b + 1), keys=slice(int(pads[b]), klen)),
        )
        for b in range(bsz)
    ]
    return _parts_agree(
        impl,
        dtype,
        padded,
        parts,
        f"out of left-padded rows (pads {pads.tolist()})",
        "each row alone, unpadded",
    )


def check_packed(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """Two sequences packed in one row: keys before a cut c form the first, keys from c the
    second, each with its own positions from 0 and a block mask between them; the queries
    (the last qlen keys) fall in either. The packed call equals two separate calls."""
    args = draw.arguments(dtype)
    qlen, mlen, klen = draw.dims["qlen"], draw.dims["mlen"], draw.klen
    cut = 1 + draw.seed % (klen - 1)
    first = max(0, min(qlen, cut - mlen))  # queries of the first sequence
    segment = np.arange(klen) >= cut
    packed = dict(args)
    packed["k_pos"] = np.concatenate([np.arange(cut), np.arange(klen - cut)])[None]
    packed["q_pos"] = packed["k_pos"][:, mlen:]
    block = segment[mlen:, None] == segment[None, :]
    packed["mask"] = _full_mask(args) & block
    parts = [
        (
            (slice(None), slice(first, qlen)),
            _sliced(impl.encoding, args, queries=slice(first, qlen), keys=slice(cut, klen)),
        )
    ]
    if first:
        parts.insert(
            0,
            (
                (slice(None), slice(0, first)),
                _sliced(impl.encoding, args, queries=slice(0, first), keys=slice(0, cut)),
            ),
        )
    return _parts_agree(
        impl,
        dtype,
        packed,
        parts,
        f"out of two sequences packed at key {cut}",
        "the two sequences called separately",
    )


# -- 5. fully masked rows ------------------------------------------------------------------


def check_masked_rows(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    args = draw.arguments(dtype)
    got = run_implementation(impl, args, dtype)
    want = expected(impl.encoding, args)
    dead = ~want.mask.any(axis=-1)
    who = _who(impl, dtype)
    verdicts = []
    present = [
        (name, array)
        for name, array in (("out", got.out), ("probs", got.probs), ("scores", got.scores))
        if array is not None
    ]
    for name, array in present:
        bad = np.isnan(array)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            verdicts.append(
                Verdict(
                    False,
                    float("inf"),
                    index,
                    f"{name} of {who} = nan at {list(index)}, but should have "
                    "no NaN (fully masked rows give zeros)",
                )
            )
    wrong = [
        (name, array)
        for name, array in present
        if not (np.isneginf(array[dead]) if name == "scores" else array[dead] == 0).all()
    ]
    if wrong:
        name, array = wrong[0]
        should = "-inf" if name == "scores" else "0"
        rows = np.argwhere(
            dead & ~(np.isneginf(array) if name == "scores" else array == 0).all(axis=-1)
        )
        index = tuple(int(i) for i in rows[0])
        verdicts.append(
            Verdict(
                False,
                float("inf"),
                index,
                f"{name} of {who} = {np.asarray(array)[index].tolist()} at fully masked "
                f"row {list(index)}, but should be {should} (out 0, probs 0, scores -inf)",
            )
        )
    # The loss on the fully masked rows only: every gradient must be exactly 0 (a NaN from a
    # dead row's softmax would show here too, since NaN != 0).
    verdicts = _explained(verdicts, got, want, dtype)
    if _masked_rows(impl) != "zeros":  # the profile's rows were checked by outputs()
        return verdicts or [Verdict(True, 0.0, (), "")]
    weights = np.zeros(got.out.shape)
    weights[dead] = 1.0
    wrt = _wrt(impl.encoding, args)
    grads = _gradients(impl, args, dtype, weights, wrt)
    for name, g in grads.items():
        if not (g == 0).all():
            index = tuple(int(i) for i in np.argwhere(g != 0)[0])
            verdicts.append(
                Verdict(
                    False,
                    float("inf"),
                    index,
                    f"d/d{name} of the loss on fully masked rows of {who} = "
                    f"{g[index]} at {list(index)}, but should be 0",
                )
            )
    return verdicts or [Verdict(True, 0.0, (), "")]


# -- 6. calls do not depend on earlier calls --------------------------------------------------

#: The calls of one repeatability example: the draw's inputs (A) and the same inputs with
#: other values v (B). Five calls, so that a target wrong on every k-th call (k <= 5) meets the
#: fault on an A call within a few examples whatever its count started at.
_CALLS = ("A", "B", "A", "A", "A")


def _other_values(v: np.ndarray, dtype: str) -> np.ndarray:
    """v with every element changed and still in range: v + 1 + |v|/4 (a step above the
    dtype's spacing), or v / 2 where |v| > 2^14 (exact, and no float16 overflow)."""
    return np.where(np.abs(v) > 2.0**14, v / 2, representable(v + 1 + np.abs(v) / 4, dtype))


def check_repeatability(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """The same inputs give the same results, bit for bit on the CPU, on every call, whatever
    was called in between (no state kept between calls); and new values give a new output
    (no cache keyed on the shapes): out is linear in v, so other values of v change it
    wherever a row sees a key."""
    args = draw.arguments(dtype)
    other = {**args, "v": _other_values(args["v"], dtype)}
    first: Outputs | None = None
    for n, which in enumerate(_CALLS, start=1):
        got = run_implementation(impl, args if which == "A" else other, dtype)
        if which != "A":
            changed = first is None or not np.array_equal(got.out, first.out) or not first.out.any()
            if not changed:
                return [
                    Verdict(
                        False,
                        float("inf"),
                        (),
                        f"out of {_who(impl, dtype)} on call {n} (other values v, the same "
                        "shapes) is call 1's out, bit for bit: a result kept from an earlier "
                        "call (a cache keyed on the shapes?)",
                    )
                ]
            continue
        if first is None:
            first = got
            continue
        for name in ("out", "probs", "scores"):
            now, then = getattr(got, name), getattr(first, name)
            if now is None or then is None:
                continue
            if now.shape != then.shape:
                shown = f"has shape {now.shape}, but call 1 gave {then.shape}"
                index: tuple[int, ...] = ()
            else:
                differs = ~((now == then) | (np.isnan(now) & np.isnan(then)))
                if not differs.any():
                    continue
                index = tuple(int(i) for i in np.argwhere(differs)[0])
                shown = (
                    f"= {now[index]:.17g} at {list(index)}, but call 1 on the same inputs "
                    f"gave {then[index]:.17g}"
                )
            return [
                Verdict(
                    False,
                    float("inf"),
                    index,
                    f"{name} of {_who(impl, dtype)} on call {n} of {len(_CALLS)} (calls "
                    f"{'-'.join(_CALLS)}, B other values of the same shapes) {shown}: a call "
                    "must not depend on earlier ones",
                )
            ]
    return [Verdict(True, 0.0, (), "")]


#: The dtype called first in the history "another dtype first": a table built in it and
#: reused for the checked dtype shows as that dtype's error.
_LOWER = {"float64": "float32", "float32": "bfloat16"}


def _restriction(impl: Implementation) -> Restriction:
    r = getattr(impl, "restriction", None)
    return r if isinstance(r, Restriction) else Restriction()


def _resized(
    draw: Draw, restrict: Restriction, axis: str, size: int, limit: int = KLEN_MAX
) -> Draw | None:
    """``draw`` with ``axis`` set to ``size`` (a multiple the library takes), or None where
    the library does not take it or klen would pass ``limit``."""
    step = restrict.multiple_of.get(axis, 1)
    size = -(-size // step) * step
    dims = {**draw.dims, axis: size}
    if (size < 1 and axis == "qlen") or dims["qlen"] + dims["mlen"] > limit:
        return None
    resized = replace(draw, dims=dims)
    return resized if restrict.admits(resized) else None


def _at_a_new_length(draw: Draw, impl: Implementation, restrict: Restriction) -> Draw:
    """``draw`` with its memory (its queries where the library takes no memory) grown until
    klen is one ``impl`` has not been called with in this process."""
    seen = _LENGTHS.get(impl.id, set())
    axis = "mlen" if restrict.at_most.get("mlen", 1) > 0 else "qlen"
    size = draw.dims[axis]
    while draw.dims["qlen"] + draw.dims["mlen"] + size - draw.dims[axis] in seen:
        size += restrict.multiple_of.get(axis, 1)
    return _resized(draw, restrict, axis, size) or draw


#: How long a key sequence the history beyond every earlier length may reach.
_LONGEST = 2 * KLEN_MAX
#: Queries of that call: the state it writes depends on klen alone, and the oracle's cost on
#: qlen * klen.
_LONGEST_QUERIES = 4


def _beyond_every_length(
    draw: Draw, impl: Implementation, restrict: Restriction, earlier_dtype: str
) -> Draw | None:
    """``draw`` with its memory (its queries where the library takes no memory) grown until
    klen exceeds every klen ``impl`` has been called with in this process, and reaches a
    position that ``earlier_dtype`` rounds (1/u + 1: 257 for bfloat16) where that is still
    above them, with at most :data:`_LONGEST_QUERIES` queries where the library takes memory;
    None past :data:`_LONGEST`. A cache that grows only when a call is longer
    than all before it is written by such a call, and one built from positions in the
    caller's dtype shows it only past that position."""
    longest = max(_LENGTHS.get(impl.id, set()), default=0)
    if restrict.at_most.get("mlen", 1) > 0 and draw.dims["qlen"] > _LONGEST_QUERIES:
        fewer = _resized(draw, restrict, "qlen", _LONGEST_QUERIES)
        draw = fewer if fewer is not None else draw
    rounded = int(1 / tolerance.DTYPES[earlier_dtype].u) + 1
    wanted = max(longest + 1, rounded + 1 if rounded > longest else 0)
    if draw.klen >= wanted:
        return draw
    axis = "mlen" if restrict.at_most.get("mlen", 1) > 0 else "qlen"
    step = restrict.multiple_of.get(axis, 1)
    grow = -(-(wanted - draw.klen) // step) * step
    return _resized(draw, restrict, axis, draw.dims[axis] + grow, _LONGEST)


def _against_oracle(impl: Implementation, draw: Draw, dtype: str, said: str) -> list[Verdict]:
    """:func:`check_oracle` on ``draw``; each failure starts with ``said`` and where the call
    was made."""
    where = f"qlen {draw.dims['qlen']}, klen {draw.klen}, a klen new to it"
    return [
        v if v.ok else replace(v, message=f"{said} at {where}: {v.message}")
        for v in check_oracle(impl, draw, dtype)
    ]


def check_history(impl: Implementation, draw: Draw, dtype: str) -> list[Verdict]:
    """Results do not depend on earlier calls. The draw is checked against the oracle at a
    key length new to ``impl`` in this process, first on its own, then (each time at another
    new length) right after a call in a lower dtype of the same shapes, right after such a
    call longer than every call before it (a cache that grows only then is written by it),
    after a longer call,
    after a shorter one and, where the implementation takes position ids, after a call of the
    same shapes at random positions up to 2^17. State kept between calls (a rotation table
    cached per length and reused in another dtype or at other positions, a table sized by the
    first call) shows as an error after a history that the first call does not have. A first
    call that is already wrong fails here as it does against the oracle, and says so (it may
    be wrong on its own, or through state from earlier draws)."""
    restrict = _restriction(impl)
    alone = _against_oracle(
        impl, _at_a_new_length(draw, impl, restrict), dtype, "before this draw's history,"
    )
    if not all(v.ok for v in alone):
        return alone
    verdicts: list[Verdict] = []
    histories: tuple[str, ...] = ("dtype", "longest", "longer", "shorter")
    histories += ("offset",) if restrict.positions else ()
    for history in histories:
        checked = _at_a_new_length(draw, impl, restrict)
        if history == "longest":
            grown = _beyond_every_length(draw, impl, restrict, _LOWER[dtype])
            if grown is None:
                continue
            checked = grown
        qlen = checked.dims["qlen"]
        earlier, earlier_dtype = checked, _LOWER[dtype]
        said = f"after a {earlier_dtype} call of the same shapes"
        if history == "longest":
            said = f"after a {earlier_dtype} call of the same shapes, longer than any before it"
        elif history == "offset":
            # random ids per row up to 2^17, not one shift: rotary scores are invariant to a
            # shift, so a table of shifted positions reused here would show only through
            # rounding
            earlier, earlier_dtype = replace(checked, positions="per_row"), dtype
            top = int(earlier.arguments(dtype)["k_pos"].max())
            said = f"after a call of the same shapes at random positions up to {top}"
        elif history != "dtype":
            size = 2 * qlen + 1 if history == "longer" else qlen // 2
            resized = _resized(checked, restrict, "qlen", size)
            if resized is None:
                continue
            earlier, earlier_dtype = resized, dtype
            said = f"after a call with qlen {earlier.dims['qlen']}"
        run_implementation(impl, earlier.arguments(earlier_dtype), earlier_dtype)
        verdicts += _against_oracle(impl, checked, dtype, f"{said}, then")
        if not all(v.ok for v in verdicts):
            break
    return alone + verdicts


# -- the table -----------------------------------------------------------------------------


def _strategy(size: str, **kw: Any) -> Callable[[str, Restriction | None], st.SearchStrategy[Draw]]:
    def strategy(encoding: str, restrict: Restriction | None = None) -> st.SearchStrategy[Draw]:
        return draws(encoding, size, restrict=restrict, **kw)

    return strategy


#: The head width from which the default scale 1/sqrt(d_head) (at most 0.354) lies below every
#: fraction of :data:`~relpos.equivalence.draws.LIMIT_FRACTION` (as does a scale of 0.5).
_WIDE_HEADS = 8


def _at_the_half_limit(
    encoding: str, restrict: Restriction | None = None
) -> st.SearchStrategy[Draw]:
    """Draws whose largest |logit| is 55% to 95% of float16's range ("limit" values), with
    d_head >= 8 and a scale below 1 where the library allows one: the scores fit in float16,
    and the products before the scale do not."""
    r = restrict or Restriction()
    prior = r.options.get("scale")

    def below_one(dims: Mapping[str, int], candidates: list[Any]) -> list[Any]:
        allowed = prior(dims, candidates) if prior is not None else list(candidates)
        return [c for c in allowed if c is None or c < 1] or allowed

    wide = min(_WIDE_HEADS, r.at_most.get("d_head", _WIDE_HEADS))
    narrowed = replace(r, options={**r.options, "scale": below_one})
    return draws(
        encoding, "oracle", restrict=narrowed, values=("limit",), at_least={"d_head": wide}
    )


# Plain attention returns NaN for rows with no visible key; those rows are compared only in
# masked_rows, so this property does not ask for them (random masks may still hide a row,
# which the check leaves out).
_NO_DEAD_ROWS = tuple(k for k in MASK_KINDS if k != "fully_masked_row")

#: dtypes beyond every dtype: float64 catches the smallest deviations and float32 is what is
#: deployed; the half types are checked against the oracle and for masked rows.
PRECISE = ("float64", "float32")
EXACT_ONLY = ("float64",)

PROPERTIES: dict[str, Property] = {
    p.name: p
    for p in [
        Property(
            "oracle",
            "scores, probabilities and outputs agree with the oracle",
            DTYPES,
            _strategy("oracle", positions=POSITION_KINDS),
            check_oracle,
        ),
        Property(
            "half_range",
            "scores that float16 holds come out finite and right, though the products before "
            "their scale pass its range",
            ("float16",),
            _at_the_half_limit,
            check_oracle,
        ),
        Property(
            "golden",
            "every golden case, and the long-position case, agrees with the oracle",
            DTYPES,
            _strategy("oracle"),
            check_oracle,
            cases=golden_cases,
        ),
        Property(
            "index_tables",
            "the rows, buckets and distances read, for every option set on a long range",
            EXACT_ONLY,
            _strategy("oracle"),
            check_index_tables,
            cases=_index_cases,
            encodings=_probed,
        ),
        Property(
            "cross_backend",
            "agrees with the same variant on the other backend, up to L = 128",
            PRECISE,
            _strategy("cross"),
            check_cross_backend,
            needs_partner=True,
        ),
        Property(
            "gradients",
            "gradients with respect to every float input agree with the oracle's",
            PRECISE,
            _strategy("tiny"),
            check_gradients,
        ),
        Property(
            "gradients_cross_backend",
            "gradients agree with the other backend's",
            EXACT_ONLY,
            _strategy("tiny"),
            check_gradients_cross_backend,
            needs_partner=True,
        ),
        Property(
            "translation",
            "masked memory prepended (all positions shifted) changes nothing",
            EXACT_ONLY,
            # a longer call with shifted positions: options that depend on the length (RoPE's
            # dynamic and longrope scaling) change its frequencies by definition
            _strategy("oracle", length_free=True),
            check_translation,
            metamorphic=True,
            needs_memory=True,
        ),
        Property(
            "masked_keys",
            "values behind hidden keys do not affect the output",
            EXACT_ONLY,
            _strategy("oracle"),
            check_masked_keys,
            metamorphic=True,
        ),
        Property(
            "batch",
            "batch elements are independent",
            EXACT_ONLY,
            _strategy("oracle", at_least={"bsz": 2}),
            check_batch,
            metamorphic=True,
        ),
        Property(
            "memory_rows",
            "a run with memory equals the matching rows of a full-length run",
            EXACT_ONLY,
            _strategy("oracle", at_least={"mlen": 1}),
            check_memory_rows,
            metamorphic=True,
            needs_memory=True,
        ),
        Property(
            "zero_tables",
            "zero tables reduce to the framework's plain attention",
            EXACT_ONLY,
            _strategy("oracle", masks=_NO_DEAD_ROWS),
            check_zero_tables,
            metamorphic=True,
        ),
        Property(
            "wide_range",
            "widening a range that covers every distance changes nothing",
            EXACT_ONLY,
            _strategy("oracle"),
            check_wide_range,
            metamorphic=True,
        ),
        Property(
            "offset",
            "every position shifted by 2^16 to 2^17 agrees with the oracle",
            PRECISE,
            _strategy("oracle", positions=("offset",)),
            check_offset,
            needs_positions=True,
        ),
        Property(
            "chunked",
            "a prefill and decoding steps equal the rows of one call",
            PRECISE,
            _strategy(
                "oracle", at_least={"qlen": 2}, positions=("default", "offset"), length_free=True
            ),
            check_chunked,
            needs_memory=True,
        ),
        Property(
            "left_padding",
            "left-padded rows with their own positions equal each row alone",
            PRECISE,
            _strategy("oracle", at_least={"bsz": 2, "mlen": 1}),
            check_left_padding,
            needs_memory=True,
            needs_positions=True,
        ),
        Property(
            "packed",
            "two sequences packed in one row equal two separate calls",
            PRECISE,
            _strategy("oracle", at_least={"qlen": 2}, length_free=True),
            check_packed,
            needs_positions=True,
        ),
        Property(
            "repeatability",
            "the same inputs give the same results on every call, bit for bit",
            PRECISE,
            _strategy("oracle"),
            check_repeatability,
        ),
        Property(
            "history",
            "results do not depend on earlier calls: another dtype, a longer or a shorter call, "
            "or a large offset just before",
            # float32 first: every history call takes a key length new to the target, so a
            # run's lengths grow, and a bfloat16 table read in float32 shows in an output only
            # at short ones (4.7 to 8 times the bound at klen 5, 0.31 at klen 27 with d_head
            # 2: the output's bound grows with the angles' spread); float64 after float32
            # shows at any length.
            ("float32", "float64"),
            # Two queries, so that a shorter call exists; two channels, so that a table has a
            # pair to rotate; values of order one, whose bounds are tight enough to see a
            # table rounded to another dtype (large logits saturate them).
            _strategy("oracle", at_least={"qlen": 2, "d_head": 2}, values=("dyadic", "normal")),
            check_history,
        ),
        Property(
            "masked_rows",
            "fully masked rows give zeros and no NaN, forward and backward",
            DTYPES,
            _strategy("tiny", masks=("fully_masked_row",)),
            check_masked_rows,
        ),
    ]
}


def applicable(prop: Property, impl: Implementation) -> tuple[bool, str]:
    """Whether ``prop`` applies to ``impl``, and if not, why (a skip reason)."""
    if prop.metamorphic and prop.name not in get_encoding(impl.encoding).metamorphic:
        return False, f"{impl.encoding} does not declare {prop.name}"
    if prop.encodings is not None and impl.encoding not in prop.encodings():
        return False, f"{impl.encoding} has nothing for {prop.name} to check"
    if prop.needs_memory and not getattr(impl, "memory", True):
        return False, f"{impl.id} takes no memory positions"
    if prop.needs_positions and not _restriction(impl).positions:
        return False, f"{impl.id} takes no position ids (its profile says so)"
    if prop.needs_partner:
        other = partner(impl)
        if other is None:
            return False, f"no other backend implements {impl.encoding}-{impl.variant}"
        ok, why = other.available()
        if not ok:
            return False, why
    return impl.available()
