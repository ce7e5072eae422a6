"""A whole training step for a stack of ``y = act(x @ W + b)`` stages.

``Ops.dense_stack(...)`` returns an object with ``train_step`` and ``predict``, and
``forward_train`` + ``backward_from`` for a loss computed outside the stack.
This module is the reference, written with the Ops' own methods; the "cpu"
backend replaces it with ``fastnn._kernels._mlp.DenseStack``, which runs the
same step in one compiled call (no Python between stages).

The trainer uses it when a model is a plain stack of Dense layers; anything
else takes the general layer-by-layer path.
"""

# Activation and loss codes shared with the compiled DenseStack.
ACTIVATION_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "softmax": 4}
SOFTMAX_CE_SPARSE, SOFTMAX_CE_DENSE, SIGMOID_BCE, MSE = 0, 1, 2, 3
_CODE_NAMES = {code: name for name, code in ACTIVATION_CODES.items()}


class ReferenceDenseStack:
    """Array-code twin of the compiled DenseStack (same arguments, same results)."""

    def __init__(self, ops, kernels, biases, kernel_grads, bias_grads, activations, max_batch):
        self.ops = ops
        self.kernels, self.biases = kernels, biases
        self.kernel_grads, self.bias_grads = kernel_grads, bias_grads
        self.activations = [_CODE_NAMES[a] for a in activations]
        self.max_batch = max_batch
        self._last = None
        self._train = None   # (x, activations) of the last forward_train

    def _forward(self, x, logits_head):
        ops = self.ops
        outs = []
        last = len(self.kernels) - 1
        for i, (w, b) in enumerate(zip(self.kernels, self.biases)):
            z = ops.gemm(x, w)
            if b is not None:
                ops.add_bias(z, b)
            act = "linear" if (logits_head and i == last) else self.activations[i]
            x = getattr(ops, act)(z, out=z)
            outs.append(x)
        return outs

    def output(self, n):
        return self._last[:n]

    def predict_can_thread(self, n):
        """Whether more threads could help ``predict``: the array code's ``gemm`` may."""
        return True

    def predict_uses_blas(self, n):
        """Whether ``predict`` calls BLAS: the array code always does (through ``gemm``)."""
        return True

    def team_size(self, n, nthreads):
        """Threads ``train_step`` runs on: the array code leaves threading to its backend."""
        return 1

    def train_step(self, x, targets, sample_weight, loss, first_trainable=0, write_probs=True,
                   nthreads=1):
        ops = self.ops
        n = x.shape[0]
        self._train = None
        outs = self._forward(x, loss != MSE)
        head = outs[-1]
        delta = ops.xp.empty_like(head)
        if loss in (SOFTMAX_CE_SPARSE, SOFTMAX_CE_DENSE):
            probs = ops.xp.empty_like(head)
            total = ops.softmax_cross_entropy(head, targets, probs, delta, sample_weight, 1.0 / n)
        elif loss == SIGMOID_BCE:
            probs = ops.xp.empty_like(head)
            total = ops.sigmoid_cross_entropy(head, targets, probs, delta, sample_weight, 1.0 / n)
        else:
            probs = head
            total = ops.mean_squared_error_loss(head, targets, delta, sample_weight, 1.0 / n)
        self._last = probs if write_probs else head
        self._backward(x, outs, delta, first_trainable, loss == MSE)
        return total / n

    def forward_train(self, x):
        """The forward pass keeping the activations for ``backward_from``; returns the
        head's output (after its activation)."""
        self._train = (x, self._forward(x, False))
        self._last = self._train[1][-1]
        return self._last

    def backward_from(self, dy, first_trainable=0):
        """The backward pass of the last ``forward_train`` from ``dy`` = d loss / d head
        output; fills the weight gradients down to stage ``first_trainable``."""
        if self._train is None:
            raise RuntimeError("DenseStack.backward_from needs a forward_train first")
        (x, outs), self._train = self._train, None
        if dy.shape != outs[-1].shape:
            raise ValueError(f"DenseStack.backward_from: dy has shape {dy.shape}, the head "
                             f"output {outs[-1].shape}")
        self._backward(x, outs, dy, first_trainable, True)

    def _backward(self, x, outs, delta, first_trainable, head_act):
        """Weight gradients from the head's delta (through the head's activation only
        with ``head_act``), down to stage ``first_trainable``."""
        ops = self.ops
        last = len(self.kernels) - 1
        for i in range(last, first_trainable - 1, -1):
            if i < last or head_act:
                act = self.activations[i]
                delta = getattr(ops, "backprop_" + act)(delta, None, outs[i])
            inp = x if i == 0 else outs[i - 1]
            ops.gemm(inp, delta, out=self.kernel_grads[i], trans_a=True)
            if self.bias_grads[i] is not None:
                ops.sum_rows(delta, out=self.bias_grads[i])
            if i > first_trainable:
                delta = ops.gemm(delta, self.kernels[i], trans_b=True)

    def predict(self, x, nthreads=1):
        ops = self.ops
        bad = int(x.size - ops.xp.count_nonzero(ops.xp.isfinite(x)))
        if bad:
            raise ValueError(f"x contains {bad} NaN or infinite value(s)")
        return self._forward(x, False)[-1]
