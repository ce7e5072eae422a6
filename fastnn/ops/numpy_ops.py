"""``keras.ops`` array functions: math, comparisons, reductions, linear algebra, shapes.

Each function computes on the current backend's array module (NumPy for the
"numpy" and "cpu" backends, CuPy for "cupy") and, when an argument is a
``Tensor`` of a tape, records its vector-Jacobian product there (see
``fastnn.ops.tape``). Without Tensors they return plain arrays.
"""
import itertools
import math

import numpy

from ..backend import get_ops
from ..backend.ops import _erf
from .tape import Tensor, raw, unbroadcast, unpack

FLOATX = "float32"


def _xp():
    return get_ops().xp


def _named(name, doc):
    def decorate(fn):
        fn.__name__ = fn.__qualname__ = name
        fn.__doc__ = doc
        return fn
    return decorate


def _record(tape, y, parents, vjp):
    return y if tape is None else tape.record(y, parents, vjp)


# ---------------------------------------------------------------- elementwise
def _unary(name, forward, backward, doc):
    """An op of one argument; ``backward(xp, g, x, y)`` is its vjp (None: no gradient)."""
    @_named(name, doc)
    def op(x):
        xp = _xp()
        (a,), parents, tape = unpack(xp, (x,))
        y = forward(xp, a)
        if tape is None or backward is None:
            return y
        return tape.record(y, parents, lambda g: (backward(xp, g, a, y),))
    return op


def _binary(name, forward, backward, doc):
    """An op of two broadcasting arguments; ``backward(xp, g, a, b, y)`` returns both vjps."""
    @_named(name, doc)
    def op(x1, x2):
        xp = _xp()
        (a, b), parents, tape = unpack(xp, (x1, x2))
        y = forward(xp, a, b)
        if tape is None or backward is None:
            return y

        def vjp(g):
            ga, gb = backward(xp, g, a, b, y)
            return (None if parents[0] is None else unbroadcast(ga, numpy.shape(a)),
                    None if parents[1] is None else unbroadcast(gb, numpy.shape(b)))
        return tape.record(y, parents, vjp)
    return op


add = _binary("add", lambda xp, a, b: xp.add(a, b), lambda xp, g, a, b, y: (g, g),
              "Elementwise ``x1 + x2`` (broadcasting).")
subtract = _binary("subtract", lambda xp, a, b: xp.subtract(a, b),
                   lambda xp, g, a, b, y: (g, -g), "Elementwise ``x1 - x2``.")
multiply = _binary("multiply", lambda xp, a, b: xp.multiply(a, b),
                   lambda xp, g, a, b, y: (g * b, g * a), "Elementwise ``x1 * x2``.")
divide = _binary("divide", lambda xp, a, b: xp.true_divide(a, b),
                 lambda xp, g, a, b, y: (g / b, -g * y / b), "Elementwise ``x1 / x2``.")
true_divide = _binary("true_divide", lambda xp, a, b: xp.true_divide(a, b),
                      lambda xp, g, a, b, y: (g / b, -g * y / b), "Elementwise ``x1 / x2``.")


def _power_vjp(xp, g, a, b, y):
    ga = g * b * xp.power(a, b - 1)
    positive = xp.greater(a, 0)
    gb = g * y * xp.log(xp.where(positive, a, 1)) * positive
    return ga, gb


power = _binary("power", lambda xp, a, b: xp.power(a, b), _power_vjp,
                "Elementwise ``x1 ** x2``.")


def _max_vjp(xp, g, a, b, y):
    # Ties split the gradient evenly, as the two-sided numerical derivative does.
    wins = xp.greater(a, b) + 0.5 * xp.equal(a, b)
    return g * wins, g * (1 - wins)


def _min_vjp(xp, g, a, b, y):
    wins = xp.less(a, b) + 0.5 * xp.equal(a, b)
    return g * wins, g * (1 - wins)


maximum = _binary("maximum", lambda xp, a, b: xp.maximum(a, b), _max_vjp,
                  "Elementwise maximum.")
minimum = _binary("minimum", lambda xp, a, b: xp.minimum(a, b), _min_vjp,
                  "Elementwise minimum.")
mod = _binary("mod", lambda xp, a, b: xp.mod(a, b),
              lambda xp, g, a, b, y: (g, -g * xp.floor_divide(a, b)), "Elementwise remainder.")
