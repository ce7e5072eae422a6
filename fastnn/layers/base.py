"""The Layer protocol and the Weight holder every layer's parameters live in.

A layer stores hyperparameters in ``__init__``, creates weights in
``build(input_shape)`` and computes either, as Keras layers do, in
``call(inputs)`` written with ``fastnn.ops`` (differentiated on a tape, see
``fastnn.layers.custom``), or, as the built-in layers do, in two hand-written
methods:

- ``forward(x, training) -> (y, cache)``: ``cache`` is whatever ``backward``
  needs. Nothing is stored on the layer, so one built model may run
  ``forward`` from many threads at once.
- ``backward(dy, cache, need_dx=True) -> dx``: writes the gradients of the
  layer's trainable weights into their ``grad`` arrays and returns the
  gradient of the input (None when ``need_dx`` is False).

Shapes exclude the batch dimension: ``input_shape=(64,)`` means x is (n, 64).
"""
import functools

import numpy

from .. import constraints, initializers, regularizers
from ..backend import get_ops
from ..utils.checks import check_float_dtype
from ..ops.tape import Tensor, Variable, active_tape
from . import custom
from ..engine import stages as stages_mod
from ..utils.registry import Registry, snake_case

layer_registry = Registry("layer")


def register(cls):
    """Make ``cls`` loadable by its class name (saved configs name only registered layers)."""
    layer_registry.register(cls.__name__)(cls)
    return cls


