"""Single-file models: ``model.save(path)``, ``load_model(path)`` and weights-only files.

A ``.fastnn`` file is a zip (entries stored, not compressed) holding:

- ``config.json``: ``format`` ("fastnn"), ``format_version``, ``fastnn_version``,
  ``kind`` ("model" or "weights"), the architecture (``Sequential.get_config()``),
  the compile settings (optimizer, loss and metrics serialized), a manifest of
  the weights (name, shape, dtype, in ``get_weights()`` order) and, unless
  ``include_optimizer=False``, the training state: the optimizer's flat slot
  arrays, its step count (which is also a schedule's position), Nadam's
  ``u_product``, and fastnn's random stream, so a resumed ``fit`` shuffles and
  drops out exactly as the uninterrupted run would have; and ``quantization``
  ("int8" or "bfloat16") for a model ``quantize``-d for serving: the float
  weights are stored and loading quantizes them again (the conversion is a
  pure function of them, so the loaded model predicts bit for bit the same).
- ``weights/<i>.npy`` and ``optimizer/<slot>.npy``: the arrays.

Files are written atomically (``fastnn.utils.atomic``). Loading treats the
file as hostile: no pickle (``allow_pickle=False``), layer/optimizer/loss/metric
classes come only from fastnn's own registries (never a module path from the
file), and every size is checked before anything is read or allocated: only
regular files are opened; the zip's end records (entry count, directory
size, no data around the zip) are read before ``zipfile`` parses anything
(``_file_checks``); entries must be stored uncompressed, so each declared
size is backed by bytes the file really holds; ``config.json`` is bounded in
size, depth and containers before ``json`` parses it; each ``.npy`` header's
shape and dtype must match the manifest and header plus data fill the entry
exactly; per-sample shapes are bounded and each layer's weight shapes checked
before they are created (as zeros: loading draws nothing from the random
stream); weight values must be finite and in range, and a probe forward pass
finite. Whatever is wrong with a file is reported as one exception,
``InvalidModelFileError`` (a ValueError); no partial model comes back.
"""
import io
import json
import math
import os
import zipfile

import numpy

from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from ..backend import get_ops
from .. import saving as custom_registry
from ..layers.base import Layer, layer_registry, requested_weight
from ..engine.quantize import MODES as QUANTIZATION_MODES
from ..utils.atomic import atomic_write
from ..utils.random import get_rng
from ._file_checks import (InvalidModelFileError, check_json_structure, check_zip_layout,
                           open_regular_file)

FORMAT = "fastnn"
FORMAT_VERSION = 1
CONFIG_ENTRY = "config.json"

# Guards against hostile files (all checked before reading the data).
MAX_CONFIG_BYTES = 2 << 20      # ~3,800 layers (a layer's entry takes ~530 bytes)
MAX_CONFIG_DEPTH = 32
MAX_CONFIG_CONTAINERS = 40_000  # JSON arrays and objects (~8 per layer)
MAX_ENTRIES = 10_000
MAX_DIRECTORY_BYTES = MAX_ENTRIES * 128
MAX_TOTAL_BYTES = 16 << 30
MAX_NPY_HEADER_BYTES = 4096
MAX_SAMPLE_ELEMENTS = 1 << 22   # per sample, for the input and every layer's output
MAX_ABS_WEIGHT = 1e10           # larger weights overflow float32 within a layer or two
_DTYPES = ("float32", "float64")
_OPTIMIZER_SCALARS = ("iterations", "u_product")
_NON_NEGATIVE_SLOTS = ("v", "vhat", "accumulator", "acc_grad", "acc_delta", "ms")
_CONFIG_KEYS = {"format", "format_version", "fastnn_version", "kind", "model", "built",
                "compile", "weights", "optimizer_state", "rng_state", "mask_calls",
                "quantization"}


