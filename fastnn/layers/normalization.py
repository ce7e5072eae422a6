"""BatchNormalization and LayerNormalization with Keras semantics."""
import numpy

from .. import constraints, initializers, regularizers
from ..backend import get_ops
from ..engine.stages import Kind, Stage
from .base import Layer, register
from ..utils.checks import check_positive, is_number


def _check_epsilon(epsilon):
    return check_positive("epsilon", epsilon)


class _Normalization(Layer):
    """Shared by both norms: optional gamma (``scale``) and beta (``center``) over 1-D features.

    As in Keras, a disabled gamma or beta is not a weight at all; the math then
    uses a constant 1 or 0.
    """

    def __init__(self, epsilon=1e-3, center=True, scale=True, axis=-1,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, 1, [-1], [1]):
            raise ValueError(f"{type(self).__name__} normalises the features (axis=-1) of 1-D "
                             f"samples, got axis={axis!r}")
        self.axis = -1
        self.epsilon = _check_epsilon(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.gamma = self.beta = None

    def build(self, input_shape):
        super().build(input_shape)
        if len(self.input_shape) != 1:
            raise ValueError(f"{type(self).__name__} takes 1-D features per sample, got input "
                             f"shape {self.input_shape}; add a Flatten layer first")
        d = self.input_shape
        if self.scale:
            self.gamma = self.add_weight("gamma", d, self.gamma_initializer,
                                         regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight("beta", d, self.beta_initializer,
                                        regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint)
        self._ones = numpy.ones(d, dtype=self.dtype)
        self._zeros = numpy.zeros(d, dtype=self.dtype)

    def _gamma_value(self, ops):
        return self.gamma.value if self.scale else ops.asarray(self._ones)

    def _beta_value(self, ops):
        return self.beta.value if self.center else ops.asarray(self._zeros)

    def _norm_stage(self, kind, **fields):
        d = self.input_shape[-1]
        return Stage(kind, self, d, d, epsilon=self.epsilon,
                     gamma=self.gamma.value if self.scale else None,
                     beta=self.beta.value if self.center else None,
                     gamma_grad=self._grad(self.gamma), beta_grad=self._grad(self.beta),
                     **fields)

    def _write_affine_grads(self, dgamma, dbeta):
        if not self._trainable:
            return
        if self.scale:
            self.gamma.grad[...] = dgamma
        if self.center:
            self.beta.grad[...] = dbeta

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis, epsilon=self.epsilon, center=self.center,
                      scale=self.scale,
                      beta_initializer=initializers.serialize(self.beta_initializer),
                      gamma_initializer=initializers.serialize(self.gamma_initializer),
                      beta_regularizer=regularizers.serialize(self.beta_regularizer),
                      gamma_regularizer=regularizers.serialize(self.gamma_regularizer),
                      beta_constraint=constraints.serialize(self.beta_constraint),
                      gamma_constraint=constraints.serialize(self.gamma_constraint))
        return config


@register
class BatchNormalization(_Normalization):
    """Normalise each feature over the batch.

    Training: batch mean and biased variance; the moving statistics update as
    ``moving = momentum * moving + (1 - momentum) * batch`` (Keras). Inference:
    the moving statistics. Weights, in Keras order: gamma (if ``scale``), beta
    (if ``center``), moving_mean, moving_variance (the last two never trainable).

    As in Keras 3, a frozen layer (``trainable = False``) runs in inference
    mode even when ``training=True``: it neither uses batch statistics nor
    updates its moving averages.

    Args:
        momentum: moving-average momentum, in [0, 1).
        epsilon: added to the variance, > 0.
        center, scale: learn beta / gamma.
        synchronized: when training data-parallel (``fastnn.distributed``), take the
            batch statistics over the global batch (one allreduce of the batch moments
            forward and one backward) instead of each process's shard. One process:
            no effect.
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 synchronized=False, **kwargs):
        super().__init__(epsilon=epsilon, center=center, scale=scale, **kwargs)
        if not is_number(momentum) or not 0 <= momentum < 1:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.synchronized = bool(synchronized)
        # Set by fastnn.distributed while it trains: sums a float64 vector over processes.
        self.cross_replica_sum = None

    def build(self, input_shape):
        super().build(input_shape)
        self.moving_mean = self.add_weight("moving_mean", self.input_shape,
                                           self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", self.input_shape,
                                               self.moving_variance_initializer,
                                               trainable=False)

    def stages(self):
        """A BATCHNORM stage (synchronized statistics across processes stay HOST)."""
        if not self._lowers_as(BatchNormalization) or (
                self.synchronized and self.cross_replica_sum is not None):
            return super().stages()
        return [self._norm_stage(Kind.BATCHNORM, moving_mean=self.moving_mean.value,
                                 moving_variance=self.moving_variance.value,
                                 momentum=self.momentum, batch_stats=self._trainable)]

    def forward(self, x, training=False):
        ops = get_ops()
        gamma, beta = self._gamma_value(ops), self._beta_value(ops)
        if not (training and self._trainable):
            y = ops.batchnorm_inference(x, gamma, beta, self.moving_mean.value,
                                        self.moving_variance.value, self.epsilon)
            return y, ("inference", x)
        if self.synchronized and self.cross_replica_sum is not None:
            return self._synchronized_forward(ops, x, gamma, beta)
        xhat = ops.xp.empty_like(x)
        y, mean, var, inv_std = ops.batchnorm_forward(x, gamma, beta, self.epsilon,
                                                      xhat_out=xhat)
        ops.ema_update(self.moving_mean.value, mean.astype(x.dtype, copy=False), self.momentum)
        ops.ema_update(self.moving_variance.value, var.astype(x.dtype, copy=False),
                       self.momentum)
        return y, ("training", (xhat, inv_std))

    def _synchronized_forward(self, ops, x, gamma, beta):
        """Training forward with the mean and variance of the global batch."""
        xp, d = ops.xp, x.shape[1]
        x64 = x.astype("float64")
        local = xp.concatenate([x64.sum(axis=0), (x64 * x64).sum(axis=0),
                                xp.asarray([x.shape[0]], dtype="float64")])
        total = self.cross_replica_sum(local)
        count = float(total[-1])
        mean = total[:d] / count
        var = xp.maximum(total[d:2 * d] / count - mean * mean, 0.0)
        inv_std = 1.0 / xp.sqrt(var + self.epsilon)
        xhat = ((x64 - mean) * inv_std).astype(x.dtype)
        y = xhat * gamma + beta
        ops.ema_update(self.moving_mean.value, mean.astype(x.dtype), self.momentum)
        ops.ema_update(self.moving_variance.value, var.astype(x.dtype), self.momentum)
        return y, ("synchronized", (xhat, inv_std.astype(x.dtype), count))

    def _synchronized_backward(self, ops, dy, saved, gamma):
        """Backward through global-batch statistics: the two batch sums are allreduced.

        Each process's ``dy`` is scaled for its own shard mean (1/m), so the sums are
        weighted by m / count, as the gradients are when they are averaged.
        """
        xp, d = ops.xp, dy.shape[1]
        xhat, inv_std, count = saved
        m = dy.shape[0]
        dbeta = dy.sum(axis=0, dtype="float64")
        dgamma = (dy * xhat).sum(axis=0, dtype="float64")
        total = self.cross_replica_sum(xp.concatenate([dbeta, dgamma]) * (m / count))
        dx = (gamma * inv_std) * (dy - (total[:d] / m).astype(dy.dtype)
                                  - xhat * (total[d:] / m).astype(dy.dtype))
        return dx.astype(dy.dtype, copy=False), dgamma.astype(dy.dtype), dbeta.astype(dy.dtype)

    def backward(self, dy, cache, need_dx=True):
        ops = get_ops()
        mode, saved = cache
        gamma = self._gamma_value(ops)
        if mode == "synchronized":
            dx, dgamma, dbeta = self._synchronized_backward(ops, dy, saved, gamma)
        elif mode == "inference":
            dx, dgamma, dbeta = ops.batchnorm_inference_backward(
                dy, saved, gamma, self.moving_mean.value, self.moving_variance.value,
                self.epsilon)
        else:
            xhat, inv_std = saved
            dx, dgamma, dbeta = ops.batchnorm_backward(dy, xhat, gamma, inv_std)
        self._write_affine_grads(dgamma, dbeta)
        return dx if need_dx else None

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, moving_mean_initializer=initializers.serialize(
            self.moving_mean_initializer), moving_variance_initializer=initializers.serialize(
            self.moving_variance_initializer), synchronized=self.synchronized)
        return config


@register
class LayerNormalization(_Normalization):
    """Normalise each sample over its features, then scale by gamma and shift by beta.

    Args:
        epsilon: added to the variance, > 0 (Keras 3 default 1e-3).
        center, scale: learn beta / gamma.
    """

    def stages(self):
        if not self._lowers_as(LayerNormalization):
            return super().stages()
        return [self._norm_stage(Kind.LAYERNORM)]

    def forward(self, x, training=False):
        ops = get_ops()
        xhat = ops.xp.empty_like(x)
        y, inv_std = ops.layernorm_forward(x, self._gamma_value(ops), self._beta_value(ops),
                                           self.epsilon, xhat_out=xhat)
        return y, (xhat, inv_std)

    def backward(self, dy, cache, need_dx=True):
        ops = get_ops()
        xhat, inv_std = cache
        dx, dgamma, dbeta = ops.layernorm_backward(dy, xhat, self._gamma_value(ops), inv_std)
        self._write_affine_grads(dgamma, dbeta)
        return dx if need_dx else None
