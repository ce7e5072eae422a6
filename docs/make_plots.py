"""Draw the figures under docs/img/ (run from the repository root after changing them).

    python docs/make_plots.py            # all figures
    python docs/make_plots.py schedules  # just one

Each figure is computed with fastnn itself, so it shows what the code does.
"""
import importlib.util
import sys
from pathlib import Path

import numpy

import fastnn
from fastnn import activations, initializers, layers, optimizers
from fastnn.optimizers import schedules
from fastnn.utils.plotting import require_matplotlib

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"


def new_figure(**kwargs):
    require_matplotlib()
    from matplotlib.figure import Figure
    return Figure(layout="constrained", **kwargs)


def save(fig, name):
    path = IMG / name
    fig.savefig(path, dpi=75)
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KiB)")


def plot_activations():
    """Each activation (solid) and its derivative from the backward pass (dashed)."""
    ops = fastnn.backend.get_ops()
    names = ["linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu",
             "softplus", "gelu", "silu"]
    x = numpy.linspace(-4, 4, 401, dtype="float32")
    fig = new_figure(figsize=(11, 7.5))
    axes = fig.subplots(3, 4, sharex=True).ravel()
    for ax, name in zip(axes, names):
        act = activations.get(name)
        y = ops.to_numpy(act.forward(ops, ops.asarray(x.copy())))
        dy = ops.to_numpy(act.backward(ops, ops.asarray(numpy.ones_like(x)),
                                       ops.asarray(x), ops.asarray(y)))
        ax.plot(x, y, label="f(x)")
        ax.plot(x, dy, "--", label="f'(x)")
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.axvline(0, color="gray", linewidth=0.5)
        ax.set_title(name)
        ax.set_ylim(-2, 4)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left")
    axes[-1].axis("off")
    for ax in axes[8:]:
        ax.set_xlabel("x")
    fig.suptitle("Activations (solid) and their derivatives as the backward pass computes them")
    save(fig, "activations.png")


def plot_initializers():
    """Signal through 10 layers: Glorot vs He under ReLU and tanh."""
    rng = numpy.random.default_rng(0)
    width, depth = 256, 10
    x0 = rng.standard_normal((1000, width)).astype("float32")
    fig = new_figure(figsize=(11, 3.6))
    relu_std, tanh_std, tanh_saturated = fig.subplots(1, 3)
    for init_name in ("glorot_normal", "he_normal"):
        for act_name in ("relu", "tanh"):
            fastnn.utils.set_random_seed(0)
            init, act = initializers.get(init_name), activations.get(act_name)
            x, stds, saturated = x0, [], []
            for _ in range(depth):
                x = numpy.asarray(act(x @ init((width, width), "float32")))
                stds.append(float(x.std()))
                saturated.append(float((numpy.abs(x) > 0.9).mean()))
            layer = range(1, depth + 1)
            if act_name == "relu":
                relu_std.plot(layer, stds, marker="o", label=init_name)
            else:
                tanh_std.plot(layer, stds, marker="o", label=init_name)
                tanh_saturated.plot(layer, saturated, marker="o", label=init_name)
    for ax, title, ylabel in (
            (relu_std, "ReLU: spread of activations", "standard deviation"),
            (tanh_std, "tanh: spread of activations", "standard deviation"),
            (tanh_saturated, "tanh: saturated units", "share of units with |y| > 0.9")):
        ax.set_title(title)
        ax.set_xlabel("layer")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{depth} Dense layers of {width} units, standard-normal input")
    save(fig, "initializers.png")


def loss_surface_data():
    """Linear least squares in two weights with correlated features of different scale."""
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((256, 2)) @ numpy.array([[1.0, 0.0], [0.6, 0.3]])
    y = x @ numpy.array([1.0, 1.0])
    return x.astype("float32"), y.astype("float32")


def optimizer_path(optimizer, x, y, start, steps):
    """The weights after each full-batch step of ``optimizer`` from ``start``."""
    model = fastnn.Sequential([layers.Dense(1, use_bias=False, input_shape=(2,))])
    model.build()
    model.set_weights([numpy.array(start, dtype="float32").reshape(2, 1)])
    model.compile(optimizer=optimizer, loss="mse")
    path = [start]
    for _ in range(steps):
        model.train_on_batch(x, y)
        path.append(tuple(model.get_weights()[0][:, 0]))
    return numpy.array(path)


