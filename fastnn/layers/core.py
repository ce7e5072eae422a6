"""Input, Dense, Activation and Flatten."""
from .. import activations, constraints, initializers, regularizers
from ..backend import get_ops
from ..engine.stages import Kind, Stage
from .base import Layer, _as_shape, register
from ..utils.checks import check_positive_int


@register
class InputLayer(Layer):
    """Marks the input shape of a Sequential model; passes data through."""

    def __init__(self, shape=None, name=None, input_shape=None, **kwargs):
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("Input needs a shape, e.g. fastnn.Input(shape=(64,))")
        super().__init__(name=name, input_shape=shape, **kwargs)

    def forward(self, x, training=False):
        return x, None

    def backward(self, dy, cache, need_dx=True):
        return dy

    def get_config(self):
        config = super().get_config()
        config["shape"] = config.pop("input_shape")
        return config


def Input(shape=None, name=None, dtype="float32"):
    """Start a Sequential model's layer list: ``fastnn.Input(shape=(64,))``."""
    return InputLayer(shape=shape, name=name, dtype=dtype)


@register
class Dense(Layer):
    """``y = activation(x @ kernel + bias)`` with kernel of shape (in, out).

    Args:
        units: output width.
        activation: name or fastnn.activations function (default linear).
        use_bias: add a bias vector.
        kernel_initializer, bias_initializer: names or Initializer objects.
        kernel_regularizer, bias_regularizer: L1/L2 penalties.
        kernel_constraint, bias_constraint: ``fastnn.constraints`` (e.g. ``MaxNorm(3)``),
            applied after every optimizer step.

    Example:
        >>> layer = Dense(3, activation="relu", input_shape=(4,))
    """

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_int(f"{type(self).__name__} units", units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.kernel = self.bias = None

    # Dense maps the last axis, so a sample may be a sequence of feature vectors (Keras);
    # subclasses with their own forward pass (Maxout) take 1-D features only.
    takes_sequences = True

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1 and not (self.takes_sequences and len(input_shape) > 1):
            raise ValueError(f"{type(self).__name__} {self.name!r} takes 1-D features per "
                             f"sample, got input shape {tuple(input_shape)}; add a Flatten "
                             f"layer first")
        return tuple(input_shape[:-1]) + (self.units,)

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel = self.add_weight("kernel", (self.input_shape[-1], self._kernel_width()),
                                      self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self._kernel_width(),), self.bias_initializer,
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)

    def _kernel_width(self):
        return self.units

    def forward(self, x, training=False, apply_activation=True):
        """Returns ``(y, cache)``; ``apply_activation=False`` returns the logits
        (the trainer fuses a softmax/sigmoid head into the loss). Inputs of rank > 2
        are mapped along their last axis."""
        if x.ndim <= 2:
            return self._forward_rows(x, training, apply_activation)
        lead = x.shape[:-1]
        y, cache = self._forward_rows(x.reshape(-1, x.shape[-1]), training, apply_activation)
        return y.reshape(lead + (y.shape[-1],)), ("leading", lead, cache)

    def backward(self, dy, cache, need_dx=True, apply_activation=True):
        if cache[0] != "leading":
            return self._backward_rows(dy, cache, need_dx, apply_activation)
        _, lead, cache = cache
        dx = self._backward_rows(dy.reshape(-1, dy.shape[-1]), cache, need_dx,
                                 apply_activation)
        return None if dx is None else dx.reshape(lead + (dx.shape[-1],))

    def _forward_rows(self, x, training, apply_activation):
        ops = get_ops()
        z, affine_cache = self._affine_forward(ops, x, training)
        act = self.activation
        if not apply_activation or act.name == "linear":
            return z, (affine_cache, None, z)
        y = act.forward(ops, z, out=z if act.in_place else None)
        return y, (affine_cache, None if act.in_place else z, y)

    def _backward_rows(self, dy, cache, need_dx, apply_activation):
        ops = get_ops()
        affine_cache, z, y = cache
        act = self.activation
        if apply_activation and act.name != "linear":
            dz = act.backward(ops, dy, z, y)
        else:
            dz = dy
        return self._affine_backward(ops, dz, affine_cache, need_dx)

    def stages(self):
        """One DENSE stage (bias and activation fused into the product's epilogue)."""
        if not self._lowers_as(Dense) or type(self)._effective_kernel is not \
                Dense._effective_kernel:
            return super().stages()
        return [self._dense_stage(Kind.DENSE, activation=self.activation)]

    def _dense_stage(self, kind, **fields):
        bias = self.bias if self.use_bias else None
        return Stage(kind, self, self.input_shape[-1], self.output_shape[-1],
                     kernel=self.kernel.value, bias=None if bias is None else bias.value,
                     kernel_grad=self._grad(self.kernel), bias_grad=self._grad(bias), **fields)

    # The affine part, shared with subclasses (DropConnect, Maxout).
    def _effective_kernel(self, ops, training):
        """The kernel this pass multiplies by, and a mask its gradient is multiplied by
        (None: the kernel itself). DropConnect overrides this."""
        return self.kernel.value, None

    def _affine_forward(self, ops, x, training):
        """``z = x @ kernel + bias``; returns ``(z, cache for _affine_backward)``."""
        kernel, mask = self._effective_kernel(ops, training)
        z = ops.gemm(x, kernel)
        if self.use_bias:
            ops.add_bias(z, self.bias.value)
        return z, (x, kernel, mask)

    def _affine_backward(self, ops, dz, affine_cache, need_dx):
        """Write the kernel and bias gradients; return the input gradient (or None)."""
        x, kernel, mask = affine_cache
        if self._trainable:
            ops.gemm(x, dz, out=self.kernel.grad, trans_a=True)
            if mask is not None:
                ops.multiply(self.kernel.grad, mask, out=self.kernel.grad)
            if self.use_bias:
                ops.sum_rows(dz, out=self.bias.grad)
        if not need_dx:
            return None
        return ops.gemm(dz, kernel, trans_b=True)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
            kernel_constraint=constraints.serialize(self.kernel_constraint),
            bias_constraint=constraints.serialize(self.bias_constraint),
        )
        return config


@register
class Activation(Layer):
    """Applies an activation function: ``Activation("relu")``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def forward(self, x, training=False, apply_activation=True):
        if not apply_activation:
            return x, None
        ops = get_ops()
        y = self.activation.forward(ops, x)
        return y, (x, y)

    def stages(self):
        if not self._lowers_as(Activation):
            return super().stages()
        return [Stage(Kind.ACTIVATION, self, self.input_shape[-1], self.output_shape[-1],
                      activation=self.activation)]

    def backward(self, dy, cache, need_dx=True, apply_activation=True):
        if not apply_activation:
            return dy
        x, y = cache
        return self.activation.backward(get_ops(), dy, x, y) if need_dx else None

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config


@register
class Flatten(Layer):
    """Reshape each sample to one dimension."""

    def compute_output_shape(self, input_shape):
        size = 1
        for d in input_shape:
            size *= d
        return (size,)

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dy, cache, need_dx=True):
        return dy.reshape(cache) if need_dx else None


__all__ = ["Input", "InputLayer", "Dense", "Activation", "Flatten", "_as_shape"]
