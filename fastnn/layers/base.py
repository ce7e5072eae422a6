"""The Layer protocol and the Weight holder every layer's parameters live in.

A layer stores hyperparameters in ``__init__``, creates weights in
``build(input_shape)`` and computes in two methods:

- ``forward(x, training) -> (y, cache)``: ``cache`` is whatever ``backward``
  needs. Nothing is stored on the layer, so one built model may run
  ``forward`` from many threads at once.
- ``backward(dy, cache, need_dx=True) -> dx``: writes the gradients of the
  layer's trainable weights into their ``grad`` arrays and returns the
  gradient of the input (None when ``need_dx`` is False).

Shapes exclude the batch dimension: ``input_shape=(64,)`` means x is (n, 64).
"""
import numpy

from .. import constraints, initializers, regularizers
from ..backend import get_ops
from ..utils.registry import Registry, snake_case

layer_registry = Registry("layer")


def register(cls):
    """Make ``cls`` loadable by its class name (saved configs name only registered layers)."""
    layer_registry.register(cls.__name__)(cls)
    return cls


class Weight:
    """A parameter array and, for trainable ones, its gradient array; it behaves like a
    Keras variable (``np.asarray(w)``, ``w.numpy()``, ``w.assign(v)``, ``w.shape``,
    ``w.dtype``, ``w.name``, ``w.path``, ``w.trainable``).

    ``value`` and ``grad`` start as standalone arrays; a model re-points them
    at views of its flat buffers (see ``fastnn.models.parameters``), so ``assign``
    writes in place and never breaks that link.
    """

    def __init__(self, name, value, trainable=True, regularizer=None, constraint=None,
                 path=None):
        self.name = name
        self.path = path or name
        self.value = value
        self.grad = get_ops().alloc(value.shape, value.dtype) if trainable else None
        self.trainable = trainable
        self.regularizer = regularizer
        self.constraint = constraint

    @property
    def shape(self):
        return tuple(self.value.shape)

    @property
    def dtype(self):
        """The dtype's name, e.g. ``"float32"`` (as Keras variables report it)."""
        return numpy.dtype(self.value.dtype).name

    @property
    def ndim(self):
        return len(self.shape)

    def numpy(self):
        return numpy.array(get_ops().to_numpy(self.value))

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    def assign(self, value):
        """Overwrite the values in place; the shape must match and values be finite."""
        array = numpy.asarray(value)
        if array.shape != self.shape:
            raise ValueError(f"Cannot assign a value of shape {array.shape} to {self.path!r} "
                             f"of shape {self.shape}")
        if not numpy.issubdtype(array.dtype, numpy.number) or not numpy.isfinite(array).all():
            raise ValueError(f"{self.path!r}: assigned values must be finite numbers")
        self.value[...] = get_ops().asarray(array, dtype=self.value.dtype)
        return self

    def assign_add(self, delta):
        return self.assign(self.numpy() + numpy.asarray(delta))

    def assign_sub(self, delta):
        return self.assign(self.numpy() - numpy.asarray(delta))

    def __repr__(self):
        return f"<Weight path={self.path} shape={self.shape} dtype={self.dtype}>"


_name_counts = {}


def auto_name(base):
    """``base``, then ``base_1``, ``base_2``, ...: Keras' unique default names."""
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


class Layer:
    """Base class of all layers."""

    def __init__(self, name=None, trainable=True, input_shape=None, input_dim=None,
                 dtype="float32", activity_regularizer=None):
        self.name = auto_name(snake_case(type(self).__name__)) if name is None else name
        self._trainable = bool(trainable)
        if input_shape is None and input_dim is not None:
            input_shape = (int(input_dim),)
        self.declared_input_shape = None if input_shape is None else _as_shape(input_shape)
        self.dtype = numpy.dtype(dtype).name
        # A penalty on the layer's output, added to the loss divided by the batch size
        # (Keras 3); the trainer adds its gradient to the output's gradient.
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._weights = []

    # ---------------------------------------------------------------- building
    def build(self, input_shape):
        """Create weights for inputs of ``input_shape`` (no batch dimension)."""
        self.input_shape = _as_shape(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def unbuild(self):
        """Forget the weights of a build that failed part-way (the model tries again later)."""
        self._weights = []
        self.input_shape = self.output_shape = None
        self.built = False

    def add_weight(self, name, shape, initializer="zeros", trainable=True, regularizer=None,
                   constraint=None):
        init = initializers.get(initializer)
        # reshape: asarray may make a 0-d value (a counter) 1-d
        value = get_ops().asarray(init(tuple(shape), self.dtype)).reshape(tuple(shape))
        weight = Weight(name, value, trainable=trainable,
                        regularizer=regularizers.get(regularizer),
                        constraint=constraints.get(constraint), path=f"{self.name}/{name}")
        self._weights.append(weight)
        return weight

    # ---------------------------------------------------------------- computing
    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy, cache, need_dx=True):
        raise NotImplementedError

    def __call__(self, x, training=False):
        """Run the layer once on ``x`` (builds it on first use); returns an array."""
        ops = get_ops()
        x = ops.asarray(x, dtype=self.dtype)
        if not self.built:
            self.build(x.shape[1:])
        return self.forward(x, training)[0]

    # ---------------------------------------------------------------- weights
    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)

    @property
    def weights(self):
        return list(self._weights)

    @property
    def trainable_weights(self):
        return [w for w in self._weights if w.trainable and self._trainable]

    @property
    def non_trainable_weights(self):
        return [w for w in self._weights if not (w.trainable and self._trainable)]

    def get_weights(self):
        """The weights as NumPy arrays, in Keras order."""
        return [w.numpy() for w in self._weights]

    def set_weights(self, arrays):
        """Copy ``arrays`` into the weights; all shapes are checked before anything is written."""
        arrays = list(arrays)
        if len(arrays) != len(self._weights):
            raise ValueError(f"Layer {self.name!r} has {len(self._weights)} weights, "
                             f"got {len(arrays)} arrays")
        checked = []
        for w, a in zip(self._weights, arrays):
            a = numpy.asarray(a)
            if tuple(a.shape) != w.shape:
                raise ValueError(f"Weight {w.name!r} has shape {w.shape}, got {tuple(a.shape)}")
            if not numpy.issubdtype(a.dtype, numpy.number) or not numpy.isfinite(a).all():
                raise ValueError(f"Weight {w.name!r}: values must be finite numbers")
            checked.append(a)
        ops = get_ops()
        for w, a in zip(self._weights, checked):
            w.value[...] = ops.asarray(a, dtype=w.value.dtype)

    def count_params(self):
        return int(sum(numpy.prod(w.shape) for w in self._weights))

    def regularization_penalty(self, ops):
        return sum(w.regularizer.penalty(ops, w.value) for w in self.trainable_weights
                   if w.regularizer is not None)

    def add_regularization_gradients(self, ops):
        for w in self.trainable_weights:
            if w.regularizer is not None:
                w.regularizer.add_gradient(ops, w.value, w.grad)

    # ---------------------------------------------------------------- config
    def get_config(self):
        config = {"name": self.name, "trainable": self._trainable, "dtype": self.dtype}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _as_shape(shape):
    if isinstance(shape, (int, numpy.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(f"A shape must be a tuple of positive ints, got {shape!r}") from None
    if any(d < 1 for d in shape):
        raise ValueError(f"A shape must be a tuple of positive ints, got {shape!r}")
    return shape
