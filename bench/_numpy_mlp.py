"""Two NumPy baselines: a hand-written MLP, and the GEMM floor.

``NumpyMLP`` is what a careful person writes in an afternoon: float32
throughout, in-place activations, softmax cross-entropy, Adam per array;
``NumpyBatchNormMLP`` adds BatchNorm and Dropout after each hidden layer.
``GemmFloor`` does only the matrix products a training step needs, into
preallocated arrays, so its time is the BLAS lower bound for a step.
"""
import numpy


def _glorot(rng, fan_in, fan_out):
    limit = numpy.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(numpy.float32)


class NumpyMLP:
    """ReLU MLP with a softmax cross-entropy head and Adam, in plain float32 NumPy."""

    def __init__(self, dims, batch_size, seed=0, lr=1e-3, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7):
        rng = numpy.random.default_rng(seed)
        self.weights = [_glorot(rng, a, b) for a, b in zip(dims[:-1], dims[1:])]
        self.biases = [numpy.zeros(b, numpy.float32) for b in dims[1:]]
        self.params = [p for pair in zip(self.weights, self.biases) for p in pair]
        self.m = [numpy.zeros_like(p) for p in self.params]
        self.v = [numpy.zeros_like(p) for p in self.params]
        self.batch_size = batch_size
        self.lr, self.beta_1, self.beta_2, self.epsilon = lr, beta_1, beta_2, epsilon
        self.t = 0
        self.rng = numpy.random.default_rng(seed + 1)

    def _forward(self, x):
        acts = [x]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = acts[-1] @ w
            z += b
            if i < last:
                numpy.maximum(z, 0, out=z)
            acts.append(z)
        return acts

    @staticmethod
    def _softmax(logits):
        logits -= logits.max(axis=1, keepdims=True)
        numpy.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def step(self, xb, yb):
        """One Adam step on a batch; returns the mean cross-entropy."""
        acts = self._forward(xb)
        m = xb.shape[0]
        probs = self._softmax(acts[-1])
        rows = numpy.arange(m)
        loss = -numpy.log(numpy.maximum(probs[rows, yb], 1e-12)).mean()
        dz = probs
        dz[rows, yb] -= 1
        dz /= m
        grads = [None] * len(self.params)
        for i in range(len(self.weights) - 1, -1, -1):
            grads[2 * i] = acts[i].T @ dz
            grads[2 * i + 1] = dz.sum(axis=0)
            if i > 0:
                dx = dz @ self.weights[i].T
                dx *= acts[i] > 0
                dz = dx
        self._adam(grads)
        return float(loss)

    def _adam(self, grads):
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        alpha = self.lr * numpy.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= alpha * m / (numpy.sqrt(v) + self.epsilon)

    def epoch(self, x, y):
        """One shuffled pass over ``x``."""
        order = self.rng.permutation(x.shape[0])
        for start in range(0, x.shape[0], self.batch_size):
            idx = order[start:start + self.batch_size]
            self.step(x[idx], y[idx])

    def predict(self, x):
        """Class probabilities."""
        return self._softmax(self._forward(x)[-1])


