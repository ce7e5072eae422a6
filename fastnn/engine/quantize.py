"""Low-precision inference: int8 or bfloat16 weights as a rewrite of the inference program.

``quantize_program(program, ops, mode)`` replaces every DENSE stage of a
folded inference program (BatchNorm already folded into the Dense weights)
by an INT8_DENSE or BF16_DENSE stage holding the converted weights:

- ``"int8"``: symmetric int8 weights per output column (``s_w = max|W| / 127``);
  each input row is quantized symmetrically at run time, the product
  accumulates exactly in int32, and the scales, bias and activation are
  applied in float32 (dynamic quantization, as ONNX Runtime's
  ``quantize_dynamic`` and Keras' ``quantize("int8")``). No calibration data.
- ``"bfloat16"``: weights rounded to bfloat16 (half the bytes to stream),
  the product computed in float32.

Every other stage is unchanged. ``output_errors`` measures each rewritten
stage's output error against float32 on inputs the caller gives.
"""
import numpy

from .program import LINEAR, Program
from .stages import Kind

MODES = {"int8": Kind.INT8_DENSE, "bfloat16": Kind.BF16_DENSE}


def check_mode(mode):
    """The mode, or ValueError naming the ones there are."""
    if mode not in MODES:
        raise ValueError(f"Unsupported quantization mode {mode!r}: use one of "
                         f"{', '.join(repr(m) for m in MODES)}")
    return mode


class QuantizedDense:
    """One Dense stage's weights converted for ``mode``, packed for the backend's kernels.

    ``relu``: the stage's activation is ReLU, applied in the product's epilogue.
    """

    def __init__(self, ops, mode, kernel, bias, relu):
        self.mode, self.relu = mode, relu
        self.bias = bias
        if mode == "int8":
            self.weights, self.scales = ops.quantize_int8(kernel)
            self.packed = ops.pack_int8(self.weights)
        else:
            self.weights, self.scales = ops.to_bf16(kernel), None
            self.packed = ops.pack_bf16(self.weights)

    @property
    def nbytes(self):
        """Bytes of the converted weights (what batch-1 inference streams)."""
        extra = 0 if self.scales is None else self.scales.nbytes
        return int(self.weights.nbytes) + extra

    def dense(self, ops, x):
        """``x @ W + b`` (and the fused ReLU) with the converted weights."""
        if self.mode == "int8":
            return ops.int8_dense(x, self.packed, self.scales, self.bias, relu=self.relu)
        return ops.bf16_dense(x, self.packed, self.bias, relu=self.relu)


def quantize_program(program, ops, mode):
    """``program`` (an inference program) with its DENSE stages in ``mode``."""
    check_mode(mode)
    if program.training:
        raise ValueError("only an inference program can be quantized")
    stages = []
    for stage in program.stages:
        if stage.kind is Kind.DENSE:
            relu = stage.act_name == "relu"
            quantized = QuantizedDense(ops, mode, stage.kernel, stage.bias, relu)
            stage = stage.replace(kind=MODES[mode], quantized=quantized)
            if relu:  # applied in the epilogue
                stage = stage.replace(activation=LINEAR)
        stages.append(stage)
    return Program(stages, training=False)


def output_errors(reference, quantized, ops, x):
    """Per rewritten stage: ``(index, kind name, relative error)`` of its output against
    the float32 program's, both fed the float32 program's input to that stage.

    The relative error is ``||y_q - y|| / ||y||`` (Frobenius) over the rows of ``x``.
    """
    from .executor import Executor
    errors = []
    h = ops.asarray(x)
    for i, (ref, low) in enumerate(zip(reference.stages, quantized.stages)):
        y = Executor(ops, Program([ref], training=False)).predict(h)
        if low.kind is not ref.kind:
            y_low = Executor(ops, Program([low], training=False)).predict(h)
            a, b = ops.to_numpy(y).astype("float64"), ops.to_numpy(y_low).astype("float64")
            norm = numpy.linalg.norm(a)
            errors.append((i, low.kind.name, float(numpy.linalg.norm(b - a) / norm) if norm
                           else float(numpy.linalg.norm(b))))
        h = y
    return errors
