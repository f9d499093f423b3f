"""ATLAS-style plots of cluster images, classification and calibration performance.

Every function draws on the axes it is given (keyword-only ``ax=None``, or
``axes=None`` for several panels; by default the current axes or a new
figure) and returns them, so plots can be restyled and combined. The numbers
come from `calotools.metrics`; this module only draws.

Importing this module changes no global setting. For the ATLAS look, wrap
the plotting in ``with plotting.style():`` or call `use_style` once in a
notebook, and add the label with `atlas_label`.

Examples
--------
>>> from calotools import metrics, plotting
>>> with plotting.style():  # doctest: +SKIP
...     ax = plotting.response({"LCW": metrics.binned_response(e_true, e_lcw)})
...     plotting.atlas_label(ax, rlabel="single $\\pi^\\pm$, $|\\eta| < 0.7$")
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colors
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from calotools import atomic, geometry, metrics
from calotools.errors import InvalidValueError, OutOfRangeError

__all__ = [
    "ACTIVATION_LABEL",
    "CORRELATION_LABEL",
    "DIFFERENCE_LABEL",
    "PIXEL_LABEL",
    "activation_maps",
    "as_layer_images",
    "atlas_label",
    "axes_grid",
    "cluster_images",
    "confusion_matrix",
    "correlation_maps",
    "cutoff_effect",
    "cutoff_scan",
    "denoising_images",
    "distributions",
    "draw_layer",
    "filter_differences",
    "history",
    "lambda_scan",
    "layer_image",
    "mean_images",
    "performance_vs_mu",
    "pixel_norm",
    "rejection",
    "resolution",
    "response",
    "response_2d",
    "response_histograms",
    "roc",
    "save",
    "style",
    "tidy_grid",
    "use_style",
]

# Axis labels, in mathtext so they render the same with or without LaTeX.
PI0_TEX = r"$\pi^{0}$"
PIPM_TEX = r"$\pi^{\pm}$"
E_TRUE_LABEL = r"$E^{\mathrm{true}}$ [GeV]"
RESPONSE_LABEL = r"Response $E^{\mathrm{pred}} / E^{\mathrm{true}}$"
MEDIAN_RESPONSE_LABEL = r"Median response $E^{\mathrm{pred}} / E^{\mathrm{true}}$"
PIXEL_LABEL = "Cell energy / cluster energy"
DETA_LABEL = r"$\Delta\eta$"
DPHI_LABEL = r"$\Delta\phi$ [rad]"

#: Keras history keys that are not metrics.
_NOT_METRICS = frozenset({"epoch", "lr", "learning_rate"})
_METRIC_LABELS = {
    "loss": "Loss",
    "accuracy": "Accuracy",
    "acc": "Accuracy",
    "auc": "AUC",
    "mae": "Mean absolute error",
    "mse": "Mean squared error",
}

LayerImages = Mapping[str, np.ndarray]
Curves = Mapping[str, tuple[Any, Any]]


# ---------------------------------------------------------------------------- style


def style() -> contextlib.AbstractContextManager[None]:
    """The ATLAS style of mplhep for a ``with`` block (nothing changes outside it).

    Examples
    --------
    >>> with style():  # doctest: +SKIP
    ...     ax = roc({"DNN": (y_true, p_pipm)})
    """
    import mplhep

    return plt.style.context(mplhep.style.ATLAS)


def use_style() -> None:
    """Switch matplotlib to the ATLAS style of mplhep for the rest of the session."""
    import mplhep

    mplhep.style.use("ATLAS")


def atlas_label(
    ax: Axes | None = None,
    text: str = "Simulation Internal",
    *,
    rlabel: str | None = None,
    loc: int = 4,
    **kwargs: Any,
) -> Axes:
    """Write "**ATLAS** *Simulation Internal*" in the axes, the ATLAS way (via mplhep).

    Parameters
    ----------
    text
        What follows "ATLAS".
    rlabel
        An optional second line, e.g. the sample and selection. No √s is
        written: calotools' samples are single particles.
    loc
        mplhep's label position; 4 is the ATLAS one (inside, top left).
    **kwargs
        Passed to ``mplhep.atlas.label``.
    """
    import mplhep

    ax = plt.gca() if ax is None else ax
    # llabel rather than text: mplhep prefixes "Simulation" to `text` itself.
    mplhep.atlas.label(llabel=text, rlabel=rlabel, com=None, loc=loc, ax=ax, **kwargs)
    return ax


#: Colour-bar labels of the maps of what a network learned (`calotools.interpret`).
CORRELATION_LABEL = "Correlation with output"
ACTIVATION_LABEL = "Mean cell / cluster energy"
DIFFERENCE_LABEL = r"Response to $\pi^{\pm}$ − $\pi^{0}$ mean"

# ---------------------------------------------------------------------------- helpers


def axes_grid(
    axes: Axes | Sequence[Axes] | np.ndarray | None,
    shape: tuple[int, int],
    figsize: tuple[float, float],
    *,
    share: bool = False,
) -> np.ndarray:
    """The given axes as an array of ``shape``, or a new figure's (constrained layout).

    For functions that draw a grid of panels: ``axes`` may be any sequence or
    array of at least ``shape[0] × shape[1]`` axes; ``share`` shares x and y
    across a new figure's panels.
    """
    if axes is None:
        _, grid = plt.subplots(
            *shape,
            figsize=figsize,
            sharex=share,
            sharey=share,
            squeeze=False,
            layout="constrained",
        )
        return grid
    flat = np.asarray(axes, dtype=object).ravel()
    needed = shape[0] * shape[1]
    if flat.size < needed:
        msg = f"this plot needs {needed} axes ({shape[0]} × {shape[1]}); {flat.size} were given"
        raise InvalidValueError(msg)
    return flat[:needed].reshape(shape)


def _image_shape(lay: geometry.Layer) -> tuple[int, int]:
    if lay.image_shape is None:
        msg = f"layer {lay.name} has no image in the MLTree format"
        raise InvalidValueError(msg)
    return lay.image_shape


def as_layer_images(images: LayerImages | Any, what: str = "images") -> LayerImages:
    """Layer name → (N, n_η, n_φ) images, from a mapping or a `calotools.ntuple.Clusters`.

    Raises `InvalidValueError` naming ``what`` if a layer is missing or its
    images are not of the MLTree shape.
    """
    layer_images = getattr(images, "images", images)
    missing = [name for name in geometry.IMAGE_LAYER_NAMES if name not in layer_images]
    if missing:
        have = list(layer_images)
        msg = f"{what} lacks the layer(s) {missing}; it has: {have}"
        raise InvalidValueError(msg)
    for lay in geometry.IMAGE_LAYERS:
        shape = np.shape(layer_images[lay.name])[1:]
        expected = _image_shape(lay)
        if shape != expected:
            msg = (
                f"{what}[{lay.name!r}] has images of shape {list(shape)}; "
                f"expected (clusters, {expected[0]}, {expected[1]}) [η][φ]"
            )
            raise InvalidValueError(msg)
    return layer_images


def draw_layer(
    ax: Axes,
    lay: geometry.Layer,
    image: np.ndarray,
    norm: colors.Normalize,
    cmap: str,
    *,
    title: str | None = None,
    row_label: str | None = None,
):
    """Draw one layer image in true Δη × Δφ on ``ax`` and return the mesh.

    Pixel edges come from the geometry; the [η][φ] image is drawn with η
    along x and φ along y. ``row_label`` prefixes the y label (for grids).
    """
    if isinstance(norm, colors.LogNorm):
        # Empty pixels have no logarithm: leave them blank rather than clip them.
        image = np.ma.masked_less_equal(image, 0.0)
    mesh = ax.pcolormesh(lay.eta_edges, lay.phi_edges, image.T, norm=norm, cmap=cmap)
    if title is not None:
        ax.set_title(title)
    ax.set_xlabel(DETA_LABEL)
    ax.set_ylabel(DPHI_LABEL if row_label is None else f"{row_label}\n{DPHI_LABEL}")
    return mesh


def pixel_norm(
    pixels: Sequence[np.ndarray],
    *,
    log: bool,
    vmin: float | None = None,
    vmax: float | None = None,
) -> colors.Normalize:
    """One colour scale for all of ``pixels``: logarithmic over the positive values, or linear.

    ``vmin`` and ``vmax`` fix the range; by default it spans the pixels.
    """
    values = np.concatenate([np.ravel(p) for p in pixels])
    if log:
        positive = values[values > 0]
        low = vmin if vmin is not None else (positive.min() if positive.size else 1e-4)
        high = vmax if vmax is not None else (positive.max() if positive.size else 1.0)
        # A single non-zero value (or an empty image) still needs a range.
        return colors.LogNorm(vmin=low, vmax=high if high > low else 10.0 * low)
    low = vmin if vmin is not None else min(values.min(), 0.0)
    high = vmax if vmax is not None else values.max()
    return colors.Normalize(vmin=low, vmax=high if high > low else low + 1.0)


def tidy_grid(grid: np.ndarray) -> None:
    """Axis labels on the outer panels only, when the panels share axes."""
    for ax in grid.ravel():
        ax.label_outer()


# ---------------------------------------------------------------------------- images


def cluster_images(
    images: LayerImages | Any,
    index: int,
    *,
    axes: Sequence[Axes] | np.ndarray | None = None,
    log: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
) -> np.ndarray:
    """One cluster's six layer images in true Δη × Δφ, with a shared colour bar.

    Each layer is drawn with its own pixel edges (`calotools.geometry`), so
    the 128 thin EMB1 strips look thin and TileBar2's two cells look wide.

    Parameters
    ----------
    images
        Layer name → array (N, n_η, n_φ), or a `calotools.ntuple.Clusters`.
    index
        Which cluster.
    axes
        Six axes (any shape), in the order EMB1 … TileBar2; default: a new
        2 × 3 figure.
    log
        Logarithmic colour scale (empty pixels left blank).
    vmin, vmax
        Colour range; default: the cluster's smallest non-zero and largest
        pixel.

    Returns
    -------
    numpy.ndarray
        The axes, one per layer.
    """
    layer_images = as_layer_images(images)
    n_clusters = len(layer_images[geometry.IMAGE_LAYER_NAMES[0]])
    if not -n_clusters <= index < n_clusters:
        msg = f"cluster index {index} is out of range for {n_clusters} clusters"
        raise OutOfRangeError(msg)
    created = axes is None
    grid = axes_grid(axes, (2, 3), (11, 6.5), share=True)
    pixels = [
        np.asarray(layer_images[name][index], dtype=float) for name in geometry.IMAGE_LAYER_NAMES
    ]
    norm = pixel_norm(pixels, log=log, vmin=vmin, vmax=vmax)
    flat = grid.ravel()
    for ax, lay, image in zip(flat, geometry.IMAGE_LAYERS, pixels, strict=True):
        mesh = draw_layer(ax, lay, image, norm, cmap, title=lay.name)
    if created:
        tidy_grid(grid)
    flat[0].figure.colorbar(mesh, ax=list(flat), label=PIXEL_LABEL)
    return grid


def layer_image(
    image: np.ndarray,
    layer: str,
    *,
    ax: Axes | None = None,
    log: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    title: str | None = None,
) -> Axes:
    """One layer image (n_η, n_φ) in true Δη × Δφ, with its colour bar.

    Parameters
    ----------
    image
        The pixels of one cluster in ``layer``, e.g. ``clusters.images["EMB2"][0]``.
    layer
        The calorimeter layer, for the pixel edges.
    log
        Logarithmic colour scale (empty pixels left blank).
    title
        Default: the layer's name.

    Returns
    -------
    matplotlib.axes.Axes
    """
    lay = geometry.layer(layer)
    pixels = np.asarray(image, dtype=float)
    if pixels.shape != lay.image_shape:
        msg = f"a {layer} image is shaped {lay.image_shape} [η][φ], got {pixels.shape}"
        raise InvalidValueError(msg)
    ax = ax or plt.gca()
    norm = pixel_norm([pixels], log=log, vmin=vmin, vmax=vmax)
    mesh = draw_layer(ax, lay, pixels, norm, cmap, title=layer if title is None else title)
    ax.figure.colorbar(mesh, ax=ax, label=PIXEL_LABEL)
    return ax


def mean_images(
    images_by_class: Mapping[str, LayerImages | Any],
    *,
    axes: Sequence[Axes] | np.ndarray | None = None,
    log: bool = True,
    cmap: str = "viridis",
    diff_cmap: str = "RdBu_r",
) -> np.ndarray:
    """Mean image per class, one row each, and with two classes their difference.

    Parameters
    ----------
    images_by_class
        Class label (e.g. ``"π0"``) → layer images or `Clusters`.
    axes
        (n_rows × 6) axes, n_rows = number of classes, plus one for the
        difference (first − second class) when there are exactly two; default:
        a new figure.
    log
        Logarithmic colour scale for the means; the difference then uses a
        symmetric-log scale (linear within 0.1 % of its largest value),
        always centred on 0 with a diverging colour map.

    Returns
    -------
    numpy.ndarray
        The axes, shape (n_rows, 6).
    """
    if not images_by_class:
        msg = "images_by_class is empty; give at least one class"
        raise InvalidValueError(msg)
    means: dict[str, list[np.ndarray]] = {}
    for label, images in images_by_class.items():
        layer_images = as_layer_images(images, what=f"images_by_class[{label!r}]")
        if len(layer_images[geometry.IMAGE_LAYER_NAMES[0]]) == 0:
            msg = f"class {label!r} has no clusters to average"
            raise InvalidValueError(msg)
        means[label] = [
            # float64 accumulation without a float64 copy of all the images.
            np.asarray(layer_images[name]).mean(axis=0, dtype=np.float64)
            for name in geometry.IMAGE_LAYER_NAMES
        ]
    labels = list(means)
    with_difference = len(labels) == 2
    n_rows = len(labels) + with_difference
    created = axes is None
    grid = axes_grid(axes, (n_rows, 6), (15, 2.6 * n_rows + 0.6), share=True)

    norm = pixel_norm(
        [m for per_layer in means.values() for m in per_layer], log=log, vmin=None, vmax=None
    )
    for row, label in enumerate(labels):
        for column, (ax, lay, image) in enumerate(
            zip(grid[row], geometry.IMAGE_LAYERS, means[label], strict=True)
        ):
            mesh = draw_layer(
                ax,
                lay,
                image,
                norm,
                cmap,
                title=lay.name if row == 0 else None,
                row_label=f"Mean {label}" if column == 0 else None,
            )
    figure = grid[0, 0].figure
    figure.colorbar(mesh, ax=list(grid[: len(labels)].ravel()), label=f"Mean {PIXEL_LABEL.lower()}")

    if with_difference:
        difference = [a - b for a, b in zip(means[labels[0]], means[labels[1]], strict=True)]
        largest = max(float(np.abs(d).max()) for d in difference) or 1.0
        diff_norm = (
            colors.SymLogNorm(linthresh=1e-3 * largest, vmin=-largest, vmax=largest)
            if log
            else colors.Normalize(vmin=-largest, vmax=largest)
        )
        for column, (ax, lay, image) in enumerate(
            zip(grid[-1], geometry.IMAGE_LAYERS, difference, strict=True)
        ):
            mesh = draw_layer(
                ax,
                lay,
                image,
                diff_norm,
                diff_cmap,
                row_label=f"{labels[0]} − {labels[1]}" if column == 0 else None,
            )
        figure.colorbar(mesh, ax=list(grid[-1]), label="Difference of means")
    if created:
        tidy_grid(grid)
    return grid


# ---------------------------------------------------------------------------- classification


def roc(curves: Curves, *, ax: Axes | None = None) -> Axes:
    """ROC curves (π± efficiency against π0 false-positive rate), AUC in the legend.

    Parameters
    ----------
    curves
        Method name → (y_true, score), labels π0 = 0, π± = 1 and score
        P(π±)-like (see `calotools.metrics.roc_curve`).
    """
    ax = plt.gca() if ax is None else ax
    for label, (y_true, score) in curves.items():
        fpr, tpr, _ = metrics.roc_curve(y_true, score)
        ax.plot(fpr, tpr, label=f"{label} (AUC = {metrics.auc(y_true, score):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="Random (AUC = 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"{PI0_TEX} false-positive rate (fraction)")
    ax.set_ylabel(f"{PIPM_TEX} efficiency (fraction)")
    ax.legend(loc="lower right")
    return ax


def rejection(curves: Curves, *, ax: Axes | None = None) -> Axes:
    """π0 rejection (1 / false-positive rate) against π± efficiency, log scale.

    ``curves`` as in `roc`. Points where no π0 passes (infinite rejection) are
    left out.
    """
    ax = plt.gca() if ax is None else ax
    for label, (y_true, score) in curves.items():
        fpr, tpr, _ = metrics.roc_curve(y_true, score)
        finite = fpr > 0
        ax.plot(tpr[finite], 1.0 / fpr[finite], label=label)
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=1.0)  # 1 / FPR >= 1 always
    ax.set_xlabel(f"{PIPM_TEX} efficiency (fraction)")
    ax.set_ylabel(f"{PI0_TEX} rejection (1 / false-positive rate)")
    ax.legend(loc="upper right")
    return ax


def cutoff_scan(
    scan: pd.DataFrame,
    *,
    ax: Axes | None = None,
    mark: float | Literal["accuracy", "balanced"] | None = None,
) -> Axes:
    """Accuracy and both efficiencies against the cutoff p of a `metrics.cutoff_scan`.

    Parameters
    ----------
    mark
        A cutoff to mark with a vertical line and dots on the curves, or
        ``"accuracy"`` / ``"balanced"`` for `metrics.best_cutoff` of the scan.
    """
    ax = plt.gca() if ax is None else ax
    cutoff = scan["cutoff"].to_numpy()
    curves = {
        "accuracy": "Accuracy",
        "pi0_efficiency": f"{PI0_TEX} efficiency",
        "pipm_efficiency": f"{PIPM_TEX} efficiency",
    }
    lines = [ax.plot(cutoff, scan[column], label=label)[0] for column, label in curves.items()]
    if mark is not None:
        p = metrics.best_cutoff(scan, mark) if isinstance(mark, str) else float(mark)
        ax.axvline(p, color="grey", linestyle=":", label=f"$p$ = {p:.2f}")
        for line, column in zip(lines, curves, strict=True):
            value = np.interp(p, cutoff, scan[column].to_numpy())
            ax.plot([p], [value], marker="o", linestyle="none", color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(rf"Cutoff $p$ (called {PI0_TEX} if $P(\pi^{{0}}) > p$)")
    ax.set_ylabel("Fraction of clusters")
    ax.legend(loc="lower center")
    return ax


def confusion_matrix(table: pd.DataFrame, *, ax: Axes | None = None, cmap: str = "Blues") -> Axes:
    """A `metrics.confusion_matrix` as a coloured 2 × 2 grid with its values written in."""
    ax = plt.gca() if ax is None else ax
    values = table.to_numpy(dtype=np.float64)
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=np.nanmax(values) or 1.0)
    counts = all(pd.api.types.is_integer_dtype(dtype) for dtype in table.dtypes)
    for (row, column), value in np.ndenumerate(values):
        text = "–" if np.isnan(value) else (f"{value:.0f}" if counts else f"{value:.3f}")
        # Dark text on light cells, light text on dark ones.
        # A norm of a scalar is a scalar; its stub says any array-like.
        shade = cast(float, image.norm(value)) if np.isfinite(value) else 0.0
        ax.text(
            column,
            row,
            text,
            ha="center",
            va="center",
            color="white" if shade > 0.5 else "black",
        )
    ax.set_xticks(range(values.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(range(values.shape[0]), [str(i) for i in table.index])
    ax.minorticks_off()
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    return ax


# ---------------------------------------------------------------------------- calibration


_RESPONSE_COLUMNS = ("low", "high", "count", "median", "q16", "q84", "resolution", "too_few")


def _response_tables(results: Mapping[str, pd.DataFrame]) -> Iterator[tuple[str, pd.DataFrame]]:
    for label, table in results.items():
        missing = [c for c in _RESPONSE_COLUMNS if c not in table.columns]
        if missing:
            msg = (
                f"results[{label!r}] lacks the column(s) {missing}; "
                "pass tables made by calotools.metrics.binned_response"
            )
            raise InvalidValueError(msg)
        yield label, table


def _bin_centres(table: pd.DataFrame) -> np.ndarray:
    if "center" in table.columns:
        return table["center"].to_numpy()
    return np.sqrt(table["low"].to_numpy() * table["high"].to_numpy())


def _split_sparse(table: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``column`` where bins are well filled, and where they are too sparse (NaN elsewhere)."""
    values = table[column].to_numpy(dtype=np.float64)
    too_few = table["too_few"].to_numpy(dtype=bool)
    return np.where(too_few, np.nan, values), np.where(too_few, values, np.nan)