class NumpyBatchNormMLP(NumpyMLP):
    """The same MLP with Dense -> BatchNorm -> ReLU -> Dropout after each hidden layer.

    BatchNorm as in Keras: training normalises with the batch mean and biased
    variance and moves ``moving = momentum * moving + (1 - momentum) * batch``;
    prediction uses the moving statistics. Dropout is inverted (the kept values
    are scaled by ``1 / (1 - rate)`` while training; prediction is the identity).
    gamma and beta are trained by Adam with the weights.
    """

    def __init__(self, dims, batch_size, seed=0, dropout=0.0, momentum=0.99, bn_epsilon=1e-3,
                 **adam):
        super().__init__(dims, batch_size, seed, **adam)
        hidden = dims[1:-1]
        self.gamma = [numpy.ones(d, numpy.float32) for d in hidden]
        self.beta = [numpy.zeros(d, numpy.float32) for d in hidden]
        self.moving_mean = [numpy.zeros(d, numpy.float32) for d in hidden]
        self.moving_var = [numpy.ones(d, numpy.float32) for d in hidden]
        self.params += self.gamma + self.beta
        self.m = [numpy.zeros_like(p) for p in self.params]
        self.v = [numpy.zeros_like(p) for p in self.params]
        self.dropout, self.momentum, self.bn_epsilon = dropout, momentum, bn_epsilon

    def _hidden_train(self, i, z):
        """BatchNorm (batch statistics), ReLU, dropout on layer i's ``z``; returns the
        activation and what the backward pass needs."""
        mean = z.mean(axis=0)
        var = z.var(axis=0)
        mom = self.momentum
        self.moving_mean[i] *= mom
        self.moving_mean[i] += (1 - mom) * mean
        self.moving_var[i] *= mom
        self.moving_var[i] += (1 - mom) * var
        inv_std = 1 / numpy.sqrt(var + self.bn_epsilon)
        xhat = (z - mean) * inv_std
        a = xhat * self.gamma[i] + self.beta[i]
        numpy.maximum(a, 0, out=a)
        keep = None
        if self.dropout:
            keep = self.rng.random(a.shape, dtype=numpy.float32) >= self.dropout
            keep = keep.astype(numpy.float32) / numpy.float32(1 - self.dropout)
            a *= keep
        return a, (xhat, inv_std, keep)

    def _hidden_backward(self, i, da, a, saved):
        """Back through dropout, ReLU and BatchNorm: d(z), d(gamma), d(beta)."""
        xhat, inv_std, keep = saved
        if keep is not None:
            da = da * keep
        dy = da * (a > 0)  # a > 0 exactly where the ReLU passed (and dropout kept)
        dgamma = (dy * xhat).sum(axis=0)
        dbeta = dy.sum(axis=0)
        m = dy.shape[0]
        dz = (self.gamma[i] * inv_std / m) * (m * dy - dbeta - xhat * dgamma)
        return dz, dgamma, dbeta

    def step(self, xb, yb):
        """One Adam step on a batch; returns the mean cross-entropy."""
        n_hidden = len(self.gamma)
        acts, saved = [xb], []
        for i in range(n_hidden):
            z = acts[-1] @ self.weights[i]
            z += self.biases[i]
            a, s = self._hidden_train(i, z)
            acts.append(a)
            saved.append(s)
        logits = acts[-1] @ self.weights[-1]
        logits += self.biases[-1]
        m = xb.shape[0]
        probs = self._softmax(logits)
        rows = numpy.arange(m)
        loss = -numpy.log(numpy.maximum(probs[rows, yb], 1e-12)).mean()
        dz = probs
        dz[rows, yb] -= 1
        dz /= m
        n_layers = len(self.weights)
        grads = [None] * len(self.params)
        for i in range(n_layers - 1, -1, -1):
            grads[2 * i] = acts[i].T @ dz
            grads[2 * i + 1] = dz.sum(axis=0)
            if i > 0:
                da = dz @ self.weights[i].T
                dz, dgamma, dbeta = self._hidden_backward(i - 1, da, acts[i], saved[i - 1])
                grads[2 * n_layers + i - 1] = dgamma
                grads[2 * n_layers + n_hidden + i - 1] = dbeta
        self._adam(grads)
        return float(loss)

    def _forward(self, x):
        """Inference: moving statistics, no dropout."""
        a = x
        for i in range(len(self.gamma)):
            z = a @ self.weights[i]
            z += self.biases[i]
            scale = self.gamma[i] / numpy.sqrt(self.moving_var[i] + self.bn_epsilon)
            a = (z - self.moving_mean[i]) * scale + self.beta[i]
            numpy.maximum(a, 0, out=a)
        logits = a @ self.weights[-1]
        logits += self.biases[-1]
        return [logits]


def _numpy_gemm(a, b, out, trans_a, trans_b):
    numpy.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)


class GemmFloor:
    """Only the GEMMs of a training step (or of a forward pass), on preallocated arrays.

    Per layer i: forward ``a[i] @ w[i]``; backward ``dW = a[i].T @ dz[i]`` and,
    except for the first layer, ``dx = dz[i] @ w[i].T``. No bias, activation,
    loss, optimizer, batch gathering or allocation: what is left is BLAS.
    """

    def __init__(self, dims, batch_size, seed=0, gemm=None):
        rng = numpy.random.default_rng(seed)
        f32 = numpy.float32
        # gemm(a, b, out, trans_a, trans_b): NumPy's matmul by default; the "floor_scipy"
        # row passes fastnn's wrapper of scipy's BLAS, the library fastnn itself calls.
        self.gemm = gemm or _numpy_gemm
        self.batch_size = batch_size
        self.w = [rng.standard_normal((a, b), dtype=f32) * f32(1 / numpy.sqrt(a))
                  for a, b in zip(dims[:-1], dims[1:])]
        # a[i]: the input of layer i (a[0] the batch, a[-1] the logits).
        self.a = [rng.standard_normal((batch_size, d), dtype=f32) for d in dims]
        # dz[i]: the gradient at layer i's output; dz[i - 1] also receives layer i's dx.
        self.dz = [rng.standard_normal((batch_size, d), dtype=f32) for d in dims[1:]]
        self.dw = [numpy.empty_like(w) for w in self.w]

    def forward(self, m=None):
        m = self.batch_size if m is None else m
        for i, w in enumerate(self.w):
            self.gemm(self.a[i][:m], w, self.a[i + 1][:m], False, False)
        return self.a[-1][:m]

    def step(self, m=None):
        m = self.batch_size if m is None else m
        self.forward(m)
        for i in range(len(self.w) - 1, -1, -1):
            self.gemm(self.a[i][:m], self.dz[i][:m], self.dw[i], True, False)
            if i > 0:
                self.gemm(self.dz[i][:m], self.w[i], self.dz[i - 1][:m], False, True)

    def epoch(self, x, y):
        """The GEMMs of one epoch over ``len(x)`` samples (the data itself is not read)."""
        n = x.shape[0]
        for start in range(0, n, self.batch_size):
            self.step(min(self.batch_size, n - start))
