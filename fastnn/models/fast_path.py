"""When a model is a plain stack of Dense layers, run whole steps in one Ops call.

A Keras MLP (Dense layers with linear/relu/sigmoid/tanh activations, a
softmax/sigmoid/linear head, no regularizers) trained with a cross-entropy or
MSE loss is the common case, and per-layer Python is most of its step time at
small batches. ``Ops.dense_stack`` gives an object that runs forward, loss and
backward without returning to Python between layers (compiled on the "cpu"
backend). A loss the stack has no code for (a user's loss written with
``fastnn.ops``, or a built-in one such as Huber) is computed between two calls:
the stack's forward pass, then the loss and its gradient on the head output
(batch x outputs, small), then the stack's backward pass from that gradient.
Every other model takes the general layer-by-layer path, which computes the
same thing.
"""
from ..backend.dense_stack import (ACTIVATION_CODES, MSE, SIGMOID_BCE, SOFTMAX_CE_DENSE,
                                   SOFTMAX_CE_SPARSE)
from ..layers.core import Dense


def _is_plain_dense(layer, last):
    if (type(layer) is not Dense or layer.kernel_regularizer or layer.bias_regularizer
            or layer.activity_regularizer or len(layer.input_shape) != 1):
        return False
    name = layer.activation.name
    if name not in ACTIVATION_CODES or layer.activation.params:
        return False
    return last or name != "softmax"


def plain_dense_stack(model):
    """True when every layer is a Dense the compiled stack can run."""
    layers = model.layers
    return bool(layers) and all(_is_plain_dense(layer, i == len(layers) - 1)
                                for i, layer in enumerate(layers))


def loss_code(model):
    """The DenseStack loss code for the model's loss and head, or None."""
    loss = model.loss
    head = model.layers[-1].activation.name
    kind = type(loss).__name__
    if getattr(loss, "label_smoothing", 0) or loss.reduction not in ("sum_over_batch_size",
                                                                      "mean", "none"):
        return None
    logits = head == "linear" if loss.from_logits else None
    if kind in ("SparseCategoricalCrossentropy", "CategoricalCrossentropy"):
        ok = logits if logits is not None else head == "softmax"
        if ok:
            return SOFTMAX_CE_SPARSE if kind.startswith("Sparse") else SOFTMAX_CE_DENSE
    elif kind == "BinaryCrossentropy":
        if logits if logits is not None else head == "sigmoid":
            return SIGMOID_BCE
    elif kind == "MeanSquaredError" and head != "softmax":
        return MSE
    return None


def build_stack(ops, model, max_batch):
    """An ``Ops.dense_stack`` over the model's Dense layers."""
    layers = model.layers
    return ops.dense_stack(
        [layer.kernel.value for layer in layers],
        [layer.bias.value if layer.use_bias else None for layer in layers],
        [layer.kernel.grad for layer in layers],
        [layer.bias.grad if layer.use_bias else None for layer in layers],
        [ACTIVATION_CODES[layer.activation.name] for layer in layers],
        max_batch)


def first_trainable(model):
    """Index of the first trainable layer when all layers after it are trainable, else None."""
    flags = [layer.trainable for layer in model.layers]
    if True not in flags:
        return None
    first = flags.index(True)
    return first if all(flags[first:]) else None


def outside_loss_step(ops, stack, loss, x, y, sample_weight, first):
    """(loss value, model output) of a step whose loss the stack has no code for.

    The loss and its gradient come from ``loss.value_and_grad`` on the head output,
    as on the layer-by-layer path (a user's loss is weighted, reduced and
    differentiated on a tape there); the stack then runs the backward pass from
    that gradient, filling the weight gradients down to layer ``first``.
    """
    out = stack.forward_train(x)
    grad = ops.xp.empty_like(out)
    value = loss.value_and_grad(ops, out, y, grad, sample_weight)
    stack.backward_from(grad, first)
    return value, out