floor_divide = _binary("floor_divide", lambda xp, a, b: xp.floor_divide(a, b), None,
                       "Elementwise ``x1 // x2`` (no gradient).")

negative = _unary("negative", lambda xp, a: xp.negative(a), lambda xp, g, a, y: -g,
                  "Elementwise ``-x``.")
exp = _unary("exp", lambda xp, a: xp.exp(a), lambda xp, g, a, y: g * y, "Elementwise e**x.")
expm1 = _unary("expm1", lambda xp, a: xp.expm1(a), lambda xp, g, a, y: g * (y + 1),
               "Elementwise ``exp(x) - 1``, accurate near 0.")
log = _unary("log", lambda xp, a: xp.log(a), lambda xp, g, a, y: g / a,
             "Elementwise natural logarithm.")
log1p = _unary("log1p", lambda xp, a: xp.log1p(a), lambda xp, g, a, y: g / (1 + a),
               "Elementwise ``log(1 + x)``, accurate near 0.")
log2 = _unary("log2", lambda xp, a: xp.log2(a), lambda xp, g, a, y: g / (a * math.log(2)),
              "Elementwise base-2 logarithm.")
log10 = _unary("log10", lambda xp, a: xp.log10(a),
               lambda xp, g, a, y: g / (a * math.log(10)), "Elementwise base-10 logarithm.")
sqrt = _unary("sqrt", lambda xp, a: xp.sqrt(a), lambda xp, g, a, y: g / (2 * y),
              "Elementwise square root.")
square = _unary("square", lambda xp, a: xp.square(a), lambda xp, g, a, y: 2 * a * g,
                "Elementwise ``x * x``.")
abs = _unary("abs", lambda xp, a: xp.abs(a), lambda xp, g, a, y: g * xp.sign(a),
             "Elementwise absolute value.")
absolute = _unary("absolute", lambda xp, a: xp.abs(a), lambda xp, g, a, y: g * xp.sign(a),
                  "Elementwise absolute value.")
reciprocal = _unary("reciprocal", lambda xp, a: xp.reciprocal(a),
                    lambda xp, g, a, y: -g * y * y, "Elementwise ``1 / x``.")
sin = _unary("sin", lambda xp, a: xp.sin(a), lambda xp, g, a, y: g * xp.cos(a),
             "Elementwise sine.")
cos = _unary("cos", lambda xp, a: xp.cos(a), lambda xp, g, a, y: -g * xp.sin(a),
             "Elementwise cosine.")
erf = _unary("erf", lambda xp, a: _erf(xp, xp.asarray(a)),
             lambda xp, g, a, y: g * (2 / math.sqrt(math.pi)) * xp.exp(-a * a),
             "Elementwise error function.")
sign = _unary("sign", lambda xp, a: xp.sign(a), None, "Elementwise sign (no gradient).")
floor = _unary("floor", lambda xp, a: xp.floor(a), None, "Elementwise floor (no gradient).")
ceil = _unary("ceil", lambda xp, a: xp.ceil(a), None, "Elementwise ceiling (no gradient).")


def round(x, decimals=0):
    """Round to ``decimals`` decimals, half to even (no gradient)."""
    return _xp().round(raw(x), decimals)


def clip(x, x_min, x_max):
    """Clip ``x`` to ``[x_min, x_max]``; the gradient passes where x is inside."""
    xp = _xp()
    (a, lo, hi), parents, tape = unpack(xp, (x, x_min, x_max))
    y = xp.clip(a, lo, hi)
    if tape is None:
        return y
    return tape.record(y, parents[:1],
                       lambda g: (unbroadcast(g * ((a >= lo) & (a <= hi)), numpy.shape(a)),))


def where(condition, x1=None, x2=None):
    """``x1`` where ``condition`` holds, else ``x2`` (indices of nonzeros when both are None)."""
    xp = _xp()
    if x1 is None and x2 is None:
        return xp.nonzero(raw(condition))
    if x1 is None or x2 is None:
        raise ValueError("where: give both x1 and x2, or neither")
    (c, a, b), parents, tape = unpack(xp, (condition, x1, x2))
    y = xp.where(c, a, b)
    if tape is None:
        return y
    return tape.record(y, parents[1:], lambda g: (
        unbroadcast(xp.where(c, g, 0), numpy.shape(a)),
        unbroadcast(xp.where(c, 0, g), numpy.shape(b))))