def plot_optimizer_trajectories():
    """Every optimizer's path on one elongated quadratic loss surface."""
    x, y = loss_surface_data()
    start, steps = (-1.5, 3.0), 100
    groups = {
        "SGD and momentum": [("SGD 0.2", optimizers.SGD(0.2)),
                             ("momentum 0.9, lr 0.05", optimizers.SGD(0.05, momentum=0.9)),
                             ("Nesterov 0.9, lr 0.05",
                              optimizers.SGD(0.05, momentum=0.9, nesterov=True))],
        "adaptive learning rates": [("Adagrad 0.5", optimizers.Adagrad(0.5)),
                                    ("Adadelta 1.0 (slow start)", optimizers.Adadelta(1.0)),
                                    ("RMSprop 0.05", optimizers.RMSprop(0.05)),
                                    ("Adam 0.1", optimizers.Adam(0.1)),
                                    ("Nadam 0.1", optimizers.Nadam(0.1))]}
    w1, w2 = numpy.meshgrid(numpy.linspace(-2, 3, 200), numpy.linspace(-1, 4.5, 200))
    grid = numpy.stack([w1.ravel(), w2.ravel()])
    loss = ((x.astype("float64") @ grid - y[:, None]) ** 2).mean(axis=0).reshape(w1.shape)
    fig = new_figure(figsize=(11, 5))
    for ax, (title, contenders) in zip(fig.subplots(1, 2, sharey=True), groups.items()):
        ax.contour(w1, w2, loss, levels=numpy.geomspace(0.005, loss.max(), 18),
                   colors="lightgray", linewidths=0.7)
        for label, optimizer in contenders:
            path = optimizer_path(optimizer, x, y, start, steps)
            ax.plot(path[:, 0], path[:, 1], marker=".", markersize=3, linewidth=1.2,
                    label=label)
        ax.plot(*start, "ko", label="start")
        ax.plot(1, 1, "k*", markersize=14, label="minimum")
        ax.set_xlabel("weight 1")
        ax.set_title(title)
        ax.legend(fontsize="small", loc="upper right")
    fig.axes[0].set_ylabel("weight 2")
    fig.suptitle(f"{steps} full-batch steps on a least-squares loss "
                 "(labels: learning rate)")
    save(fig, "optimizer_trajectories.png")


def plot_schedules():
    """Learning rate against step for each schedule."""
    steps = numpy.arange(0, 1001)
    contenders = [
        ("ExponentialDecay(0.1, 100, 0.8)", schedules.ExponentialDecay(0.1, 100, 0.8)),
        ("... staircase=True", schedules.ExponentialDecay(0.1, 100, 0.8, staircase=True)),
        ("InverseTimeDecay(0.1, 100, 0.5)", schedules.InverseTimeDecay(0.1, 100, 0.5)),
        ("PiecewiseConstantDecay([300, 600], [0.1, 0.05, 0.01])",
         schedules.PiecewiseConstantDecay([300, 600], [0.1, 0.05, 0.01])),
        ("CosineDecay(0.1, 1000)", schedules.CosineDecay(0.1, 1000)),
        ("CosineDecay(0.0, 900, warmup_target=0.1, warmup_steps=100)",
         schedules.CosineDecay(0.0, 900, warmup_target=0.1, warmup_steps=100)),
    ]
    fig = new_figure(figsize=(8, 4.5))
    ax = fig.subplots()
    for label, schedule in contenders:
        ax.plot(steps, [schedule(int(s)) for s in steps], label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedules (fastnn.optimizers.schedules)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    save(fig, "schedules.png")


def run_example(name):
    """Run ``examples/<name>.py`` with its default settings, saving its figures here."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(out_dir=IMG)


FIGURES = {"activations": plot_activations, "initializers": plot_initializers,
           "optimizers": plot_optimizer_trajectories, "schedules": plot_schedules,
           "overfitting": lambda: run_example("overfitting"),
           "xor": lambda: run_example("xor"),
           "hyperparameter_search": lambda: run_example("hyperparameter_search")}

if __name__ == "__main__":
    IMG.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[1:] or FIGURES:
        FIGURES[name]()
