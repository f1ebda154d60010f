"""The bad-input table: each entry breaks one argument of a valid golden case and states the
exact error text. The oracle and every implementation must raise ArgumentError with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from relpos.spec import get_encoding
from relpos.spec._cases import case_inputs


@dataclass(frozen=True)
class BadInput:
    id: str
    encoding: str
    case: str
    change: Callable[[dict[str, Any]], dict[str, Any]]
    message: str

    def args(self) -> dict[str, Any]:
        enc = get_encoding(self.encoding)
        base = case_inputs(enc, next(c for c in enc.cases() if c.name == self.case))
        return self.change(dict(base))


def _with(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(args: dict[str, Any]) -> dict[str, Any]:
        for name, value in changes.items():
            args[name] = value(args) if callable(value) else value
        return args

    return change


def _without(*names: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda args: {k: v for k, v in args.items() if k not in names}


BAD_INPUTS: list[BadInput] = [
    BadInput(
        "shaw-clip-excludes-zero",
        "shaw",
        "symmetric",
        _with(clip=(1, 2)),
        "`clip` must be a pair (p_min, p_max) of integers with p_min <= 0 <= p_max, "
        "got clip=(1, 2)",
    ),
    BadInput(
        "shaw-clip-missing",
        "shaw",
        "symmetric",
        _without("clip"),
        "`clip` must be a pair (p_min, p_max) of integers with p_min <= 0 <= p_max, got clip=None",
    ),
    BadInput(
        "shaw-clip-floats",
        "shaw",
        "symmetric",
        _with(clip=(-2.0, 2.0)),
        "`clip` must be a pair (p_min, p_max) of integers with p_min <= 0 <= p_max, "
        "got clip=(-2.0, 2.0)",
    ),
    BadInput(
        "shaw-table-rows",
        "shaw",
        "symmetric",
        _with(rel_k=lambda a: a["rel_k"][:4]),
        "`rel_k` must have shape (P, d_head) = (5, 4) or (n_head, P, d_head) = (2, 5, 4) "
        "(P = p_max - p_min + 1 for clip=(-2, 2)), got rel_k.shape=(4, 4)",
    ),
    BadInput(
        "shaw-value-table-width",
        "shaw",
        "symmetric",
        _with(rel_v=lambda a: a["rel_v"][:, :3]),
        "`rel_v` must have shape (P, d_head) = (5, 4) or (n_head, P, d_head) = (2, 5, 4) "
        "(P = p_max - p_min + 1 for clip=(-2, 2)), got rel_v.shape=(5, 3)",
    ),
    BadInput(
        "shaw-d_head-mismatch",
        "shaw",
        "symmetric",
        _with(k=lambda a: np.concatenate([a["k"], a["k"]], axis=-1)),
        "`k` must have shape (bsz, n_head, klen, d_head) = (1, 2, klen, 4), "
        "got k.shape=(1, 2, 4, 8)",
    ),
    BadInput(
        "shaw-v-klen-mismatch",
        "shaw",
        "memory",
        _with(v=lambda a: a["v"][:, :, 1:]),
        "`v` must have shape (bsz, n_head, klen, d_head) = (1, 2, 5, 4), got v.shape=(1, 2, 4, 4)",
    ),
    BadInput(
        "shaw-klen-below-qlen",
        "shaw",
        "symmetric",
        _with(k=lambda a: a["k"][:, :, 1:], v=lambda a: a["v"][:, :, 1:]),
        "`k` must hold at least as many positions as the queries (klen = mlen + qlen, "
        "mlen >= 0), got klen=3 < qlen=4",
    ),
    BadInput(
        "shaw-mask-shape",
        "shaw",
        "symmetric",
        _with(mask=np.ones((3, 4), bool)),
        "`mask` must be broadcastable to (bsz, n_head, qlen, klen) = (1, 2, 4, 4), "
        "got mask.shape=(3, 4)",
    ),
    BadInput(
        "shaw-mask-dtype",
        "shaw",
        "symmetric",
        _with(mask=np.ones((4, 4))),
        "`mask` must have a boolean dtype, got dtype float64",
    ),
    BadInput(
        "shaw-unknown-argument",
        "shaw",
        "symmetric",
        _with(clamp_len=3),
        "`clamp_len` is not an argument of 'shaw'; the arguments are q, k, v, rel_k, "
        "rel_v, mask, q_pos, k_pos, clip, key_query, scale, got clamp_len=...",
    ),
    BadInput(
        "shaw-key-query-not-bool",
        "shaw",
        "symmetric",
        _with(key_query=1),
        "`key_query` must be True or False, got key_query=1",
    ),
    BadInput(
        "shaw-scale-negative",
        "shaw",
        "symmetric",
        _with(scale=-1.0),
        "`scale` must be None (the encoding's default) or a finite positive number, got scale=-1.0",
    ),
    BadInput(
        "shaw-scale-nan",
        "shaw",
        "symmetric",
        _with(scale=float("nan")),
        "`scale` must be None (the encoding's default) or a finite positive number, got scale=nan",
    ),
    BadInput(
        "shaw-q-not-array",
        "shaw",
        "symmetric",
        _with(q=[[0.0]]),
        "`q` must be an array or tensor (with .shape and .dtype), got an object of type list",
    ),
    BadInput(
        "xl-attn-type",
        "xl",
        "bi",
        _with(attn_type="causal"),
        "`attn_type` must be one of 'bi', 'uni', got attn_type='causal'",
    ),
    BadInput(
        "xl-clamp-style",
        "xl",
        "bi",
        _with(clamp_len=2, clamp_style="lower"),
        "`clamp_style` must be one of 'upper', 'symmetric', got clamp_style='lower'",
    ),
    BadInput(
        "xl-clamp-len-negative",
        "xl",
        "bi",
        _with(clamp_len=-1),
        "`clamp_len` must be None (no clamp) or an integer >= 0 (Transformer-XL and "
        "XLNet's 0 or -1 for 'no clamp' is None here), got clamp_len=-1",
    ),
    BadInput(
        "xl-d_model-odd",
        "xl",
        "bi",
        _with(w_r=lambda a: a["w_r"][..., :7]),
        "`w_r` must have an even d_model (last dimension): R(D) is [sin | cos], "
        "got w_r.shape=(2, 4, 7)",
    ),
    BadInput(
        "xl-d_model-option-mismatch",
        "xl",
        "bi",
        _with(d_model=6),
        "`w_r` must have shape (n_head, d_head, d_model) = (2, 4, 6) (d_model=6 as "
        "given), got w_r.shape=(2, 4, 8)",
    ),
    BadInput(
        "xl-d_model-option-odd",
        "xl",
        "bi",
        _with(d_model=7),
        "`d_model` must be even: R(D) is [sin | cos], got d_model=7",
    ),
    BadInput(
        "xl-bias-shape",
        "xl",
        "bi",
        _with(r_r_bias=lambda a: a["r_r_bias"][0]),
        "`r_r_bias` must have shape (n_head, d_head) = (2, 4), got r_r_bias.shape=(4,)",
    ),
    BadInput(
        "xl-segment-incomplete",
        "xl",
        "segments",
        _without("seg_embed"),
        "`seg_embed` is required when r_s_bias, seg_ids is given: the segment term "
        "needs r_s_bias, seg_embed and seg_ids, got None",
    ),
    BadInput(
        "xl-seg-ids-float",
        "xl",
        "segments",
        _with(seg_ids=lambda a: a["seg_ids"].astype(np.float64)),
        "`seg_ids` must have an integer dtype, got dtype float64",
    ),
    BadInput(
        "xl-seg-ids-length",
        "xl",
        "segments_memory_uni",
        _with(seg_ids=lambda a: a["seg_ids"][:, 2:]),
        "`seg_ids` must have shape (bsz, klen) = (1, 5), got seg_ids.shape=(1, 3)",
    ),
    BadInput(
        "xl-missing-bias", "xl", "bi", _without("r_w_bias"), "`r_w_bias` is required, got None"
    ),
    BadInput(
        "alibi-slope-rule",
        "alibi",
        "bidirectional",
        _with(slope_rule="linear"),
        "`slope_rule` must be 'paper' or 'geometric', got slope_rule='linear'",
    ),
    BadInput(
        "alibi-causal-not-bool",
        "alibi",
        "bidirectional",
        _with(causal="yes"),
        "`causal` must be True or False, got causal='yes'",
    ),
    BadInput(
        "alibi-slopes-shape",
        "alibi",
        "given_slopes",
        _with(slopes=lambda a: a["slopes"][:2]),
        "`slopes` must have shape (n_head) = (4), got slopes.shape=(2,)",
    ),
    BadInput(
        "t5-max-distance-within-exact-buckets",
        "t5",
        "bidirectional",
        _with(max_distance=2),
        "`max_distance` must exceed the 2 exact buckets (num_buckets=8, bidirectional=True), "
        "got max_distance=2",
    ),
    BadInput(
        "t5-too-few-buckets",
        "t5",
        "bidirectional",
        _with(num_buckets=3, rel_bias=lambda a: a["rel_bias"][:3]),
        "`num_buckets` must leave at least 2 buckets per direction (>= 4 when bidirectional), "
        "got num_buckets=3",
    ),
    BadInput(
        "t5-bias-rows",
        "t5",
        "bidirectional",
        _with(rel_bias=lambda a: a["rel_bias"][:5]),
        "`rel_bias` must have shape (num_buckets, n_head) = (8, 2) (num_buckets=8 as given), "
        "got rel_bias.shape=(5, 2)",
    ),
    BadInput(
        "rope-rotary-dim-odd",
        "rope",
        "default",
        _with(rotary_dim=3),
        "`rotary_dim` must be None (every complete pair) or an even integer >= 0, got rotary_dim=3",
    ),
    BadInput(
        "rope-rotary-dim-too-large",
        "rope",
        "default",
        _with(rotary_dim=6),
        "`rotary_dim` must not exceed d_head = 4, got rotary_dim=6",
    ),
    BadInput(
        "rope-base",
        "rope",
        "default",
        _with(base=1),
        "`base` must be a finite number > 1, got base=1",
    ),
    BadInput(
        "deberta-span-missing",
        "deberta",
        "both_terms",
        _without("span"),
        "`span` must be an integer >= 1, got span=None",
    ),
    BadInput(
        "deberta-table-rows",
        "deberta",
        "both_terms",
        _with(pos_key=lambda a: a["pos_key"][:3]),
        "`pos_key` must have shape (R, d_head) = (4, 4) or (n_head, R, d_head) = (2, 4, 4) "
        "(R = 2 span for span=2), got pos_key.shape=(3, 4)",
    ),
    BadInput(
        "deberta-max-position",
        "deberta",
        "log_buckets",
        _with(max_position=3),
        "`max_position` must exceed span // 2 + 1 = 3, with span >= 2 (log buckets of size "
        "span=4), got max_position=3",
    ),
    BadInput(
        "deberta-p2c-distance",
        "deberta",
        "both_terms",
        _with(p2c_distance="r_ki"),
        "`p2c_distance` must be 'r_ji' (the paper) or 'r_ij' (its code), got p2c_distance='r_ki'",
    ),
]


def _poisoned(name: str, value: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``name`` with its last element replaced by ``value`` (NaN or an infinity)."""

    def change(args: dict[str, Any]) -> dict[str, Any]:
        array = np.array(args[name], dtype=np.float64)
        array.flat[-1] = value
        args[name] = array
        return args

    return change


