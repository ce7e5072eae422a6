"""``DistributedOptimizer``: an optimizer that averages gradients over MPI ranks first.

As in Horovod, wrapping the optimizer is the switch: a model compiled with it
trains data-parallel in ``fit`` (see ``fastnn.distributed``). The wrapped
object is an instance of a subclass of the optimizer's own class, with the
same name, config and state, so callbacks that change the learning rate,
``model.save`` and ``load_model`` see the optimizer they know.
"""
from .. import optimizers as optimizers_mod
from ..optimizers.base import Optimizer

_CLASSES = {}


class _Averaging:
    """Mixed in before the optimizer class: allreduce the gradients, then step."""

    parallel = None

    def apply(self, store):
        self.parallel.reduce_gradients(store)
        super().apply(store)


def distributed_class(base):
    """The data-parallel subclass of optimizer class ``base`` (one per class)."""
    if base not in _CLASSES:
        _CLASSES[base] = type(base.__name__, (_Averaging, base),
                              {"__module__": base.__module__, "__qualname__": base.__qualname__,
                               "__doc__": base.__doc__})
    return _CLASSES[base]


def wrap(optimizer, parallel):
    """A data-parallel copy of ``optimizer`` (an Optimizer or a name like "adam")."""
    optimizer = optimizers_mod.get(optimizer)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"DistributedOptimizer needs a fastnn optimizer, got {optimizer!r}")
    if isinstance(optimizer, _Averaging):
        raise TypeError("This optimizer is already a DistributedOptimizer")
    wrapped = object.__new__(distributed_class(type(optimizer)))
    wrapped.__dict__.update(optimizer.__dict__)
    wrapped.parallel = parallel
    return wrapped
