"""Interactive explorers for notebooks (ipywidgets 8).

Each explorer only wires controls to the pure functions of `calotools.metrics`,
`calotools.plotting` and `calotools.interpret` (and the two small pure helpers
below, `cutoff_summary` and `response_in_bin`). It keeps what it shows as
attributes, so that code and tests can read it:

- ``.widget``: the ipywidgets container to display (the explorer itself
  displays as it, too);
- ``.controls``: control name → ipywidget; setting a control's ``.value``,
  by hand or in code, updates everything below;
- ``.result``: the numbers or arrays on display;
- ``.figure``: the matplotlib ``Figure`` drawn, shown in the widget as a PNG
  image.

The figure is a bare ``matplotlib.figure.Figure`` rendered to PNG, not a
pyplot figure in an ``Output`` area: no kernel, notebook backend or global
pyplot state is needed, so the explorers work the same headless (tests, CI)
and in JupyterLab.

Examples
--------
>>> from calotools import widgets
>>> browser = widgets.ClusterBrowser({"π0": pi0, "π±": pipm})  # doctest: +SKIP
>>> browser  # doctest: +SKIP
>>> browser.controls["index"].value = 12  # doctest: +SKIP
>>> browser.result["EMB2"].shape  # doctest: +SKIP
(16, 16)
"""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from calotools import extras, geometry, metrics, plotting
from calotools.errors import InvalidValueError, OutOfRangeError

__all__ = [
    "ActivationExplorer",
    "ClusterBrowser",
    "CutoffExplorer",
    "DenoisingExplorer",
    "ResponseExplorer",
    "cutoff_summary",
    "response_in_bin",
]

#: Resolution of the rendered figures: sharp enough on screen, quick to draw.
DPI = 80


# ---------------------------------------------------------------------------- pure helpers


def cutoff_summary(
    y_true: metrics.ArrayLike,
    p_pi0: metrics.ArrayLike,
    cutoff: float,
    *,
    normalize: Literal["true", "pred"] | None = None,
) -> dict[str, Any]:
    """Accuracy, efficiencies, purities and confusion matrix of the π0/π± call at one cutoff p.

    The row of `calotools.metrics.cutoff_scan` at ``cutoff`` as a dict, plus
    ``"confusion_matrix"``: `calotools.metrics.confusion_matrix` with
    ``normalize``. A cluster is called π0 when ``p_pi0 > cutoff``.

    Examples
    --------
    >>> summary = cutoff_summary([0, 0, 1, 1], [0.9, 0.4, 0.45, 0.1], 0.3)
    >>> summary["accuracy"], summary["pi0_efficiency"], summary["pipm_efficiency"]
    (0.75, 1.0, 0.5)
    >>> summary["confusion_matrix"].to_numpy().tolist()
    [[2, 0], [1, 1]]
    """
    row = metrics.cutoff_scan(y_true, p_pi0, cutoffs=[cutoff]).iloc[0]
    summary: dict[str, Any] = {name: float(value) for name, value in row.items()}
    summary["n_pi0"], summary["n_pipm"] = int(row["n_pi0"]), int(row["n_pipm"])
    summary["confusion_matrix"] = metrics.confusion_matrix(y_true, p_pi0, cutoff, normalize)
    return summary


