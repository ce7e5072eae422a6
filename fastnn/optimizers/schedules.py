"""Learning-rate schedules: callables ``schedule(step) -> lr`` with Keras 3 definitions.

``step`` counts optimizer steps taken so far, from 0; an optimizer created
with ``learning_rate=schedule`` uses ``schedule(optimizer.iterations)`` for
each step.
"""
import math

from ..utils.registry import Registry, serialize

_registry = Registry("learning-rate schedule")


def _number(name, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


class LearningRateSchedule:
    """Base class: ``__call__(step)`` returns the learning rate at that step."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return dict(vars(self))

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _DecayBase(LearningRateSchedule):
    """``initial_learning_rate``, ``decay_steps``, ``decay_rate``, ``staircase``."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name=None):
        self.initial_learning_rate = float(_number("initial_learning_rate",
                                                   initial_learning_rate))
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.decay_rate = float(_number("decay_rate", decay_rate))
        self.staircase = bool(staircase)
        self.name = name

    def _progress(self, step):
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p


@_registry.register("ExponentialDecay")
class ExponentialDecay(_DecayBase):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is floored, so the rate drops in steps.
    """

    def __call__(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


@_registry.register("InverseTimeDecay")
class InverseTimeDecay(_DecayBase):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``.

    With ``staircase=True`` the ratio ``step / decay_steps`` is floored.
    """

    def __call__(self, step):
        return self.initial_learning_rate / (1 + self.decay_rate * self._progress(step))


@_registry.register("PiecewiseConstantDecay")
class PiecewiseConstantDecay(LearningRateSchedule):
    """Step decay: ``values[0]`` while step <= boundaries[0], ``values[i]`` while
    boundaries[i-1] < step <= boundaries[i], and ``values[-1]`` after the last boundary.

    Args:
        boundaries: increasing step numbers.
        values: one more rate than there are boundaries.
    """

    def __init__(self, boundaries, values, name=None):
        boundaries = [_number("boundaries entry", b) for b in boundaries]
        values = [float(_number("values entry", v)) for v in values]
        if len(values) != len(boundaries) + 1:
            raise ValueError("PiecewiseConstantDecay needs len(values) == len(boundaries) + 1, "
                             f"got {len(values)} values for {len(boundaries)} boundaries")
        if any(b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay boundaries must increase, got {boundaries}")
        self.boundaries, self.values = boundaries, values
        self.name = name

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]


@_registry.register("CosineDecay")
class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup (Keras 3).

    Without ``warmup_target``: ``lr0 * ((1 - alpha) * c + alpha)`` with
    ``c = 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))``.
    With it: the rate rises linearly from ``lr0`` to ``warmup_target`` over
    ``warmup_steps``, then decays as above from ``warmup_target`` over the next
    ``decay_steps`` steps.

    Args:
        initial_learning_rate: lr0.
        decay_steps: steps of the cosine part (> 0).
        alpha: the final rate as a fraction of the peak.
        warmup_target: the rate reached at the end of the warmup (None: no warmup).
        warmup_steps: length of the warmup.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None,
                 warmup_steps=0, name=None):
        self.initial_learning_rate = float(_number("initial_learning_rate",
                                                   initial_learning_rate))
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.alpha = float(_number("alpha", alpha))
        self.warmup_target = (None if warmup_target is None
                              else float(_number("warmup_target", warmup_target)))
        if _number("warmup_steps", warmup_steps) < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
        self.warmup_steps = warmup_steps
        self.name = name

    def __call__(self, step):
        peak = self.initial_learning_rate
        if self.warmup_target is not None:
            if step < self.warmup_steps:
                return peak + (self.warmup_target - peak) * step / self.warmup_steps
            peak = self.warmup_target
        t = min(max(step - self.warmup_steps, 0), self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1 + math.cos(math.pi * t))
        return peak * ((1 - self.alpha) * cosine + self.alpha)


@_registry.register("PolynomialDecay")
class PolynomialDecay(LearningRateSchedule):
    """``(lr0 - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end``.

    With ``cycle=True`` the decay restarts: ``decay_steps`` is stretched to the first
    multiple of it at or above ``step`` (Keras 3).
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001,
                 power=1.0, cycle=False, name="PolynomialDecay"):
        self.initial_learning_rate = float(_number("initial_learning_rate",
                                                   initial_learning_rate))
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.end_learning_rate = float(_number("end_learning_rate", end_learning_rate))
        self.power = float(_number("power", power))
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step):
        steps = self.decay_steps
        if self.cycle:
            steps = steps * (1.0 if step == 0 else math.ceil(step / steps))
        else:
            step = min(step, steps)
        p = step / steps
        return ((self.initial_learning_rate - self.end_learning_rate) * (1 - p) ** self.power
                + self.end_learning_rate)


@_registry.register("CosineDecayRestarts")
class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter 2016).

    The first period lasts ``first_decay_steps``; each next one is ``t_mul`` times
    longer and starts from ``m_mul`` times the previous peak; within a period the
    rate follows ``lr0 * m_mul**i * ((1 - alpha) * 0.5 * (1 + cos(pi * f)) + alpha)``
    for the fraction ``f`` of the period completed.
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = float(_number("initial_learning_rate",
                                                   initial_learning_rate))
        self.first_decay_steps = _number("first_decay_steps", first_decay_steps,
                                         positive=True)
        self.t_mul = float(_number("t_mul", t_mul, positive=True))
        self.m_mul = float(_number("m_mul", m_mul))
        self.alpha = float(_number("alpha", alpha))
        self.name = name

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            restart = math.floor(math.log(1.0 - fraction * (1.0 - self.t_mul))
                                 / math.log(self.t_mul))
            done = (1.0 - self.t_mul ** restart) / (1.0 - self.t_mul)
            fraction = (fraction - done) / self.t_mul ** restart
        cosine = 0.5 * self.m_mul ** restart * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)


def get(identifier):
    """A schedule from itself or from a ``{"class_name", "config"}`` dict."""
    return _registry.resolve(identifier, LearningRateSchedule, from_name=False)


__all__ = ["LearningRateSchedule", "ExponentialDecay", "InverseTimeDecay",
           "PiecewiseConstantDecay", "CosineDecay", "PolynomialDecay", "CosineDecayRestarts",
           "get", "serialize"]
