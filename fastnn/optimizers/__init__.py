"""Optimizers with Keras names and defaults; each step is one fused kernel over the model.

Update rules (g: gradient, p: parameter, t: step number from 1; every
optimizer first applies the decoupled ``weight_decay``: p -= lr * wd * p):
"""
from ..utils.registry import Registry
from . import schedules
from .base import Optimizer, check_unit_interval

_registry = Registry("optimizer")


def _register(cls):
    _registry.register(cls.__name__, cls.__name__.lower())(cls)
    return cls


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


@_register
class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    v = momentum * v - lr * g;  p += v  (nesterov: p += momentum * v - lr * g);
    without momentum p -= lr * g.
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
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = check_unit_interval("beta_1", beta_1)
        self.beta_2 = check_unit_interval("beta_2", beta_2)
        self.epsilon = _positive("epsilon", epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


@_register
class Adam(_AdamFamily):
    """Adam (AMSGrad with ``amsgrad=True``).

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  amsgrad: v̂ = max(v̂, v)
    p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v or v̂) + eps)
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
    """Adam with decoupled weight decay (default 0.004): p -= lr * wd * p, then Adam."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad,
                         weight_decay=weight_decay, **kwargs)


@_register
class Nadam(_AdamFamily):
    """Adam with Nesterov momentum and Keras' momentum-cache schedule.

    u_t = b1 (1 - 0.5 * 0.96^(0.004 t));  Π_t = u_1 ... u_t
    m, v as Adam;  m̂ = u_{t+1} m / (1 - Π_t u_{t+1}) + (1 - u_t) g / (1 - Π_t)
    p -= lr * m̂ / (sqrt(v / (1 - b2^t)) + eps)
    """

    slots = ("m", "v")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.u_product = 1.0

    def _u(self, step):
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** (0.004 * step))

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
    """acc += g^2;  p -= lr * g / sqrt(acc + eps)  (acc starts at 0.1)."""

    slots = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.slot_initial = {"accumulator": self.initial_accumulator_value}
        self.epsilon = _positive("epsilon", epsilon)

    def _update(self, ops, param, grad, slots, lr):
        ops.adagrad_step(param, grad, slots["accumulator"], lr, self.epsilon, self._decay())

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "initial_accumulator_value": self.initial_accumulator_value}


@_register
class Adadelta(Optimizer):
    """E[g²] = ρ E[g²] + (1-ρ) g²;  Δ = sqrt(E[Δ²] + eps) / sqrt(E[g²] + eps) * g;
    E[Δ²] = ρ E[Δ²] + (1-ρ) Δ²;  p -= lr * Δ."""

    slots = ("acc_grad", "acc_delta")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = check_unit_interval("rho", rho)
        self.epsilon = _positive("epsilon", epsilon)

    def _update(self, ops, param, grad, slots, lr):
        ops.adadelta_step(param, grad, slots["acc_grad"], slots["acc_delta"], lr, self.rho,
                          self.epsilon, self._decay())

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


@_register
class RMSprop(Optimizer):
    """ms = ρ ms + (1-ρ) g²;  centered: mg = ρ mg + (1-ρ) g, denom = ms - mg²;
    inc = lr g / sqrt(denom + eps);  momentum: mom = μ mom + inc, p -= mom; else p -= inc."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = check_unit_interval("rho", rho)
        self.momentum = check_unit_interval("momentum", momentum)
        self.epsilon = _positive("epsilon", epsilon)
        self.centered = bool(centered)
        self.slots = ("ms",) + (("mom",) if self.momentum > 0 else ()) + \
            (("mg",) if self.centered else ())

    def _update(self, ops, param, grad, slots, lr):
        ops.rmsprop_step(param, grad, slots["ms"], lr, self.rho, self.epsilon, self.momentum,
                         slots.get("mom"), slots.get("mg"), self._decay())

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


def get(identifier):
    """Resolve a name ("adam", "sgd", ...), an Optimizer or a {"class_name", "config"} dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return _registry.get(identifier)()
    if isinstance(identifier, dict) and "class_name" in identifier:
        return _registry.get(identifier["class_name"]).from_config(identifier.get("config", {}))
    raise ValueError(f"Cannot use {identifier!r} as an optimizer; known optimizers: "
                     f"{', '.join(_registry.names())}")


def serialize(optimizer):
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Nadam", "Adagrad", "Adadelta", "RMSprop",
           "schedules", "get", "serialize"]