# ===================================================================== saving
def save_model(model, path, include_optimizer=True):
    """Write ``model`` to one file at ``path``, atomically.

    Args:
        model: a Sequential.
        path: file path (``.fastnn`` by convention).
        include_optimizer: also store the optimizer state and fastnn's random
            stream, so ``load_model`` + ``fit(initial_epoch=...)`` resumes exactly.
    """
    for layer in model.layers:
        _check_registered(layer)
    weights = model.get_weights() if model.built else []
    payload = _header("model")
    payload.update(model=model.get_config(), built=bool(model.built),
                   compile=_compile_config(model), weights=_manifest(model.weights),
                   optimizer_state=None, rng_state=None)
    if model.quantization is not None:
        payload["quantization"] = model.quantization
    arrays = {f"weights/{i}.npy": a for i, a in enumerate(weights)}
    optimizer = model.optimizer
    # An optimizer that has not stepped yet (just compiled) has no state to keep.
    if include_optimizer and optimizer is not None and model.built and optimizer.built:
        ops = get_ops()
        state = {name: numpy.asarray(ops.to_numpy(arr)) for name, arr in optimizer.state.items()}
        payload["optimizer_state"] = {
            "scalars": {k: getattr(optimizer, k) for k in _OPTIMIZER_SCALARS
                        if hasattr(optimizer, k)},
            "slots": {name: {"shape": list(a.shape), "dtype": a.dtype.name}
                      for name, a in state.items()}}
        payload["rng_state"] = get_rng().bit_generator.state
        # Seeded Dropout/DropConnect count their training calls: part of the state too.
        payload["mask_calls"] = [getattr(layer, "mask_calls", None) for layer in model.layers]
        arrays.update({f"optimizer/{name}.npy": a for name, a in state.items()})
    _write(path, payload, arrays)


def save_weights(model, path):
    """Write only the weights of ``model`` (``load_weights`` reads them back)."""
    payload = _header("weights")
    payload["weights"] = _manifest(model.weights)
    _write(path, payload, {f"weights/{i}.npy": a for i, a in enumerate(model.get_weights())})


def _header(kind):
    import fastnn
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "fastnn_version": fastnn.__version__, "kind": kind}


def _manifest(weights):
    return [{"name": w.path, "shape": list(w.shape), "dtype": numpy.dtype(w.value.dtype).name}
            for w in weights]


def _check_registered(layer):
    name = type(layer).__name__
    if custom_registry.registered_key(type(layer)) is not None:
        return
    if name not in layer_registry or layer_registry.get(name) is not type(layer):
        raise ValueError(f"Cannot save layer {layer.name!r}: {name} is not a registered fastnn "
                         f"layer (register it with "
                         f"@fastnn.saving.register_keras_serializable())")


def _compile_config(model):
    if model.loss is None:
        return None
    metrics = []
    for spec in model._metric_specs:
        if isinstance(spec, str):
            metrics.append(spec)
        else:
            metrics.append(metrics_mod.serialize(spec))
    return {"optimizer": optimizers_mod.serialize(model.optimizer),
            "loss": losses_mod.serialize(model.loss), "metrics": metrics}


def _write(path, payload, arrays):
    config = json.dumps(payload, indent=1, default=_json_default).encode("utf-8")
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(CONFIG_ENTRY, config)
        for entry, array in arrays.items():
            array = numpy.ascontiguousarray(array)
            with zf.open(entry, "w", force_zip64=array.nbytes > (1 << 30)) as handle:
                numpy.lib.format.write_array(handle, array, allow_pickle=False)


def _json_default(obj):
    if isinstance(obj, numpy.integer):
        return int(obj)
    if isinstance(obj, numpy.floating):
        return float(obj)
    if isinstance(obj, numpy.ndarray):
        return obj.tolist()
    raise TypeError(f"Cannot save {type(obj).__name__} {obj!r} in a model config")


# ===================================================================== loading
def load_model(path, compile=True):
    """Rebuild the model saved at ``path``.

    Args:
        path: a file written by ``model.save``.
        compile: compile the model as it was saved and, when the file holds
            training state, restore the optimizer state and fastnn's random
            stream (so ``fit(..., initial_epoch=k)`` continues the saved run).

    Raises:
        InvalidModelFileError: the file is not a valid fastnn model file.
        OSError: the file cannot be opened.
    """
    f, size = open_regular_file(path)
    with f:
        return _untrusted(path, _load_model, f, size, compile)


def load_weights(model, path):
    """Copy the weights stored at ``path`` (a model or weights file) into ``model``.

    Raises:
        InvalidModelFileError: the file is not a valid fastnn file.
        ValueError: its weights do not fit ``model`` (count or shapes).
    """
    model._ensure_built()
    expected = [w.shape for w in model.weights]
    names = [w.path for w in model.weights]
    f, size = open_regular_file(path)
    with f:
        arrays = _untrusted(path, _read_weights, f, size, expected, names)
    model.set_weights(arrays)