# ---------------------------------------------------------------- comparisons, logic
def _predicate(name, fn, doc, arity=2):
    if arity == 1:
        @_named(name, doc)
        def op(x):
            return fn(_xp(), raw(x))
    else:
        @_named(name, doc)
        def op(x1, x2):
            xp = _xp()
            (a, b), _, _ = unpack(xp, (x1, x2))
            return fn(xp, a, b)
    return op


equal = _predicate("equal", lambda xp, a, b: xp.equal(a, b), "``x1 == x2`` elementwise.")
not_equal = _predicate("not_equal", lambda xp, a, b: xp.not_equal(a, b),
                       "``x1 != x2`` elementwise.")
less = _predicate("less", lambda xp, a, b: xp.less(a, b), "``x1 < x2`` elementwise.")
less_equal = _predicate("less_equal", lambda xp, a, b: xp.less_equal(a, b),
                        "``x1 <= x2`` elementwise.")
greater = _predicate("greater", lambda xp, a, b: xp.greater(a, b), "``x1 > x2`` elementwise.")
greater_equal = _predicate("greater_equal", lambda xp, a, b: xp.greater_equal(a, b),
                           "``x1 >= x2`` elementwise.")
logical_and = _predicate("logical_and", lambda xp, a, b: xp.logical_and(a, b),
                         "Elementwise logical and.")
logical_or = _predicate("logical_or", lambda xp, a, b: xp.logical_or(a, b),
                        "Elementwise logical or.")
logical_xor = _predicate("logical_xor", lambda xp, a, b: xp.logical_xor(a, b),
                         "Elementwise logical exclusive or.")
logical_not = _predicate("logical_not", lambda xp, a: xp.logical_not(a),
                         "Elementwise logical not.", arity=1)
isnan = _predicate("isnan", lambda xp, a: xp.isnan(a), "True where x is NaN.", arity=1)
isinf = _predicate("isinf", lambda xp, a: xp.isinf(a), "True where x is infinite.", arity=1)
isfinite = _predicate("isfinite", lambda xp, a: xp.isfinite(a), "True where x is finite.",
                      arity=1)


# ---------------------------------------------------------------- reductions
def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, numpy.integer)):
        axis = (axis,)
    return tuple(sorted(int(a) % ndim for a in axis)) if ndim else ()


def _kept(g, shape, axes, keepdims):
    """A reduction's output (or its gradient) reshaped with 1 in the reduced axes."""
    if keepdims:
        return g
    kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return g.reshape(kept) if hasattr(g, "reshape") else numpy.reshape(g, kept)


def _count(shape, axes):
    n = 1
    for i in axes:
        n *= int(shape[i])
    return n


def _spread(xp, g, a, axes, keepdims, scale=None):
    """The gradient of a sum over ``axes``: ``g`` copied along them (times ``scale``)."""
    out = xp.empty(a.shape, dtype=_grad_dtype(a, g))
    g = _kept(g, a.shape, axes, keepdims)
    out[...] = g if scale is None else g * scale
    return out


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (all axes when None)."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    a = xp.asarray(a)
    y = a.sum(axis=axis, keepdims=keepdims)
    if tape is None:
        return y
    axes = _axes(axis, a.ndim)
    return tape.record(y, parents, lambda g: (_spread(xp, g, a, axes, keepdims),))


def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over ``axis`` (all axes when None)."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    a = xp.asarray(a)
    axes = _axes(axis, a.ndim)
    n = _count(a.shape, axes)
    if a.dtype.kind == "f":
        y = a.sum(axis=axis, keepdims=keepdims) / a.dtype.type(n)
    else:
        y = xp.mean(a, axis=axis, keepdims=keepdims)
    if tape is None:
        return y
    return tape.record(y, parents, lambda g: (_spread(xp, g, a, axes, keepdims, 1.0 / n),))


def _extremum(name, fn):
    @_named(name, f"The {name}imum over ``axis``; ties share the gradient evenly.")
    def op(x, axis=None, keepdims=False, initial=None):
        xp = _xp()
        (a,), parents, tape = unpack(xp, (x,))
        kwargs = {} if initial is None else {"initial": initial}
        y = getattr(xp, fn)(a, axis=axis, keepdims=keepdims, **kwargs)
        if tape is None:
            return y
        axes = _axes(axis, a.ndim)

        def vjp(g):
            hit = a == _kept(y, a.shape, axes, keepdims)
            share = hit / hit.sum(axis=axes, keepdims=True)
            return (_kept(g, a.shape, axes, keepdims) * share,)
        return tape.record(y, parents, vjp)
    return op