def _open_markers(ax: Axes, x: np.ndarray, values: np.ndarray, color: Any) -> None:
    """Draw bins with too few clusters as open markers, apart from the line (if any)."""
    if np.isfinite(values).any():
        ax.plot(
            x, values, marker="o", markersize=4, linestyle="none", fillstyle="none", color=color
        )


def response(
    results: Mapping[str, pd.DataFrame],
    *,
    ax: Axes | None = None,
    band: bool = True,
    xlabel: str = E_TRUE_LABEL,
) -> Axes:
    """Median response against true energy (log x), with the 16–84 % band.

    Parameters
    ----------
    results
        Method name → table from `calotools.metrics.binned_response`.
    band
        Shade the central 68 % (q16–q84) of the response in each bin.
    xlabel
        Label of the true energy, e.g. to name ``cluster_ENG_CALIB_TOT``.

    Bins flagged ``too_few`` are drawn as open markers, off the line and band.
    """
    ax = plt.gca() if ax is None else ax
    for label, table in _response_tables(results):
        x = _bin_centres(table)
        median, sparse = _split_sparse(table, "median")
        (line,) = ax.plot(x, median, marker="o", markersize=4, label=label)
        _open_markers(ax, x, sparse, line.get_color())
        if band:
            q16, _ = _split_sparse(table, "q16")
            q84, _ = _split_sparse(table, "q84")
            ax.fill_between(x, q16, q84, color=line.get_color(), alpha=0.25, linewidth=0)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(MEDIAN_RESPONSE_LABEL)
    ax.legend(loc="best")
    return ax