def _untrusted(path, fn, *args):
    """Run ``fn`` on an untrusted file: anything that goes wrong is InvalidModelFileError.

    Whatever a hostile file provokes (zip, JSON, npy or layer-constructor
    errors) is reported with its cause chained, never as a crash.
    """
    try:
        return fn(*args)
    except _WeightsMismatch as exc:
        raise ValueError(f"{os.fspath(path)!r}: {exc}") from None
    except (NameError, ImportError, SyntaxError):
        raise  # a bug in fastnn itself, not something a file can cause
    except InvalidModelFileError as exc:
        raise InvalidModelFileError(f"{os.fspath(path)!r} is not a valid fastnn file: "
                                    f"{exc}") from exc
    except Exception as exc:  # noqa: BLE001 -- the one documented error for a bad file
        raise InvalidModelFileError(f"{os.fspath(path)!r} is not a valid fastnn file: "
                                    f"{type(exc).__name__}: {exc}") from exc


class _WeightsMismatch(Exception):
    """A valid weights file whose arrays do not fit the model (a ValueError for the user)."""


def _load_model(f, size, compile):
    reader = _Reader(f, size)
    config = reader.config
    _require(config.get("kind") != "weights", "it holds only weights; call load_weights() "
             "on a model of the same architecture")
    _require(config.get("kind") == "model", f"unknown kind {config.get('kind')!r}")
    manifest = _weights_manifest(config)
    arrays = [reader.array(f"weights/{i}.npy", shape, dtype)
              for i, (shape, dtype) in enumerate(manifest)]
    model = _model_from_config(_dict(config, "model"), manifest,
                               _field(config, "built", bool))
    if model.built:
        _check_weight_values([w.path for w in model.weights], arrays)
        model.set_weights(arrays)
    compile_config = config.get("compile")
    rng_state = mask_calls = None
    if compile and compile_config is not None:
        _compile(model, _expect_dict(compile_config, "compile"))
        state = config.get("optimizer_state")
        if state is not None and model.built:
            _restore_optimizer(model, _expect_dict(state, "optimizer_state"), reader)
            rng_state = _checked_rng_state(config.get("rng_state"))
            mask_calls = _checked_mask_calls(config.get("mask_calls"), model)
    quantization = config.get("quantization")
    if quantization is not None:
        _require(isinstance(quantization, str) and quantization in QUANTIZATION_MODES
                 and model.built,
                 f"unknown quantization {quantization!r}")
        model.quantize(quantization)
    if model.built:  # a config that builds but cannot run is refused here
        probe = numpy.zeros((1,) + tuple(model._input_shape), dtype=model.layers[0].dtype)
        _require(numpy.isfinite(model.predict_on_batch(probe)).all(),
                 "the model's output for an all-zero input is not finite")
    if rng_state is not None:
        get_rng().bit_generator.state = rng_state  # last: nothing changes on failure
    for layer, calls in zip(model.layers, mask_calls or []):
        if calls is not None:
            layer.mask_calls = calls
    return model


def _read_weights(f, size, expected, names):
    reader = _Reader(f, size)
    manifest = _weights_manifest(reader.config)
    shapes = [shape for shape, _ in manifest]
    if shapes != [tuple(s) for s in expected]:
        raise _WeightsMismatch(f"the file holds {len(shapes)} weight arrays of shapes {shapes}, "
                               f"the model has {len(expected)} of shapes {expected}")
    arrays = [reader.array(f"weights/{i}.npy", shape, dtype)
              for i, (shape, dtype) in enumerate(manifest)]
    _check_weight_values(names, arrays)
    return arrays


