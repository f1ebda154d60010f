"""Evaluating a SymPy matrix formula on every (b, h, i, j) pair at once.

A formula such as ``scale * q_i * (k_j + a_c).T`` is written with MatrixSymbols of symbolic
size (``d_head``). For concrete sizes it is expanded into explicit entries and lambdified once
(cached); each MatrixSymbol argument is then passed as an object array whose two leading axes
are the matrix's rows and columns and whose trailing axes run over the pairs, so one call
evaluates the formula for all pairs with Python arithmetic on the elements: exact for
Fractions, forward-mode for duals.

The operands are described by :class:`Rows` (which row of which table each pair reads). In
ball arithmetic the formula is instead expanded into terms, each a coefficient times at most
two row vectors, and each bilinear term is one ``arb_mat`` product of the two tables, gathered
onto the pairs (:meth:`PairFormula.balls`); the outputs and the analytic backward use the same
terms (:meth:`PairFormula.weighted_sums`, :meth:`PairFormula.logit_gradients`,
:meth:`PairFormula.value_gradients`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

__all__ = ["PairFormula", "Rows", "as_rows", "gather_rows", "keys", "queries", "relative"]


@dataclass(frozen=True)
class Rows:
    """An operand of a pair formula, by where its rows come from: pair (b, h, i, j) reads row
    ``index[b, h, i, j]`` of ``table[b, h]``.

    ``table`` is (B, H, n_rows, width) and ``index`` (B, H, qlen, klen), each with B in
    {1, bsz} and H in {1, n_head} (broadcast). A row-vector symbol of the formula (1 x d_head)
    takes rows of width d_head; a scalar symbol takes width 1. For q_i the table is q and the
    index is i; for k_j it is k and j; for Shaw's a_c it is the relative table and c_ij.

    ``pullback`` maps a gradient of the table (its shape) to gradients of the inputs it was
    built from, by name; None for a constant (the ball gradients skip it).
    """

    table: np.ndarray
    index: np.ndarray
    pullback: Callable[[np.ndarray], Mapping[str, np.ndarray]] | None = field(
        default=None, compare=False
    )

    @classmethod
    def per_head(cls, values: np.ndarray, name: str | None = None) -> Rows:
        """A scalar per head (n_head,), every pair of head h reading values[h]."""
        return cls(
            np.asarray(values)[None, :, None, None],
            np.zeros((1, 1, 1, 1), np.int64),
            _named(name, lambda g: g[0, :, 0, 0]),
        )

    @classmethod
    def per_head_row(cls, values: np.ndarray, name: str | None = None) -> Rows:
        """A row vector per head (n_head, width), every pair of head h reading values[h]
        (Transformer-XL's u and v)."""
        return cls(
            np.asarray(values)[None, :, None, :],
            np.zeros((1, 1, 1, 1), np.int64),
            _named(name, lambda g: g[0, :, 0, :]),
        )

    def pairs(self, pair_shape: tuple[int, ...], vector: bool) -> np.ndarray:
        """The operand of every pair, as :class:`PairFormula` takes it: a (1, width,
        *pair_shape) matrix operand for a vector symbol, a ``pair_shape`` array for a scalar."""
        b, h = np.ogrid[: self.table.shape[0], : self.table.shape[1]]
        gathered = self.table[b[..., None, None], h[..., None, None], self.index]
        if vector:
            return as_rows(gathered, pair_shape)
        return np.broadcast_to(gathered[..., 0], pair_shape)


def _named(
    name: str | None, select: Callable[[np.ndarray], np.ndarray]
) -> Callable[[np.ndarray], Mapping[str, np.ndarray]] | None:
    return None if name is None else (lambda g: {name: select(g)})


def queries(q: np.ndarray, klen: int, name: str | None = None) -> Rows:
    """q_i: row i of q (bsz, n_head, qlen, d) for every pair (i, j); ``name``: the input q is
    (for gradients), None when q is derived (then the caller supplies the pullback)."""
    qlen = q.shape[2]
    index = np.broadcast_to(np.arange(qlen)[:, None], (qlen, klen))[None, None]
    return Rows(q, index, _named(name, lambda g: g))


def keys(k: np.ndarray, qlen: int, name: str | None = None) -> Rows:
    """k_j (or v_j): row j of k (bsz, n_head, klen, d) for every pair (i, j)."""
    klen = k.shape[2]
    index = np.broadcast_to(np.arange(klen)[None, :], (qlen, klen))[None, None]
    return Rows(k, index, _named(name, lambda g: g))


def relative(table: np.ndarray, index: np.ndarray, name: str | None = None) -> Rows:
    """Rows of a relative table picked by a (qlen, klen) (or (bsz, n_head, qlen, klen)) index:
    a shared (P, n) table, or one per head (n_head, P, n)."""
    shared = table.ndim == 2
    full = table[None, None] if shared else table[None]
    return Rows(
        full,
        index if index.ndim == 4 else index[None, None],
        _named(name, (lambda g: g[0, 0]) if shared else (lambda g: g[0])),
    )


class PairFormula:
    """A scalar or matrix SymPy expression, evaluated elementwise over trailing pair axes."""

    def __init__(self, expr: sp.Basic, args: Sequence[sp.Basic], *, vector: bool = False) -> None:
        """``vector``: the formula is a row vector whose entries are returned as a list (even
        with one entry); otherwise it is a scalar (a 1 x 1 matrix expression or a scalar)."""
        self.expr = expr
        self.args = tuple(args)
        self.vector = vector
        self._compiled: dict[tuple[tuple[str, int], ...], Callable[..., Any]] = {}
        self._terms: list[_Term] | None = None

    def on_pairs(self, sizes: Mapping[str, int], pair_shape: tuple[int, ...], *operands: Any):
        """The formula on every pair, its operands given by :class:`Rows` (or as scalars that
        every pair shares), in the exact, dual, abs and float modes."""
        return self(
            sizes,
            *(
                op.pairs(pair_shape, isinstance(a, sp.MatrixSymbol)) if isinstance(op, Rows) else op
                for a, op in zip(self.args, operands, strict=True)
            ),
        )

    def balls(self, pair_shape: tuple[int, ...], *operands: Any) -> np.ndarray:
        """A scalar formula on every pair in ball arithmetic (object array of ``arb``): each
        bilinear term x y^T is one ``arb_mat`` product of the operands' tables per (b, h),
        gathered onto the pairs by their row indices. Run inside ``flint.ctx.workprec``."""
        if self.vector:
            raise TypeError("balls() evaluates scalar formulas; use weighted_sums()")
        total: Any = None
        # Terms c x_i y^T that share y, with x read per query row, are one product
        # (sum_t c_t x_t) y^T: Transformer-XL's q k^T + u k^T is (q + u) k^T.
        by_right: dict[int, list[tuple[Any, Rows]]] = {}
        for term in self.terms():
            coefficient = self._coefficient(term, pair_shape, operands)
            if term.left is None:
                value = np.broadcast_to(coefficient, pair_shape)
            elif term.right is None:
                raise TypeError(f"{self.expr} is not a scalar formula")
            elif any(isinstance(operands[n], Rows) for n in term.scalars):
                x, y = operands[term.left], operands[term.right]
                value = coefficient * _bilinear(x, y, pair_shape)
            elif _per_query_row(operands[term.left]):
                by_right.setdefault(term.right, []).append((coefficient, operands[term.left]))
                continue
            else:  # a coefficient every pair shares scales the (small) matrix product
                x, y = operands[term.left], operands[term.right]
                value = _bilinear(x, y, pair_shape, coefficient)
            total = value if total is None else total + value
        for right, lefts in by_right.items():
            value = _bilinear(_combined_rows(lefts, pair_shape), operands[right], pair_shape)
            total = value if total is None else total + value
        return np.asarray(total)

    def weighted_sums(
        self, pair_shape: tuple[int, ...], weights: np.ndarray, *operands: Any
    ) -> np.ndarray:
        """sum_j weights[b, h, i, j] * V_ij for a vector formula V (the outputs, with the
        attention weights), in ball arithmetic: (bsz, n_head, qlen, width) object array. Each
        linear term's weights are summed per table row (a scatter-add, or nothing when the
        rows are the keys themselves) and multiplied with the table as one ``arb_mat``
        product."""
        if not self.vector:
            raise TypeError("weighted_sums() evaluates vector formulas; use balls()")
        out: np.ndarray | None = None
        for term in self.terms():
            if term.left is None or term.right is not None:
                raise TypeError(f"{self.expr} is not linear in one vector per term")
            w = np.broadcast_to(weights * self._coefficient(term, pair_shape, operands), pair_shape)
            part = _weighted_rows(operands[term.left], w)
            out = part if out is None else out + part
        assert out is not None
        return out

    def logit_gradients(
        self, pair_shape: tuple[int, ...], upstream: np.ndarray, operands: Any
    ) -> dict[int, Any]:
        """In balls, the gradient of sum(upstream * e) with respect to the table of every
        operand that has a pullback: {id(operand): (operand, gradient of its table)}. Each
        bilinear term x y^T sends S y to x's table and S^T x to y's, S being the upstream summed
        per pair of table rows; a scalar operand of a coefficient gets its partial derivative
        times the term's value."""
        tables: dict[int, Any] = {}
        for term in self.terms():
            scalars = [operands[n] for n in term.scalars]
            per_pair = any(isinstance(op, Rows) for op in scalars)
            coefficient = self._coefficient(term, pair_shape, operands)
            x = None if term.left is None else operands[term.left]
            y = None if term.right is None else operands[term.right]
            if x is not None and y is not None and (x.pullback or y.pullback):
                if per_pair:
                    _bilinear_backward(x, y, upstream * coefficient, 1, tables)
                else:
                    _bilinear_backward(x, y, upstream, coefficient, tables)
            for partial, op in zip(term.partials, scalars, strict=True):
                if not isinstance(op, Rows) or op.pullback is None:
                    continue
                values = (s.pairs(pair_shape, False) if isinstance(s, Rows) else s for s in scalars)
                derivative = partial(*values)
                value = 1 if x is None or y is None else _bilinear(x, y, pair_shape)
                _scalar_backward(
                    op, np.broadcast_to(upstream * derivative * value, pair_shape), tables
                )
        return tables

    def value_gradients(
        self, pair_shape: tuple[int, ...], probs: np.ndarray, upstream: np.ndarray, operands: Any
    ) -> tuple[np.ndarray, dict[int, Any]]:
        """In balls, for o_i = sum_j probs_ij V_ij and the loss sum(upstream * o): the
        gradient with respect to the weights, (upstream_i . V_ij) per pair, and the tables'
        gradients as :meth:`logit_gradients` (probs summed per row, times upstream)."""
        from relpos.spec._balls import matrix, table

        tables: dict[int, Any] = {}
        weights: Any = None
        rows_of_upstream = queries(upstream, pair_shape[-1])
        for term in self.terms():
            if term.left is None or term.right is not None:
                raise TypeError(f"{self.expr} is not linear in one vector per term")
            coefficient = self._coefficient(term, pair_shape, operands)
            x = operands[term.left]
            part = coefficient * _bilinear(rows_of_upstream, x, pair_shape)
            weights = part if weights is None else weights + part
            if x.pullback is None:
                continue
            gx = _table_gradient(tables, x)
            scaled = np.broadcast_to(probs * coefficient, pair_shape)
            for b in range(pair_shape[0]):
                for h in range(pair_shape[1]):
                    per_row = matrix(_row_sums(x, scaled, b, h))
                    gx[_slot(x.table, b, h)] += table(per_row.transpose() * matrix(upstream[b, h]))
        return np.asarray(weights), tables

    def _coefficient(self, term: _Term, pair_shape: tuple[int, ...], operands: Any) -> Any:
        return term.coefficient(
            *(
                operands[n].pairs(pair_shape, False)
                if isinstance(operands[n], Rows)
                else operands[n]
                for n in term.scalars
            )
        )

    def terms(self) -> list[_Term]:
        """The expanded formula as a sum of terms, each a scalar coefficient times at most
        two row-vector symbols (x y^T for a scalar formula, x for a vector one)."""
        if self._terms is None:
            self._terms = _expand(self.expr, self.args)
        return self._terms

    def __call__(self, sizes: Mapping[str, int], *operands: Any) -> Any:
        key = tuple(sorted((name, int(value)) for name, value in sizes.items()))
        fn = self._compiled.get(key)
        if fn is None:
            fn = self._compiled[key] = self._compile(dict(key))
        return fn(*operands)

    def _compile(self, sizes: Mapping[str, int]) -> Callable[..., Any]:
        subs = {size_symbol(name): value for name, value in sizes.items()}
        # Concrete sizes, and plain identifiers (lambdify would dummify "a^K_c", which breaks
        # matrix indexing).
        rename = {
            a: (
                sp.MatrixSymbol(f"arg{n}", *a.subs(subs).shape)
                if isinstance(a, sp.MatrixSymbol)
                else sp.Symbol(f"arg{n}")
            )
            for n, a in enumerate(self.args)
        }
        expr = self.expr.subs(subs).xreplace({a.subs(subs): r for a, r in rename.items()})
        args = list(rename.values())
        if isinstance(expr, sp.MatrixExpr):
            explicit = expr.as_explicit()
            # A vector result is the list of its entries, a scalar result the single entry.
            expr = list(explicit) if self.vector else explicit[0, 0]
        return sp.lambdify(
            args,
            expr,
            modules=[{"Fraction": Fraction}],
            printer=_ExactPrinter,
            docstring_limit=0,
        )


def _slot(array: np.ndarray, b: int, h: int) -> tuple[int, int]:
    """Where pair (b, h) reads a (B, H, ...) array broadcast over B and H."""
    return (b if array.shape[0] > 1 else 0, h if array.shape[1] > 1 else 0)


def _pick(array: np.ndarray, b: int, h: int) -> np.ndarray:
    return array[_slot(array, b, h)]


def _bilinear(x: Rows, y: Rows, pair_shape: tuple[int, ...], coefficient: Any = 1) -> np.ndarray:
    from relpos.spec._balls import matrix, table

    out = np.empty(pair_shape, dtype=object)
    products: dict[tuple[int, ...], np.ndarray] = {}
    for b in range(pair_shape[0]):
        for h in range(pair_shape[1]):
            tx, ty = _pick(x.table, b, h), _pick(y.table, b, h)
            ix, iy = (
                np.broadcast_to(i, pair_shape[-2:])
                for i in np.broadcast_arrays(_pick(x.index, b, h), _pick(y.index, b, h))
            )
            blocks = _blocks(ix, iy, tx.shape[0] * ty.shape[0])
            if blocks is not None:
                for rows, ux, uy in blocks:
                    part = table(coefficient * (matrix(tx[ux]) * matrix(ty[uy]).transpose()))
                    out[b, h, rows] = part[
                        np.searchsorted(ux, ix[rows]), np.searchsorted(uy, iy[rows])
                    ]
                continue
            key = (*_slot(x.table, b, h), *_slot(y.table, b, h))
            if key not in products:  # shared tables: one product serves every (b, h)
                products[key] = table(coefficient * (matrix(tx) * matrix(ty).transpose()))
            out[b, h] = products[key][ix, iy]
    return out


#: Query rows per block of a banded product (:func:`_blocks`).
_BLOCK_ROWS = 64


def _blocks(
    ix: np.ndarray, iy: np.ndarray, full: int
) -> list[tuple[slice, np.ndarray, np.ndarray]] | None:
    """Blocks of query rows, each with the table rows its pairs read, when multiplying only
    those is cheaper than the whole product (``full`` entries): a relative table read along
    a band (Transformer-XL's q r^T over klen + qlen - 1 distances) then costs about qlen *
    klen * (1 + block / qlen) products instead of twice qlen * klen. None: one product."""
    qlen = ix.shape[0]
    if qlen <= _BLOCK_ROWS:
        return None
    blocks, cost = [], 0
    for start in range(0, qlen, _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        ux, uy = np.unique(ix[rows]), np.unique(iy[rows])
        blocks.append((rows, ux, uy))
        cost += len(ux) * len(uy)
    return blocks if cost < 0.75 * full else None


def _per_query_row(x: Rows) -> bool:
    """Whether every pair (i, j) of x reads a row that depends on i alone."""
    return bool((x.index == x.index[..., :1]).all())


def _combined_rows(lefts: list[tuple[Any, Rows]], pair_shape: tuple[int, ...]) -> Rows:
    """sum_t c_t x_t as one operand read per query row: a (B, H, qlen, width) table."""
    qlen, klen = pair_shape[-2:]
    tables = [x.table for _, x in lefts] + [x.index for _, x in lefts]
    shape = tuple(max(t.shape[n] for t in tables) for n in (0, 1))
    out = np.empty((*shape, qlen, lefts[0][1].table.shape[-1]), dtype=object)
    for b in range(shape[0]):
        for h in range(shape[1]):
            total: Any = None
            for c, x in lefts:
                rows = np.broadcast_to(_pick(x.index, b, h), (qlen, klen))[:, 0]
                part = _pick(x.table, b, h)[rows]
                part = part if c == 1 else c * part
                total = part if total is None else total + part
            out[b, h] = total
    return queries(out, klen)


def _row_sums(x: Rows, weights: np.ndarray, b: int, h: int) -> np.ndarray:
    """(qlen, n_rows): the pair weights of (b, h) summed per table row each pair reads."""
    qlen, klen = weights.shape[-2:]
    n_rows = _pick(x.table, b, h).shape[0]
    index = np.broadcast_to(_pick(x.index, b, h), (qlen, klen))
    if n_rows == klen and (index == np.arange(klen)).all():
        return weights[b, h]  # the rows are the keys: no scatter
    per_row = np.zeros((qlen, n_rows), dtype=object)
    np.add.at(
        per_row, (np.broadcast_to(np.arange(qlen)[:, None], index.shape), index), weights[b, h]
    )
    return per_row


def _weighted_rows(x: Rows, weights: np.ndarray) -> np.ndarray:
    from relpos.spec._balls import matrix, table

    bsz, n_head, qlen = weights.shape[:3]
    out = np.empty((bsz, n_head, qlen, x.table.shape[-1]), dtype=object)
    for b in range(bsz):
        for h in range(n_head):
            out[b, h] = table(matrix(_row_sums(x, weights, b, h)) * matrix(_pick(x.table, b, h)))
    return out


def _table_gradient(tables: dict[int, Any], x: Rows) -> np.ndarray:
    """The accumulating gradient of an operand's table (zeros at first)."""
    if id(x) not in tables:
        tables[id(x)] = (x, np.zeros(x.table.shape, dtype=object))
    return tables[id(x)][1]


def _bilinear_backward(
    x: Rows, y: Rows, upstream: np.ndarray, coefficient: Any, tables: dict[int, Any]
) -> None:
    """Gradients of sum(upstream * coefficient * x[ix] . y[iy]) for the two tables: the
    upstream of each (b, h) summed per pair of rows (S), then S y and S^T x."""
    from relpos.spec._balls import matrix, table

    bsz, n_head, qlen, klen = upstream.shape
    for b in range(bsz):
        for h in range(n_head):
            tx, ty = _pick(x.table, b, h), _pick(y.table, b, h)
            ix, iy = np.broadcast_arrays(_pick(x.index, b, h), _pick(y.index, b, h))
            ix, iy = np.broadcast_to(ix, (qlen, klen)), np.broadcast_to(iy, (qlen, klen))
            summed = np.zeros((tx.shape[0], ty.shape[0]), dtype=object)
            np.add.at(summed, (ix, iy), upstream[b, h])
            s = coefficient * matrix(summed)
            if x.pullback is not None:
                gx = _table_gradient(tables, x)
                gx[_slot(x.table, b, h)] += table(s * matrix(ty))
            if y.pullback is not None:
                gy = _table_gradient(tables, y)
                gy[_slot(y.table, b, h)] += table(s.transpose() * matrix(tx))


def _scalar_backward(x: Rows, upstream: np.ndarray, tables: dict[int, Any]) -> None:
    """Gradient of sum(upstream * x[index]) for a scalar operand's (width 1) table."""
    g = _table_gradient(tables, x)
    bsz, n_head, qlen, klen = upstream.shape
    for b in range(bsz):
        for h in range(n_head):
            index = np.broadcast_to(_pick(x.index, b, h), (qlen, klen))
            np.add.at(g[_slot(x.table, b, h)][:, 0], index, upstream[b, h])


@dataclass(frozen=True)
class _Term:
    """``coefficient * left * right^T`` (``right`` None: ``coefficient * left``; both None: a
    scalar term), the coefficient a function of the formula's scalar arguments."""

    coefficient: Callable[..., Any]
    scalars: tuple[int, ...]
    left: int | None
    right: int | None
    #: d coefficient / d scalar, for each of ``scalars`` (same arguments as ``coefficient``).
    partials: tuple[Callable[..., Any], ...] = ()


def _expand(expr: sp.Basic, args: Sequence[sp.Basic]) -> list[_Term]:
    from relpos.spec._balls import compile_expression

    position = {a: n for n, a in enumerate(args)}
    scalar_args = [a for a in args if not isinstance(a, sp.MatrixSymbol)]
    terms: list[_Term] = []
    expanded = sp.expand(expr)
    for term in (
        sp.Add.make_args(expanded) if not isinstance(expanded, sp.MatAdd) else expanded.args
    ):
        factors = term.args if isinstance(term, sp.MatMul) else (term,)
        coefficient: sp.Expr = sp.Integer(1)
        vectors: list[int] = []
        for factor in factors:
            symbol = factor.arg if isinstance(factor, sp.Transpose) else factor
            if isinstance(symbol, sp.MatrixSymbol) and symbol.shape[0] == 1:
                vectors.append(position[symbol])
            elif isinstance(factor, sp.MatrixBase) and factor.shape == (1, 1):
                coefficient *= factor[0, 0]
            elif not getattr(factor, "is_Matrix", False):
                coefficient *= factor
            else:
                raise TypeError(f"cannot lower the factor {factor} of {expr} to ball terms")
        matrices = [f for f in factors if getattr(f, "is_Matrix", False)]
        if len(vectors) > 2:
            raise TypeError(f"cannot lower {term} to ball terms: more than two vector factors")
        if len(vectors) == 2 and not (
            isinstance(matrices[0], sp.MatrixSymbol) and isinstance(matrices[1], sp.Transpose)
        ):
            raise TypeError(f"cannot lower {term} to ball terms: not of the form x y^T")
        used = tuple(sorted(position[s] for s in coefficient.free_symbols if s in position))
        used_args = tuple(args[n] for n in used)
        fn = compile_expression(used_args, coefficient)
        partials = tuple(compile_expression(used_args, sp.diff(coefficient, a)) for a in used_args)
        left, right = [*vectors, None, None][:2]
        terms.append(_Term(fn, used, left, right, partials))
    if not scalar_args and not terms:
        raise TypeError(f"{expr} has no terms")
    return terms


class _ExactPrinter(PythonCodePrinter):
    """Prints rational constants as Fractions, so no constant becomes a float."""

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"Fraction({expr.p}, {expr.q})"

    def _print_Half(self, expr: sp.Rational) -> str:
        return self._print_Rational(expr)


#: Size symbols are declared with these assumptions everywhere, so substitution finds them.
_SIZE_ASSUMPTIONS = {"integer": True, "positive": True}


def size_symbol(name: str) -> sp.Symbol:
    """A dimension symbol (positive integer), the one :class:`PairFormula` substitutes."""
    return sp.Symbol(name, **_SIZE_ASSUMPTIONS)


def as_rows(array: np.ndarray, pair_shape: tuple[int, ...]) -> np.ndarray:
    """A (..., n) array of row vectors, broadcast to ``pair_shape`` and laid out as a
    (1, n, *pair_shape) matrix operand (a view: no copy)."""
    n = array.shape[-1]
    full = np.broadcast_to(array, (*pair_shape, n))
    return np.moveaxis(full, -1, 0)[None]


def gather_rows(table: np.ndarray, index: np.ndarray, per_head: bool) -> np.ndarray:
    """Rows of a relative table picked by a (qlen, klen) integer index: shape
    (1, 1, qlen, klen, n) for a shared (P, n) table, (1, n_head, qlen, klen, n) per head."""
    if per_head:
        return table[:, index][None]
    return table[index][None, None]