def resolution(
    results: Mapping[str, pd.DataFrame], *, ax: Axes | None = None, xlabel: str = E_TRUE_LABEL
) -> Axes:
    """Response resolution (q84 − q16) / (2 · median) against true energy (log x).

    ``results`` as in `response`; error bars from ``resolution_err`` where
    the table has it. Bins flagged ``too_few`` are drawn as open markers.
    """
    ax = plt.gca() if ax is None else ax
    for label, table in _response_tables(results):
        x = _bin_centres(table)
        values, sparse = _split_sparse(table, "resolution")
        errors = table["resolution_err"].to_numpy() if "resolution_err" in table.columns else None
        bars = ax.errorbar(x, values, yerr=errors, marker="o", markersize=4, label=label)
        _open_markers(ax, x, sparse, bars.lines[0].get_color())
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"Resolution $(q_{84} - q_{16}) / (2 \cdot \mathrm{median})$")
    ax.legend(loc="best")
    return ax


def response_histograms(
    responses: Mapping[str, np.ndarray | Sequence[float]],
    *,
    bins: np.ndarray | Sequence[float],
    ax: Axes | None = None,
) -> Axes:
    """Distributions of the response E_pred / E_true of several methods, e.g. in one E_true bin.

    One step histogram per method, labelled with its median, and a dashed
    line at a response of 1.

    Parameters
    ----------
    responses
        Method name → responses of the same clusters.
    bins
        Bin edges of the response.
    """
    ax = plt.gca() if ax is None else ax
    edges = np.asarray(bins, dtype=float)
    for method, values in responses.items():
        response = np.asarray(values, dtype=float)
        median = f"{np.median(response):.3f}" if response.size else "–"
        ax.hist(response, bins=list(edges), histtype="step", label=f"{method} (median {median})")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(RESPONSE_LABEL)
    ax.set_ylabel("Clusters per bin")
    if responses:
        ax.legend(loc="upper right")
    return ax