class _Reader:
    """A zip opened defensively: its parsed config.json and size-checked array reads."""

    def __init__(self, fileobj, size):
        entries = check_zip_layout(fileobj, size, MAX_ENTRIES, MAX_DIRECTORY_BYTES)
        fileobj.seek(0)
        self.zip = zipfile.ZipFile(fileobj)
        infos = self.zip.infolist()
        _require(len(infos) == entries, f"the zip directory holds {len(infos)} entries, "
                 f"its end record says {entries}")
        names = [info.filename for info in infos]
        _require(len(set(names)) == len(names), "duplicate entry names")
        for info in infos:
            # Stored entries only: every declared size is then backed by real bytes.
            _require(info.compress_type == zipfile.ZIP_STORED
                     and info.compress_size == info.file_size,
                     f"entry {info.filename!r} is compressed (fastnn stores entries as is)")
            _require(not info.flag_bits & 0x1, f"entry {info.filename!r} is encrypted")
        total = sum(info.file_size for info in infos)
        _require(total <= min(MAX_TOTAL_BYTES, size),
                 f"declares {total} bytes of entries, more than the file holds "
                 f"(or than the limit of {MAX_TOTAL_BYTES})")
        _require(CONFIG_ENTRY in names, f"no {CONFIG_ENTRY} (not a fastnn file?)")
        _require(self.zip.getinfo(CONFIG_ENTRY).file_size <= MAX_CONFIG_BYTES,
                 f"{CONFIG_ENTRY} is larger than {MAX_CONFIG_BYTES} bytes")
        raw = self.zip.read(CONFIG_ENTRY)
        check_json_structure(raw, MAX_CONFIG_DEPTH, MAX_CONFIG_CONTAINERS)
        config = json.loads(raw.decode("utf-8"))
        _require(isinstance(config, dict) and config.get("format") == FORMAT,
                 "config.json does not describe a fastnn file")
        version = config.get("format_version")
        _require(isinstance(version, int) and not isinstance(version, bool),
                 "format_version is missing")
        _require(version <= FORMAT_VERSION,
                 f"format version {version} was written by a newer fastnn "
                 f"({config.get('fastnn_version')!r}); this one reads up to {FORMAT_VERSION}")
        unknown = sorted(set(config) - _CONFIG_KEYS)
        _require(not unknown, f"config.json has unknown entries {unknown[:5]}")
        self.config = config

    def array(self, entry, shape, dtype):
        """The array at ``entry``, after checking its size and .npy header against the manifest.

        Header plus data must fill the entry exactly: a header-length field off
        by a byte would otherwise shift every value.
        """
        _require(entry in self.zip.NameToInfo, f"entry {entry!r} is missing")
        nbytes = math.prod(shape) * dtype.itemsize
        size = self.zip.getinfo(entry).file_size
        _require(nbytes <= size <= nbytes + MAX_NPY_HEADER_BYTES,
                 f"entry {entry!r} has {size} bytes, expected {nbytes} plus a header")
        raw = self.zip.read(entry)  # reads at most the declared size; the CRC is checked
        stream = io.BytesIO(raw)
        version = numpy.lib.format.read_magic(stream)
        _require(version == (1, 0), f"entry {entry!r}: unsupported .npy version {version}")
        header_shape, fortran, header_dtype = numpy.lib.format.read_array_header_1_0(
            stream, max_header_size=MAX_NPY_HEADER_BYTES)
        _require(tuple(header_shape) == shape and header_dtype == dtype and not fortran,
                 f"entry {entry!r} holds {header_dtype} {header_shape}, "
                 f"the manifest says {dtype} {shape}")
        offset = stream.tell()
        _require(len(raw) - offset == nbytes,
                 f"entry {entry!r} has {len(raw) - offset} bytes of data after its "
                 f"{offset}-byte header, its shape needs exactly {nbytes}")
        if not nbytes:
            return numpy.zeros(shape, dtype)
        return numpy.frombuffer(raw, dtype=dtype, count=math.prod(shape),
                                offset=offset).reshape(shape).copy()


def _weights_manifest(config):
    """[(shape, dtype)] from the manifest, each checked to be plain and bounded."""
    entries = config.get("weights")
    _require(isinstance(entries, list) and len(entries) <= MAX_ENTRIES,
             "the weights manifest is missing")
    out = []
    for entry in entries:
        _require(isinstance(entry, dict), "a weights manifest entry is not an object")
        out.append((_shape(entry.get("shape")), _dtype(entry.get("dtype"))))
    return out


def _shape(value):
    _require(isinstance(value, list) and len(value) <= 8
             and all(type(d) is int and 0 <= d <= MAX_TOTAL_BYTES for d in value),
             f"invalid shape {value!r}")
    return tuple(value)


def _dtype(value):
    _require(value in _DTYPES, f"unsupported dtype {value!r} (only {', '.join(_DTYPES)})")
    return numpy.dtype(value)


