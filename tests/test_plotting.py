"""fastnn.utils.plot_history: panels from a History or its dict, clear errors."""
import sys

import pytest

from fastnn.utils import plot_history

LOGS = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6],
        "accuracy": [0.5, 0.8, 0.9], "val_accuracy": [0.4, 0.7, 0.8]}


class FakeHistory:
    history = LOGS


def test_one_panel_per_quantity_with_train_and_validation(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "history.png"
    fig = plot_history(FakeHistory(), path, title="run")
    assert path.read_bytes().startswith(b"\x89PNG")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss", "accuracy"]
    for ax in fig.axes:
        assert [line.get_label() for line in ax.get_lines()] == ["train", "validation"]
        assert ax.get_xlabel() == "epoch"
    assert list(fig.axes[0].get_lines()[1].get_ydata()) == LOGS["val_loss"]


def test_accepts_a_plain_dict_without_validation():
    pytest.importorskip("matplotlib")
    fig = plot_history({"loss": [3.0, 2.0]})
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train"]


def test_empty_history_is_refused():
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="empty"):
        plot_history({})


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"fastnn-toolkit\[plot\]"):
        plot_history(LOGS)


def test_many_quantities_wrap_three_to_a_row():
    pytest.importorskip("matplotlib")
    logs = {name: [1.0, 0.5] for name in ("loss", "a", "b", "c", "d")}
    fig = plot_history(logs)
    assert len(fig.axes) == 5
    assert len({ax.get_position().y0 for ax in fig.axes}) == 2  # two rows
