"""Checks and small helpers for Keras' fit/evaluate/predict/compile arguments that shape
the loop rather than the math: ``validation_freq``, ``steps_per_epoch``, ``steps``,
``loss_weights`` and the execution options that have no effect here."""
import math
from collections.abc import Container


from ..utils.checks import check_positive_int

# compile() arguments that tune Keras' graph execution. fastnn runs every step eagerly in
# compiled kernels, so they are accepted (scripts keep running) and change nothing.
EXECUTION_OPTIONS = ("run_eagerly", "jit_compile", "steps_per_execution", "auto_scale_loss")


def check_execution_options(options):
    unknown = set(options) - set(EXECUTION_OPTIONS)
    if unknown:
        raise TypeError(f"compile() got unexpected keyword arguments {sorted(unknown)}")
    steps = options.get("steps_per_execution", 1)
    if steps not in (None, "auto"):
        check_positive_int("steps_per_execution", steps)


def loss_weight(loss_weights):
    """The single output's loss weight from a number, a one-element list or dict."""
    if loss_weights is None:
        return 1.0
    value = loss_weights
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"A Sequential model has one output: loss_weights needs one entry, "
                             f"got {loss_weights!r}")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"loss_weights must be a finite number >= 0, got {loss_weights!r}")
    return float(value)


def validation_epochs(validation_freq):
    """A predicate ``epoch -> validate?`` (epochs counted from 0): every ``n``-th epoch for
    an int, the listed 1-based epochs for a container (Keras)."""
    if isinstance(validation_freq, int) and not isinstance(validation_freq, bool):
        check_positive_int("validation_freq", validation_freq)
        return lambda epoch: (epoch + 1) % validation_freq == 0
    if isinstance(validation_freq, Container) and not isinstance(validation_freq, str):
        chosen = set(validation_freq)
        return lambda epoch: epoch + 1 in chosen
    raise ValueError(f"validation_freq must be an int or a list of epochs, got "
                     f"{validation_freq!r}")


def optional_steps(name, steps):
    return None if steps is None else check_positive_int(name, steps)


class BatchOrder:
    """The sample order of training batches across epochs.

    Without ``steps_per_epoch`` each epoch is one pass over a fresh permutation (drawn at
    the epoch's start). With it, an epoch is that many batches taken from a stream of
    passes that continues across epochs, as Keras iterates arrays.
    """

    def __init__(self, batch_size, draw_order):
        # draw_order() gives one pass's order: a permutation of range(n), or, data-parallel,
        # the order the processes share (which may leave out a last batch too small to split).
        self.batch_size, self.draw_order = batch_size, draw_order
        self.order, self.position = None, 0

    def epoch(self, steps_per_epoch):
        """(step, order, start, stop) for each batch of the next epoch."""
        if steps_per_epoch is None:  # one pass over a fresh order, drawn at the start
            self.order, self.position = self.draw_order(), 0
            steps = -(-len(self.order) // self.batch_size)
        else:
            steps = steps_per_epoch
        for step in range(steps):
            if self.order is None or self.position >= len(self.order):
                self.order, self.position = self.draw_order(), 0
            start = self.position
            stop = min(start + self.batch_size, len(self.order))
            self.position = stop
            yield step, self.order, start, stop
