"""InferencePlan: a folded snapshot of a model's inference program, ready to serve.

``model.compile_for_inference()`` lowers the model to its inference program
with BatchNormalization folded into the Dense layers around it (see
``fastnn.engine.program``) on *copies* of the weights (the model's own are never
touched), and keeps an executor for it. It computes nothing itself: the
executor runs the same stages as ``model.predict``. Outputs match the unfolded
model to ~1e-6. The plan is a snapshot: after training or ``set_weights`` call
``plan.refresh()``. Calling a plan stores nothing on it, so many threads may
share one.
"""
import numpy

from ..backend import get_ops
from ..engine.executor import Executor
from ..engine.program import inference_program
from . import data


class InferencePlan:
    """A frozen, folded inference program over a built Sequential.

    Example:
        >>> plan = model.compile_for_inference()        # doctest: +SKIP
        >>> proba = plan.predict(x)                     # doctest: +SKIP
    """

    def __init__(self, model):
        model._ensure_built()
        self.model = model
        self.refresh()

    def refresh(self):
        """Re-fold from the model's current weights (after training or set_weights)."""
        model, ops = self.model, get_ops()
        self.dtype = numpy.dtype(model.layers[0].dtype)
        self.input_shape = tuple(model._input_shape)
        self.program = inference_program(model, ops, fold=True)
        self.executor = Executor(ops, self.program)

    def __call__(self, x):
        """Predictions for all of ``x`` in one pass (a NumPy array)."""
        x = data.check_x(x, self.input_shape, self.dtype,
                         scan_finite=not self.executor.scans_input)  # else the kernels scan
        ops = get_ops()
        return ops.to_numpy(self.executor.predict(ops.asarray(x)))

    def predict(self, x, batch_size=None):
        """Predictions for ``x``, ``batch_size`` rows at a time (all at once by default)."""
        if batch_size is None:
            return self(x)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        x = data.check_x(x, self.input_shape, self.dtype)
        parts = [self(x[i:i + batch_size]) for i in range(0, x.shape[0], int(batch_size))]
        return numpy.concatenate(parts) if parts else self(x)

    predict_on_batch = __call__

    @property
    def steps(self):
        """The program's stages."""
        return self.program.stages

    def __repr__(self):
        return f"<InferencePlan {' -> '.join(s.kind.name for s in self.program.stages)}>"