max = _extremum("max", "max")
min = _extremum("min", "min")


def prod(x, axis=None, keepdims=False, dtype=None):
    """Product over ``axis`` (the gradient assumes no zero entries)."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    y = xp.prod(a, axis=axis, keepdims=keepdims, dtype=dtype)
    if tape is None:
        return y
    axes = _axes(axis, a.ndim)
    return tape.record(y, parents, lambda g: (
        _kept(g * y, a.shape, axes, keepdims) / a,))


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over ``axis``, shifted by the max for stability."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    axes = _axes(axis, a.ndim)
    m = xp.max(a, axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    y = xp.log(xp.sum(xp.exp(a - m), axis=axes, keepdims=True)) + m
    if not keepdims:
        y = y.reshape(tuple(d for i, d in enumerate(a.shape) if i not in axes))
    if tape is None:
        return y
    return tape.record(y, parents, lambda g: (
        _kept(g, a.shape, axes, keepdims) * xp.exp(a - _kept(y, a.shape, axes, keepdims)),))


def var(x, axis=None, keepdims=False):
    """Population variance over ``axis``."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    y = xp.var(a, axis=axis, keepdims=keepdims)
    if tape is None:
        return y
    axes = _axes(axis, a.ndim)
    n = _count(a.shape, axes)
    return tape.record(y, parents, lambda g: (
        _kept(g, a.shape, axes, keepdims) * (2.0 / n) * (a - xp.mean(a, axis=axes,
                                                                     keepdims=True)),))


def std(x, axis=None, keepdims=False):
    """Population standard deviation over ``axis``."""
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def _index_reduction(name, fn, doc):
    @_named(name, doc)
    def op(x, axis=None, keepdims=False):
        xp = _xp()
        a = raw(x)
        y = getattr(xp, fn)(a, axis=axis)
        if keepdims:
            y = y.reshape((1,) * a.ndim) if axis is None else xp.expand_dims(y, axis)
        return y
    return op


argmax = _index_reduction("argmax", "argmax", "Index of the maximum along ``axis``.")
argmin = _index_reduction("argmin", "argmin", "Index of the minimum along ``axis``.")


def any(x, axis=None, keepdims=False):
    """True where any entry along ``axis`` is nonzero."""
    return _xp().any(raw(x), axis=axis, keepdims=keepdims)


def all(x, axis=None, keepdims=False):
    """True where every entry along ``axis`` is nonzero."""
    return _xp().all(raw(x), axis=axis, keepdims=keepdims)


def count_nonzero(x, axis=None):
    """Number of nonzero entries along ``axis``."""
    return _xp().count_nonzero(raw(x), axis=axis)


def cumsum(x, axis=None, dtype=None):
    """Cumulative sum along ``axis`` (over the flattened array when None)."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    y = xp.cumsum(a, axis=axis, dtype=dtype)
    if tape is None:
        return y

    def vjp(g):
        ax = 0 if axis is None else axis
        back = xp.flip(xp.cumsum(xp.flip(g, ax), axis=ax), ax)
        return (back.reshape(a.shape),)
    return tape.record(y, parents, vjp)


# ---------------------------------------------------------------- linear algebra
def _matmul_values(ops, a, b):
    if getattr(a, "ndim", 0) == 2 and getattr(b, "ndim", 0) == 2:
        return ops.gemm(a, b)
    return ops.xp.matmul(a, b)


def matmul(x1, x2):
    """Matrix product with NumPy's rules (1-D operands, batch broadcasting)."""
    ops = get_ops()
    xp = ops.xp
    (a, b), parents, tape = unpack(xp, (x1, x2))
    a = xp.asarray(a)
    b = xp.asarray(b)
    y = _matmul_values(ops, a, b)
    if tape is None:
        return y

    def vjp(g):
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1 and b.ndim == 1:
            g2 = xp.reshape(g, (1, 1))
        elif a.ndim == 1:
            g2 = xp.expand_dims(g, -2)
        elif b.ndim == 1:
            g2 = xp.expand_dims(g, -1)
        else:
            g2 = g
        ga = gb = None
        if parents[0] is not None:
            ga = _matmul_values(ops, g2, xp.swapaxes(b2, -1, -2))
            ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        if parents[1] is not None:
            gb = _matmul_values(ops, xp.swapaxes(a2, -1, -2), g2)
            gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb
    return tape.record(y, parents, vjp)


