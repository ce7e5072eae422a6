"""One flat buffer for all of a model's parameters, another for their gradients.

``ParameterStore.pack(layers)`` copies every trainable-kind weight into one
contiguous ``params`` array and points each ``Weight.value`` / ``Weight.grad``
at its slice of ``params`` / ``grads``. Optimizers then update the whole model
with one kernel call. Non-trainable state (batch-norm moving statistics) stays
in the layers' own arrays.
"""
from ..backend import get_ops


class ParameterStore:
    """Flat ``params`` and ``grads`` arrays with the (layer, weight, offset) layout."""

    def __init__(self, layers, dtype="float32"):
        ops = get_ops()
        self.layers = list(layers)
        self.entries = []  # (layer, weight, start, stop)
        offset = 0
        for layer in self.layers:
            for weight in layer.weights:
                if weight.grad is None:
                    continue
                size = int(weight.value.size)
                self.entries.append((layer, weight, offset, offset + size))
                offset += size
        self.size = offset
        self.params = ops.alloc(offset, dtype)
        self.grads = ops.alloc(offset, dtype)
        for layer, weight, start, stop in self.entries:
            shape = weight.value.shape
            self.params[start:stop] = weight.value.reshape(-1)
            weight.value = self.params[start:stop].reshape(shape)
            weight.grad = self.grads[start:stop].reshape(shape)
        self._ranges_key = None
        self._ranges = []

    def trainable_weight_ranges(self):
        """(start, stop) of each weight the optimizer should update now."""
        return [(start, stop) for layer, weight, start, stop in self.entries
                if layer.trainable]

    def trainable_ranges(self):
        """Maximal contiguous runs of trainable parameters (one run when nothing is frozen)."""
        key = tuple(layer.trainable for layer in self.layers)
        if key != self._ranges_key:
            runs = []
            for start, stop in self.trainable_weight_ranges():
                if runs and runs[-1][1] == start:
                    runs[-1] = (runs[-1][0], stop)
                else:
                    runs.append((start, stop))
            self._ranges, self._ranges_key = runs, key
        return self._ranges