def _last_index(encoding: str, case: str, name: str) -> str:
    enc = get_encoding(encoding)
    shape = case_inputs(enc, next(c for c in enc.cases() if c.name == case))[name].shape
    return ", ".join(str(n - 1) for n in shape)


_FIRST_CASES = {
    "shaw": "symmetric",
    "xl": None,
    "t5": None,
    "alibi": None,
    "rope": None,
    "deberta": "both_terms",
}

for _encoding, _case in _FIRST_CASES.items():
    _case = _case or next(iter(get_encoding(_encoding).cases())).name
    for _name, _value in (("q", float("nan")), ("k", float("inf")), ("v", float("-inf"))):
        BAD_INPUTS.append(
            BadInput(
                f"{_encoding}-{_name}-{_value}",
                _encoding,
                _case,
                _poisoned(_name, _value),
                f"`{_name}` must be finite (no NaN or inf), got "
                f"{_name}[{_last_index(_encoding, _case, _name)}] = {_value}",
            )
        )

for _encoding, _case in _FIRST_CASES.items():
    _case = _case or next(iter(get_encoding(_encoding).cases())).name
    _shape = case_inputs(
        get_encoding(_encoding), next(c for c in get_encoding(_encoding).cases() if c.name == _case)
    )["q"].shape
    for _axis, _what in ((0, "batch"), (2, "queries")):
        _empty = list(_shape)
        _empty[_axis] = 0
        BAD_INPUTS.append(
            BadInput(
                f"{_encoding}-no-{_what}",
                _encoding,
                _case,
                _with(q=lambda a, axis=_axis: np.take(a["q"], [], axis=axis)),
                f"`q` must have no empty dimension (attention is defined over at least one batch "
                f"element, head, query, key and feature), got q.shape={tuple(_empty)}",
            )
        )


