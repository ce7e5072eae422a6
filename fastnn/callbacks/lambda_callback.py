"""LambdaCallback: a callback built from plain functions."""
from .base import Callback

_HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
          "on_train_batch_begin", "on_train_batch_end")
_ALIASES = {"on_batch_begin": "on_train_batch_begin", "on_batch_end": "on_train_batch_end"}


class LambdaCallback(Callback):
    """Call the given functions at the matching hooks (Keras argument names).

    ``on_epoch_begin/on_epoch_end(epoch, logs)``, ``on_train_begin/end(logs)``,
    ``on_train_batch_begin/end(batch, logs)`` (``on_batch_begin/end`` are
    accepted aliases). Hooks left out cost nothing: a LambdaCallback without
    batch functions does not turn on per-batch calls.

    Example:
        >>> weights = []
        >>> keep = LambdaCallback(on_epoch_end=lambda epoch, logs: weights.append(epoch))
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        given = dict(zip(_HOOKS, (on_epoch_begin, on_epoch_end, on_train_begin, on_train_end,
                                  on_train_batch_begin, on_train_batch_end)))
        for name, fn in kwargs.items():
            if name not in _ALIASES and name not in ("on_test_begin", "on_test_end"):
                raise TypeError(f"LambdaCallback got an unknown hook {name!r}")
            given[_ALIASES.get(name, name)] = fn
        for hook, fn in given.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback {hook} must be callable, got {fn!r}")
            setattr(self, hook, fn)
