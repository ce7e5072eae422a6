"""Training curves with matplotlib (the optional ``plot`` extra, imported only when used)."""


def require_matplotlib():
    """Import and return ``matplotlib``, or raise an ImportError naming the extra.

    Raises:
        ImportError: matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError('Plotting needs matplotlib: pip install "fastnn-toolkit[plot]" '
                          "(or pip install matplotlib)") from err
    return matplotlib


def plot_history(history, path=None, title=None):
    """Draw one panel per quantity (loss, accuracy, ...), train and validation together.

    Panels go three to a row. The figure is built without pyplot, so no
    window opens and no global state changes; Jupyter displays the returned figure.

    Args:
        history: a ``History`` from ``model.fit`` or its ``.history`` dict,
            e.g. ``{"loss": [...], "val_loss": [...], "accuracy": [...]}``.
        path: if given, the figure is saved there (a PNG for ``.png``).
        title: an optional title over all panels.

    Returns:
        The ``matplotlib.figure.Figure``.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: the history holds no values.

    Example:
        >>> history = model.fit(x, y, epochs=20, validation_split=0.2)  # doctest: +SKIP
        >>> fastnn.utils.plot_history(history, "history.png")  # doctest: +SKIP
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    logs = getattr(history, "history", history)
    names = [k for k in logs if not k.startswith("val_") and k != "lr"]
    names += [k[4:] for k in logs if k.startswith("val_") and k[4:] not in logs]
    if not names or not any(len(v) for v in logs.values()):
        raise ValueError("plot_history: the history is empty (did fit run any epoch?)")

    cols = min(len(names), 3)
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(4.5 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(names):]:
        ax.remove()
    for ax, name in zip(axes, names):
        for key, label, style in ((name, "train", "-"), ("val_" + name, "validation", "--")):
            values = logs.get(key)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=label)
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