def _tensordot_axes(axes, ndim_a, ndim_b):
    if isinstance(axes, (int, numpy.integer)):
        return list(range(ndim_a - axes, ndim_a)), list(range(axes))
    axes_a, axes_b = axes
    if isinstance(axes_a, (int, numpy.integer)):
        axes_a, axes_b = [axes_a], [axes_b]
    return [int(i) % ndim_a for i in axes_a], [int(i) % ndim_b for i in axes_b]


def tensordot(x1, x2, axes=2):
    """Sum of products over ``axes`` (NumPy's ``tensordot``)."""
    xp = _xp()
    (a, b), parents, tape = unpack(xp, (x1, x2))
    a = xp.asarray(a)
    b = xp.asarray(b)
    axes_a, axes_b = _tensordot_axes(axes, a.ndim, b.ndim)
    y = xp.tensordot(a, b, axes=(axes_a, axes_b))
    if tape is None:
        return y
    free_a = [i for i in range(a.ndim) if i not in axes_a]
    free_b = [i for i in range(b.ndim) if i not in axes_b]

    def vjp(g):
        na = len(free_a)
        g_b = list(range(na, g.ndim))
        ga = xp.tensordot(g, b, axes=(g_b, free_b))  # free_a dims + b's contracted axes
        order_b = sorted(axes_b)
        perm_a = [free_a.index(i) if i in free_a
                  else na + order_b.index(axes_b[axes_a.index(i)]) for i in range(a.ndim)]
        gb = xp.tensordot(a, g, axes=(free_a, list(range(na))))  # a's contracted + free_b
        order_a = sorted(axes_a)
        perm_b = [len(axes_a) + free_b.index(i) if i in free_b
                  else order_a.index(axes_a[axes_b.index(i)]) for i in range(b.ndim)]
        return xp.transpose(ga, perm_a), xp.transpose(gb, perm_b)
    return tape.record(y, parents, vjp)


def dot(x1, x2):
    """NumPy's ``dot``: a product over the last axis of x1 and the second-to-last of x2."""
    a_ndim, b_ndim = numpy.ndim(raw(x1)), numpy.ndim(raw(x2))
    if a_ndim == 0 or b_ndim == 0:
        return multiply(x1, x2)
    if a_ndim <= 2 and b_ndim <= 2:
        return matmul(x1, x2)
    return tensordot(x1, x2, axes=([a_ndim - 1], [builtins_max(b_ndim - 2, 0)]))


def outer(x1, x2):
    """Outer product of the flattened inputs."""
    return multiply(expand_dims(ravel(x1), 1), expand_dims(ravel(x2), 0))


# ---------------------------------------------------------------- shapes
def reshape(x, newshape):
    """``x`` with shape ``newshape`` (one entry may be -1)."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    y = xp.reshape(a, newshape)
    return _record(tape, y, parents, lambda g: (g.reshape(numpy.shape(a)),))


def ravel(x):
    """``x`` flattened to one dimension."""
    return reshape(x, (-1,))


def transpose(x, axes=None):
    """``x`` with its axes permuted (reversed when ``axes`` is None)."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    y = xp.transpose(a, axes)
    inverse = None if axes is None else tuple(numpy.argsort([int(i) % a.ndim for i in axes]))
    return _record(tape, y, parents, lambda g: (xp.transpose(g, inverse),))


def swapaxes(x, axis1, axis2):
    """``x`` with two axes swapped."""
    perm = list(range(numpy.ndim(raw(x))))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return transpose(x, perm)


def moveaxis(x, source, destination):
    """``x`` with axis ``source`` moved to ``destination``."""
    perm = list(range(numpy.ndim(raw(x))))
    src = perm.pop(source)
    dst = destination % len(perm + [0])
    perm.insert(dst, src)
    return transpose(x, perm)


def expand_dims(x, axis):
    """``x`` with a new axis of length 1 at ``axis``."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    y = xp.expand_dims(a, axis)
    return _record(tape, y, parents, lambda g: (g.reshape(numpy.shape(a)),))


def squeeze(x, axis=None):
    """``x`` without the length-1 axes (only ``axis`` when given)."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    y = xp.squeeze(a, axis=axis)
    return _record(tape, y, parents, lambda g: (g.reshape(numpy.shape(a)),))


