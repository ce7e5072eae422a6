"""Callbacks: hooks into ``fit`` with the Keras protocol.

A callback gets ``set_model(model)`` and ``set_params(params)`` and then the
``on_train_begin/end``, ``on_epoch_begin/end``, ``on_train_batch_begin/end``
and ``on_test_begin/end`` hooks with a ``logs`` dict. Setting
``model.stop_training = True`` ends ``fit`` after the current epoch.
"""
from .base import Callback, CallbackList, History
from .progbar import ProgbarLogger

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger"]
