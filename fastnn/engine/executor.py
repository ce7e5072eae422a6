"""Executors: run a program's training step, evaluation or inference.

One executor, two ways to run a stage:

- **compiled** (the "cpu" backend): consecutive stages the compiled kernels
  know run as one ``fastnn._kernels._executor.Segment`` (forward, loss and
  backward of a whole plain program in one ``nogil`` call);
- **reference** (every stage on "numpy"/"cupy", and HOST stages anywhere):
  the stage's layer runs its own ``forward``/``backward`` through the Ops, and
  a stage a rewrite made (folded, quantized) runs the array code in
  ``reference.py``.

The reference executor is the oracle the compiled one is tested against,
stage by stage and program by program. A training executor keeps the
activations of the last step (one model trains on one thread); ``predict``
keeps nothing, so many threads may share an inference executor.
"""
import numpy

from ..backend.threads import blas_held_single, scope_threads
from . import reference
from .stages import Kind


def compiled_kernels():
    """The compiled executor's module, imported on first use."""
    from .._kernels import _executor
    return _executor


def _segment_class(stage):
    """The compiled segment class that runs ``stage``, or None (a HOST part)."""
    kernels = compiled_kernels()
    if kernels.compilable(stage)[0]:
        return _SegmentPart
    if kernels.quantized_compilable(stage)[0]:
        return _QuantizedPart
    return None


def _parts(program, ops, compile_stages, max_batch):
    """The program's stages grouped into parts: each run of stages one compiled segment
    class runs becomes one part, every other stage a HOST part."""
    parts, run, run_class = [], [], None
    head = len(program.stages) - 1
    for i, stage in enumerate(program.stages):
        cls = _segment_class(stage) if compile_stages else None
        if run and cls is not run_class:
            parts.append(run_class(run, max_batch))
            run = []
        if cls is not None:
            run.append(stage)
            run_class = cls
            continue
        parts.append(reference.HostPart(ops, stage, program.fused_head and i == head,
                                        program.training))
    if run:
        parts.append(run_class(run, max_batch))
    return parts


class Executor:
    """Runs one program on one backend (see the module docstring).

    Args:
        ops: the backend's Ops.
        program: a ``Program`` (training or inference).
        max_batch: rows the compiled workspaces hold (training; grown on demand).
        compile_stages: run what the compiled kernels can compiled (False: every stage
            on the reference, the oracle in tests).
    """

    def __init__(self, ops, program, max_batch=1, compile_stages=True):
        self.ops, self.program = ops, program
        self.compiled = compile_stages and ops.compiles_programs and _all_float32(program)
        self.max_batch = max(int(max_batch), 1)
        self.parts = _parts(program, ops, self.compiled, self.max_batch)
        self.first_trainable = _first_trainable(self.parts)
        self._one_call = self._one_call_loss()
        # Layers with a weight penalty, or a HOST stage's call-time losses (add_loss).
        self._penalized = [layer for layer in _layers(program)
                           if layer.stages()[0].kind is Kind.HOST
                           or any(w.regularizer is not None for w in layer.weights)]

    def __repr__(self):
        names = [p.stage.kind.name if isinstance(p, reference.HostPart) else
                 "compiled(" + ", ".join(s.kind.name for s in p.stages) + ")"
                 for p in self.parts]
        return f"<Executor {' -> '.join(names)}>"

    # ------------------------------------------------------------ training
    def _one_call_loss(self):
        """(LossOp, label smoothing, eps) when a whole step is one compiled call."""
        program = self.program
        if (not program.training or len(self.parts) != 1 or program.loss_weight != 1.0
                or not isinstance(self.parts[0], _SegmentPart)):
            return None
        return _loss_kernel(program.loss, program.fused_head)

    def team_size(self, n, nthreads):
        """Threads a compiled one-call step splits itself between (1: BLAS threads it)."""
        if self._one_call is None:
            return 1
        return self.parts[0].segment.team_size(n, nthreads)

    def train_step(self, x, y, sample_weight):
        """Forward, loss, backward: fills every trainable weight's gradient; returns
        (loss including penalties, model output: probabilities for a fused head)."""
        n = x.shape[0]
        if self._one_call is not None:
            part = self.parts[0]
            op, smoothing, eps = self._one_call
            loss = self.program.loss
            scale = loss._scale(n, sample_weight)
            team = self.team_size(n, scope_threads()) if blas_held_single() else 1
            total = part.segment.train_step(x, y, sample_weight, op, smoothing, eps, scale,
                                            part.seeds(True), team)
            value, pred = total * scale, part.segment.output(n)
        else:
            out, penalty = self._forward(x, True)
            grad = self.ops.xp.empty_like(out)
            value, pred = self._loss(out, y, sample_weight, grad)
            value += penalty
            first = self.first_trainable
            for i in range(len(self.parts) - 1, first - 1, -1):
                grad = self.parts[i].backward(grad, i > first)
        return value + self._penalties(True), pred

    def test_step(self, x, y, sample_weight):
        """(loss including penalties, model output) without touching the weights."""
        out, penalty = self._forward(x, False)
        value, pred = self._loss(out, y, sample_weight, None)
        return value + penalty + self._penalties(False), pred

    def _loss(self, out, y, sample_weight, grad):
        program = self.program
        return reference.loss_and_outputs(self.ops, program.loss, out, y, sample_weight, grad,
                                          program.fused_head, program.loss_weight)

    def forward(self, x, training):
        """The program's output for ``x`` (``training``: dropout and batch statistics)."""
        return self._forward(x, training)[0]

    def _forward(self, x, training):
        penalty = 0.0
        for part in self.parts:
            x, p = part.forward(x, training)
            penalty += p
        return x, penalty

    def _penalties(self, with_gradients):
        """L1/L2 weight penalties and ``add_loss`` losses (and the penalties' gradients
        after a backward pass)."""
        total = 0.0
        for layer in self._penalized:
            total += layer.regularization_penalty(self.ops)
            if with_gradients:
                layer.add_regularization_gradients(self.ops)
        return total

    # ------------------------------------------------------------ inference
    @property
    def scans_input(self):
        """Whether ``predict`` itself refuses NaN/inf inputs (a compiled first part)."""
        return bool(self.parts) and isinstance(self.parts[0], _CompiledPart)

    def predict_uses_blas(self, n):
        """Whether ``predict`` on ``n`` rows may call BLAS (a thread scope then matters)."""
        return any(p.predict_uses_blas(n) for p in self.parts)

    def predict_can_thread(self, n):
        """Whether ``predict`` on ``n`` rows could use more than one thread."""
        return any(p.predict_can_thread(n) for p in self.parts)

    def predict(self, x, nthreads=1):
        """The program's output for ``x`` (inference); stores nothing, so it may run in
        many threads at once."""
        for part in self.parts:
            x = part.infer(x, nthreads)
        return x