def broadcast_to(x, shape):
    """``x`` broadcast to ``shape``."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    y = xp.broadcast_to(a, shape)
    return _record(tape, y, parents, lambda g: (unbroadcast(g, numpy.shape(a)),))


def concatenate(xs, axis=0):
    """The arrays of ``xs`` joined along an existing axis."""
    xp = _xp()
    values, parents, tape = unpack(xp, tuple(xs))
    values = [xp.asarray(v) for v in values]
    y = xp.concatenate(values, axis=axis)
    if tape is None:
        return y
    bounds = numpy.cumsum([v.shape[axis] for v in values])[:-1]
    return tape.record(y, parents, lambda g: tuple(xp.split(g, bounds, axis=axis)))


def stack(x, axis=0):
    """The arrays of ``x`` joined along a new axis."""
    xp = _xp()
    values, parents, tape = unpack(xp, tuple(x))
    y = xp.stack(values, axis=axis)
    if tape is None:
        return y
    ax = axis % y.ndim
    return tape.record(y, parents, lambda g: tuple(
        xp.take(g, i, axis=ax) for i in range(len(values))))


def split(x, indices_or_sections, axis=0):
    """``x`` cut along ``axis`` into equal sections or at the given indices (a list)."""
    a = raw(x)
    n = a.shape[axis]
    if isinstance(indices_or_sections, (int, numpy.integer)):
        if n % indices_or_sections:
            raise ValueError(f"split: axis of length {n} does not divide into "
                             f"{indices_or_sections} equal sections")
        step = n // indices_or_sections
        bounds = list(range(step, n, step))
    else:
        bounds = [int(i) for i in indices_or_sections]
    edges = [0] + bounds + [n]
    lead = (slice_all,) * (axis % a.ndim)
    return [get_item(x, lead + (slice_cls(lo, hi),)) for lo, hi in itertools.pairwise(edges)]


def _scatter_add(xp, shape, dtype, key, g):
    out = xp.zeros(shape, dtype=dtype)
    xp.add.at(out, key, g)
    return out


def _grad_dtype(a, g):
    dtype = getattr(a, "dtype", None)
    return dtype if dtype is not None and dtype.kind == "f" else getattr(g, "dtype", "float64")


def get_item(x, key):
    """``x[key]`` (basic and integer-array indexing); the ``[]`` operator of Tensors."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    if isinstance(key, tuple):
        key = tuple(raw(k) for k in key)
    else:
        key = raw(key)
    y = a[key]
    return _record(tape, y, parents, lambda g: (
        _scatter_add(xp, a.shape, _grad_dtype(a, g), key, g),))


def slice(inputs, start_indices, shape):
    """The block of ``shape`` starting at ``start_indices`` (Keras' ``ops.slice``)."""
    key = tuple(slice_cls(int(s), int(s) + int(n)) for s, n in zip(start_indices, shape))
    return get_item(inputs, key)


