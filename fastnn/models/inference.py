"""InferencePlan: a model's inference forward pass with the training-only parts folded away.

``model.compile_for_inference()`` returns a plan holding *folded copies* of the
weights (the model's own weights are never touched):

- Dropout is dropped (it is the identity at inference).
- BatchNormalization at inference is an affine map ``x * s + t`` with
  ``s = gamma / sqrt(moving_variance + epsilon)`` and ``t = beta - moving_mean * s``.
  It is folded into the Dense before it when that Dense has no activation
  (``W * s``, ``b * s + t``), else into the next Dense, across any Dropout
  (``diag(s) @ W``, ``t @ W + b``); with neither, it stays one affine step.
- A linear Dense followed by an ``Activation`` layer becomes one step.
- Each Dense step writes its bias into the output, lets the GEMM accumulate
  onto it (``beta=1``) and applies the activation in place: one output
  buffer per layer and call.
- Any other layer runs its own inference ``forward``.

Folding is done in float64 and cast back to the layer dtype; outputs match the
unfolded model to ~1e-6. The plan is a snapshot: after training or
``set_weights`` call ``plan.refresh()`` (or ``compile_for_inference()`` again).
Calling a plan stores nothing on it, so many threads may share one.
"""
import numpy

from ..backend import get_ops
from ..layers.core import Activation, Dense
from ..layers.normalization import BatchNormalization
from ..layers.regularization import Dropout
from . import data


class _DenseStep:
    """``activation(x @ kernel + bias)``; kernel/bias held as float64 while folding."""

    def __init__(self, kernel, bias, activation):
        self.kernel, self.bias, self.activation = kernel, bias, activation


class _AffineStep:
    """``x * scale + shift`` per feature (a batch norm with nothing to fold into)."""

    def __init__(self, scale, shift):
        self.scale, self.shift = scale, shift


class _ActivationStep:
    """An activation layer (fused into a linear Dense before it where there is one)."""

    def __init__(self, activation):
        self.activation = activation


class _LayerStep:
    """A layer the plan cannot fold: its own inference forward pass."""

    def __init__(self, layer):
        self.layer = layer


class InferencePlan:
    """A frozen, folded inference pass over a built Sequential (see module docstring).

    Example:
        >>> plan = model.compile_for_inference()        # doctest: +SKIP
        >>> proba = plan.predict(x)                     # doctest: +SKIP
    """

    def __init__(self, model):
        model._ensure_built()
        self.model = model
        self.refresh()

    def refresh(self):
        """Re-fold from the model's current weights (after training or set_weights)."""
        model = self.model
        self.dtype = numpy.dtype(model.layers[0].dtype)
        self.input_shape = tuple(model._input_shape)
        steps = []
        for layer in model.layers:
            for step in _steps_of(layer):
                steps.append(step)
                while len(steps) > 1 and _merge_last_two(steps):
                    pass
        self.steps = [self._finalise(step) for step in steps]

    def _finalise(self, step):
        ops = get_ops()
        cast = lambda a: None if a is None else ops.asarray(a, dtype=self.dtype)  # noqa: E731
        if isinstance(step, _DenseStep):
            return _DenseStep(cast(step.kernel), cast(step.bias), step.activation)
        if isinstance(step, _AffineStep):
            return _AffineStep(cast(step.scale), cast(step.shift))
        return step

    def __call__(self, x):
        """Predictions for all of ``x`` in one pass (a NumPy array)."""
        x = data.check_x(x, self.input_shape, self.dtype)
        ops = get_ops()
        return ops.to_numpy(self._forward(ops, ops.asarray(x)))

    def predict(self, x, batch_size=None):
        """Predictions for ``x``, ``batch_size`` rows at a time (all at once by default)."""
        if batch_size is None:
            return self(x)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        x = data.check_x(x, self.input_shape, self.dtype)
        parts = [self(x[i:i + batch_size]) for i in range(0, x.shape[0], int(batch_size))]
        return numpy.concatenate(parts) if parts else self(x)

    predict_on_batch = __call__

    def _forward(self, ops, x):
        for step in self.steps:
            if isinstance(step, _DenseStep):
                out = ops.xp.empty((x.shape[0], step.kernel.shape[1]), dtype=x.dtype)
                if step.bias is None:
                    ops.gemm(x, step.kernel, out=out)
                else:
                    out[...] = step.bias
                    ops.gemm(x, step.kernel, out=out, beta=1.0)
                x = out if step.activation.name == "linear" else \
                    step.activation.forward(ops, out, out=out)
            elif isinstance(step, _AffineStep):
                x = x * step.scale
                x += step.shift
            elif isinstance(step, _ActivationStep):
                x = step.activation.forward(ops, x)
            else:
                x = step.layer.forward(x, False)[0]
        return x

    def __repr__(self):
        names = [type(s).__name__.strip("_").replace("Step", "") for s in self.steps]
        return f"<InferencePlan {' -> '.join(names)}>"


def _steps_of(layer):
    """The plan steps of one layer, weights copied out as float64."""
    kind = type(layer)  # exact types: subclasses (DropConnect, Maxout) run their own forward
    if kind is Dropout:
        return []
    if kind is Dense and len(layer.input_shape) == 1:  # sequences: the layer's own forward
        bias = layer.bias.numpy().astype("float64") if layer.use_bias else None
        return [_DenseStep(layer.kernel.numpy().astype("float64"), bias, layer.activation)]
    if kind is BatchNormalization:
        mean, var = (w.numpy().astype("float64")
                     for w in (layer.moving_mean, layer.moving_variance))
        # scale=False / center=False layers have no gamma / beta: 1 and 0.
        gamma = layer.gamma.numpy().astype("float64") if layer.gamma is not None else 1.0
        beta = layer.beta.numpy().astype("float64") if layer.beta is not None else 0.0
        scale = gamma / numpy.sqrt(var + layer.epsilon)
        return [_AffineStep(scale, beta - mean * scale)]
    if kind is Activation:
        return [_ActivationStep(layer.activation)]
    return [_LayerStep(layer)]


def _merge_last_two(steps):
    """Fold ``steps[-1]`` into ``steps[-2]`` where the algebra allows; True if it did."""
    prev, last = steps[-2], steps[-1]
    linear = isinstance(prev, _DenseStep) and prev.activation.name == "linear"
    if linear and isinstance(last, _AffineStep):
        bias = prev.bias if prev.bias is not None else numpy.zeros(prev.kernel.shape[1])
        merged = _DenseStep(prev.kernel * last.scale, bias * last.scale + last.shift,
                            prev.activation)
    elif isinstance(prev, _AffineStep) and isinstance(last, _DenseStep):
        bias = last.bias if last.bias is not None else numpy.zeros(last.kernel.shape[1])
        merged = _DenseStep(prev.scale[:, None] * last.kernel, prev.shift @ last.kernel + bias,
                            last.activation)
    elif isinstance(prev, _AffineStep) and isinstance(last, _AffineStep):
        merged = _AffineStep(prev.scale * last.scale, prev.shift * last.scale + last.shift)
    elif linear and isinstance(last, _ActivationStep):
        merged = _DenseStep(prev.kernel, prev.bias, last.activation)
    else:
        return False
    steps[-2:] = [merged]
    return True
