"""BatchNormalization and LayerNormalization with Keras semantics."""
from ..backend import get_ops
from .base import Layer, register


def _check_epsilon(epsilon):
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
    return float(epsilon)


@register
class BatchNormalization(Layer):
    """Normalise each feature over the batch.

    Training: batch mean and biased variance; the moving statistics update as
    ``moving = momentum * moving + (1 - momentum) * batch`` (Keras). Inference:
    the moving statistics. Weights, in Keras order: gamma, beta (trainable),
    moving_mean, moving_variance (not trainable).
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.epsilon = _check_epsilon(epsilon)
        self.center, self.scale = bool(center), bool(scale)

    def build(self, input_shape):
        super().build(input_shape)
        if len(self.input_shape) != 1:
            raise ValueError(f"BatchNormalization takes 1-D features, got {self.input_shape}")
        d = self.input_shape
        self.gamma = self.add_weight("gamma", d, "ones", trainable=self.scale)
        self.beta = self.add_weight("beta", d, "zeros", trainable=self.center)
        self.moving_mean = self.add_weight("moving_mean", d, "zeros", trainable=False)
        self.moving_variance = self.add_weight("moving_variance", d, "ones", trainable=False)

    def forward(self, x, training=False):
        ops = get_ops()
        if not training:
            return ops.batchnorm_inference(x, self.gamma.value, self.beta.value,
                                           self.moving_mean.value, self.moving_variance.value,
                                           self.epsilon), None
        xhat = ops.xp.empty_like(x)
        y, mean, var, inv_std = ops.batchnorm_forward(x, self.gamma.value, self.beta.value,
                                                      self.epsilon, xhat_out=xhat)
        ops.ema_update(self.moving_mean.value, mean.astype(x.dtype, copy=False), self.momentum)
        ops.ema_update(self.moving_variance.value, var.astype(x.dtype, copy=False),
                       self.momentum)
        return y, (xhat, inv_std)

    def backward(self, dy, cache, need_dx=True):
        ops = get_ops()
        xhat, inv_std = cache
        dx, dgamma, dbeta = ops.batchnorm_backward(dy, xhat, self.gamma.value, inv_std)
        if self._trainable:
            if self.scale:
                self.gamma.grad[...] = dgamma
            if self.center:
                self.beta.grad[...] = dbeta
        return dx if need_dx else None

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, epsilon=self.epsilon, center=self.center,
                      scale=self.scale)
        return config


@register
class LayerNormalization(Layer):
    """Normalise each sample over its features, then scale by gamma and shift by beta."""

    def __init__(self, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = _check_epsilon(epsilon)
        self.center, self.scale = bool(center), bool(scale)

    def build(self, input_shape):
        super().build(input_shape)
        if len(self.input_shape) != 1:
            raise ValueError(f"LayerNormalization takes 1-D features, got {self.input_shape}")
        self.gamma = self.add_weight("gamma", self.input_shape, "ones", trainable=self.scale)
        self.beta = self.add_weight("beta", self.input_shape, "zeros", trainable=self.center)

    def forward(self, x, training=False):
        ops = get_ops()
        xhat = ops.xp.empty_like(x)
        y, inv_std = ops.layernorm_forward(x, self.gamma.value, self.beta.value, self.epsilon,
                                           xhat_out=xhat)
        return y, (xhat, inv_std)

    def backward(self, dy, cache, need_dx=True):
        ops = get_ops()
        xhat, inv_std = cache
        dx, dgamma, dbeta = ops.layernorm_backward(dy, xhat, self.gamma.value, inv_std)
        if self._trainable:
            if self.scale:
                self.gamma.grad[...] = dgamma
            if self.center:
                self.beta.grad[...] = dbeta
        return dx if need_dx else None

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon, center=self.center, scale=self.scale)
        return config