def response_2d(
    e_true: Any,
    e_pred: Any,
    *,
    ax: Axes | None = None,
    edges: Any = None,
    response_range: tuple[float, float] = (0.0, 2.5),
    response_bins: int = 100,
    median: bool = True,
    xlabel: str = E_TRUE_LABEL,
) -> Axes:
    """2-D histogram of the response against true energy (log x, log colour).

    Parameters
    ----------
    e_true, e_pred
        True and predicted energies (GeV), checked as in
        `calotools.metrics.binned_response`.
    edges
        E_true bin edges; default `calotools.metrics.DEFAULT_RESPONSE_EDGES`.
    response_range, response_bins
        The response axis; responses outside go to the (undrawn) flow bins.
    median
        Overlay the median response of each E_true bin.
    """
    import hist

    ax = plt.gca() if ax is None else ax
    edges = metrics.DEFAULT_RESPONSE_EDGES if edges is None else np.asarray(edges, float)
    # binned_response validates the inputs (lengths, NaN, E_true > 0) for both.
    table = metrics.binned_response(e_true, e_pred, edges, min_count=1)
    true = np.asarray(e_true, dtype=np.float64)
    histogram: hist.Hist[hist.storage.Double] = hist.Hist(
        hist.axis.Variable(edges, name="e_true", label=xlabel),
        hist.axis.Regular(response_bins, *response_range, name="response", label=RESPONSE_LABEL),
    )
    histogram.fill(e_true=true, response=np.asarray(e_pred, dtype=np.float64) / true)
    # Empty bins are masked (left blank): a log colour scale has no place for 0.
    artists = histogram.plot2d(ax=ax, norm=colors.LogNorm(), mask=histogram.values() > 0, flow=None)
    if artists.cbar is not None:
        artists.cbar.set_label("Clusters per bin")
    if median:
        ax.plot(
            _bin_centres(table),
            table["median"],
            color="red",
            marker="o",
            markersize=3,
            label="Median",
        )
        ax.legend(loc="upper right")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(RESPONSE_LABEL)
    return ax


