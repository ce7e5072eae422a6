"""Callbacks: hooks into ``fit`` with the Keras protocol.

A callback gets ``set_model(model)`` and ``set_params(params)`` and then the
``on_train_begin/end``, ``on_epoch_begin/end``, ``on_train_batch_begin/end``
and ``on_test_begin/end`` hooks, each with a ``logs`` dict. Setting
``model.stop_training = True`` ends ``fit``.
"""
from .base import Callback, CallbackList, History
from .csv_logger import CSVLogger
from .early_stopping import EarlyStopping
from .lambda_callback import LambdaCallback
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau
from .model_checkpoint import ModelCheckpoint
from .progbar import ProgbarLogger
from .terminate_on_nan import TerminateOnNaN

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping",
           "ModelCheckpoint", "LearningRateScheduler", "ReduceLROnPlateau", "CSVLogger",
           "TerminateOnNaN", "LambdaCallback"]