# --------------------------------------------------------------------- the model
def _model_from_config(config, manifest, built):
    """A Sequential from its config; built only with the weight shapes the file declares."""
    from .sequential import Sequential
    layer_configs = config.get("layers")
    _require(isinstance(layer_configs, list) and len(layer_configs) <= MAX_ENTRIES,
             "the model config has no layer list")
    layers = [_layer_from_config(entry) for entry in layer_configs]
    name = config.get("name", "sequential")
    _require(isinstance(name, str), "the model name is not a string")
    model = Sequential._unbuilt(layers, name=name)
    if not built:
        _require(not manifest, "an unbuilt model cannot have weights")
        return model
    input_shape = _sample_shape(config.get("input_shape"), "input shape")
    _build_checked(model, input_shape, [shape for shape, _ in manifest])
    return model


def _sample_shape(value, what):
    """A per-sample shape (input or layer output), bounded before anything is allocated."""
    shape = _shape(list(value) if isinstance(value, tuple) else value)
    _require(shape and 0 not in shape and math.prod(shape) <= MAX_SAMPLE_ELEMENTS,
             f"invalid {what} {shape} (at most {MAX_SAMPLE_ELEMENTS} elements per sample)")
    return shape


def _layer_from_config(entry):
    _require(isinstance(entry, dict), "a layer entry is not an object")
    if "registered_name" in entry:  # a user class: only from fastnn.saving's registry
        key = entry["registered_name"]
        cls = custom_registry.get_registered_object(key) if isinstance(key, str) else None
        _require(isinstance(cls, type) and issubclass(cls, Layer),
                 f"unknown custom layer {key!r}: register its class with "
                 f"@fastnn.saving.register_keras_serializable() before loading")
        layer_config = _dict(entry, "config")
        _require(layer_config.get("dtype", "float32") in _DTYPES,
                 f"unsupported layer dtype {layer_config.get('dtype')!r}")
        return cls.from_config(dict(layer_config))
    class_name = entry.get("class_name")
    _require(isinstance(class_name, str) and class_name in layer_registry,
             f"unknown layer class {class_name!r} (only fastnn's own layers load)")
    layer_config = _dict(entry, "config")
    _require(layer_config.get("dtype", "float32") in _DTYPES,
             f"unsupported layer dtype {layer_config.get('dtype')!r}")
    if layer_config.get("input_shape") is not None:
        _sample_shape(layer_config["input_shape"], "layer input shape")
    return layer_registry.get(class_name).from_config(dict(layer_config))


def _build_checked(model, input_shape, declared):
    """Build each layer, refusing any weight the file does not declare before it is allocated.

    A hostile config (say Dense(units=10**9)) is caught here, before memory is
    committed to it, rather than after; so is a layer output too large per
    sample. Weights start as zeros (the file's values are copied in next):
    loading draws nothing from fastnn's random stream.
    """
    pending = list(reversed(declared))
    shape = input_shape
    for layer in model.layers:
        # A custom layer's nested layers create their weights while it builds, maybe in
        # another order than the file lists them: each must match a declared one left.
        watched = [layer, *_nested_layers(layer)]
        for owner in watched:
            original = owner.add_weight

            def add_weight(*args, _original=original, _layer=owner, **kwargs):
                name, weight_shape = requested_weight(_layer, args, kwargs)
                _require(weight_shape in pending,
                         f"layer {_layer.name!r} needs weight {name!r} of shape "
                         f"{weight_shape}, which the file does not hold")
                del pending[len(pending) - 1 - pending[::-1].index(weight_shape)]
                args, kwargs = _with_zeros_initializer(args, kwargs)
                return _original(*args, **kwargs)

            owner.add_weight = add_weight
        try:
            layer.build(shape)
        finally:
            for owner in watched:
                del owner.add_weight
        shape = _sample_shape(layer.output_shape, f"output shape of layer {layer.name!r}")
    _require(not pending, f"the file holds {len(pending)} more weight arrays than the model")
    model.build(input_shape)