# ---------------------------------------------------------------------------- distributions


def distributions(
    values: Mapping[str, Any],
    *,
    ax: Axes | None = None,
    bins: int | Sequence[float] = 50,
    value_range: tuple[float, float] | None = None,
    log_x: bool = False,
    density: bool = True,
    xlabel: str = "",
) -> Axes:
    """Histograms of one variable for several samples (e.g. π0 and π±) on one axes.

    Parameters
    ----------
    values
        Label → values. Non-finite values are left out (and counted in the legend).
    bins, value_range
        Number of bins and their range (default: the 0.5–99.5 % quantiles of
        all values), or explicit bin edges.
    log_x
        Log-spaced bins and a log x axis (values must be positive).
    density
        Normalise each histogram to unit sum (fraction of clusters per bin),
        to compare shapes; per bin rather than per unit, so log bins read right.
    xlabel
        The variable, with its unit.
    """
    import hist

    ax = plt.gca() if ax is None else ax
    arrays = {label: np.asarray(v, dtype=np.float64).ravel() for label, v in values.items()}
    finite = {
        label: v[np.isfinite(v) & ((v > 0) if log_x else True)] for label, v in arrays.items()
    }
    axis: hist.axis.Regular | hist.axis.Variable
    if isinstance(bins, int):
        pooled = np.concatenate(list(finite.values()))
        if pooled.size == 0:
            msg = "no finite values to histogram"
            raise InvalidValueError(msg)
        low, high = value_range or tuple(np.quantile(pooled, [0.005, 0.995]))
        high = high if high > low else low + 1.0
        axis = (
            hist.axis.Regular(bins, low, high, transform=hist.axis.transform.log)
            if log_x
            else hist.axis.Regular(bins, low, high)
        )
    else:
        axis = hist.axis.Variable(np.asarray(bins, dtype=np.float64))
    for label, v in finite.items():
        histogram = hist.Hist(axis, storage=hist.storage.Weight())
        histogram.fill(v, weight=1.0 / max(len(v), 1) if density else 1.0)
        dropped = len(arrays[label]) - len(v)
        name = f"{label} ({dropped} not shown)" if dropped else label
        histogram.plot1d(ax=ax, label=name, flow=None)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Fraction of clusters per bin" if density else "Clusters per bin")
    ax.legend()
    return ax