class Weight(Variable):
    """A parameter array and, for trainable ones, its gradient array; it behaves like a
    Keras variable (``np.asarray(w)``, ``w.numpy()``, ``w.assign(v)``, ``w.shape``,
    ``w.dtype``, ``w.name``, ``w.path``, ``w.trainable``).

    In ``fastnn.ops`` calls and Python operators it reads as its array, as a
    Keras variable does.

    ``value`` and ``grad`` start as standalone arrays; a model re-points them
    at views of its flat buffers (see ``fastnn.models.parameters``), so ``assign``
    writes in place and never breaks that link.

    ``Weight.writes`` counts every ``assign`` and ``Layer.set_weights`` in the
    process: programs that hold a snapshot of weights (quantized ones) compare it
    to know when to take a new one, at no cost per call.
    """

    writes = 0

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

    def checked(self, value):
        """``value`` as a host array of this weight's shape and dtype; ValueError when the
        shape differs or a value is not finite after the cast (1e39 is inf in float32)."""
        array = numpy.asarray(value)
        if tuple(array.shape) != self.shape:
            raise ValueError(f"Weight {self.path!r} has shape {self.shape}, got "
                             f"{tuple(array.shape)}")
        if not numpy.issubdtype(array.dtype, numpy.number):
            raise ValueError(f"Weight {self.path!r}: values must be finite numbers")
        with numpy.errstate(over="ignore", invalid="ignore"):
            array = array.astype(self.value.dtype)
        if not numpy.isfinite(array).all():
            raise ValueError(f"Weight {self.path!r}: values must be finite numbers "
                             f"(in {array.dtype})")
        return array

    def assign(self, value):
        """Overwrite the values in place; the shape must match and values be finite."""
        self.value[...] = get_ops().asarray(self.checked(value), dtype=self.value.dtype)
        Weight.writes += 1
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

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "_completes_build", False):
            cls.build = _completing_build(build)

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        # Remember attributes that hold (or may come to hold) layers: a call-based
        # layer's nested layers (see custom.sublayers).
        if isinstance(value, Layer) or (isinstance(value, list) and not name.startswith("_")) \
                or (isinstance(value, tuple) and any(isinstance(v, Layer) for v in value)):
            names = self.__dict__.setdefault("_layer_attrs", [])
            if name not in names:
                names.append(name)

    def __init__(self, name=None, trainable=True, input_shape=None, input_dim=None,
                 dtype="float32", activity_regularizer=None):
        self.name = auto_name(snake_case(type(self).__name__)) if name is None else name
        self._trainable = bool(trainable)
        if input_shape is None and input_dim is not None:
            input_shape = (int(input_dim),)
        self.declared_input_shape = None if input_shape is None else _as_shape(input_shape)
        self.dtype = check_float_dtype(f"{type(self).__name__} dtype", dtype)
        # A penalty on the layer's output, added to the loss divided by the batch size
        # (Keras 3); the trainer adds its gradient to the output's gradient.
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._weights = []

    # ---------------------------------------------------------------- building
    def build(self, input_shape):
        """Create weights for inputs of ``input_shape`` (no batch dimension; a Keras-style
        shape with a leading None is accepted)."""
        self.input_shape = _as_shape(_per_sample(input_shape))
        self.built = True
        # A call-based layer whose own build is still creating weights gets its output
        # shape once that build returns (see _completing_build).
        if not _uses_call(self) or type(self).build is Layer.build:
            self.output_shape = _output_shape(self, self.input_shape)

    def compute_output_shape(self, input_shape):
        """The per-sample output shape (call-based layers: found by running ``call``)."""
        if _uses_call(self):
            return custom.output_shape(self, input_shape)
        return tuple(input_shape)

    def unbuild(self):
        """Forget the weights of a build that failed part-way (the model tries again later)."""
        self._weights = []
        self.input_shape = self.output_shape = None
        self.built = False

    def add_weight(self, name=None, shape=None, initializer=None, trainable=True,
                   regularizer=None, dtype=None, constraint=None, **kwargs):
        """Create a weight of ``shape``, initialized by ``initializer`` (Glorot uniform when
        None, as Keras). Keras' forms ``add_weight(shape=..., initializer=..., name=...)``
        and ``add_weight(shape, initializer)`` work too."""
        if name is not None and not isinstance(name, str):  # Keras' (shape, initializer)
            name, shape, initializer = None, name, initializer if shape is None else shape
        name, shape = weight_name_and_shape(name, shape, len(self._weights))
        if initializer is None:
            initializer = "glorot_uniform"
        init = initializers.get(initializer)
        dtype = self.dtype if dtype is None else numpy.dtype(dtype).name
        # reshape: asarray may make a 0-d value (a counter) 1-d
        value = get_ops().asarray(init(tuple(shape), dtype), dtype=dtype).reshape(tuple(shape))
        weight = Weight(name, value, trainable=trainable,
                        regularizer=regularizers.get(regularizer),
                        constraint=constraints.get(constraint), path=f"{self.name}/{name}")
        self._weights.append(weight)
        return weight

    # ---------------------------------------------------------------- computing
    def call(self, inputs):
        """The layer's computation with ``fastnn.ops`` (Keras style); built-in layers
        define ``forward``/``backward`` instead."""
        raise NotImplementedError(f"Layer {type(self).__name__} defines neither call(inputs) "
                                  f"nor forward/backward")

    def forward(self, x, training=False):
        return custom.forward(self, x, training)

    forward._call_based = True

    def backward(self, dy, cache, need_dx=True):
        return custom.backward(self, dy, cache, need_dx)

    def stages(self):
        """What this layer lowers to in a program (``fastnn.engine.stages``): by default
        one HOST stage, its own ``forward``/``backward`` through the Ops. Built-in layers
        with a compiled kernel return their descriptors instead."""
        return [stages_mod.host_stage(self)]

    def _lowers_as(self, cls):
        """Whether this layer computes exactly as built-in ``cls`` does (a subclass or an
        instance that overrides the math, or any activity penalty, keeps the HOST stage)
        on 1-D features."""
        return (type(self).forward is cls.forward and type(self).backward is cls.backward
                and "forward" not in self.__dict__ and "backward" not in self.__dict__
                and self.activity_regularizer is None and self.input_shape is not None
                and len(self.input_shape) == 1)

    def _grad(self, weight):
        """A weight's gradient buffer when the layer trains, else None (frozen)."""
        return weight.grad if weight is not None and self._trainable else None

    def __call__(self, x, training=None):
        """Run the layer once on ``x`` (builds it on first use); returns an array.

        Called inside another layer's ``call`` during training (a nested layer), it
        records itself on that layer's tape instead.
        """
        if isinstance(x, Tensor) or active_tape() is not None:
            return custom.call_nested(self, x, training)
        training = bool(training)
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
        """The layer's own weights, then those of the layers it holds (call-based layers)."""
        return list(self._weights) + [w for sub in custom.sublayers(self) for w in sub.weights]

    @property
    def trainable_weights(self):
        if not self._trainable:
            return []
        return [w for w in self._weights if w.trainable] + [
            w for sub in custom.sublayers(self) for w in sub.trainable_weights]

    @property
    def non_trainable_weights(self):
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    def get_weights(self):
        """The weights as NumPy arrays, in Keras order."""
        return [w.numpy() for w in self.weights]

    def set_weights(self, arrays):
        """Copy ``arrays`` into the weights; all shapes are checked before anything is written."""
        arrays = list(arrays)
        weights = self.weights
        if len(arrays) != len(weights):
            raise ValueError(f"Layer {self.name!r} has {len(weights)} weights, "
                             f"got {len(arrays)} arrays")
        checked = [w.checked(a) for w, a in zip(weights, arrays)]
        ops = get_ops()
        for w, a in zip(weights, checked):
            w.value[...] = ops.asarray(a, dtype=w.value.dtype)
        Weight.writes += 1

    def count_params(self):
        return int(sum(numpy.prod(w.shape) for w in self.weights))

    def regularization_penalty(self, ops):
        penalty = sum(w.regularizer.penalty(ops, w.value) for w in self.trainable_weights
                      if w.regularizer is not None)
        return penalty + sum(float(loss) for loss in self.losses)

    def add_loss(self, loss):
        """From ``call``: add the scalar ``loss`` (written with ``fastnn.ops``) to the
        model's loss; it is differentiated with the rest of the call."""
        custom.add_loss(self, loss)

    @property
    def losses(self):
        """The losses ``add_loss`` added during the last call (values)."""
        return custom.losses(self)

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


