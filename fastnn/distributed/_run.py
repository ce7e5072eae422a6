"""``MPIRun``: the data-parallel form of the hooks ``fit`` calls (``fastnn.models.parallel``).

Every rank holds the same training data and runs the same ``fit`` call.
Rank 0 draws each epoch's order and broadcasts it; every global batch of
``batch_size`` rows is cut into ``size`` contiguous shards and rank ``r``
trains on shard ``r``. Each rank's gradients are weighted by its share of the
batch and summed with one allreduce over the flat gradient buffer, so every
rank applies the same optimizer step to the same weights.
"""
import contextlib
import copy
import hashlib
import json

import numpy

from ..backend import get_backend
from ..callbacks import CSVLogger, ModelCheckpoint
from ..models.parallel import LocalRun
from ..utils import registry
from ._comm import ConfigMismatchError

# Seeded mask layers (Dropout(seed=...)) count their calls; rank r counts from r << 40
# while it trains, so the ranks draw different masks and rank 0 keeps the saved count.
_MASK_CALLS_STRIDE = 1 << 40
_FILE_WRITERS = (ModelCheckpoint, CSVLogger)


class MPIRun(LocalRun):
    """Hooks that make ``fit`` data-parallel over a ``Communicator``'s ranks."""

    def __init__(self, comm):
        self.comm = comm
        self.rank, self.size = comm.rank, comm.size
        self._rows = None  # (rows of this rank, rows of the global batch) of the step

    # ---------------------------------------------------------------- start and end of fit
    def fit_callbacks(self, verbose, callbacks):
        if self.rank == 0:
            return verbose, callbacks
        return 0, [cb for cb in callbacks if not isinstance(cb, _FILE_WRITERS)]

    @contextlib.contextmanager
    def fit_scope(self, model, facts):
        try:
            self._check_same_setup(model, facts)
        except ConfigMismatchError:
            raise  # raised on every rank alike: no abort needed
        except BaseException as exc:  # noqa: BLE001
            self.comm.fail(exc)
        if facts["batch_size"] < self.size:
            raise ValueError(f"batch_size={facts['batch_size']} is the global batch; it must "
                             f"be at least the number of ranks ({self.size})")
        touched = []
        try:
            self._broadcast_state(model)
            touched = self._attach_layers(model)
            yield
        except BaseException as exc:  # noqa: BLE001 - any failure ends the job, never a hang
            self.comm.fail(exc)
        finally:
            self._detach_layers(touched)
            self._rows = None

    def _check_same_setup(self, model, facts):
        """Raise ConfigMismatchError on every rank when any rank's setup differs."""
        mine = _fingerprint(model, facts)
        digest = numpy.frombuffer(hashlib.sha256(
            json.dumps(mine, sort_keys=True, default=str).encode()).digest(), "uint8")
        digests = self.comm.allgather_(digest.copy(), "start-of-fit check")
        if (digests == digests[0]).all():
            return
        everyone = [_leaves(f) for f in self.comm.allgather_object(mine, "start-of-fit check")]
        problems = []
        for key in sorted(set().union(*everyone)):
            values = [f.get(key, "(absent)") for f in everyone]
            for r, value in enumerate(values):
                if value != values[0]:
                    problems.append(f"{key}: rank 0 has {values[0]!r}, rank {r} has {value!r}")
        more = f"; and {len(problems) - 8} more" if len(problems) > 8 else ""
        raise ConfigMismatchError(
            "the ranks do not start fit with the same setup: " + "; ".join(problems[:8])
            + more + ". Every rank must build and compile the same model and call fit with "
            "the same data and arguments (fit gives each rank its shard of every batch)")

    def _broadcast_state(self, model):
        """Rank 0's weights (trainable and not) and optimizer state on every rank."""
        store = model._store
        self.comm.bcast_(store.params, what="broadcast of the weights")
        for weight in model.non_trainable_weights:
            self.comm.bcast_(weight.value, what="broadcast of the weights")
        optimizer = model.optimizer
        if not optimizer.built or optimizer._size != store.size:
            optimizer.build(store)
        for name in sorted(optimizer.state):
            self.comm.bcast_(optimizer.state[name], what="broadcast of the optimizer state")
        scalars = {k: v for k, v in vars(optimizer).items()
                   if k in ("iterations", "u_product")}
        for key, value in self.comm.bcast_object(scalars, what="broadcast").items():
            setattr(optimizer, key, value)

    def _attach_layers(self, model):
        touched = []
        for layer in model.layers:
            if getattr(layer, "synchronized", False) and self.size > 1:
                layer.cross_replica_sum = self._sum_moments
                touched.append((layer, "cross_replica_sum", None))
            if getattr(layer, "seed", None) is not None and hasattr(layer, "mask_calls"):
                layer.mask_calls += self.rank * _MASK_CALLS_STRIDE
                touched.append((layer, "mask_calls", self.rank * _MASK_CALLS_STRIDE))
        return touched

    def _detach_layers(self, touched):
        for layer, attr, offset in touched:
            if attr == "mask_calls":
                layer.mask_calls -= offset
            else:
                setattr(layer, attr, None)

    def _sum_moments(self, values):
        return self.comm.allreduce_sum(values, "synchronized batch-norm allreduce")

    # ---------------------------------------------------------------- each epoch and step
    def epoch_order(self, rng, n, shuffle, batch_size):
        """Rank 0's order (broadcast); rank r > 0 reseeds its own random stream from it.

        A last batch too small to give every rank a row is left out of the epoch.
        """
        order = numpy.empty(n + 1, "int64")
        if self.rank == 0:
            order[1:] = super().epoch_order(rng, n, shuffle, batch_size)
            order[0] = _stream_digest(rng)
        self.comm.bcast_(order, what="broadcast of the epoch order")
        if self.rank:
            bit_generator = rng.bit_generator
            fresh = type(bit_generator)(numpy.random.SeedSequence([int(order[0]), self.rank]))
            bit_generator.state = fresh.state
        tail = n % batch_size
        return order[1:n + 1 - tail] if 0 < tail < self.size else order[1:]

    def shard(self, idx):
        rows = idx.shape[0]
        lo, hi = self.rank * rows // self.size, (self.rank + 1) * rows // self.size
        self._rows = (hi - lo, rows)
        return idx[lo:hi]

    def reduce_gradients(self, store):
        """Replace this rank's gradients with the global batch's: one allreduce.

        In ``fit`` each rank's gradient (a mean over its shard) is weighted by its share
        of the global batch; elsewhere (``train_on_batch``) the ranks weigh the same.
        """
        mine, rows = self._rows or (1, self.size)
        self._rows = None
        grads = store.grads
        if mine != rows:
            grads *= grads.dtype.type(mine / rows)
        self.comm.allreduce_(grads, "gradient allreduce")

    def end_epoch(self, model):
        """Average the non-trainable weights (batch-norm moving statistics) over ranks."""
        weights = model.non_trainable_weights
        if not weights or self.size == 1:
            return
        flat = numpy.concatenate([numpy.asarray(w.value, "float64").reshape(-1)
                                  for w in weights])
        flat = self.comm.allreduce_(flat, "moving-statistics allreduce") / self.size
        pos = 0
        for w in weights:
            w.value[...] = flat[pos:pos + w.value.size].reshape(w.value.shape)
            pos += w.value.size

    def local_part(self, x, y, sw):
        n = x.shape[0]
        lo, hi = self.rank * n // self.size, (self.rank + 1) * n // self.size
        return x[lo:hi], y[lo:hi], None if sw is None else sw[lo:hi]

    def merged(self, tracker, metrics):
        items = [tracker] + list(metrics)
        states = self.comm.allgather_object([_state(m) for m in items], "metrics allgather")
        merged = []
        for i, item in enumerate(items):
            total = None
            for rank_states in states:
                total = _add(total, rank_states[i])
            merged.append(_with_state(item, total))
        return merged[0], merged[1:]

    def any(self, flag):
        if self.size == 1:
            return bool(flag)
        return bool(self.comm.allreduce_sum([1.0 if flag else 0.0], "flag allreduce")[0])


