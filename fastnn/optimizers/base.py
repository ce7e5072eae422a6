"""The optimizer base: one fused Ops step over a model's flat parameter buffer.

A model keeps every trainable parameter as a view into one flat ``params``
array and every gradient in one flat ``grads`` array (see
``fastnn.models.parameters``). An optimizer allocates its slots (momentum,
second moments, ...) as flat arrays of the same size and updates the whole
model with one kernel call per contiguous run of trainable parameters: one
call in total unless some layers are frozen.

Common arguments (Keras 3):
    learning_rate: a float or a ``fastnn.optimizers.schedules`` schedule.
    weight_decay: decoupled decay, ``p -= lr * weight_decay * p`` before the step.
    clipnorm: clip each weight's gradient to this L2 norm:
        ``g *= clipnorm / max(||g||, clipnorm)``.
    clipvalue: clip each gradient entry to [-clipvalue, clipvalue].
    global_clipnorm: clip all gradients together to this L2 norm.
        At most one of the three clipping options may be set; each must be > 0.
    use_ema, ema_momentum: keep an exponential moving average of the weights,
        after each step ``ema = m * ema + (1 - m) * p`` (the first step copies
        ``p``: m = 0 there, as in Keras 3); ``fit`` swaps it in at the end.

Order of one step (Keras 3): clip the gradients, apply the decoupled weight
decay with the rate of this step, run the update rule, update the EMA, then
count the step (``iterations += 1``). A schedule is evaluated at the number of
steps taken so far, starting from 0.
"""
import math

from ..backend import get_ops
from ..utils.checks import check_non_negative, check_positive, check_unit_interval
from . import schedules


class Optimizer:
    """Base class. Subclasses name their ``slots`` and implement ``_update``."""

    slots = ()           # names of flat state arrays, allocated at build
    slot_initial = {}    # initial values of slots that do not start at 0

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, name=None):
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            self._schedule = learning_rate
            self._learning_rate = None
        else:
            self._schedule = None
            self._learning_rate = check_non_negative("learning_rate", learning_rate)
        self.weight_decay = check_non_negative("weight_decay", weight_decay, allow_none=True)
        self.clipnorm = check_positive("clipnorm", clipnorm, allow_none=True)
        self.clipvalue = check_positive("clipvalue", clipvalue, allow_none=True)
        self.global_clipnorm = check_positive("global_clipnorm", global_clipnorm,
                                              allow_none=True)
        if sum(c is not None for c in (self.clipnorm, self.clipvalue, self.global_clipnorm)) > 1:
            raise ValueError("Use only one of clipnorm, clipvalue and global_clipnorm")
        self.use_ema = bool(use_ema)
        self.ema_momentum = check_unit_interval("ema_momentum", ema_momentum)
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self.state = {}
        self._views_key, self._views = None, []
        self._size = None

    # ---------------------------------------------------------------- learning rate
    @property
    def learning_rate(self):
        """The rate of the next step (a schedule's value at ``iterations``)."""
        if self._schedule is not None:
            return float(self._schedule(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        """Set a new rate or schedule; a float cannot replace a schedule (Keras 3)."""
        if isinstance(value, schedules.LearningRateSchedule):
            self._schedule, self._learning_rate = value, None
            return
        if self._schedule is not None:
            raise TypeError("This optimizer was created with a LearningRateSchedule as its "
                            "learning_rate, so its learning rate cannot be set to a number; "
                            "create the optimizer with a float learning_rate instead")
        self._learning_rate = check_non_negative("learning_rate", value)

    # ---------------------------------------------------------------- state
    def build(self, store):
        """Allocate flat slot arrays for a parameter store of ``store.size`` entries."""
        ops = get_ops()
        self._size = store.size
        self.state = {}
        for name in self.slots:
            arr = ops.alloc(store.size, store.params.dtype)
            if self.slot_initial.get(name):
                arr[...] = self.slot_initial[name]
            self.state[name] = arr
        if self.use_ema:
            self.state["ema"] = store.params.copy()

    @property
    def built(self):
        return self._size is not None

    # ---------------------------------------------------------------- stepping
    def apply(self, store):
        """One step on every trainable parameter of ``store`` using ``store.grads``."""
        ops = get_ops()
        if self._size != store.size:
            self.build(store)
        lr = self.learning_rate
        self.iterations += 1
        ranges = store.trainable_ranges()
        self._clip(ops, store, ranges)
        for params, grads, slots in self._run_views(store, ranges):
            self._update(ops, params, grads, slots, lr)
        if self.use_ema:
            momentum = self.ema_momentum if self.iterations > 1 else 0.0
            ops.ema_update(self.state["ema"], store.params, momentum)

    def _run_views(self, store, ranges):
        """(params, grads, slots) views of each trainable run; rebuilt only when the store,
        the runs or the slot arrays change, so a step allocates nothing in Python."""
        key = (store.params, store.grads, ranges, *self.state.values())
        old = self._views_key
        if old is None or len(old) != len(key) or any(a is not b for a, b in zip(old, key)):
            self._views = [(store.params[a:b], store.grads[a:b],
                            {k: v[a:b] for k, v in self.state.items() if k != "ema"})
                           for a, b in ranges]
            self._views_key = key
        return self._views

    def _clip(self, ops, store, ranges):
        grads = store.grads
        if self.clipvalue is not None:
            for start, stop in ranges:
                ops.clip_by_value(grads[start:stop], self.clipvalue)
        elif self.clipnorm is not None:
            for start, stop in store.trainable_weight_ranges():
                _clip_to_norm(ops, grads[start:stop], self.clipnorm)
        elif self.global_clipnorm is not None:
            norm = math.sqrt(sum(ops.sumsq(grads[a:b]) for a, b in ranges))
            if norm > self.global_clipnorm:
                for start, stop in ranges:
                    ops.scale(grads[start:stop], self.global_clipnorm / norm)

    def _update(self, ops, param, grad, slots, lr):
        raise NotImplementedError

    def _decay(self):
        return self.weight_decay or 0.0

    # ---------------------------------------------------------------- config
    def get_config(self):
        lr = (schedules.serialize(self._schedule) if self._schedule is not None
              else self._learning_rate)
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm, "use_ema": self.use_ema,
                "ema_momentum": self.ema_momentum}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.get(config["learning_rate"])
        return cls(**config)


def _clip_to_norm(ops, grad, max_norm):
    norm = math.sqrt(ops.sumsq(grad))
    if norm > max_norm:
        ops.scale(grad, max_norm / norm)