def save(figure: Any, name: str, folder: str | os.PathLike | None = None) -> Path:
    """Save ``figure`` as ``<folder>/<name>.png`` and return the path.

    ``folder`` defaults to ``$CALOTOOLS_FIGURES`` or ``outputs/figures``: the
    notebooks save their key figures there, and ``make demo`` collects them.
    """
    folder = Path(folder or os.environ.get("CALOTOOLS_FIGURES", "outputs/figures"))
    path = folder / f"{name}.png"
    with atomic.atomic_write(path) as tmp:
        figure.savefig(tmp, dpi=120, bbox_inches="tight")
    return path


def cutoff_effect(
    table: pd.DataFrame,
    *,
    axes: Sequence[Axes] | np.ndarray | None = None,
) -> np.ndarray:
    """Median response and resolution of a classify-then-calibrate chain against its cutoff p.

    One line per group (e.g. all clusters, true π0, true π±) for the hard
    chain, and a dashed line of the same colour for the soft chain, which has
    no cutoff.

    Parameters
    ----------
    table
        From `calotools.chain.cutoff_effect`.
    axes
        Two axes (median response, resolution); default: a new figure.

    Returns
    -------
    numpy.ndarray
        The two axes.
    """
    needed = {"group", "cutoff", "median", "resolution", "soft_median", "soft_resolution"}
    missing = sorted(needed - set(table.columns))
    if missing:
        msg = (
            f"table lacks the column(s) {missing}; pass the table of calotools.chain.cutoff_effect"
        )
        raise InvalidValueError(msg)
    grid = axes_grid(axes, (1, 2), (16, 6)).ravel()
    for name, rows in table.groupby("group", sort=False):
        (line,) = grid[0].plot(rows["cutoff"], rows["median"], marker="o", label=name)
        grid[1].plot(rows["cutoff"], rows["resolution"], marker="o", color=line.get_color())
        for ax, column in zip(grid, ("soft_median", "soft_resolution"), strict=True):
            ax.axhline(rows[column].iloc[0], color=line.get_color(), linestyle="--")
    grid[0].set(xlabel="Cutoff p", ylabel=MEDIAN_RESPONSE_LABEL)
    grid[1].set(xlabel="Cutoff p", ylabel="Resolution (q84 − q16) / (2 median)")
    grid[0].legend()
    return grid


# ---------------------------------------------------------------------------- what a network learned


def _symmetric_norm(arrays: Sequence[np.ndarray], vmax: float | None) -> colors.Normalize:
    """A linear colour scale centred on 0, for diverging maps."""
    largest = vmax if vmax is not None else max(float(np.abs(a).max()) for a in arrays)
    largest = largest or 1.0  # an all-zero map still needs a range
    return colors.Normalize(vmin=-largest, vmax=largest)


def activation_maps(
    maps: Mapping[str, np.ndarray],
    *,
    nodes: Sequence[int] | None = None,
    axes: Sequence[Axes] | np.ndarray | None = None,
    log: bool = False,
    cmap: str = "viridis",
) -> np.ndarray:
    """Mean most-activating images, one row per node and one column per layer.

    Parameters
    ----------
    maps
        From `calotools.interpret.activation_maps`: layer name → (n_nodes, n_η, n_φ).
    nodes
        Which nodes; default the first eight (or all, if fewer).
    axes
        (len(nodes) × n_layers) axes; default: a new figure.
    log
        Logarithmic colour scale (empty pixels blank); one scale for all panels.

    Returns
    -------
    numpy.ndarray
        The axes, shape (len(nodes), n_layers).
    """
    if not maps:
        msg = "maps is empty"
        raise InvalidValueError(msg)
    names = list(maps)
    n_nodes = len(maps[names[0]])
    nodes = list(range(min(n_nodes, 8)) if nodes is None else nodes)
    if not nodes:
        msg = "nodes is empty; give at least one node"
        raise InvalidValueError(msg)
    for node in nodes:
        if not 0 <= node < n_nodes:
            msg = f"node {node} is out of range for a layer of {n_nodes} nodes"
            raise OutOfRangeError(msg)
    created = axes is None
    grid = axes_grid(
        axes, (len(nodes), len(names)), (2.6 * len(names), 2.4 * len(nodes) + 0.6), share=True
    )
    images = [np.asarray(maps[name][node], dtype=float) for node in nodes for name in names]
    norm = pixel_norm(images, log=log, vmin=None, vmax=None)
    for row, node in enumerate(nodes):
        for column, name in enumerate(names):
            mesh = draw_layer(
                grid[row, column],
                geometry.layer(name),
                np.asarray(maps[name][node], dtype=float),
                norm,
                cmap,
                title=name if row == 0 else None,
                row_label=f"Node {node}" if column == 0 else None,
            )
    grid[0, 0].figure.colorbar(mesh, ax=list(grid.ravel()), label=ACTIVATION_LABEL)
    if created:
        tidy_grid(grid)
    return grid