# -------------------------------------------------------------------- helpers
def _fingerprint(model, facts):
    """What every rank must agree on before training: model, weights, optimizer, call.

    Names are left out: automatic layer names count the layers a process has made.
    """
    optimizer = model.optimizer
    return _without_names({
        "model": model.get_config(),
        "weights": [(tuple(w.shape), str(w.value.dtype)) for w in model.weights],
        "optimizer": registry.serialize(optimizer),
        "loss": registry.serialize(model.loss),
        "metrics": [type(m).__name__ for m in model.compiled_metrics],
        "backend": get_backend(), "fit": facts})


def _without_names(value):
    if isinstance(value, dict):
        return {k: _without_names(v) for k, v in value.items() if k != "name"}
    if isinstance(value, (list, tuple)):
        return [_without_names(v) for v in value]
    return value


def _leaves(value, path=""):
    """``{"model.layers[0].config.units": 12, ...}``: a nested value's leaves by path."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{path}.{k}" if path else str(k)))
        return out
    if isinstance(value, (list, tuple)):
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, f"{path}[{i}]"))
        return out if value else {path: "[]"}
    return {path: value if isinstance(value, (int, float, str, bool, type(None))) else str(value)}


def _stream_digest(rng):
    text = json.dumps(rng.bit_generator.state, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


_STATE_KEYS = {}


def _state_keys(metric):
    """Names of the attributes ``reset_state`` assigns: a streaming metric's state."""
    cls = type(metric)
    if cls not in _STATE_KEYS:
        found = []

        class Recorder(cls):
            def __setattr__(self, name, value):
                found.append(name)
                object.__setattr__(self, name, value)

        probe = object.__new__(Recorder)
        probe.__dict__.update(copy.deepcopy(metric.__dict__))
        probe.reset_state()
        _STATE_KEYS[cls] = tuple(dict.fromkeys(found))
    return _STATE_KEYS[cls]


_VARIABLES = "__variables__"


def _state(metric):
    """A metric's state: the attributes ``reset_state`` assigns, and the values of its
    ``add_variable`` variables (where Keras-style metrics keep theirs, reset in place)."""
    state = {key: getattr(metric, key) for key in _state_keys(metric)}
    if getattr(metric, "variables", None):
        state[_VARIABLES] = [v.value for v in metric.variables]
    return state


def _add(a, b):
    """Sum of two metric states (None adds nothing: a rank that saw no samples)."""
    if a is None:
        return copy.deepcopy(b)
    if b is None:
        return a
    if isinstance(a, dict):
        return {k: _add(a.get(k), b.get(k)) for k in a.keys() | b.keys()}
    if isinstance(a, (list, tuple)):
        return type(a)(_add(x, y) for x, y in zip(a, b))
    return a + b


def _with_state(metric, state):
    state = dict(state)
    values = state.pop(_VARIABLES, None)
    merged = copy.copy(metric) if values is None else copy.deepcopy(metric)
    for key, value in state.items():
        setattr(merged, key, value)
    for variable, value in zip(getattr(merged, "variables", ()), values or ()):
        variable.value[...] = value
    return merged