def _uses_call(layer):
    """True for a layer computing in ``call`` (its class does not define ``forward``)."""
    return custom.uses_call(layer)


def _completing_build(build):
    """Wrap a subclass's ``build`` so the layer ends built with known shapes, as Keras
    layers whose ``build`` only creates weights do."""
    keras_style = not build.__module__.startswith("fastnn.")

    @functools.wraps(build)
    def wrapper(self, input_shape):
        shape = _as_shape(_per_sample(input_shape))
        # User layers get Keras' shape, batch dimension included: (None, *shape).
        build(self, (None,) + shape if keras_style and _uses_call(self) else input_shape)
        if not self.built or self.input_shape is None:
            self.input_shape = shape
            self.built = True
        if self.output_shape is None:
            self.output_shape = _output_shape(self, self.input_shape)
    wrapper._completes_build = True
    return wrapper


def _per_sample(shape):
    """``shape`` without a leading None (Keras' batch dimension)."""
    if isinstance(shape, (tuple, list)) and shape and shape[0] is None:
        return tuple(shape[1:])
    return shape


def _output_shape(layer, shape):
    """The per-sample output shape. A user's own ``compute_output_shape`` on a call-based
    layer follows Keras: it takes and returns shapes with the batch dimension."""
    method = type(layer).compute_output_shape
    if _uses_call(layer) and not method.__module__.startswith("fastnn."):
        return _as_shape(_per_sample(tuple(method(layer, (None,) + tuple(shape)))))
    return layer.compute_output_shape(shape)


def requested_weight(layer, args, kwargs):
    """``(name, shape)`` that ``layer.add_weight(*args, **kwargs)`` would create."""
    name = args[0] if args else kwargs.get("name")
    shape = args[1] if len(args) > 1 else kwargs.get("shape")
    if name is not None and not isinstance(name, str):
        name, shape = None, name
    return weight_name_and_shape(name, shape, len(layer._weights))


def weight_name_and_shape(name, shape, index):
    """``(name, shape)`` of an ``add_weight`` call, positional ``(name, shape)`` or Keras'
    ``(shape=..., name=...)``; an unnamed weight is "variable", "variable_1", ..."""
    if shape is None:
        raise ValueError("add_weight needs a shape")
    if name is None:
        name = "variable" if index == 0 else f"variable_{index}"
    if isinstance(shape, (int, numpy.integer)):
        shape = (int(shape),)
    return name, tuple(int(d) for d in shape)


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