def correlation_maps(
    maps: Mapping[str, np.ndarray],
    *,
    axes: Sequence[Axes] | np.ndarray | None = None,
    cmap: str = "RdBu_r",
    vmax: float | None = None,
) -> np.ndarray:
    """Pixel-to-output correlation maps, one panel per layer, diverging colours centred on 0.

    Parameters
    ----------
    maps
        From `calotools.interpret.correlation_maps`: layer name → (n_η, n_φ).
    axes
        One axes per layer; default: a new figure with one row.
    vmax
        Colour range ±vmax; default the largest |correlation|.

    Returns
    -------
    numpy.ndarray
        The axes, shape (1, n_layers).
    """
    if not maps:
        msg = "maps is empty"
        raise InvalidValueError(msg)
    names = list(maps)
    created = axes is None
    grid = axes_grid(axes, (1, len(names)), (2.8 * len(names), 3.2), share=True)
    norm = _symmetric_norm([np.asarray(m) for m in maps.values()], vmax)
    for ax, name in zip(grid[0], names, strict=True):
        mesh = draw_layer(
            ax, geometry.layer(name), np.asarray(maps[name], dtype=float), norm, cmap, title=name
        )
    grid[0, 0].figure.colorbar(mesh, ax=list(grid.ravel()), label=CORRELATION_LABEL)
    if created:
        tidy_grid(grid)
    return grid


def filter_differences(
    differences: np.ndarray,
    layer: str,
    *,
    filters: Sequence[int] | None = None,
    axes: Sequence[Axes] | np.ndarray | None = None,
    n_columns: int = 4,
    cmap: str = "RdBu_r",
    vmax: float | None = None,
) -> np.ndarray:
    """Filter responses to the mean-image difference, one panel per filter.

    Parameters
    ----------
    differences
        From `calotools.interpret.filter_differences`: (n_filters, n_η, n_φ).
    layer
        The calorimeter layer of the images (e.g. ``"EMB2"``), for the pixel edges.
    filters
        Which filters; default all.
    axes
        One axes per filter; default: a new figure, ``n_columns`` wide.
    vmax
        Colour range ±vmax, centred on 0; default the largest |response|.

    Returns
    -------
    numpy.ndarray
        The axes drawn on, shape (n_rows, n_columns), or (1, len(filters))
        for given axes.
    """
    differences = np.asarray(differences, dtype=float)
    lay = geometry.layer(layer)
    expected = _image_shape(lay)
    if differences.ndim != 3 or differences.shape[1:] != expected:
        msg = (
            f"differences must be shaped (filters, {expected[0]}, {expected[1]}) "
            f"for {layer}; got {differences.shape}"
        )
        raise InvalidValueError(msg)
    filters = list(range(len(differences)) if filters is None else filters)
    if not filters:
        msg = "filters is empty; give at least one filter"
        raise InvalidValueError(msg)
    if axes is None:
        n_columns = min(n_columns, len(filters))
        shape = (math.ceil(len(filters) / n_columns), n_columns)
        grid = axes_grid(None, shape, (2.8 * shape[1], 2.6 * shape[0] + 0.4), share=True)
    else:
        grid = axes_grid(axes, (1, len(filters)), (0.0, 0.0))
    flat = grid.ravel()
    norm = _symmetric_norm([differences[f] for f in filters], vmax)
    for position, (ax, number) in enumerate(zip(flat, filters, strict=False)):
        mesh = draw_layer(
            ax,
            lay,
            differences[number],
            norm,
            cmap,
            title=f"Filter {number}",
            row_label=layer if position % grid.shape[1] == 0 else None,
        )
    used = list(flat[: len(filters)])
    for ax in flat[len(filters) :]:
        ax.set_axis_off()
    grid[0, 0].figure.colorbar(mesh, ax=used, label=DIFFERENCE_LABEL)
    if axes is None:
        tidy_grid(grid)
    return grid


# ---------------------------------------------------------------------------- training


def history(
    history: pd.DataFrame | Mapping[str, Sequence[float]] | Any,
    *,
    axes: Sequence[Axes] | np.ndarray | None = None,
) -> np.ndarray:
    """Loss and metrics per epoch, training and validation, one panel each.

    Parameters
    ----------
    history
        A Keras ``History`` (its ``.history``), a dict of per-epoch lists or a
        DataFrame, with keys like ``loss``, ``val_loss``, ``accuracy``,
        ``val_accuracy``; an ``epoch`` column is used as the x axis if present
        (else epochs count from 1).
    axes
        One axes per quantity (loss first); default: a new figure.

    Returns
    -------
    numpy.ndarray
        The axes, one per quantity.
    """
    frame = pd.DataFrame(getattr(history, "history", history))
    names = [c for c in frame.columns if not str(c).startswith("val_") and c not in _NOT_METRICS]
    if not names:
        msg = f"history has no training quantities; its keys are {list(frame.columns)}"
        raise InvalidValueError(msg)
    names.sort(key=lambda name: name != "loss")  # loss first, the rest in their order
    epochs = frame["epoch"].to_numpy() if "epoch" in frame else np.arange(1, len(frame) + 1)
    grid = axes_grid(axes, (1, len(names)), (4.5 * len(names), 4)).ravel()
    for ax, name in zip(grid, names, strict=True):
        ax.plot(epochs, frame[name], marker="o", markersize=3, label="Training")
        if f"val_{name}" in frame:
            ax.plot(epochs, frame[f"val_{name}"], marker="o", markersize=3, label="Validation")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(_METRIC_LABELS.get(name, name))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best")
    return grid


