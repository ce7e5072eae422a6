"""The tape: reverse-mode differentiation of ``fastnn.ops`` calls on whole arrays.

A ``Tape`` is created for one computation that needs gradients (a custom
layer's forward pass in a training step, a custom loss). Inputs to
differentiate are *watched*: wrapped as ``Tensor`` objects that know their
tape. An ops function that receives a Tensor computes on the raw arrays as
usual and appends one node to the tape: the Tensors it read and a closure that
maps the gradient of its output to the gradients of those inputs (a
vector-Jacobian product). ``Tape.gradient`` walks the nodes backwards; since
nodes are appended as they are computed, that order is a topological one.

No Tensor exists outside a tape, so inference (plain arrays in, plain arrays
out) records nothing and pays only an isinstance check per argument. A tape
holds one node per ops call, never one object per array element, and is
dropped with the cache of the step that made it.

Variables (layer weights, metric state) are not Tensors: inside an active tape
the variables the tape watches are read as Tensors, everywhere else as their
arrays.
"""
import contextlib
import contextvars

import numpy

from ..backend import get_ops

_active = contextvars.ContextVar("fastnn_tape", default=None)


class Tape:
    """The record of one differentiable computation (see module docstring).

    Args:
        variables: Variables (e.g. a layer's trainable weights) whose reads
            inside ``with tape.active():`` are recorded.
    """

    __slots__ = ("_nodes", "_size", "_variable_tensors", "_watched")

    def __init__(self, variables=()):
        self._nodes = []            # (output index, parent Tensors or None, vjp)
        self._size = 0
        self._watched = {id(v): v for v in variables}
        self._variable_tensors = {}  # id(variable) -> (variable, Tensor)

    def watch(self, value):
        """A Tensor for ``value`` whose gradient ``gradient`` can return."""
        tensor = Tensor(value, self, self._size)
        self._size += 1
        return tensor

    def record(self, value, parents, vjp):
        """A Tensor for ``value`` computed from ``parents``; ``vjp(g)`` returns one
        gradient (or None) per parent for the output gradient ``g``."""
        tensor = self.watch(value)
        self._nodes.append((tensor.index, parents, vjp))
        return tensor

    def variable_tensor(self, variable):
        """The Tensor a watched ``variable`` reads as on this tape, else None."""
        entry = self._variable_tensors.get(id(variable))
        if entry is not None:
            return entry[1]
        if id(variable) not in self._watched:
            return None
        tensor = self.watch(variable.value)
        self._variable_tensors[id(variable)] = (variable, tensor)
        return tensor

    @contextlib.contextmanager
    def active(self):
        """Within the block, watched variables read as Tensors of this tape."""
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)

    def enter(self):
        """``active()`` without the context manager (for hot paths): returns the token
        that ``leave`` takes."""
        return _active.set(self)

    @staticmethod
    def leave(token):
        _active.reset(token)

    def gradient(self, output, seed, sources, extra=()):
        """Gradients of ``sum(output * seed)`` with respect to each of ``sources``.

        ``sources`` holds Tensors of this tape or watched variables; an entry
        the output does not depend on gets None. ``extra``: more (output, seed)
        pairs whose terms are added to the differentiated sum.
        """
        grads = [None] * self._size
        seeded = False
        for out, s in ((output, seed), *extra):
            if isinstance(out, Tensor) and out.tape is self:
                prev = grads[out.index]
                grads[out.index] = s if prev is None else prev + s
                seeded = True
        if not seeded:
            return [None] * len(sources)
        for index, parents, vjp in reversed(self._nodes):
            g = grads[index]
            if g is None:
                continue
            for parent, pg in zip(parents, vjp(g)):
                if parent is None or pg is None:
                    continue
                prev = grads[parent.index]
                grads[parent.index] = pg if prev is None else prev + pg
        out = []
        for source in sources:
            if not isinstance(source, Tensor):
                source = self._variable_tensors.get(id(source), (None, None))[1]
            out.append(None if source is None else grads[source.index])
        return out


def active_tape():
    """The tape set by ``Tape.active()`` in this context, or None."""
    return _active.get()


