"""Learning-rate schedules: callables ``schedule(step) -> lr`` with Keras definitions.

``step`` counts optimizer steps from 0.
"""
import math

from ..utils.registry import Registry

_registry = Registry("learning-rate schedule")


class LearningRateSchedule:
    """Base class: ``__call__(step)`` returns the learning rate at that step."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return dict(vars(self))

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _positive(name, value):
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


@_registry.register("ExponentialDecay")
class ExponentialDecay(LearningRateSchedule):
    """lr0 * decay_rate ** (step / decay_steps); floor the exponent when ``staircase``."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p


@_registry.register("InverseTimeDecay")
class InverseTimeDecay(LearningRateSchedule):
    """lr0 / (1 + decay_rate * step / decay_steps); floor the ratio when ``staircase``."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1 + self.decay_rate * p)


@_registry.register("PiecewiseConstantDecay")
class PiecewiseConstantDecay(LearningRateSchedule):
    """Step decay: ``values[i]`` while step <= boundaries[i] (``values`` has one more entry)."""

    def __init__(self, boundaries, values):
        boundaries, values = list(boundaries), [float(v) for v in values]
        if len(values) != len(boundaries) + 1:
            raise ValueError("PiecewiseConstantDecay needs len(values) == len(boundaries) + 1")
        if any(b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ValueError("PiecewiseConstantDecay boundaries must increase")
        self.boundaries, self.values = boundaries, values

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]


@_registry.register("CosineDecay")
class CosineDecay(LearningRateSchedule):
    """Optional linear warmup to ``warmup_target``, then cosine decay to ``alpha * peak``."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.alpha = float(alpha)
        self.warmup_target = None if warmup_target is None else float(warmup_target)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        peak = self.initial_learning_rate
        if self.warmup_target is not None:
            if step < self.warmup_steps:
                return peak + (self.warmup_target - peak) * step / self.warmup_steps
            peak = self.warmup_target
        t = min(max(step - self.warmup_steps, 0), self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1 + math.cos(math.pi * t))
        return peak * ((1 - self.alpha) * cosine + self.alpha)


def get(identifier):
    if isinstance(identifier, dict) and "class_name" in identifier:
        return _registry.get(identifier["class_name"]).from_config(identifier.get("config", {}))
    raise ValueError(f"Cannot use {identifier!r} as a schedule; known: "
                     f"{', '.join(_registry.names())}")


def serialize(schedule):
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}
