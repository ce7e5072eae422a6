"""Activations come from two files: their math and declaration in fastnn/backend/ops.py
(``@activation`` on the Ops method) and their kernel in fastnn/_kernels/_elementwise.pyx
(the ``Act`` code named like the method in upper case). Everything else derives from
those: the ``fastnn.activations`` registry, the "cpu" backend's kernel-backed methods and
the compiled executor's activation codes. These tests check each derivation for every
declared activation."""
import ast
import inspect

import numpy as np
import pytest

import fastnn
from fastnn import activations, layers
from fastnn.backend import cpu_ops, get_ops, use_backend
from fastnn.backend.ops import Ops, activation, activation_methods

_elementwise = pytest.importorskip("fastnn._kernels._elementwise")
_executor = pytest.importorskip("fastnn._kernels._executor")

DECLARED = activation_methods(Ops)
PUBLIC = sorted(name for name, spec in DECLARED.items() if spec.public)
# Row-wise activations: the executor's own specials, not elementwise ``Act`` codes.
ROW_WISE = {"softmax", "log_softmax"}
CODED = sorted(name for name in DECLARED if name.upper() in _elementwise.Act.__members__)
# Activations whose kernel code arrived after the first kernels: kernel-backed on "cpu" now.
NEWLY_CODED = ["relu6", "softsign", "hard_sigmoid", "hard_silu", "exponential", "mish",
               "gelu_tanh"]


def _params(name):
    spec = DECLARED[name]
    return {} if spec.param is None else {spec.param: 0.3}


def test_the_declarations_cover_the_known_activations():
    assert {"relu", "leaky_relu", "elu", "sigmoid", "softmax", "mish", "gelu_tanh",
            "general_relu"} <= set(DECLARED)
    assert set(NEWLY_CODED) <= set(CODED)
    assert not DECLARED["gelu_tanh"].public and not DECLARED["general_relu"].public
    assert DECLARED["leaky_relu"].param == "alpha" and DECLARED["leaky_relu"].default == 0.2
    assert DECLARED["elu"].default == 1.0
    # Non-activation Ops methods (``scale`` has an Act code too) are not declared.
    assert "scale" not in DECLARED and "clip_by_value" not in DECLARED
    for name in DECLARED:
        assert callable(getattr(Ops, "backprop_" + name)), name


@pytest.mark.parametrize("name", PUBLIC)
def test_public_activations_are_registered(name):
    spec = DECLARED[name]
    act = activations.get(name)
    assert name in activations.names()
    assert getattr(activations, name) is act
    assert act.in_place == spec.in_place
    assert act.params == ({} if spec.param is None else {spec.param: spec.default})
    assert activations.serialize(act) == name


def test_aliases_and_variants_are_kept():
    assert activations.swish is activations.get("silu")
    assert activations.hard_swish is activations.get("hard_silu")
    assert {"swish", "hard_swish"} <= set(activations.names())
    assert "gelu_tanh" not in activations.names() and "general_relu" not in activations.names()
    assert activations.get({"name": "gelu", "approximate": True}).kernel == ("gelu_tanh", {})
    relu_cap = activations.get({"name": "relu", "max_value": 6.0})
    assert relu_cap.kernel[0] == "general_relu" and not relu_cap.in_place


def test_a_new_declaration_is_registered_by_name():
    class Extended(Ops):
        @activation(param="beta")
        def bent(self, x, beta=0.5, out=None):
            return x

    found = activation_methods(Extended)
    assert found["bent"].param == "beta" and found["bent"].default == 0.5
    assert found["relu"].in_place and not found["bent"].in_place


def test_in_place_default_comes_from_the_declaration():
    """An ActivationFunction built directly takes the declared in_place flag and
    parameter default (elu's backward reads its input: not in place; its kernel
    parameter is alpha=1.0 even when not given)."""
    elu = activations.ActivationFunction("elu")
    assert not elu.in_place and elu.kernel == ("elu", {"alpha": 1.0})
    assert activations.ActivationFunction("tanh").in_place


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", CODED)
def test_cpu_runs_the_kernel_and_matches_the_reference(name, dtype):
    ops, ref = get_ops("cpu"), get_ops("numpy")
    forward, backward = getattr(type(ops), name), getattr(type(ops), "backprop_" + name)
    code = int(_elementwise.Act[name.upper()])
    assert forward is not getattr(Ops, name) and forward.kernel_code == code
    assert backward.kernel_code == code
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((7, 33)) * 4).astype(dtype)
    dy = rng.standard_normal((7, 33)).astype(dtype)
    params = _params(name)
    param = next(iter(params.values()), 0.0)
    tol = dict(rtol=2e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-9, atol=1e-12)

    y = getattr(ops, name)(x, **params)
    want = getattr(ref, name)(x, **params)
    np.testing.assert_allclose(y, want, **tol)
    # The result is the kernel's own, bit for bit (not the reference's).
    assert np.array_equal(y, _elementwise.unary(code, x, None, param, 1))
    dx = getattr(ops, "backprop_" + name)(dy, x, y, **params)
    np.testing.assert_allclose(dx, getattr(ref, "backprop_" + name)(dy, x, want, **params),
                               **tol)
    assert np.array_equal(dx, _elementwise.backward(code, dy, x, y, None, param, 1))

    out = np.empty_like(x)
    assert getattr(ops, name)(x, out=out, **params) is out
    np.testing.assert_array_equal(out, y)