class _Operators:
    """Python operators for array-like objects, computed by ``fastnn.ops``."""

    __array_ufunc__ = None      # ndarray <op> self -> our reflected operator
    __array_priority__ = 1000

    def __add__(self, other): return _np.add(self, other)
    def __radd__(self, other): return _np.add(other, self)
    def __sub__(self, other): return _np.subtract(self, other)
    def __rsub__(self, other): return _np.subtract(other, self)
    def __mul__(self, other): return _np.multiply(self, other)
    def __rmul__(self, other): return _np.multiply(other, self)
    def __truediv__(self, other): return _np.divide(self, other)
    def __rtruediv__(self, other): return _np.divide(other, self)
    def __floordiv__(self, other): return _np.floor_divide(self, other)
    def __rfloordiv__(self, other): return _np.floor_divide(other, self)
    def __mod__(self, other): return _np.mod(self, other)
    def __rmod__(self, other): return _np.mod(other, self)
    def __pow__(self, other): return _np.power(self, other)
    def __rpow__(self, other): return _np.power(other, self)
    def __matmul__(self, other): return _np.matmul(self, other)
    def __rmatmul__(self, other): return _np.matmul(other, self)
    def __neg__(self): return _np.negative(self)
    def __pos__(self): return self
    def __abs__(self): return _np.abs(self)
    def __lt__(self, other): return _np.less(self, other)
    def __le__(self, other): return _np.less_equal(self, other)
    def __gt__(self, other): return _np.greater(self, other)
    def __ge__(self, other): return _np.greater_equal(self, other)
    def __and__(self, other): return _np.logical_and(self, other)
    def __rand__(self, other): return _np.logical_and(other, self)
    def __or__(self, other): return _np.logical_or(self, other)
    def __ror__(self, other): return _np.logical_or(other, self)
    def __invert__(self): return _np.logical_not(self)
    def __getitem__(self, key): return _np.get_item(self, key)

    def __array__(self, dtype=None, copy=None):
        value = get_ops().to_numpy(self.value)
        return value if dtype is None else value.astype(dtype, copy=False)

    def __float__(self):
        return float(get_ops().to_numpy(self.value))

    def __int__(self):
        return int(get_ops().to_numpy(self.value))

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def ndim(self):
        return self.value.ndim

    @property
    def T(self):
        return _np.transpose(self)

    def numpy(self):
        """The value as a NumPy array."""
        return numpy.asarray(get_ops().to_numpy(self.value))

    # A few of the array methods Keras tensors have.
    def reshape(self, *shape):
        return _np.reshape(self, shape[0] if len(shape) == 1 else shape)

    def astype(self, dtype):
        return _np.cast(self, dtype)

    def sum(self, axis=None, keepdims=False):
        return _np.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return _np.mean(self, axis=axis, keepdims=keepdims)


class Tensor(_Operators):
    """An array on a tape: ``value`` is the array, ``index`` its slot in the tape."""

    __slots__ = ("index", "tape", "value")

    def __init__(self, value, tape, index):
        self.value = value
        self.tape = tape
        self.index = index

    @property
    def shape(self):
        return tuple(self.value.shape)

    @property
    def size(self):
        return int(self.value.size)

    def __len__(self):
        return len(self.value)

    def __bool__(self):
        return bool(self.value)

    def __eq__(self, other):
        return _np.equal(self, other)

    def __ne__(self, other):
        return _np.not_equal(self, other)

    __hash__ = object.__hash__

    def __repr__(self):
        return f"<fastnn Tensor shape={self.shape} dtype={self.dtype}>"


class Variable(_Operators):
    """A named, mutable array: a layer weight or a metric's state.

    It reads as its array in ``fastnn.ops`` calls (as a Tensor when a tape
    watches it) and changes only through ``assign``/``assign_add``/``assign_sub``.
    Subclasses set ``value`` (the array) and ``name``.
    """

    def assign(self, value):
        """Overwrite the value in place (its shape and dtype stay)."""
        self.value[...] = _host_or_device(value, self.value)
        return self

    def assign_add(self, delta):
        self.value[...] += _host_or_device(delta, self.value)
        return self

    def assign_sub(self, delta):
        self.value[...] -= _host_or_device(delta, self.value)
        return self


def _host_or_device(value, like):
    """``value`` as a raw array of the same library as ``like`` (NumPy or CuPy)."""
    if isinstance(value, (Tensor, Variable)):
        value = value.value
    if isinstance(like, numpy.ndarray) and hasattr(value, "get"):
        return value.get()
    return value


def unpack(xp, args):
    """The raw arrays of ``args``, the Tensors among them (None for the others), and the
    tape to record on (None when no argument is on a tape: nothing is recorded)."""
    values = []
    tensors = []
    tape = None
    for x in args:
        if type(x) is Tensor:
            tape = x.tape
            values.append(x.value)
            tensors.append(x)
            continue
        if isinstance(x, Variable):
            current = _active.get()
            t = None if current is None else current.variable_tensor(x)
            if t is not None:
                tape = t.tape
                values.append(t.value)
                tensors.append(t)
                continue
            x = x.value
        elif xp is not numpy and isinstance(x, (numpy.ndarray, list)):
            x = xp.asarray(x)
        values.append(x)
        tensors.append(None)
    return values, tensors, tape


def raw(x):
    """The array behind a Tensor or Variable; anything else unchanged."""
    if isinstance(x, (Tensor, Variable)):
        return x.value
    return x


def unbroadcast(g, shape):
    """Sum ``g`` over the axes broadcasting added to an operand of ``shape``."""
    g_shape = getattr(g, "shape", ())
    if tuple(g_shape) == tuple(shape):
        return g
    ndim = len(g_shape)
    extra = ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape) if hasattr(g, "reshape") else g


from . import numpy_ops as _np  # noqa: E402  (last: the operators call the ops functions)
