"""Numerical gradient checking: does a layer's ``backward`` match its ``forward``?

``gradient_check(layer_or_model, x)`` compares the analytic gradients that
``backward`` computes with central finite differences,
``(f(v + eps) - f(v - eps)) / (2 * eps)``, for the input and every trainable
weight. It needs float64 layers (``dtype="float64"``): in float32 the
rounding error of a finite difference is as large as the gradient itself.
"""
import dataclasses

import numpy

from .. import losses as losses_mod
from ..backend import get_ops
from .random import get_rng


@dataclasses.dataclass
class GradientCheckReport:
    """The outcome of a gradient check.

    Attributes:
        errors: for "x" and each checked weight's name, the relative error
            ``max|analytic - numeric| / max(max|analytic|, max|numeric|)``.
        checked: how many entries of each array were perturbed.
    """

    errors: dict
    checked: dict

    @property
    def max_error(self):
        """The largest relative error over all checked arrays."""
        return max(self.errors.values(), default=0.0)

    def __float__(self):
        return float(self.max_error)

    def __str__(self):
        width = max((len(name) for name in self.errors), default=4)
        lines = [f"{name:<{width}}  rel. error {err:.2e}  ({self.checked[name]} entries)"
                 for name, err in self.errors.items()]
        return "\n".join(lines + [f"max relative error: {self.max_error:.2e}"])


def gradient_check(model_or_layer, x, y=None, loss=None, eps=1e-5, training=True, seed=0,
                   max_entries=None):
    """Compare analytic gradients with central finite differences, in float64.

    The objective is ``sum(output * R)`` for a fixed random ``R`` when ``y``
    is None (so every output entry matters), else the mean ``loss(y, output)``,
    plus what custom layers add with ``add_loss``. Weight regularization penalties
    are not part of it. Random masks (Dropout,
    DropConnect) are redrawn identically for every evaluation, and all weights,
    moving statistics and random streams are restored afterwards, so checking
    leaves the model as it was.

    Args:
        model_or_layer: a fastnn layer or Sequential model whose layers have
            ``dtype="float64"``; built on ``x`` if not built yet.
        x: a batch of inputs.
        y: optional targets; then ``loss`` (a fastnn loss or name) or the
            model's compiled loss is the objective.
        loss: the loss to use with ``y``.
        eps: the finite-difference step.
        training: run the layers in training mode (dropout, batch statistics).
        seed: seed of ``R`` and of the entries sampled by ``max_entries``.
        max_entries: check at most this many random entries per array (all
            when None): finite differences cost two forward passes per entry.

    Returns:
        A GradientCheckReport; ``float(report)`` is the max relative error.
        A correct backward pass gives errors around 1e-8 or below.

    Example:
        >>> from fastnn import layers, utils
        >>> layer = layers.Dense(3, activation="tanh", dtype="float64")
        >>> x = numpy.random.default_rng(0).normal(size=(4, 5))
        >>> float(utils.gradient_check(layer, x)) < 1e-6
        True
    """
    if not eps > 0:
        raise ValueError(f"gradient_check eps must be > 0, got {eps!r}")
    ops = get_ops()
    layers = _layers_of(model_or_layer, numpy.shape(x))
    x = ops.asarray(x, dtype="float64")
    objective = _Objective(ops, layers, x, y, _resolve_loss(model_or_layer, y, loss), training,
                           seed)
    state = _State(layers)
    try:
        analytic = objective.analytic_gradients(state)
        arrays = {"x": x}
        arrays.update({w.path: w.value for layer in layers for w in layer.trainable_weights})
        rng = numpy.random.default_rng(seed)
        errors, checked = {}, {}
        for name, array in arrays.items():
            numeric, entries = _numeric_gradient(objective, state, array, eps, rng, max_entries)
            errors[name] = _relative_error(analytic[name].reshape(-1)[entries],
                                           numeric[entries])
            checked[name] = len(entries)
    finally:
        state.rewind()
    return GradientCheckReport(errors, checked)


def _layers_of(target, x_shape):
    from ..layers.base import Layer
    if isinstance(target, Layer):
        if not target.built:
            target.build(tuple(x_shape[1:]))
        layers = [target]
    elif hasattr(target, "layers") and hasattr(target, "build"):
        if not target.built:
            target.build(tuple(x_shape[1:]))
        layers = list(target.layers)
    else:
        raise TypeError(f"gradient_check takes a fastnn layer or Sequential model, "
                        f"got {target!r}")
    wrong = [layer.name for layer in layers if layer.dtype != "float64"]
    if wrong:
        raise ValueError(f"gradient_check needs float64 layers (dtype='float64'); these are "
                         f"not: {', '.join(wrong)}")
    return layers