# ---------------------------------------------------------------------------- pile-up


def _require_columns(table: pd.DataFrame, needed: set[str], source: str) -> None:
    missing = sorted(needed - set(table.columns) - set(table.index.names))
    if missing:
        msg = f"table lacks the column(s) {missing}; pass the table of {source}"
        raise InvalidValueError(msg)


def performance_vs_mu(
    table: pd.DataFrame,
    *,
    axes: Sequence[Axes] | np.ndarray | None = None,
) -> np.ndarray:
    """AUC and π0 rejection of each classifier against ⟨μ⟩.

    Parameters
    ----------
    table
        From `calotools.pileup_study.classifier_vs_mu` (index ⟨μ⟩, classifier).
    axes
        Two axes (AUC, rejection); default: a new figure.

    Returns
    -------
    numpy.ndarray
        The two axes.
    """
    _require_columns(
        table, {"mu", "classifier", "auc", "rejection"}, "pileup_study.classifier_vs_mu"
    )
    flat = table.reset_index()
    grid = axes_grid(axes, (1, 2), (13, 5)).ravel()
    for name, rows in flat.groupby("classifier", sort=False):
        (line,) = grid[0].plot(rows["mu"], rows["auc"], marker="o", label=name)
        grid[1].plot(rows["mu"], rows["rejection"], marker="o", color=line.get_color())
    grid[0].set(xlabel=r"$\langle\mu\rangle$", ylabel="AUC")
    grid[1].set(
        xlabel=r"$\langle\mu\rangle$", ylabel=f"{PI0_TEX} rejection at 90 % {PIPM_TEX} eff."
    )
    grid[1].set_yscale("log")
    grid[0].legend()
    return grid


def lambda_scan(
    table: pd.DataFrame,
    *,
    axes: Sequence[Axes] | np.ndarray | None = None,
    label: str | None = None,
) -> np.ndarray:
    """Accuracy and Z dependence against the adversary's weight λ ("trading accuracy for robustness").

    Parameters
    ----------
    table
        From `calotools.adversarial.lambda_scan`.
    axes
        Two axes (AUC, Z dependence); default: a new figure. Pass the axes of
        an earlier call to compare scans (``label`` names each).

    Returns
    -------
    numpy.ndarray
        The two axes.
    """
    _require_columns(table, {"lam", "auc", "z_dependence"}, "adversarial.lambda_scan")
    grid = axes_grid(axes, (1, 2), (13, 5)).ravel()
    (line,) = grid[0].plot(table["lam"], table["auc"], marker="o", label=label)
    grid[1].plot(table["lam"], table["z_dependence"], marker="o", color=line.get_color())
    for ax in grid:
        # λ = 0 (plain training) belongs on the axis: linear up to 0.1, logarithmic above.
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set_xlabel(r"Adversary weight $\lambda$")
    grid[0].set_ylabel("AUC")
    grid[1].set_ylabel("Dependence on Z: Jensen–Shannon divergence [bits]")
    if label is not None:
        grid[0].legend()
    return grid


def denoising_images(
    rows: Mapping[str, LayerImages | Any],
    index: int,
    *,
    layers: Sequence[str] = ("EMB1", "EMB2", "EMB3"),
    axes: Sequence[Axes] | np.ndarray | None = None,
    cmap: str = "viridis",
) -> np.ndarray:
    """One cluster's layer images as several versions, one row each (noisy, denoised, clean, …).

    All panels share one logarithmic colour scale in GeV, so that what the
    pile-up adds and what the denoiser removes can be compared by eye.

    Parameters
    ----------
    rows
        Row label → layer images (a mapping or `calotools.ntuple.Clusters`);
        row ``index`` of each is drawn.
    index
        Which cluster.
    layers
        The layers, one column each.
    axes
        len(rows) × len(layers) axes; default: a new figure.

    Returns
    -------
    numpy.ndarray
        The axes, rows × layers.
    """
    if not rows:
        msg = "denoising_images needs at least one row of images"
        raise InvalidValueError(msg)
    images = {}
    for label, source in rows.items():
        layer_images = getattr(source, "images", source)
        missing = [name for name in layers if name not in layer_images]
        if missing:
            msg = f"the images of row {label!r} lack the layer(s) {missing}"
            raise InvalidValueError(msg)
        n = len(layer_images[layers[0]])
        if not -n <= index < n:
            msg = f"cluster index {index} is out of range for the {n} clusters of row {label!r}"
            raise OutOfRangeError(msg)
        images[label] = [np.asarray(layer_images[name][index], dtype=float) for name in layers]
    created = axes is None
    grid = axes_grid(axes, (len(rows), len(layers)), (4 * len(layers), 3.2 * len(rows)))
    norm = pixel_norm([p for pixels in images.values() for p in pixels], log=True)
    for r, (label, pixels) in enumerate(images.items()):
        for c, (name, image) in enumerate(zip(layers, pixels, strict=True)):
            mesh = draw_layer(
                grid[r, c],
                geometry.layer(name),
                image,
                norm,
                cmap,
                title=name if r == 0 else None,
                row_label=label if c == 0 else None,
            )
    if created:
        tidy_grid(grid)
    grid[0, 0].figure.colorbar(mesh, ax=list(grid.ravel()), label="Cell energy [GeV]")
    return grid
