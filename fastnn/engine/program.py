"""Programs: a built model lowered to its stages, and the rewrites made on them.

``training_program(model)`` is the model's layers' stages plus its loss; the
fused head (a softmax or sigmoid output trained with cross-entropy computes
its gradient from the logits) is a rewrite of the last stage.
``inference_program(model)`` is the same lowering with the training-only parts
folded away:

- Dropout stages are dropped (identity at inference).
- BatchNormalization at inference is ``x * s + t`` with
  ``s = gamma / sqrt(moving_variance + epsilon)``, ``t = beta - moving_mean * s``:
  folded into the DENSE stage before it when that stage has no activation
  (``W * s``, ``b * s + t``), else into the next DENSE (``diag(s) @ W``,
  ``t @ W + b``); with neither, it stays one AFFINE stage.
- A linear DENSE followed by an ACTIVATION stage becomes one stage.

Folding is done in float64 and cast back to the layer dtype, on copies: the
model's own weights are never touched. ``fastnn.engine.quantize`` rewrites an
inference program's DENSE stages to int8 or bfloat16 weights.
"""
import numpy

from .. import activations
from .stages import Kind

LINEAR = activations.get("linear")


class Program:
    """Stages to run in order; for training also the loss and how the head meets it.

    Attributes:
        stages: the ``Stage`` list.
        loss: the compiled ``Loss`` (training programs), else None.
        loss_weight: ``compile(loss_weights=...)``.
        fused_head: the last stage outputs logits and the loss applies its softmax /
            sigmoid (``loss.logits_method``).
        training: a training program (False: an inference program).
    """

    def __init__(self, stages, loss=None, loss_weight=1.0, fused_head=False, training=True):
        self.stages = list(stages)
        self.loss, self.loss_weight = loss, float(loss_weight)
        self.fused_head, self.training = bool(fused_head), bool(training)

    def __repr__(self):
        kind = "training" if self.training else "inference"
        return f"<Program ({kind}) {' -> '.join(s.kind.name for s in self.stages)}>"


def lower(model):
    """The stages of a built model's layers, in order."""
    return [stage for layer in model.layers for stage in layer.stages()]


def training_program(model):
    """The model's stages plus its loss (``model.compile``), the head fused when the
    trainer computes the loss on logits (``model._fused_head``)."""
    stages = lower(model)
    if model._fused_head:
        stages[-1] = fuse_head(stages[-1], model.loss)
    return Program(stages, model.loss, model._loss_weight, model._fused_head)


def monte_carlo_program(model, dropout_layer):
    """The forward program of Monte-Carlo dropout (Gal & Ghahramani 2016): run in
    training mode, only the layers ``dropout_layer(layer)`` says are dropout-style draw
    masks; BatchNormalization and every other layer infer."""
    stages = []
    for stage in lower(model):
        if not dropout_layer(stage.layer):
            stage = stage.replace(inference_only=True, batch_stats=False)
        stages.append(stage.replace(**_no_gradients()))
    return Program(stages)


def fuse_head(stage, loss):
    """The head stage with its activation left to the loss (softmax or sigmoid with
    cross-entropy). Refuses an activation the loss has no logits form for: its
    gradient would be wrong."""
    name = stage.activation.name if stage.activation is not None else None
    if stage.kind is Kind.HOST:
        return stage  # the layer's own forward is called with apply_activation=False
    if stage.kind not in (Kind.DENSE, Kind.ACTIVATION) or name not in loss.fuses_with:
        raise ValueError(f"cannot fuse {stage!r} into {type(loss).__name__}: it fuses only "
                         f"{', '.join(loss.fuses_with) or 'no activation'}")
    return stage.replace(activation=LINEAR)


def inference_program(model, ops, fold=False):
    """The model's inference program: Dropout dropped, and an Activation merged into a
    linear Dense before it. The stages keep views of the model's weights, so the
    program stays current as the model trains. With ``fold``, BatchNormalization is
    folded too (see the module docstring): a snapshot on copies, made on the host in
    float64, its arrays then put where ``ops`` computes."""
    dtype = numpy.dtype(model.layers[0].dtype)
    stages = []
    for stage in lower(model):
        if stage.kind is Kind.DROPOUT:
            continue
        stage = stage.replace(**_no_training_fields())
        if fold:
            stage = _as_float64(stage, ops.to_numpy)
        stages.append(stage)
        while len(stages) > 1 and _merge_last_two(stages):
            pass
    if fold:
        stages = [_cast(stage, dtype, ops) for stage in stages]
    return Program(stages, training=False)


def _as_float64(stage, host):
    """A stage's arrays copied to the host as float64 for folding; BatchNorm becomes the
    AFFINE map of its moving statistics."""
    f64 = lambda a: None if a is None else host(a).astype("float64")  # noqa: E731
    if stage.kind is Kind.BATCHNORM:
        gamma = 1.0 if stage.gamma is None else f64(stage.gamma)
        beta = 0.0 if stage.beta is None else f64(stage.beta)
        scale = gamma / numpy.sqrt(f64(stage.moving_variance) + stage.epsilon)
        shift = beta - f64(stage.moving_mean) * scale
        return stage.replace(kind=Kind.AFFINE, scale=scale,
                             shift=numpy.broadcast_to(shift, scale.shape).copy())
    if stage.kind is Kind.DENSE:
        return stage.replace(kernel=f64(stage.kernel), bias=f64(stage.bias))
    return stage


def _no_gradients():
    return dict(kernel_grad=None, bias_grad=None, gamma_grad=None, beta_grad=None,
                alpha_grad=None)


def _no_training_fields():
    return dict(_no_gradients(), seeded=False, rate=0.0)


def _merge_last_two(stages):
    """Fold ``stages[-1]`` into ``stages[-2]`` where the algebra allows; True if it did."""
    prev, last = stages[-2], stages[-1]
    linear_dense = prev.kind is Kind.DENSE and prev.act_name == "linear"
    if linear_dense and last.kind is Kind.AFFINE:
        bias = prev.bias if prev.bias is not None else numpy.zeros(prev.kernel.shape[1])
        merged = prev.replace(kernel=prev.kernel * last.scale,
                              bias=bias * last.scale + last.shift)
    elif prev.kind is Kind.AFFINE and last.kind is Kind.DENSE:
        bias = last.bias if last.bias is not None else numpy.zeros(last.kernel.shape[1])
        merged = last.replace(kernel=prev.scale[:, None] * last.kernel,
                              bias=prev.shift @ last.kernel + bias)
    elif prev.kind is Kind.AFFINE and last.kind is Kind.AFFINE:
        merged = prev.replace(scale=prev.scale * last.scale,
                              shift=prev.shift * last.scale + last.shift)
    elif linear_dense and last.kind is Kind.ACTIVATION:
        merged = prev.replace(activation=last.activation)
    else:
        return False
    stages[-2:] = [merged]
    return True


def _cast(stage, dtype, ops):
    """Folded float64 arrays back to the model's dtype, C-contiguous (kernels need it),
    on the backend's device."""
    fields = {}
    for name in ("kernel", "bias", "scale", "shift"):
        value = getattr(stage, name)
        if value is not None and isinstance(value, numpy.ndarray) and value.dtype != dtype:
            fields[name] = ops.asarray(numpy.ascontiguousarray(value, dtype=dtype))
    return stage.replace(**fields) if fields else stage