def _positions_of(args: dict[str, Any]) -> tuple[int, int, int]:
    bsz, _, qlen, _ = args["q"].shape
    return bsz, qlen, args["k"].shape[2]


def _ids(name: str, make: Callable[[int, int, int], np.ndarray]) -> Callable[..., Any]:
    def change(args: dict[str, Any]) -> dict[str, Any]:
        args[name] = make(*_positions_of(args))
        return args

    return change


for _encoding, _case in _FIRST_CASES.items():
    _case = _case or next(iter(get_encoding(_encoding).cases())).name
    _bsz, _qlen, _klen = _positions_of(
        case_inputs(
            get_encoding(_encoding),
            next(c for c in get_encoding(_encoding).cases() if c.name == _case),
        )
    )
    BAD_INPUTS += [
        BadInput(
            f"{_encoding}-q_pos-float",
            _encoding,
            _case,
            _ids("q_pos", lambda b, q, k: np.zeros((b, q))),
            "`q_pos` must have an integer dtype, got dtype float64",
        ),
        BadInput(
            f"{_encoding}-k_pos-shape",
            _encoding,
            _case,
            _ids("k_pos", lambda b, q, k: np.zeros((b, k + 1), np.int64)),
            f"`k_pos` must be broadcastable to (bsz, klen) = ({_bsz}, {_klen}), got "
            f"k_pos.shape=({_bsz}, {_klen + 1})",
        ),
        BadInput(
            f"{_encoding}-k_pos-negative",
            _encoding,
            _case,
            _ids("k_pos", lambda b, q, k: np.arange(k, dtype=np.int64)[None] - 1),
            "`k_pos` must hold positions in [0, 2147483647], got k_pos[0, 0] = -1",
        ),
        BadInput(
            f"{_encoding}-q_pos-beyond-int32",
            _encoding,
            _case,
            _ids("q_pos", lambda b, q, k: np.full((b, q), 2**31, np.int64)),
            "`q_pos` must hold positions in [0, 2147483647], got q_pos[0, 0] = 2147483648",
        ),
    ]