def take(x, indices, axis=None):
    """Entries of ``x`` at ``indices`` along ``axis`` (of the flattened x when None)."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    idx = xp.asarray(raw(indices))
    y = xp.take(a, idx, axis=axis)
    if tape is None:
        return y

    def vjp(g):
        if axis is None:
            flat = _scatter_add(xp, (a.size,), _grad_dtype(a, g), idx.reshape(-1),
                                g.reshape(-1))
            return (flat.reshape(a.shape),)
        ax = axis % a.ndim
        lead = (slice_all,) * ax
        moved = g  # g's axes: a[:ax] + idx.shape + a[ax+1:]
        key = lead + (idx,)
        return (_scatter_add(xp, a.shape, _grad_dtype(a, g), key, moved),)
    return tape.record(y, parents, vjp)


def take_along_axis(x, indices, axis=None):
    """Entries of ``x`` picked by ``indices`` along ``axis`` (NumPy's ``take_along_axis``)."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    idx = xp.asarray(raw(indices))
    if axis is None:
        return take(ravel(x), idx.reshape(-1), axis=0)
    y = xp.take_along_axis(a, idx, axis=axis)
    if tape is None:
        return y
    ax = axis % a.ndim

    def vjp(g):
        grid = list(xp.ogrid[tuple(slice_cls(0, d) for d in idx.shape)])
        grid[ax] = idx
        return (_scatter_add(xp, a.shape, _grad_dtype(a, g), tuple(grid), g),)
    return tape.record(y, parents, vjp)


def tile(x, repeats):
    """``x`` repeated ``repeats`` times along each axis."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    y = xp.tile(a, repeats)
    if tape is None:
        return y
    reps = (repeats,) if isinstance(repeats, int) else tuple(repeats)
    shape = (1,) * (builtins_max(len(reps), a.ndim) - a.ndim) + tuple(a.shape)
    reps = (1,) * (len(shape) - len(reps)) + reps

    def vjp(g):
        split_shape = [d for pair in zip(reps, shape) for d in pair]
        g = g.reshape(split_shape).sum(axis=tuple(range(0, len(split_shape), 2)))
        return (g.reshape(a.shape),)
    return tape.record(y, parents, vjp)


# ---------------------------------------------------------------- creation, casts
def _dtype(dtype):
    return FLOATX if dtype is None else numpy.dtype(dtype).name


def zeros(shape, dtype=None):
    """An array of zeros (float32 unless ``dtype``)."""
    return _xp().zeros(shape, dtype=_dtype(dtype))


def ones(shape, dtype=None):
    """An array of ones (float32 unless ``dtype``)."""
    return _xp().ones(shape, dtype=_dtype(dtype))


def full(shape, fill_value, dtype=None):
    """An array filled with ``fill_value`` (float32 unless ``dtype``)."""
    return _xp().full(shape, raw(fill_value), dtype=_dtype(dtype))


def zeros_like(x, dtype=None):
    """Zeros of ``x``'s shape (and dtype unless ``dtype``)."""
    return _xp().zeros_like(raw(x), dtype=dtype)


def ones_like(x, dtype=None):
    """Ones of ``x``'s shape (and dtype unless ``dtype``)."""
    return _xp().ones_like(raw(x), dtype=dtype)


def full_like(x, fill_value, dtype=None):
    """``fill_value`` in ``x``'s shape (and dtype unless ``dtype``)."""
    return _xp().full_like(raw(x), raw(fill_value), dtype=dtype)


def eye(N, M=None, k=0, dtype=None):
    """A 2-D array with ones on the ``k``-th diagonal."""
    return _xp().eye(N, M, k, dtype=_dtype(dtype))


def identity(n, dtype=None):
    """The n x n identity matrix."""
    return _xp().eye(n, dtype=_dtype(dtype))


def arange(start, stop=None, step=None, dtype=None):
    """Evenly spaced values in ``[start, stop)``."""
    if stop is None:
        start, stop = 0, start
    return _xp().arange(start, stop, 1 if step is None else step, dtype=dtype)


def cast(x, dtype):
    """``x`` as ``dtype``; the gradient flows back between float dtypes."""
    xp = _xp()
    (a,), parents, tape = unpack(xp, (x,))
    dtype = numpy.dtype(dtype)
    y = xp.asarray(a).astype(dtype)
    if tape is None or dtype.kind != "f" or numpy.dtype(getattr(a, "dtype", "f8")).kind != "f":
        return y
    return tape.record(y, parents, lambda g: (g.astype(a.dtype),))


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """``x`` as an array of the current backend (Python floats become float32)."""
    if type(x) is Tensor:
        return x if dtype is None else cast(x, dtype)
    if dtype is None and isinstance(x, float):
        dtype = FLOATX
    value = raw(x) if not isinstance(x, (list, tuple)) else x
    return get_ops().xp.asarray(value, dtype=dtype)


def convert_to_numpy(x):
    """``x`` as a NumPy array (copied from the GPU on the "cupy" backend)."""
    return numpy.asarray(get_ops().to_numpy(raw(x)))


def stop_gradient(variable):
    """The value of ``variable`` without its place on a tape: no gradient flows through."""
    return raw(variable)


def shape(x):
    """The shape of ``x`` as a tuple."""
    return tuple(numpy.shape(raw(x)))


def ndim(x):
    """The number of dimensions of ``x``."""
    return numpy.ndim(raw(x))


def size(x):
    """The number of entries of ``x``."""
    return int(numpy.size(raw(x)))


def dtype(x):
    """The dtype name of ``x``."""
    return numpy.dtype(raw(x).dtype).name


import builtins as _builtins  # noqa: E402  (max, min and slice are shadowed above)

builtins_max = _builtins.max
slice_cls = _builtins.slice
slice_all = _builtins.slice(None)
