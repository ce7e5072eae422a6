"""The "cupy" backend.

Three parts:

- Clear errors, on any machine: a missing CuPy and a CuPy without a visible
  GPU are told apart by the message, and nothing else breaks.
- ``TestEmulatedKernels``, on any machine with a C++ compiler: the fused
  kernels' CUDA C bodies are compiled as C++ (g++, no contracted multiply-adds)
  and run through a stand-in ``cupy`` module backed by NumPy, so every
  ``CupyOps`` method -- its argument order, scalar casts, fallbacks and kernel
  arithmetic -- is compared with the reference by the conformance checks. With
  nvcc present the same bodies are also compiled as CUDA device code. What this
  cannot show: CuPy's own code generation and type rules, cuBLAS, a real GPU.
- ``TestOnGPU``: the same comparisons and model tests on real CuPy, skipped
  with the reason when CuPy or a GPU is missing.

Plus ``Sequential.to_backend`` between the CPU backends.
"""
import ctypes
import functools
import shutil
import subprocess
import sys
import types

import numpy
import pytest

import fastnn
from fastnn import backend, layers
from fastnn.backend import cupy_ops
from fastnn.backend.ops import Ops
from test_ops_conformance import CHECKS, assert_close

REF = Ops()


# ---------------------------------------------------------------- clear errors
@pytest.fixture
def fresh_cupy_backend(monkeypatch):
    """No cached "cupy" Ops and no cached kernels, restored afterwards."""
    monkeypatch.setattr(backend, "_instances",
                        {k: v for k, v in backend._instances.items() if k != "cupy"})
    monkeypatch.setattr(cupy_ops, "_KERNELS", {})
    return monkeypatch


def _fake_cupy(get_device_count):
    module = types.ModuleType("cupy")
    module.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=get_device_count))
    return module


def test_missing_cupy_says_so_and_how_to_install(fresh_cupy_backend):
    fresh_cupy_backend.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    with pytest.raises(ImportError, match="not installed") as err:
        cupy_ops.CupyOps()
    assert 'pip install "fastnn-toolkit[gpu]"' in str(err.value)
    assert "GPU is visible" not in str(err.value)
    before = backend.get_backend()
    with pytest.raises(ImportError, match="fastnn-toolkit\\[gpu\\]"):
        fastnn.set_backend("cupy")
    with pytest.raises(ImportError):
        with backend.use_backend("cupy"):
            pass
    assert backend.get_backend() == before
    assert "cupy" not in backend.available_backends()
    assert {"cpu", "numpy"} <= set(backend.available_backends())


def test_cupy_without_a_gpu_says_no_gpu_is_visible(fresh_cupy_backend):
    class CUDARuntimeError(RuntimeError):
        pass

    def no_device():
        raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    fresh_cupy_backend.setitem(sys.modules, "cupy", _fake_cupy(no_device))
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible") as err:
        cupy_ops.CupyOps()
    assert "cudaErrorNoDevice" in str(err.value) and "not installed" not in str(err.value)
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible"):
        fastnn.set_backend("cupy")
    assert "cupy" not in backend.available_backends()


def test_zero_devices_is_no_gpu_too(fresh_cupy_backend):
    fresh_cupy_backend.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    with pytest.raises(RuntimeError, match="0 devices"):
        backend.get_ops("cupy")