def _check_weight_values(names, arrays):
    """Refuse weights that are not finite, or finite but absurd: beyond
    ``MAX_ABS_WEIGHT``, or a negative moving variance (batch normalization takes its
    square root). Runs before any weight is written."""
    for name, value in zip(names, arrays):
        if not value.size:
            continue
        _require(numpy.isfinite(value).all(), f"weight {name!r} is not finite")
        _require(float(numpy.abs(value).max()) <= MAX_ABS_WEIGHT,
                 f"weight {name!r} holds values beyond +-{MAX_ABS_WEIGHT:g}")
        if name.endswith("/moving_variance"):
            _require(float(value.min()) >= 0, f"weight {name!r} holds a negative variance")


def _nested_layers(layer):
    from ..layers.custom import sublayers
    found = []
    for sub in sublayers(layer):
        found += [sub, *_nested_layers(sub)]
    return found


def _with_zeros_initializer(args, kwargs):
    """``add_weight``'s arguments with the initializer replaced by "zeros": the file's
    values are copied in next, so loading draws nothing from the random stream. The
    initializer is the third positional argument in the ``(name, shape, initializer)``
    form and the second in Keras' ``(shape, initializer)`` form."""
    args, kwargs = list(args), dict(kwargs)
    position = 1 if args and args[0] is not None and not isinstance(args[0], str) else 2
    if len(args) > position:
        args[position] = "zeros"
    else:
        kwargs["initializer"] = "zeros"
    return args, kwargs


def _compile(model, config):
    metrics = config.get("metrics") or []
    _require(isinstance(metrics, list), "metrics is not a list")
    for spec in metrics:
        _require(isinstance(spec, (str, dict)), f"invalid metric {spec!r}")
    model.compile(optimizer=optimizers_mod.get(_dict(config, "optimizer")),
                  loss=losses_mod.get(_dict(config, "loss")),
                  metrics=[spec if isinstance(spec, str) else metrics_mod.get(spec)
                           for spec in metrics])


def _restore_optimizer(model, state, reader):
    optimizer = model.optimizer
    optimizer.build(model._store)
    slots = _dict(state, "slots")
    _require(set(slots) == set(optimizer.state),
             f"optimizer slots {sorted(slots)} do not match {type(optimizer).__name__}'s "
             f"{sorted(optimizer.state)}")
    ops = get_ops()
    for name, target in optimizer.state.items():
        array = reader.array(f"optimizer/{name}.npy", tuple(target.shape),
                             numpy.dtype(target.dtype))
        _require(numpy.isfinite(array).all(), f"optimizer slot {name!r} is not finite")
        _require(name not in _NON_NEGATIVE_SLOTS or not array.size or array.min() >= 0,
                 f"optimizer slot {name!r} holds negative values (it accumulates squares)")
        target[...] = ops.asarray(array)
    scalars = _dict(state, "scalars")
    iterations = scalars.get("iterations")
    _require(type(iterations) is int and iterations >= 0, "invalid optimizer iterations")
    optimizer.iterations = iterations
    if hasattr(optimizer, "u_product"):
        u_product = scalars.get("u_product")
        _require(type(u_product) is float and 0 < u_product <= 1, "invalid Nadam u_product")
        optimizer.u_product = u_product


def _checked_mask_calls(calls, model):
    """Per-layer training-call counters of seeded mask layers (absent in older files)."""
    if calls is None:
        return None
    _require(isinstance(calls, list) and len(calls) == len(model.layers),
             "mask_calls must list one entry per layer")
    for layer, value in zip(model.layers, calls):
        _require(value is None or (type(value) is int and value >= 0
                                   and hasattr(layer, "mask_calls")),
                 "invalid mask_calls entry")
    return calls


def _checked_rng_state(state):
    """The saved random-stream state, validated on a scratch generator first."""
    if state is None:
        return None
    _require(isinstance(state, dict) and state.get("bit_generator") ==
             type(get_rng().bit_generator).__name__, "invalid random-stream state")
    type(get_rng().bit_generator)().state = state  # raises on a malformed state
    return state


# --------------------------------------------------------------------- small checks
def _require(condition, message):
    if not condition:
        raise InvalidModelFileError(message)


def _expect_dict(value, what):
    _require(isinstance(value, dict), f"{what} is not an object")
    return value


def _dict(mapping, key):
    return _expect_dict(mapping.get(key), key)


def _field(mapping, key, kind):
    value = mapping.get(key)
    _require(isinstance(value, kind), f"{key} is missing or not a {kind.__name__}")
    return value
