"""Lambda: a function of the input, written with ``fastnn.ops``, as a layer."""
from .base import Layer


class Lambda(Layer):
    """Wraps ``function(inputs, **arguments)`` as a layer (Keras' ``layers.Lambda``).

    The function is differentiated on a tape during training, so it needs no
    backward pass. A model holding a Lambda layer cannot be saved to a file:
    fastnn never writes or runs Python code from model files; write a Layer
    subclass and register it with ``fastnn.saving.register_keras_serializable``.

    Args:
        function: a callable of one array, using ``fastnn.ops``.
        output_shape: the per-sample output shape (a tuple, or a function of the
            input shape); found by running ``function`` on a small batch when None.
        mask: accepted for Keras compatibility; must be None.
        arguments: keyword arguments passed to ``function``.

    Example:
        >>> from fastnn import layers, ops
        >>> square = layers.Lambda(lambda x: ops.square(x))
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda needs a callable, got {function!r}")
        if mask is not None:
            raise ValueError("Lambda: masks are not supported (mask must be None)")
        self.function = function
        self._output_shape = output_shape
        self.arguments = dict(arguments or {})

    def call(self, inputs):
        return self.function(inputs, **self.arguments)

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            return super().compute_output_shape(input_shape)
        if callable(self._output_shape):
            return tuple(self._output_shape(tuple(input_shape)))
        return tuple(self._output_shape)

    def get_config(self):
        """The base config and the function's name, for display: a Lambda cannot be
        rebuilt from it (``from_config`` refuses)."""
        config = super().get_config()
        config["function"] = getattr(self.function, "__qualname__", repr(self.function))
        return config

    @classmethod
    def from_config(cls, config):
        raise ValueError(
            f"A Lambda layer ({config.get('function')!r}) holds Python code, which fastnn "
            f"does not serialize: write a Layer subclass and register it with "
            f"fastnn.saving.register_keras_serializable")