def test_importing_fastnn_loads_nothing_cuda():
    code = ("import sys, fastnn, fastnn.backend.cupy_ops; fastnn.backend.get_ops('cpu'); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('cupy', 'cupyx', 'cupy_backends')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- emulated kernels
_CTYPES = {"uint64": ("unsigned long long", numpy.uint64), "float64": ("double", numpy.float64),
           "bool": ("bool", numpy.bool_)}


def _params(spec):
    return [tuple(p.split()) for p in spec.split(",")]


def _kernel_source(name, device=False):
    """C++ (or CUDA) for kernel ``name``: a loop over ``i`` binding each parameter to
    element i of its own array, then the kernel's operation, as CuPy runs it."""
    in_params, out_params, body = cupy_ops.ELEMENTWISE[name]
    lines = []
    for k, (ctype, var) in enumerate(_params(in_params)):
        c = "T" if ctype == "T" else _CTYPES[ctype][0]
        lines.append(f"const {c} {var} = ((const {c}*)a[{k}])[i];")
    for k, (ctype, var) in enumerate(_params(out_params), len(_params(in_params))):
        lines.append(f"T& {var} = ((T*)a[{k}])[i];")
    binds = "\n    ".join(lines)
    if device:
        return (f"template <typename T> __global__ void k_{name}(long long n, void** a) {{\n"
                f"  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
                f"  if (i < n) {{\n    {binds}\n    {body}\n  }}\n}}\n"
                f"template __global__ void k_{name}<float>(long long, void**);\n"
                f"template __global__ void k_{name}<double>(long long, void**);\n")
    return "\n".join(
        f'extern "C" void k_{name}_{tag}(long long n, void** a) {{\n'
        f"  typedef {ctype} T;\n  for (long long i = 0; i < n; ++i) {{\n    {binds}\n"
        f"    {body}\n  }}\n}}" for tag, ctype in (("f", "float"), ("d", "double")))


@pytest.fixture(scope="session")
def kernel_library(tmp_path_factory):
    """The kernel bodies built once with g++ as a shared library."""
    if shutil.which("g++") is None:
        pytest.skip("no g++ to build the kernel bodies")
    tmpdir = tmp_path_factory.mktemp("kernels")
    src = "#include <cmath>\n#include <algorithm>\nusing namespace std;\n" + "\n".join(
        _kernel_source(name) for name in cupy_ops.ELEMENTWISE)
    path = f"{tmpdir}/kernels.cpp"
    with open(path, "w") as f:
        f.write(src)
    subprocess.run(["g++", "-O2", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC",
                    path, "-o", f"{tmpdir}/kernels.so"], check=True)
    return ctypes.CDLL(f"{tmpdir}/kernels.so")


class EmulatedElementwiseKernel:
    """``cupy.ElementwiseKernel`` over NumPy arrays, running the C++ build of the body."""

    def __init__(self, lib, in_params, out_params, operation, name, options=()):
        self.name = name.removeprefix("fastnn_")
        assert cupy_ops.ELEMENTWISE[self.name] == (in_params, out_params, operation)
        self.lib, self.params = lib, _params(in_params) + _params(out_params)
        self.n_in = len(_params(in_params))

    def __call__(self, *args):
        assert len(args) == len(self.params), "every output is passed explicitly"
        typed = [a for (ctype, _), a in zip(self.params, args)
                 if ctype == "T" and isinstance(a, numpy.ndarray)]
        t = typed[0].dtype
        if any(a.dtype != t for a in typed):
            raise TypeError("Type is mismatched")  # as CuPy does
        for (ctype, _), a in zip(self.params, args):
            if ctype == "T" and not isinstance(a, numpy.ndarray):
                assert type(a) is t.type, "scalars are passed in the arrays' dtype"
        shape = numpy.broadcast_shapes(*(numpy.shape(a) for a in args))
        outs = args[self.n_in:]
        assert all(o.shape == shape for o in outs)
        bufs = [numpy.ascontiguousarray(numpy.broadcast_to(
            numpy.asarray(a, t if ctype == "T" else _CTYPES[ctype][1]), shape))
            for (ctype, _), a in zip(self.params, args)]
        bufs[self.n_in:] = [b.copy() for b in bufs[self.n_in:]]
        ptrs = (ctypes.c_void_p * len(bufs))(*(b.ctypes.data for b in bufs))
        tag = "f" if t == numpy.float32 else "d"
        getattr(self.lib, f"k_{self.name}_{tag}")(ctypes.c_longlong(int(numpy.prod(shape))),
                                                  ptrs)
        for o, b in zip(outs, bufs[self.n_in:]):
            o[...] = b
        return outs[0] if len(outs) == 1 else tuple(outs)


class EmulatedReductionKernel:
    """``cupy.ReductionKernel`` for the kernels in REDUCTIONS, written in NumPy."""

    def __init__(self, in_params, out_params, map_expr, reduce_expr, post_map_expr, identity,
                 name, options=()):
        assert name == "fastnn_logsumexp"
        assert (map_expr, reduce_expr, post_map_expr) == ("exp(x - m)", "a + b", "y = log(a)")

    def __call__(self, x, m, axis, keepdims):
        return numpy.log(numpy.exp(x - m).sum(axis=axis, keepdims=keepdims))


class _NumpyAsCupy(types.ModuleType):
    """A stand-in ``cupy``: NumPy's namespace plus the kernel classes and asnumpy."""

    def __getattr__(self, name):
        return getattr(numpy, name)


@pytest.fixture
def emulated_ops(fresh_cupy_backend, kernel_library):
    lib = kernel_library
    fake = _NumpyAsCupy("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    fake.asnumpy = numpy.asarray
    fake.ElementwiseKernel = functools.partial(EmulatedElementwiseKernel, lib)
    fake.ReductionKernel = EmulatedReductionKernel
    special = types.ModuleType("cupyx.scipy.special")
    from scipy.special import erf
    special.erf = erf
    for name, module in (("cupy", fake), ("cupyx", types.ModuleType("cupyx")),
                         ("cupyx.scipy", types.ModuleType("cupyx.scipy")),
                         ("cupyx.scipy.special", special)):
        fresh_cupy_backend.setitem(sys.modules, name, module)
    ops = cupy_ops.CupyOps()
    assert ops.xp is fake
    return ops


class TestEmulatedKernels:
    SHAPES = [(1, 1), (3, 7), (2, 3, 5), (97, 33)]

    @pytest.mark.parametrize("check", sorted(CHECKS))
    def test_conformance(self, emulated_ops, check):
        for dtype in (numpy.float32, numpy.float64):
            for shape in self.SHAPES:
                CHECKS[check](emulated_ops, dtype, shape, numpy.random.default_rng(7))

    def test_every_kernel_runs_in_the_checks(self, emulated_ops, monkeypatch):
        used = set()
        real = cupy_ops._kernel

        def spy(xp, name):
            used.add(name)
            return real(xp, name)
        monkeypatch.setattr(cupy_ops, "_kernel", spy)
        for check in CHECKS.values():
            check(emulated_ops, numpy.float32, (4, 6), numpy.random.default_rng(1))
        assert used == set(cupy_ops.ELEMENTWISE) | set(cupy_ops.REDUCTIONS)

    def test_dropout_is_bit_identical_for_extreme_seeds(self, emulated_ops):
        for seed in (0, 1, -1, 2**63 - 1, -2**63, 2**64 - 1):
            for shape in ((1000,), (17, 59)):
                numpy.testing.assert_array_equal(emulated_ops.dropout_mask(shape, 0.37, seed),
                                                 REF.dropout_mask(shape, 0.37, seed))

    def test_mixed_dtypes_and_other_dtypes_fall_back(self, emulated_ops):
        param = numpy.zeros(4)
        emulated_ops.sgd_step(param, numpy.ones(4, numpy.float32), None, 0.5)
        numpy.testing.assert_array_equal(param, -0.5)
        x = numpy.linspace(-2, 2, 12, dtype=numpy.float16).reshape(3, 4)
        assert emulated_ops.sigmoid(x).dtype == numpy.float16
        m = emulated_ops.dropout_mask((3, 4), 0.5, 3, dtype="float16")
        numpy.testing.assert_array_equal(m, REF.dropout_mask((3, 4), 0.5, 3, dtype="float16"))

    def test_models_train_like_the_reference(self, emulated_ops):
        rng = numpy.random.default_rng(0)
        x = rng.normal(size=(64, 8)).astype("float32")
        y = rng.integers(0, 3, 64)
        results = []
        for name in ("numpy", "cupy"):
            with backend.use_backend(name):
                fastnn.utils.set_random_seed(5)
                model = fastnn.Sequential([layers.Dense(16, activation="relu", input_shape=(8,)),
                                           layers.Dropout(0.2),
                                           layers.Dense(16, activation="tanh"),
                                           layers.Dense(3, activation="softmax")])
                model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
                loss = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history["loss"]
                plain = fastnn.Sequential([layers.Dense(8, activation="sigmoid",
                                                        input_shape=(8,)),
                                           layers.Dense(3, activation="softmax")])
                plain.compile(optimizer=fastnn.optimizers.SGD(0.1, momentum=0.9),
                              loss="sparse_categorical_crossentropy")
                loss += plain.fit(x, y, batch_size=16, epochs=3, verbose=0).history["loss"]
                results.append((loss, model.predict(x), plain.predict(x)))
        numpy.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
        for got, want in zip(results[1][1:], results[0][1:]):
            assert_close(got, want, numpy.float32)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc on this machine")
def test_kernel_bodies_compile_as_cuda(tmp_path):
    """The operations compile as CUDA device code for float and double (syntax and
    overloads such as sqrt/exp/fabs/max on float); CuPy compiles them with NVRTC."""
    src = tmp_path / "kernels.cu"
    src.write_text("\n".join(_kernel_source(name, device=True)
                             for name in cupy_ops.ELEMENTWISE))
    subprocess.run(["nvcc", "-c", "--fmad=false", str(src), "-o", str(tmp_path / "k.o")],
                   check=True, timeout=300)


# ---------------------------------------------------------------- to_backend on CPU
def _model(seed=3):
    fastnn.utils.set_random_seed(seed)
    model = fastnn.Sequential([layers.Dense(12, activation="relu", input_shape=(5,)),
                               layers.BatchNormalization(),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _data():
    rng = numpy.random.default_rng(1)
    return rng.normal(size=(48, 5)).astype("float32"), rng.integers(0, 3, 48)


def test_to_backend_keeps_predictions_and_training_state():
    x, y = _data()
    model = _model()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    twin = _model()  # the same seed, so the same shuffles
    twin.fit(x, y, batch_size=16, epochs=2, verbose=0)
    before = model.predict(x)
    with backend.use_backend("numpy"):  # both backends hold NumPy arrays
        before_numpy = model.predict(x)
    params = model._store.params
    assert model.to_backend("numpy") is model
    assert model._store.params is not params
    with backend.use_backend("numpy"):
        numpy.testing.assert_array_equal(model.predict(x), before_numpy)
    model.to_backend("cpu")
    numpy.testing.assert_array_equal(model.predict(x), before)
    for a, b in zip(model.optimizer.state.values(), twin.optimizer.state.values()):
        numpy.testing.assert_array_equal(a, b)
    # Training continues where it was: the same steps as a model that never moved.
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    twin.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for weight in model.weights:  # values and gradients are views of the new buffers
        if weight.grad is not None:
            assert numpy.shares_memory(weight.value, model._store.params)
            assert numpy.shares_memory(weight.grad, model._store.grads)


def test_to_backend_composes_with_saving(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    with backend.use_backend("numpy"):
        model.to_backend("numpy")
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        model.save(tmp_path / "m.fastnn")
        want = model.predict(x)
    loaded = fastnn.models.load_model(tmp_path / "m.fastnn")  # default backend: cpu
    numpy.testing.assert_allclose(loaded.predict(x), want, rtol=1e-5, atol=1e-6)
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)


def test_to_backend_refuses_unknown_names_and_leaves_the_model(fresh_cupy_backend):
    model = _model()
    model.build()
    params = model._store.params
    with pytest.raises(ValueError, match="Unknown backend"):
        model.to_backend("tpu")
    fresh_cupy_backend.setitem(sys.modules, "cupy", None)
    with pytest.raises(ImportError, match="fastnn-toolkit\\[gpu\\]"):
        model.to_backend("cupy")
    assert model._store.params is params
    assert fastnn.Sequential([layers.Dense(2)]).to_backend("numpy").built is False


class _FakeDeviceArray:
    """Quacks like a CuPy array for the model's input check (type module "cupy...")."""

    def __init__(self, a):
        self.a = a
        self.shape, self.ndim, self.dtype = a.shape, a.ndim, a.dtype

    def get(self):
        return self.a


_FakeDeviceArray.__module__ = "cupy._core.core"


def test_device_input_on_a_cpu_backend_is_copied_to_the_host():
    x, _ = _data()
    model = _model()
    want = model.predict(x)
    got = model.predict(_FakeDeviceArray(x), batch_size=7)
    assert type(got) is numpy.ndarray
    numpy.testing.assert_array_equal(got, want)
    numpy.testing.assert_array_equal(model(_FakeDeviceArray(x)), model(x))
    with pytest.raises(ValueError, match="features per sample"):
        model.predict(_FakeDeviceArray(x[:, :4]))


# ---------------------------------------------------------------- on a real GPU
def _real_cupy():
    if "cupy" in backend.available_backends():
        return backend.get_ops("cupy")
    try:
        cupy_ops.CupyOps()
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"the cupy backend is not available here: {err}")


@pytest.fixture
def gpu():
    return _real_cupy()


class TestOnGPU:
    @pytest.mark.parametrize("check", sorted(CHECKS))
    @pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 3, 5), (520, 257)], ids=str)
    def test_conformance(self, gpu, check, shape):
        for dtype in (numpy.float32, numpy.float64):
            CHECKS[check](gpu, dtype, shape, numpy.random.default_rng(0))

    def test_training_matches_the_reference_and_moves_both_ways(self, gpu, tmp_path):
        x, y = _data()
        losses, preds = [], []
        for name in ("numpy", "cupy"):
            with backend.use_backend(name):
                model = _model()
                losses.append(model.fit(x, y, batch_size=16, epochs=3,
                                        verbose=0).history["loss"])
                preds.append(model.predict(x))
        numpy.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
        assert_close(preds[1], preds[0], numpy.float32)
        with backend.use_backend("cupy"):
            x_dev = gpu.asarray(x)
            got = model.predict(x_dev)
            assert isinstance(got, gpu.xp.ndarray)
            assert isinstance(model(x), numpy.ndarray)
            model.save(tmp_path / "gpu.fastnn")
        loaded = fastnn.models.load_model(tmp_path / "gpu.fastnn")  # on the CPU backend
        assert_close(loaded.predict(x), preds[1], numpy.float32)
        model.to_backend("cpu")
        assert_close(model.predict(x), preds[1], numpy.float32)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        with backend.use_backend("cupy"):
            model.to_backend("cupy")
            assert isinstance(model._store.params, gpu.xp.ndarray)
            model.fit(x, y, batch_size=16, epochs=1, verbose=0)