@pytest.mark.parametrize("name", CODED)
def test_cpu_falls_back_to_the_reference(name):
    """A strided input is not the kernels' business: the reference computes it."""
    ops, ref = get_ops("cpu"), get_ops("numpy")
    x = np.linspace(-5, 5, 80, dtype="float32").reshape(8, 10)[:, ::2]
    params = _params(name)
    np.testing.assert_allclose(getattr(ops, name)(x, **params),
                               getattr(ref, name)(x, **params), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name", CODED)
def test_cpu_methods_have_the_reference_signature(name):
    for method in (name, "backprop_" + name):
        assert (inspect.signature(getattr(cpu_ops.CpuOps, method))
                == inspect.signature(getattr(Ops, method)))


def test_threads_follow_the_cheap_codes():
    assert {int(c) for c in _elementwise.CHEAP} >= {int(_elementwise.Act[n]) for n in
                                                    ("LINEAR", "STEP", "RELU", "LEAKY_RELU")}
    for name in CODED:
        threads = getattr(cpu_ops.CpuOps, name).__globals__["threads"]
        cheap = _elementwise.Act[name.upper()] in _elementwise.CHEAP
        assert threads is (cpu_ops._threads_light if cheap else cpu_ops._threads), name


# The Keras arguments that reach a variant activation.
VARIANT_CONFIGS = {"gelu_tanh": {"name": "gelu", "approximate": True}}


def _dense_model(name, seed=4):
    fastnn.utils.set_random_seed(seed)
    act = activations.get(VARIANT_CONFIGS.get(name, name))
    model = fastnn.Sequential([fastnn.Input(shape=(4,)), layers.Dense(6, activation=act),
                               layers.Dense(3)])
    model.compile(fastnn.optimizers.SGD(0.05), "mse")
    return model


@pytest.mark.parametrize("name", sorted(set(CODED) | ROW_WISE))
def test_executor_compiles_the_dense_stage(name):
    model = _dense_model(name)
    stage = [s for layer in model.layers for s in layer.stages()][0]
    assert stage.act_name == name
    assert _executor.compilable(stage) == (True, "")


def test_keras_relu_arguments_compile_as_general_relu():
    """relu(max_value=...) is the executor's three-parameter special, compiled."""
    model = _dense_model("relu")
    stage = [s for layer in model.layers for s in layer.stages()][0]
    capped = stage.replace(activation=activations.get({"name": "relu", "max_value": 2.0}))
    assert capped.act_name == "general_relu"
    assert _executor.compilable(capped) == (True, "")


def test_executor_refuses_two_parameters_and_non_activation_codes():
    stage = [s for layer in _dense_model("relu").layers for s in layer.stages()][0]
    two = stage.replace(activation=activations.ActivationFunction("elu", alpha=0.5, beta=2.0))
    ok, reason = _executor.compilable(two)
    assert not ok and "one parameter" in reason
    for fake in ("scale", "clip", "RELU"):
        bad = stage.replace(activation=activations.ActivationFunction(fake))
        ok, reason = _executor.compilable(bad)
        assert not ok and "no compiled kernel" in reason


@pytest.mark.parametrize("name", sorted(set(CODED) | ROW_WISE))
def test_compiled_dense_training_step_matches_numpy(name):
    """One train_on_batch on the compiled executor ("cpu") and on the reference
    ("numpy") from the same weights ends with the same weights."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 4)).astype("float32")
    y = rng.standard_normal((8, 3)).astype("float32")
    weights = {}
    for backend in ("cpu", "numpy"):
        with use_backend(backend) as ops:
            model = _dense_model(name)
            model.train_on_batch(x, y)
            if backend == "cpu":
                parts = model._train_executor(ops, 8).parts
                assert any(type(p).__name__ == "_SegmentPart" for p in parts)
            weights[backend] = model.get_weights()
    for a, b in zip(weights["cpu"], weights["numpy"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- the two-file rule
def _source_tree(module):
    return ast.parse(inspect.getsource(module))


def test_cpu_ops_names_no_activation():
    """cpu_ops.py defines no per-activation method (softmax, a row-wise kernel, apart)
    and reads no activation code by name: the methods are generated from the
    declarations and ``_elementwise.Act``."""
    tree = _source_tree(cpu_ops)
    activation_methods_here = {node.name for node in ast.walk(tree)
                               if isinstance(node, ast.FunctionDef)} & (
        set(DECLARED) | {"backprop_" + n for n in DECLARED})
    assert activation_methods_here <= {"softmax", "backprop_softmax"}
    act_members = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                   and isinstance(node.value, ast.Attribute) and node.value.attr == "Act"}
    assert act_members <= {"CLIP", "SCALE", "__members__"}
    strings = {node.value for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert not strings & set(DECLARED)


def test_activations_module_names_only_aliases_and_variants():
    """activations.py names an activation only as an alias, a Keras-argument variant
    (relu -> general_relu, gelu -> gelu_tanh, leaky_relu's negative_slope, softmax's
    axis) or the default (linear)."""
    tree = _source_tree(activations)
    names = {node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    allowed = {"silu", "hard_silu", "relu", "general_relu", "gelu", "gelu_tanh", "leaky_relu",
               "softmax", "log_softmax", "linear"}
    assert names & set(DECLARED) <= allowed
    assert not {"relu6", "mish", "exponential", "softsign", "hard_sigmoid", "elu", "selu",
                "sigmoid", "tanh", "softplus", "step"} & names
