"""One helper to save every figure: PNG (and PDF) in ``figures/``, named after the notebook.

:func:`save_figure` refuses a figure with a blank panel (:func:`blank_axes`): an axes drawn as a frame
with nothing plotted in it, or whose only content is an all-NaN image, line or scatter. A filter that
selects nobody (the bug that left six empty panels in ``00_confusions_cifar10h``) then stops the notebook
with the axes named, instead of saving an empty figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from crowd import paths


class BlankFigureError(ValueError):
    """A figure to be saved has an axes with nothing drawn in it."""


def _has_finite(values: object) -> bool:
    array = np.ma.masked_invalid(np.ma.asarray(values, dtype=float))
    return array.count() > 0


def _shows_data(artist: "matplotlib.artist.Artist") -> bool:
    """Whether one artist draws data: a line or scatter with a finite point, an image with a finite pixel, a patch."""
    from matplotlib.collections import Collection, PathCollection
    from matplotlib.image import AxesImage
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    if not artist.get_visible():
        return False
    if isinstance(artist, Line2D):
        xy = np.asarray(artist.get_xydata(), dtype=float)  # units (dates, categories) converted
        return bool(np.isfinite(xy).all(axis=1).any()) if xy.size else False
    if isinstance(artist, AxesImage):
        return _has_finite(artist.get_array())
    if isinstance(artist, Collection):
        array = artist.get_array()  # a heat map (pcolormesh, seaborn) is a collection with values
        if array is not None and np.size(array) > 0:
            return _has_finite(array)
        if isinstance(artist, PathCollection):  # a scatter: one marker per offset
            return _has_finite(artist.get_offsets()) if len(artist.get_offsets()) else False
        return len(artist.get_paths()) > 0  # polygons and segments drawn as is (fill_between, vlines, ...)
    if isinstance(artist, Rectangle):  # a bar or histogram bin: drawn when it has a finite, non-zero size
        size = np.array([artist.get_width(), artist.get_height()], dtype=float)
        return bool(np.isfinite(size).all() and (size != 0).all())
    if isinstance(artist, Patch):
        return True
    return True  # tables and other artists added on purpose


def axes_label(ax: "matplotlib.axes.Axes", index: int) -> str:
    """How an error names one axes: its index in the figure, its grid cell and its title."""
    where = ""
    spec = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None
    if spec is not None:
        rows, cols = spec.get_geometry()[:2]
        row, col = divmod(spec.num1, cols)
        where = f" (row {row + 1}, column {col + 1} of a {rows}x{cols} grid)"
    title = ax.get_title() or ax.get_title(loc="left") or ax.get_ylabel() or ax.get_xlabel()
    return f"axes {index}{where}" + (f" titled {title!r}" if title else " without a title")


def blank_axes(fig: "matplotlib.figure.Figure") -> list[str]:
    """The axes of ``fig`` that would be drawn as an empty frame, named (empty list: none).

    An axes is blank when it is visible with its frame on and none of its lines, collections, images or
    patches shows a finite value (bars of zero height show nothing); an axes with no such artist but
    with text is a deliberate text-only panel and passes, text over all-NaN data does not. Axes
    switched off (``ax.set_axis_off()``, ``set_visible(False)``) draw no frame and are not checked.
    """
    blank = []
    for index, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison:
            continue
        artists = [*ax.lines, *ax.collections, *ax.images, *ax.patches, *ax.tables]
        if artists and any(_shows_data(a) for a in artists):
            continue
        if not artists and any(t.get_visible() and t.get_text().strip() for t in ax.texts):
            continue  # a text-only panel is deliberate; text over an all-NaN image is not data
        blank.append(axes_label(ax, index))
    return blank


def check_not_blank(fig: "matplotlib.figure.Figure", name: str = "figure") -> None:
    """Raise :class:`BlankFigureError` naming every blank axes of ``fig`` (see :func:`blank_axes`)."""
    if not fig.axes:
        raise BlankFigureError(f"{name}: the figure has no axes, nothing to save")
    blank = blank_axes(fig)
    if blank:
        raise BlankFigureError(f"{name}: {len(blank)} of {len(fig.axes)} axes show nothing (no data plotted, or only "
                               f"NaN): {'; '.join(blank)}. Remove them, or plot what they were meant to show.")


def save_figure(fig: "matplotlib.figure.Figure", name: str, formats: tuple[str, ...] = ("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``figures/<name>.<fmt>``; ``name`` starts with the notebook prefix, e.g. ``00_fig15_answers_per_task``.

    Raises :class:`BlankFigureError` (nothing written) when an axes of ``fig`` is blank.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"figure name {name!r} must be a plain file stem like '00_fig15_answers_per_task'")
    check_not_blank(fig, name)
    paths.FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = paths.FIGURES_DIR / f"{name}.{fmt}"
        fig.savefig(target, dpi=dpi, bbox_inches="tight")
        written.append(target)
    return written