class _CompiledPart:
    """Inference through a compiled segment (``predict`` into a new array per call)."""

    def predict_uses_blas(self, n):
        return self.segment.predict_uses_blas(n)

    def predict_can_thread(self, n):
        return self.segment.predict_can_thread(n)

    def infer(self, x, nthreads):
        out = numpy.empty((x.shape[0], self.segment.width_out), dtype=numpy.float32)
        if x.shape[0]:
            self.segment.predict(x, out, nthreads)
        return out


class _SegmentPart(_CompiledPart):
    """A run of compiled stages: one ``Segment``."""

    def __init__(self, stages, max_batch):
        self.stages = stages
        self.segment = compiled_kernels().Segment(stages, max_batch)
        self._seeded = [s.layer for s in stages if s.seeded]
        self._trainable = any(s.trainable for s in stages)

    def seeds(self, training):
        """This step's mask seeds, drawn from the layers as their own forward would."""
        if not (training and self._seeded):
            return None
        return numpy.array([layer._mask_seed() for layer in self._seeded], dtype=numpy.uint64)

    def forward(self, x, training):
        return self.segment.forward(x, training, self.seeds(training)), 0.0

    def backward(self, dy, need_dx):
        return self.segment.backward(dy, need_dx)

    @property
    def trainable(self):
        return self._trainable


class _QuantizedPart(_CompiledPart):
    """A run of INT8_DENSE/BF16_DENSE stages (inference only): one ``QuantizedSegment``."""

    trainable = False

    def __init__(self, stages, max_batch):
        self.stages = stages
        self.segment = compiled_kernels().QuantizedSegment(stages)


def _first_trainable(parts):
    """Index of the first part with trainable weights (the backward pass stops there)."""
    for i, part in enumerate(parts):
        if part.trainable:
            return i
    return len(parts)


def _layers(program):
    """The distinct layers behind a program's stages, in order."""
    seen, layers = set(), []
    for stage in program.stages:
        if stage.layer is not None and id(stage.layer) not in seen:
            seen.add(id(stage.layer))
            layers.append(stage.layer)
    return layers


def _all_float32(program):
    return all(a is None or (isinstance(a, numpy.ndarray) and a.dtype == numpy.float32)
               for s in program.stages for a in (s.kernel, s.gamma, s.alpha, s.scale))


# The Ops loss methods a compiled step computes itself, by kernel LossOp name.
_LOSS_OPS = {"softmax_cross_entropy": "SOFTMAX_CE", "sigmoid_cross_entropy": "SIGMOID_CE",
             "crossentropy_loss": "CROSSENTROPY", "binary_crossentropy_loss": "BINARY_CE",
             "mean_squared_error_loss": "MSE"}


def _loss_kernel(loss, fused_head):
    """(LossOp code, label smoothing, eps) when ``loss`` is one loss kernel on the head's
    output (built-in, no per-sample-weight normalisation), else None."""
    if loss is None or loss.user_defined or loss.ops_method is None \
            or loss.reduction == "mean_with_sample_weight":
        return None
    on_logits = fused_head or loss.from_logits
    method = loss.logits_method if on_logits else loss.ops_method
    name = _LOSS_OPS.get(method)
    if name is None:
        return None
    extra = loss._extra()
    if set(extra) - {"label_smoothing", "epsilon"}:
        return None
    from .._kernels import _losses
    return (int(getattr(_losses.LossOp, name)), float(extra.get("label_smoothing", 0.0)),
            float(extra.get("epsilon", 1e-7 if name in ("CROSSENTROPY", "BINARY_CE") else 0.0)))
