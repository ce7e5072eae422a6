"""Stages: what a layer lowers to, and what an executor runs.

A stage is a small descriptor: its kind (which forward and backward kernels
run it), its weights and their gradients (views into the model's flat
buffers, or folded copies in an inference program) and its hyperparameters.
Nothing here computes: the reference executor runs a stage through the Ops
(the owning layer's ``forward``/``backward``, or for a stage a rewrite made,
the array code in ``reference.py``), the compiled executor
(``fastnn._kernels._executor``) runs runs of stages in one ``nogil`` call.

A layer the compiled executor has no kernel for lowers to one ``HOST`` stage:
the executor hands it to the layer's own ``forward``/``backward`` between
compiled segments, and the rest of the program stays compiled.
"""
import enum


class Kind(enum.IntEnum):
    """Stage kinds; the compiled executor uses the same numbers."""

    DENSE = 0        # y = act(x @ kernel + bias); DropConnect when rate > 0 in training
    ACTIVATION = 1   # y = act(x)
    BATCHNORM = 2    # batch statistics in training (when batch_stats), moving ones else
    LAYERNORM = 3    # per-sample normalisation over the features, then gamma/beta
    DROPOUT = 4      # y = x * mask / (1 - rate) in training, identity in inference
    AFFINE = 5       # y = x * scale + shift per feature (a folded BatchNorm, inference)
    PRELU = 6        # y = x if x > 0 else alpha * x, alpha per feature
    MAXOUT = 7       # z = x @ kernel + bias, y = max over each unit's ``pieces`` columns
    HOST = 8         # the layer's own forward/backward through the Ops
    INT8_DENSE = 9   # inference: int8 weights per output channel, rows quantized at run time
    BF16_DENSE = 10  # inference: bfloat16 weights, computed in float32


class Stage:
    """One stage of a program (see the module docstring).

    Attributes beyond ``kind``/``layer``/``width_in``/``width_out`` depend on the
    kind and default to None (arrays) or 0 (numbers):

    - ``activation``: a ``fastnn.activations.ActivationFunction`` (DENSE, ACTIVATION);
      ``act_name``/``act_params`` give its kernel name and parameters.
    - ``kernel``, ``bias`` and ``kernel_grad``, ``bias_grad`` (DENSE, MAXOUT; the
      gradients are None for a frozen layer); ``rate`` (DropConnect), ``pieces`` (MAXOUT).
    - ``gamma``, ``beta``, ``gamma_grad``, ``beta_grad``, ``moving_mean``,
      ``moving_variance``, ``epsilon``, ``momentum``, ``batch_stats`` (BATCHNORM,
      LAYERNORM).
    - ``rate`` (DROPOUT), ``scale``/``shift`` (AFFINE), ``alpha``/``alpha_grad`` (PRELU).
    - ``seeded``: the stage draws a mask each training step (a seed from its layer).
    - ``quantized``: INT8_DENSE/BF16_DENSE weights (see ``fastnn.engine.quantize``).
    - ``inference_only``: the stage runs in inference mode in a training pass
      (Monte-Carlo dropout: only the dropout-style layers train); a compiled BATCHNORM
      stage reads ``batch_stats`` (False then) instead.

    Weight penalties (L1/L2 regularizers) are not stage fields: the executor adds them
    and their gradients through the layers' regularizers, on every backend.
    """

    _DEFAULTS = dict(activation=None, act_name="linear", act_params=(), kernel=None,
                     bias=None, kernel_grad=None, bias_grad=None, rate=0.0, pieces=0,
                     gamma=None, beta=None, gamma_grad=None, beta_grad=None,
                     moving_mean=None, moving_variance=None, epsilon=0.0, momentum=0.0,
                     batch_stats=False, scale=None, shift=None, alpha=None, alpha_grad=None,
                     seeded=False, quantized=None, inference_only=False)

    def __init__(self, kind, layer, width_in, width_out, **fields):
        unknown = set(fields) - set(self._DEFAULTS)
        if unknown:
            raise TypeError(f"unknown stage field(s): {', '.join(sorted(unknown))}")
        self.kind = Kind(kind)
        self.layer = layer
        self.width_in, self.width_out = int(width_in), int(width_out)
        for name, default in self._DEFAULTS.items():
            setattr(self, name, fields.get(name, default))
        if self.activation is not None:
            self.act_name, self.act_params = self.activation.kernel

    def replace(self, **fields):
        """A copy with some fields changed (program rewrites never edit a stage)."""
        copy = Stage.__new__(Stage)
        copy.__dict__.update(self.__dict__)
        for name, value in fields.items():
            if name not in self.__dict__:
                raise TypeError(f"unknown stage field {name!r}")
            setattr(copy, name, value)
        if "activation" in fields and copy.activation is not None:
            copy.act_name, copy.act_params = copy.activation.kernel
        return copy

    @property
    def trainable(self):
        """Whether the step writes gradients for this stage's weights."""
        return any(g is not None for g in (self.kernel_grad, self.bias_grad, self.gamma_grad,
                                           self.beta_grad, self.alpha_grad))

    def __repr__(self):
        name = getattr(self.layer, "name", None)
        extra = f" {self.act_name}" if self.kind in (Kind.DENSE, Kind.ACTIVATION) else ""
        return f"<Stage {self.kind.name}{extra} {self.width_in}->{self.width_out}" + \
            (f" of {name!r}>" if name else ">")


def host_stage(layer):
    """The fallback lowering: the layer's own forward/backward through the Ops."""
    width_in = layer.input_shape[-1] if layer.input_shape else 0
    width_out = layer.output_shape[-1] if layer.output_shape else 0
    return Stage(Kind.HOST, layer, width_in, width_out)
