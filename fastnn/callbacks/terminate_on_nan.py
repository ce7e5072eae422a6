"""TerminateOnNaN: stop training when the loss becomes NaN or infinite."""
import math

from .base import Callback


class TerminateOnNaN(Callback):
    """Set ``model.stop_training`` as soon as a batch reports a NaN or infinite loss.

    ``fit`` then ends at the next point where it checks ``stop_training``.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
