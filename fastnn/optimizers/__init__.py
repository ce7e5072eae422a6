"""Optimizers with Keras 3 names, defaults and update rules.

Each step is one fused Ops call over the model's flat parameter buffer (see
``base.py`` for the common arguments and the order of one step). In the
formulas, g is the gradient, p the parameter, lr the learning rate of this
step and t the step number counted from 1. Every optimizer accepts
``weight_decay``, applied before its rule as ``p -= lr * weight_decay * p``.
"""
from ..utils.checks import check_non_negative, check_positive, check_unit_interval
from ..utils.registry import Registry, serialize
from . import schedules
from .base import Optimizer

_registry = Registry("optimizer")


def _register(cls):
    _registry.register(cls.__name__, cls.__name__.lower())(cls)
    return cls


@_register
class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    Without momentum: ``p -= lr * g``. With momentum (velocity v starts at 0):
    ``v = momentum * v - lr * g``, then ``p += v``, or with ``nesterov=True``
    ``p += momentum * v - lr * g`` (using the new v).

    Args:
        learning_rate: float or schedule, default 0.01.
        momentum: in [0, 1), default 0.
        nesterov: use Nesterov momentum.
    """

    slots = ("velocity",)

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = check_unit_interval("momentum", momentum)
        self.nesterov = bool(nesterov)

    def _update(self, ops, param, grad, slots, lr):
        ops.sgd_step(param, grad, slots["velocity"], lr, self.momentum, self.nesterov,
                     self._decay())

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class _AdamFamily(Optimizer):
    """Shared hyperparameters of Adam and Nadam."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = check_unit_interval("beta_1", beta_1)
        self.beta_2 = check_unit_interval("beta_2", beta_2)
        self.epsilon = check_positive("epsilon", epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


@_register
class Adam(_AdamFamily):
    """Adam, or AMSGrad with ``amsgrad=True`` (m, v, v̂ start at 0).

    ``m = b1 * m + (1 - b1) * g``;  ``v = b2 * v + (1 - b2) * g**2``;
    amsgrad: ``v̂ = max(v̂, v)`` and v̂ replaces v below;
    ``p -= lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + eps)``.
    (Keras' form: eps is added to the uncorrected sqrt(v).)

    Args:
        learning_rate: float or schedule, default 0.001.
        beta_1, beta_2: moment decay rates in [0, 1), default 0.9 and 0.999.
        epsilon: > 0, default 1e-7.
        amsgrad: keep the running maximum of v.
    """

    slots = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.amsgrad = bool(amsgrad)
        if self.amsgrad:
            self.slots = ("m", "v", "vhat")

    def _update(self, ops, param, grad, slots, lr):
        ops.adam_step(param, grad, slots["m"], slots["v"], lr, self.beta_1, self.beta_2,
                      self.epsilon, self.iterations, self._decay(), slots.get("vhat"))

    def get_config(self):
        return {**super().get_config(), "amsgrad": self.amsgrad}


@_register
class AdamW(Adam):
    """Adam with decoupled weight decay, on by default (``weight_decay=0.004``).

    ``p -= lr * weight_decay * p``, then the Adam rule.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad,
                         weight_decay=weight_decay, **kwargs)


@_register
class Nadam(_AdamFamily):
    """Adam with Nesterov momentum and Keras 3's momentum schedule.

    ``u_t = b1 * (1 - 0.5 * 0.96**t)``;  ``P_t = u_1 * ... * u_t``;
    m and v update as in Adam, then
    ``m̂ = u_{t+1} * m / (1 - P_t * u_{t+1}) + (1 - u_t) * g / (1 - P_t)``,
    ``v̂ = v / (1 - b2**t)``, ``p -= lr * m̂ / (sqrt(v̂) + eps)``.

    Args:
        learning_rate: float or schedule, default 0.001.
        beta_1, beta_2: moment decay rates in [0, 1), default 0.9 and 0.999.
        epsilon: > 0, default 1e-7.
    """

    slots = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.u_product = 1.0

    def _u(self, step):
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** step)

    def apply(self, store):
        t = self.iterations + 1
        self._u_t, self._u_t1 = self._u(t), self._u(t + 1)
        self.u_product *= self._u_t
        super().apply(store)

    def _update(self, ops, param, grad, slots, lr):
        ops.nadam_step(param, grad, slots["m"], slots["v"], lr, self.beta_1, self.beta_2,
                       self.epsilon, self.iterations, self._u_t, self._u_t1, self.u_product,
                       self._decay())


@_register
class Adagrad(Optimizer):
    """Adagrad: ``acc += g**2``;  ``p -= lr * g / sqrt(acc + eps)``.

    Args:
        learning_rate: float or schedule, default 0.001.
        initial_accumulator_value: starting value of acc (>= 0), default 0.1.
        epsilon: > 0, default 1e-7.
    """

    slots = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if isinstance(initial_accumulator_value, bool) or \
                not isinstance(initial_accumulator_value, (int, float)) or \
                not initial_accumulator_value >= 0:
            raise ValueError("initial_accumulator_value must be a number >= 0, got "
                             f"{initial_accumulator_value!r}")
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.slot_initial = {"accumulator": self.initial_accumulator_value}
        self.epsilon = check_positive("epsilon", epsilon)

    def _update(self, ops, param, grad, slots, lr):
        ops.adagrad_step(param, grad, slots["accumulator"], lr, self.epsilon, self._decay())

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "initial_accumulator_value": self.initial_accumulator_value}


@_register
class Adadelta(Optimizer):
    """Adadelta (both accumulators start at 0).

    ``Eg = rho * Eg + (1 - rho) * g**2``;
    ``d = sqrt(Ed + eps) / sqrt(Eg + eps) * g``;
    ``Ed = rho * Ed + (1 - rho) * d**2``;  ``p -= lr * d``.

    Args:
        learning_rate: float or schedule, default 0.001 (Keras 3).
        rho: decay rate in [0, 1), default 0.95.
        epsilon: > 0, default 1e-7.
    """

    slots = ("acc_grad", "acc_delta")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = check_unit_interval("rho", rho)
        self.epsilon = check_positive("epsilon", epsilon)

    def _update(self, ops, param, grad, slots, lr):
        ops.adadelta_step(param, grad, slots["acc_grad"], slots["acc_delta"], lr, self.rho,
                          self.epsilon, self._decay())

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


@_register
class RMSprop(Optimizer):
    """RMSprop, optionally centered and with momentum (all slots start at 0).

    ``ms = rho * ms + (1 - rho) * g**2``; denominator ``ms + eps``, or when
    centered ``mg = rho * mg + (1 - rho) * g`` and ``ms - mg**2 + eps``;
    ``inc = lr * g / sqrt(denominator)``; with momentum
    ``mom = momentum * mom + inc`` and ``p -= mom``, else ``p -= inc``.

    Args:
        learning_rate: float or schedule, default 0.001.
        rho: decay rate in [0, 1), default 0.9.
        momentum: in [0, 1), default 0.
        epsilon: > 0, default 1e-7.
        centered: normalise by the estimated variance instead of the second moment.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = check_unit_interval("rho", rho)
        self.momentum = check_unit_interval("momentum", momentum)
        self.epsilon = check_positive("epsilon", epsilon)
        self.centered = bool(centered)
        self.slots = ("ms",) + (("mom",) if self.momentum > 0 else ()) + \
            (("mg",) if self.centered else ())

    def _update(self, ops, param, grad, slots, lr):
        ops.rmsprop_step(param, grad, slots["ms"], lr, self.rho, self.epsilon, self.momentum,
                         slots.get("mom"), slots.get("mg"), self._decay())

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


@_register
class Adamax(_AdamFamily):
    """Adamax, Adam with the infinity norm (Kingma & Ba 2015, section 7.1):
    ``m = b1 * m + (1 - b1) * g``;  ``u = max(b2 * u, |g|)``;
    ``p -= lr / (1 - b1**t) * m / (u + eps)``.

    Args:
        learning_rate: float or schedule, default 0.001.
        beta_1, beta_2: decay rates in [0, 1), default 0.9 and 0.999.
        epsilon: > 0, default 1e-7.
    """

    slots = ("m", "u")

    def _update(self, ops, param, grad, slots, lr):
        ops.adamax_step(param, grad, slots["m"], slots["u"], lr, self.beta_1, self.epsilon,
                        self.iterations, self.beta_2, self._decay())


@_register
class Lion(Optimizer):
    """Lion (Chen et al. 2023): ``p -= lr * sign(b1 * m + (1 - b1) * g)``, then
    ``m = b2 * m + (1 - b2) * g``. Every step has the same size per entry, so it wants a
    learning rate 3-10x smaller than Adam's.

    Args:
        learning_rate: float or schedule, default 0.001.
        beta_1: interpolation for the update direction, in [0, 1), default 0.9.
        beta_2: momentum decay, in [0, 1), default 0.99.
    """

    slots = ("m",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = check_unit_interval("beta_1", beta_1)
        self.beta_2 = check_unit_interval("beta_2", beta_2)

    def _update(self, ops, param, grad, slots, lr):
        ops.lion_step(param, grad, slots["m"], lr, self.beta_1, self.beta_2, self._decay())

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


@_register
class Ftrl(Optimizer):
    """FTRL-proximal (McMahan et al. 2013), Keras 3's form: per-coordinate rates from the
    accumulated squared gradients, with L1 (which sets weights exactly to zero) and L2
    penalties inside the update.

    Args:
        learning_rate: float or schedule, default 0.001.
        learning_rate_power: <= 0, default -0.5 (the rate shrinks as 1/sqrt(n)).
        initial_accumulator_value: >= 0, default 0.1.
        l1_regularization_strength, l2_regularization_strength: >= 0.
        l2_shrinkage_regularization_strength: >= 0, an L2 penalty on the gradient's side.
        beta: default 0 (adds ``beta / (2 lr)`` to the L2 strength).
    """

    slots = ("accumulator", "linear")

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if isinstance(learning_rate_power, bool) or \
                not isinstance(learning_rate_power, (int, float)) or learning_rate_power > 0:
            raise ValueError(f"learning_rate_power must be a number <= 0, got "
                             f"{learning_rate_power!r}")
        self.learning_rate_power = float(learning_rate_power)
        self.initial_accumulator_value = check_non_negative("initial_accumulator_value",
                                                            initial_accumulator_value)
        self.l1_regularization_strength = check_non_negative(
            "l1_regularization_strength", l1_regularization_strength)
        self.l2_regularization_strength = check_non_negative(
            "l2_regularization_strength", l2_regularization_strength)
        self.l2_shrinkage_regularization_strength = check_non_negative(
            "l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength)
        self.beta = check_non_negative("beta", beta)
        self.slot_initial = {"accumulator": self.initial_accumulator_value}

    def _update(self, ops, param, grad, slots, lr):
        ops.ftrl_step(param, grad, slots["accumulator"], slots["linear"], lr,
                      self.learning_rate_power, self.l1_regularization_strength,
                      self.l2_regularization_strength,
                      self.l2_shrinkage_regularization_strength, self.beta, self._decay())

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength":
                    self.l2_shrinkage_regularization_strength,
                "beta": self.beta}


def get(identifier):
    """Resolve a name ("adam", "sgd", ...), an Optimizer or a {"class_name", "config"} dict."""
    return _registry.resolve(identifier, Optimizer)



__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Nadam", "Adagrad", "Adadelta", "RMSprop",
           "Adamax", "Lion", "Ftrl",
           "schedules", "get", "serialize"]