def _resolve_loss(target, y, loss):
    if y is None:
        if loss is not None:
            raise ValueError("gradient_check: a loss needs targets y")
        return None
    if loss is None:
        loss = getattr(target, "loss", None)
    if loss is None:
        raise ValueError("gradient_check with y needs a loss (loss=... or a compiled model)")
    return losses_mod.get(loss)


class _State:
    """Everything a forward pass may change, so each evaluation starts alike."""

    def __init__(self, layers):
        self.weights = [(w, w.value.copy()) for layer in layers for w in layer.weights]
        self.mask_counters = [(layer, layer.mask_calls) for layer in layers
                              if hasattr(layer, "mask_calls")]
        self.rng_state = get_rng().bit_generator.state

    def rewind(self):
        for weight, value in self.weights:
            weight.value[...] = value
        for layer, count in self.mask_counters:
            layer.mask_calls = count
        get_rng().bit_generator.state = self.rng_state


class _Objective:
    """The scalar that is differentiated, and its analytic gradients."""

    def __init__(self, ops, layers, x, y, loss, training, seed):
        self.ops, self.layers, self.x, self.loss, self.training = ops, layers, x, loss, training
        self.y = None if y is None else ops.asarray(y)
        self.weights_r = None
        if loss is None:
            out_shape = self._forward_value_shape()
            r = numpy.random.default_rng(seed).standard_normal(out_shape)
            self.weights_r = ops.asarray(r, dtype="float64")

    def _forward_value_shape(self):
        state = _State(self.layers)
        out, _ = self._forward()
        state.rewind()
        return out.shape

    def _forward(self):
        out, caches = self.x, []
        for layer in self.layers:
            out, cache = layer.forward(out, self.training)
            caches.append(cache)
        return out, caches

    def _value_and_dout(self, out, want_grad):
        if self.loss is None:
            dout = self.weights_r if want_grad else None
            return float((out * self.weights_r).sum()), dout
        dout = self.ops.xp.empty_like(out) if want_grad else None
        return float(self.loss.value_and_grad(self.ops, out, self.y, dout)), dout

    def value(self):
        out, _ = self._forward()
        added = sum(float(loss) for layer in self.layers for loss in layer.losses)
        return self._value_and_dout(out, False)[0] + added

    def analytic_gradients(self, state):
        """{"x": dx, weight name: grad} from one forward and one backward pass."""
        state.rewind()
        out, caches = self._forward()
        _, grad = self._value_and_dout(out, True)
        for layer, cache in zip(reversed(self.layers), reversed(caches)):
            grad = layer.backward(grad, cache, need_dx=True)
        grads = {"x": self.ops.to_numpy(grad).copy()}
        for layer in self.layers:
            for w in layer.trainable_weights:
                grads[w.path] = self.ops.to_numpy(w.grad).copy()
        return grads


def _numeric_gradient(objective, state, array, eps, rng, max_entries):
    """Central differences of the objective over (a sample of) the entries of ``array``."""
    entries = None
    if max_entries is not None and array.size > max_entries:
        entries = numpy.sort(rng.choice(array.size, size=max_entries, replace=False))
    numeric = numerical_gradient(objective.value, array, eps, entries, before=state.rewind)
    return numeric.reshape(-1), numpy.arange(array.size) if entries is None else entries


def numerical_gradient(f, array, eps=1e-5, entries=None, before=None):
    """Central-difference gradient of the scalar ``f()`` with respect to ``array``.

    ``array`` is perturbed in place, one entry at a time, and restored.

    Args:
        f: a function of no arguments that reads ``array`` and returns a float.
        array: a C-contiguous float64 array.
        eps: the step.
        entries: flat indices to differentiate (all when None); the others stay 0.
        before: called before every evaluation of ``f`` (to reset state).

    Returns:
        A NumPy array of ``array``'s shape.
    """
    if not array.flags.c_contiguous:
        raise ValueError("numerical_gradient perturbs its array in place: it must be "
                         "C-contiguous")
    flat = array.reshape(-1)  # a view of a C-contiguous array
    numeric = numpy.zeros(flat.size)
    for i in range(flat.size) if entries is None else entries:
        original = float(flat[i])
        values = []
        for shift in (eps, -eps):
            if before is not None:
                before()
            flat[i] = original + shift
            values.append(f())
        flat[i] = original
        numeric[i] = (values[0] - values[1]) / (2 * eps)
    return numeric.reshape(array.shape)


def _relative_error(analytic, numeric):
    scale = max(numpy.abs(analytic).max(initial=0.0), numpy.abs(numeric).max(initial=0.0))
    if scale == 0:
        return 0.0
    return float(numpy.abs(analytic - numeric).max() / scale)
