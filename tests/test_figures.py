"""save_figure refuses blank panels (issue 7: six empty axes were saved in 00_confusions_cifar10h)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from crowd import paths
from crowd.reporting import figures
from crowd.reporting.plots import plot_confusion


@pytest.fixture(autouse=True)
def _figures_to_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "FIGURES_DIR", tmp_path)
    yield
    plt.close("all")


def _grid(n):
    fig, axes = plt.subplots(1, n, figsize=(2 * n, 2))
    return fig, np.atleast_1d(axes)


def test_the_bug_of_issue_7_is_refused_and_the_empty_axes_named(tmp_path):
    # the old notebook-00 figure: a worker filter that selected nobody left axes 0-5 empty
    fig, axes = _grid(7)
    for ax, title in zip(axes[:6], []):  # nobody selected: the loop draws nothing
        plot_confusion(np.eye(3), ax, title)
    plot_confusion(np.full((3, 3), 1 / 3), axes[6], "average over workers")
    with pytest.raises(figures.BlankFigureError) as err:
        figures.save_figure(fig, "99_blank")
    message = str(err.value)
    assert "99_blank: 6 of 7 axes show nothing" in message
    for k in range(6):
        assert f"axes {k} (row 1, column {k + 1} of a 1x7 grid)" in message
    assert "axes 6" not in message
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("draw", [
    lambda ax: ax.plot([1, 2], [3, 4]),
    lambda ax: ax.plot([np.nan, 2], [3, 4]),  # one finite point is data
    lambda ax: ax.scatter([1], [2]),
    lambda ax: ax.hist([1, 2, 2, 3]),
    lambda ax: ax.bar(["a", "b"], [0, 2]),
    lambda ax: ax.imshow(np.array([[np.nan, 0.5]])),
    lambda ax: ax.pcolormesh(np.arange(4.0).reshape(2, 2)),
    lambda ax: ax.fill_between([0, 1], [0, 1]),
    lambda ax: ax.plot(["cat", "dog"], [1, 2]),  # categorical axis
    lambda ax: ax.text(0.5, 0.5, "no result: needs a GPU"),  # a deliberate text-only panel
], ids=["line", "line-partly-nan", "scatter", "hist", "bar-one-zero", "image-partly-nan", "mesh", "fill", "categorical",
        "text-only"])
def test_axes_with_data_pass(draw):
    fig, (ax,) = _grid(1)
    draw(ax)
    assert figures.blank_axes(fig) == []
    assert [p.suffix for p in figures.save_figure(fig, "99_ok")] == [".png", ".pdf"]


@pytest.mark.parametrize("draw", [
    lambda ax: None,
    lambda ax: ax.set_title("best: worker ?"),  # labels alone are not data
    lambda ax: ax.plot([], []),
    lambda ax: ax.plot([np.nan, np.nan], [1, 2]),
    lambda ax: ax.scatter([], []),
    lambda ax: ax.scatter([np.nan], [np.nan]),
    lambda ax: ax.hist([]),
    lambda ax: ax.bar(["a", "b"], [0, 0]),
    lambda ax: ax.imshow(np.full((3, 3), np.nan)),
    lambda ax: plot_confusion(np.full((3, 3), np.nan), ax, "annotated all-NaN matrix"),  # "nan" texts are not data
    lambda ax: ax.pcolormesh(np.full((2, 2), np.nan)),
], ids=["nothing", "title-only", "empty-line", "nan-line", "empty-scatter", "nan-scatter", "empty-hist", "zero-bars",
        "nan-image", "nan-confusion", "nan-mesh"])
def test_blank_axes_are_refused(draw):
    fig, axes = _grid(2)
    axes[0].plot([0, 1], [0, 1])
    draw(axes[1])
    blank = figures.blank_axes(fig)
    assert len(blank) == 1 and blank[0].startswith("axes 1 (row 1, column 2 of a 1x2 grid)")
    with pytest.raises(figures.BlankFigureError, match="1 of 2 axes show nothing"):
        figures.save_figure(fig, "99_blank")


def test_title_named_and_switched_off_axes_skipped():
    fig, axes = plt.subplots(2, 2)
    axes[0, 0].plot([0, 1])
    axes[0, 1].set_title("worst: worker 12")
    axes[1, 0].set_axis_off()  # layout filler: drawn as nothing, not a blank frame
    axes[1, 1].set_visible(False)
    assert figures.blank_axes(fig) == ["axes 1 (row 1, column 2 of a 2x2 grid) titled 'worst: worker 12'"]


def test_colorbar_axes_count_as_data():
    fig, (ax,) = _grid(1)
    fig.colorbar(ax.imshow(np.eye(3)), ax=ax)
    assert len(fig.axes) == 2 and figures.blank_axes(fig) == []


def test_a_figure_without_axes_is_refused():
    with pytest.raises(figures.BlankFigureError, match="no axes"):
        figures.save_figure(plt.figure(), "99_empty")