def response_in_bin(
    e_true: metrics.ArrayLike,
    e_pred: metrics.ArrayLike,
    edges: metrics.ArrayLike,
    index: int,
) -> np.ndarray:
    """Responses E_pred / E_true of the clusters in the E_true bin ``index``.

    Bins are [low, high), as in `calotools.metrics.binned_response`, so the
    median of the result is that table's ``median`` of the bin.

    Examples
    --------
    >>> response_in_bin([0.5, 1.25, 3.0, 1.5], [0.5, 1.0, 3.3, 2.25], [1, 2, 4], 0).tolist()
    [0.8, 1.5]
    """
    true = np.asarray(e_true, dtype=np.float64)
    pred = np.asarray(e_pred, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if true.ndim != 1 or pred.shape != true.shape:
        msg = f"e_true and e_pred must be 1-D and equally long; got {true.shape} and {pred.shape}"
        raise InvalidValueError(msg)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        msg = "edges must be at least two strictly increasing bin edges (GeV)"
        raise InvalidValueError(msg)
    n_bins = len(edges) - 1
    if not 0 <= index < n_bins:
        msg = f"bin index {index} is out of range for {n_bins} bins"
        raise OutOfRangeError(msg)
    inside = (true >= edges[index]) & (true < edges[index + 1])
    if np.any(true[inside] <= 0.0):
        msg = "e_true must be positive (GeV)"
        raise InvalidValueError(msg)
    return pred[inside] / true[inside]


def _bin_label(low: float, high: float) -> str:
    return f"{low:.3g}–{high:.3g} GeV"


# ---------------------------------------------------------------------------- the common frame


class _Explorer:
    """Controls above a text line and a figure; any control change redraws."""

    figsize: tuple[float, float] = (11.0, 4.5)

    def __init__(self, controls: dict[str, Any]) -> None:
        ipywidgets = extras.ipywidgets()
        from matplotlib.figure import Figure

        self.controls = controls
        self.figure = Figure(figsize=self.figsize, layout="constrained")
        self.result: Any = None
        self.text = ipywidgets.HTML()
        self.image = ipywidgets.Image(format="png")
        self.widget = ipywidgets.VBox(
            [ipywidgets.HBox(list(controls.values())), self.text, self.image]
        )
        self._holding = False
        for control in controls.values():
            control.observe(self._on_change, names="value")

    @contextlib.contextmanager
    def _hold(self) -> Iterator[None]:
        """Change controls without redrawing for each change."""
        self._holding, before = True, self._holding
        try:
            yield
        finally:
            self._holding = before

    def _on_change(self, change: dict[str, Any]) -> None:
        if not self._holding:
            self.update()

    def _sync(self) -> None:
        """Bring dependent controls in line (e.g. an index range with the sample)."""

    def _draw(self) -> Any:
        """Draw on ``self.figure`` and return the result on display."""
        raise NotImplementedError

    def update(self) -> None:
        """Redraw for the current control values (done on every change)."""
        with self._hold():
            self._sync()
        self.figure.clear()
        buffer = io.BytesIO()
        with plotting.style():
            self.result = self._draw()
            self.figure.savefig(buffer, format="png", dpi=DPI)
        self.image.value = buffer.getvalue()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


# ---------------------------------------------------------------------------- the explorers


class ClusterBrowser(_Explorer):
    """Browse cluster images: sample, cluster index, one layer or all six, log or linear colours.

    Parameters
    ----------
    samples
        Sample name → `calotools.ntuple.Clusters` or layer images
        (layer → (N, n_η, n_φ)).
    sample, index, layer, log
        Initial values of the controls; ``layer="all"`` shows the six layers.

    Attributes
    ----------
    result : dict
        Layer name → the (n_η, n_φ) image on display.
    """

    def __init__(
        self,
        samples: Mapping[str, Any],
        *,
        sample: str | None = None,
        index: int = 0,
        layer: str = "all",
        log: bool = True,
        cmap: str = "viridis",
    ) -> None:
        ipywidgets = extras.ipywidgets()

        if not samples:
            msg = "samples is empty; give at least one, e.g. {'π0': clusters}"
            raise InvalidValueError(msg)
        self.samples = {
            name: plotting.as_layer_images(images, what=f"samples[{name!r}]")
            for name, images in samples.items()
        }
        self._scalars = {name: getattr(images, "scalars", None) for name, images in samples.items()}
        self.cmap = cmap
        first = sample if sample is not None else next(iter(self.samples))
        controls = {
            "sample": ipywidgets.Dropdown(
                options=list(self.samples), value=first, description="Sample"
            ),
            # Redraw on release, not on every step of a drag: each frame is a new PNG.
            "index": ipywidgets.IntSlider(
                value=index,
                min=0,
                max=self._n_clusters(first) - 1,
                continuous_update=False,
                description="Cluster",
            ),
            "layer": ipywidgets.Dropdown(
                options=["all", *geometry.IMAGE_LAYER_NAMES], value=layer, description="Layer"
            ),
            "scale": ipywidgets.ToggleButtons(
                options=["log", "linear"], value="log" if log else "linear", description="Colours"
            ),
        }
        super().__init__(controls)
        self.update()

    def _n_clusters(self, sample: str) -> int:
        return len(self.samples[sample][geometry.IMAGE_LAYER_NAMES[0]])

    def _sync(self) -> None:
        self.controls["index"].max = self._n_clusters(self.controls["sample"].value) - 1

    def _draw(self) -> dict[str, np.ndarray]:
        sample = self.controls["sample"].value
        index = self.controls["index"].value
        layer = self.controls["layer"].value
        log = self.controls["scale"].value == "log"
        images = self.samples[sample]
        if layer == "all":
            axes = self.figure.subplots(2, 3, sharex=True, sharey=True)
            plotting.cluster_images(images, index, axes=axes, log=log, cmap=self.cmap)
            for ax in axes.ravel():
                ax.label_outer()
            shown = list(geometry.IMAGE_LAYER_NAMES)
        else:
            ax = self.figure.subplots()
            plotting.layer_image(images[layer][index], layer, ax=ax, log=log, cmap=self.cmap)
            shown = [layer]
        self.figure.suptitle(f"{sample}, cluster {index}")
        self.text.value = self._describe(sample, index)
        return {name: np.asarray(images[name][index]) for name in shown}

    def _describe(self, sample: str, index: int) -> str:
        scalars = self._scalars[sample]
        if scalars is None:
            return ""
        known = [c for c in ("cluster_E", "cluster_ENG_CALIB_TOT", "truthE") if c in scalars]
        return ", ".join(f"{c} = {scalars[c].iloc[index]:.3g} GeV" for c in known)


class CutoffExplorer(_Explorer):
    """The π0/π± call at a cutoff p: efficiencies, confusion matrix, marker on the cutoff scan.

    Parameters
    ----------
    y_true
        Labels, π0 = 0 and π± = 1.
    p_pi0
        The classifier's π0 probability (1 − P(π±) for a P(π±) network).
    cutoff, normalize
        Initial values of the controls (see `cutoff_summary`).
    cutoffs
        The p values of the scan drawn; default `calotools.metrics.DEFAULT_CUTOFFS`.

    Attributes
    ----------
    scan : pandas.DataFrame
        The `calotools.metrics.cutoff_scan` drawn.
    result : dict
        `cutoff_summary` at the slider's cutoff.
    """

    figsize = (11.0, 4.5)

    def __init__(
        self,
        y_true: metrics.ArrayLike,
        p_pi0: metrics.ArrayLike,
        *,
        cutoff: float = 0.5,
        normalize: Literal["true", "pred"] | None = None,
        cutoffs: metrics.ArrayLike | None = None,
    ) -> None:
        ipywidgets = extras.ipywidgets()

        self.scan = metrics.cutoff_scan(y_true, p_pi0, cutoffs)  # also checks the inputs
        self.y_true = np.asarray(y_true)
        self.p_pi0 = np.asarray(p_pi0)
        controls = {
            "cutoff": ipywidgets.FloatSlider(
                value=cutoff,
                min=0.0,
                max=1.0,
                step=0.01,
                readout_format=".2f",
                continuous_update=False,
                description="Cutoff p",
            ),
            "normalize": ipywidgets.Dropdown(
                options=[
                    ("counts", None),
                    ("per true class", "true"),
                    ("per called class", "pred"),
                ],
                value=normalize,
                description="Matrix",
            ),
        }
        super().__init__(controls)
        self.update()

    def _draw(self) -> dict[str, Any]:
        cutoff = self.controls["cutoff"].value
        summary = cutoff_summary(
            self.y_true, self.p_pi0, cutoff, normalize=self.controls["normalize"].value
        )
        scan_ax, matrix_ax = self.figure.subplots(1, 2, width_ratios=[1.6, 1.0])
        plotting.cutoff_scan(self.scan, ax=scan_ax, mark=cutoff)
        plotting.confusion_matrix(summary["confusion_matrix"], ax=matrix_ax)
        best = metrics.best_cutoff(self.scan)
        self.text.value = (
            f"p = {cutoff:.2f}: accuracy {summary['accuracy']:.3f}, "
            f"π0 efficiency {summary['pi0_efficiency']:.3f}, "
            f"π± efficiency {summary['pipm_efficiency']:.3f} "
            f"(best accuracy at p = {best:.2f})"
        )
        return summary


class ResponseExplorer(_Explorer):
    """The response distribution in one E_true bin, beside the median response curve.

    Parameters
    ----------
    samples
        Sample name → table (DataFrame or column name → array) holding the
        true energy and one column of predicted energies per method (GeV).
    methods
        The prediction columns; default every column but ``truth``.
    truth
        The true-energy column.
    edges
        E_true bin edges (GeV); default `calotools.metrics.DEFAULT_RESPONSE_EDGES`.
    bin_index
        Initial bin; default the one holding the median true energy of the
        first sample.
    response_range, response_bins
        Histogram of the response.

    Attributes
    ----------
    result : dict
        Method → responses E_pred / E_true of the clusters in the bin
        (`response_in_bin`).
    """

    figsize = (12.0, 4.5)

    def __init__(
        self,
        samples: Mapping[str, pd.DataFrame | Mapping[str, Any]],
        methods: Sequence[str] | None = None,
        *,
        truth: str = "cluster_ENG_CALIB_TOT",
        edges: metrics.ArrayLike | None = None,
        bin_index: int | None = None,
        response_range: tuple[float, float] = (0.0, 2.5),
        response_bins: int = 50,
    ) -> None:
        ipywidgets = extras.ipywidgets()

        if not samples:
            msg = "samples is empty; give at least one table of true and predicted energies"
            raise InvalidValueError(msg)
        self.tables = {name: pd.DataFrame(table) for name, table in samples.items()}
        first = next(iter(self.tables.values()))
        methods = [c for c in first.columns if c != truth] if methods is None else list(methods)
        for name, table in self.tables.items():
            missing = [c for c in (truth, *methods) if c not in table.columns]
            if missing:
                msg = f"samples[{name!r}] lacks the column(s) {missing}; it has: {list(table.columns)}"
                raise InvalidValueError(msg)
        if not methods:
            msg = f"there are no prediction columns besides {truth!r}"
            raise InvalidValueError(msg)
        self.truth = truth
        self.edges = np.asarray(
            metrics.DEFAULT_RESPONSE_EDGES if edges is None else edges, dtype=np.float64
        )
        self.histogram_edges = np.linspace(*response_range, response_bins + 1)
        self._binned: dict[tuple[str, str], pd.DataFrame] = {}
        if bin_index is None:
            median_energy = float(np.median(first[truth]))
            bin_index = int(
                np.clip(
                    np.searchsorted(self.edges, median_energy, side="right") - 1,
                    0,
                    len(self.edges) - 2,
                )
            )
        bins = [
            (_bin_label(low, high), i)
            for i, (low, high) in enumerate(itertools.pairwise(self.edges.tolist()))
        ]
        controls = {
            "sample": ipywidgets.Dropdown(options=list(self.tables), description="Sample"),
            "methods": ipywidgets.SelectMultiple(
                options=methods,
                value=tuple(methods),
                rows=min(len(methods), 4),
                description="Methods",
            ),
            "bin": ipywidgets.SelectionSlider(
                options=bins, value=bin_index, continuous_update=False, description="E_true bin"
            ),
        }
        super().__init__(controls)
        self.update()

    def binned(self, sample: str, method: str) -> pd.DataFrame:
        """`calotools.metrics.binned_response` of one method on one sample (computed once)."""
        key = (sample, method)
        if key not in self._binned:
            table = self.tables[sample]
            self._binned[key] = metrics.binned_response(
                table[self.truth], table[method], self.edges
            )
        return self._binned[key]

    def _draw(self) -> dict[str, np.ndarray]:
        sample = self.controls["sample"].value
        methods = list(self.controls["methods"].value)
        index = self.controls["bin"].value
        low, high = self.edges[index], self.edges[index + 1]
        table = self.tables[sample]
        curve_ax, histogram_ax = self.figure.subplots(1, 2)
        responses = {
            method: response_in_bin(table[self.truth], table[method], self.edges, index)
            for method in methods
        }
        if methods:
            plotting.response({m: self.binned(sample, m) for m in methods}, ax=curve_ax)
        else:
            curve_ax.set_xscale("log")
            curve_ax.set_xlim(self.edges[0], self.edges[-1])
            curve_ax.set_xlabel(plotting.E_TRUE_LABEL)
            curve_ax.set_ylabel(plotting.MEDIAN_RESPONSE_LABEL)
        curve_ax.axvspan(low, high, color="grey", alpha=0.3)
        plotting.response_histograms(responses, bins=self.histogram_edges, ax=histogram_ax)
        histogram_ax.set_title(f"{sample}, " + r"$E^{\mathrm{true}}$" + f" {_bin_label(low, high)}")
        counts = ", ".join(f"{m}: {len(r)}" for m, r in responses.items())
        self.text.value = f"Clusters in the bin: {counts or 'no method selected'}"
        return responses


class ActivationExplorer(_Explorer):
    """Mean most-activating images of one node of one hidden layer (`calotools.interpret`).

    Parameters
    ----------
    model, inputs, images
        As in `calotools.interpret.activation_maps`.
    layers
        The layers offered; default `calotools.interpret.hidden_layer_names`.
    top_n
        Images averaged per node.
    log
        Logarithmic colour scale.

    Attributes
    ----------
    result : dict
        Layer name → the (n_η, n_φ) mean image of the selected node.
    """

    figsize = (15.0, 4.2)

    def __init__(
        self,
        model: Any,
        inputs: Any,
        images: Mapping[str, np.ndarray] | Any,
        *,
        layers: Sequence[str] | None = None,
        top_n: int = 500,
        log: bool = False,
        batch_size: int = 1024,
    ) -> None:
        ipywidgets = extras.ipywidgets()

        from calotools import interpret

        self.model, self.inputs, self.images = model, inputs, images
        self.top_n, self.log, self.batch_size = top_n, log, batch_size
        layers = interpret.hidden_layer_names(model) if layers is None else list(layers)
        if not layers:
            msg = "the model has no hidden Dense or convolutional layer to map"
            raise InvalidValueError(msg)
        self._maps: dict[str, dict[str, np.ndarray]] = {}
        controls = {
            "layer": ipywidgets.Dropdown(options=layers, description="Layer"),
            "node": ipywidgets.BoundedIntText(value=0, min=0, max=0, description="Node"),
        }
        super().__init__(controls)
        self.update()

    def maps(self, layer: str) -> dict[str, np.ndarray]:
        """`calotools.interpret.activation_maps` of ``layer`` (one forward pass, then cached)."""
        from calotools import interpret

        if layer not in self._maps:
            self._maps[layer] = interpret.activation_maps(
                self.model,
                self.inputs,
                self.images,
                layer,
                top_n=self.top_n,
                batch_size=self.batch_size,
            )
        return self._maps[layer]

    def _sync(self) -> None:
        maps = self.maps(self.controls["layer"].value)
        self.controls["node"].max = len(next(iter(maps.values()))) - 1

    def _draw(self) -> dict[str, np.ndarray]:

        layer, node = self.controls["layer"].value, self.controls["node"].value
        maps = self.maps(layer)
        axes = self.figure.subplots(1, len(maps), sharex=True, sharey=True, squeeze=False)
        plotting.activation_maps(maps, nodes=[node], axes=axes, log=self.log)
        for ax in axes.ravel():
            ax.label_outer()
        n_nodes = len(next(iter(maps.values())))
        n_clusters = len(next(iter(getattr(self.images, "images", self.images).values())))
        self.text.value = (
            f"{layer}, node {node} (of {n_nodes}): mean of the "
            f"{min(self.top_n, n_clusters)} most activating images"
        )
        return {name: maps[name][node] for name in maps}


class DenoisingExplorer(_Explorer):
    """One cluster at each ⟨μ⟩: its images with pile-up, denoised and without (notebook 09).

    Parameters
    ----------
    versions
        ⟨μ⟩ → {row label → `calotools.ntuple.Clusters` or layer images}, e.g.
        ``{"noisy": ..., "denoised": ..., "clean": ...}``; at every ⟨μ⟩ row
        ``i`` of every version is the same hard-scatter cluster.
    layers
        The layers shown, one column each (default: the EM layers the
        denoiser works on).

    Attributes
    ----------
    result : dict
        Row label → {layer → the (n_η, n_φ) image on display}.
    """

    figsize = (12.0, 8.0)

    def __init__(
        self,
        versions: Mapping[float, Mapping[str, Any]],
        *,
        layers: Sequence[str] = ("EMB1", "EMB2", "EMB3"),
        index: int = 0,
        cmap: str = "viridis",
    ) -> None:
        ipywidgets = extras.ipywidgets()

        if not versions:
            msg = "versions is empty; give {mu: {'noisy': clusters, ...}} for at least one ⟨μ⟩"
            raise InvalidValueError(msg)
        self.versions = {
            float(mu): {label: getattr(v, "images", v) for label, v in rows.items()}
            for mu, rows in sorted(versions.items())
        }
        sizes = {
            len(images[layers[0]])
            for rows in self.versions.values()
            for images in rows.values()
            if layers[0] in images
        }
        if len(sizes) != 1:
            msg = f"every ⟨μ⟩ and version must hold the same clusters; their sizes are {sorted(sizes)}"
            raise InvalidValueError(msg)
        self.layers = tuple(layers)
        self.cmap = cmap
        controls = {
            "mu": ipywidgets.SelectionSlider(
                options=list(self.versions), description="⟨μ⟩", continuous_update=False
            ),
            "index": ipywidgets.IntSlider(
                value=index,
                min=0,
                max=sizes.pop() - 1,
                continuous_update=False,
                description="Cluster",
            ),
        }
        super().__init__(controls)
        self.update()

    def _draw(self) -> dict[str, dict[str, np.ndarray]]:
        mu, index = self.controls["mu"].value, self.controls["index"].value
        rows = self.versions[mu]
        axes = self.figure.subplots(len(rows), len(self.layers), squeeze=False)
        plotting.denoising_images(rows, index, layers=self.layers, axes=axes, cmap=self.cmap)
        self.figure.suptitle(rf"cluster {index} at $\langle\mu\rangle$ = {mu:g}")
        energies = {
            label: sum(float(np.sum(images[name][index])) for name in self.layers)
            for label, images in rows.items()
        }
        self.text.value = ", ".join(
            f"{label}: {e:.3g} GeV in the EM layers" for label, e in energies.items()
        )
        return {
            label: {name: np.asarray(images[name][index]) for name in self.layers}
            for label, images in rows.items()
        }
