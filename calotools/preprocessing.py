"""Turn clusters into model inputs and targets, as a small serialisable recipe.

A `Preprocessing` says which images a model sees, how they are scaled and laid
out, which scalar features accompany them and what the regression target is.
It is plain data: saved as JSON next to every model, so that the same recipe is
applied at training, evaluation and inference time.

Layouts (shapes from `calotools.geometry`, channels last):

- ``"layers"``: one input per layer, named by the layer, ``(n, n_η, n_φ, 1)``;
- ``"densenet"``: the three inputs of the LLNL/ATLAS DenseNet (LLNL report
  section 2.3): ``EMB1`` ``(n, 128, 4, 1)``; ``EMB23`` ``(n, 16, 16, 2)``, EMB2
  and EMB3 upsampled to the EMB2 grid; ``Tile`` ``(n, 4, 4, 3)``, TileBar0–2
  with TileBar2 upsampled to the TileBar0 grid. Upsampling conserves energy:
  a coarse pixel is split evenly over the fine pixels it covers;
- ``"flat"``: the chosen layers flattened and concatenated, ``flat`` ``(n, k)``,
  for dense networks.

Scalar features (``scalars`` input, ``(n, k)``) are standardised with the
mean and spread of the training split (`Preprocessing.fit`).

Examples
--------
>>> from calotools.testing import random_clusters
>>> prep = Preprocessing(layout="densenet", target="log_energy")
>>> train = random_clusters(200, seed=1)
>>> inputs = prep.fit(train).transform(train)
>>> {name: array.shape for name, array in inputs.items()}
{'EMB1': (200, 128, 4, 1), 'EMB23': (200, 16, 16, 2), 'Tile': (200, 4, 4, 3), 'scalars': (200, 2)}
>>> energy = prep.inverse_target(prep.targets(train))
>>> bool(np.allclose(energy, train.scalars["cluster_ENG_CALIB_TOT"], rtol=1e-6))
True
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from calotools import geometry
from calotools.cuts import evaluate_feature, feature_branch
from calotools.errors import CutError, PreprocessingError
from calotools.ntuple import Clusters

__all__ = [
    "DENSENET_GROUPS",
    "FLAT_INPUT",
    "SCALARS_INPUT",
    "Preprocessing",
    "PreprocessingError",
    "upsample",
]

Layout = Literal["layers", "densenet", "flat"]
Scale = Literal["fraction", "unit_sum", "log"]
Target = Literal["label", "log_ratio", "log_energy", "energy_ratio"]

_LAYOUTS = ("layers", "densenet", "flat")
_SCALES = ("fraction", "unit_sum", "log")
_TARGETS = ("label", "log_ratio", "log_energy", "energy_ratio")

#: The three inputs of the DenseNet (LLNL report section 2.3): input name →
#: layers stacked as channels, on the grid of the first one.
DENSENET_GROUPS: dict[str, tuple[str, ...]] = {
    "EMB1": ("EMB1",),
    "EMB23": ("EMB2", "EMB3"),
    "Tile": ("TileBar0", "TileBar1", "TileBar2"),
}
#: Name of the input holding the standardised scalar features.
SCALARS_INPUT = "scalars"
#: Name of the input of the ``"flat"`` layout.
FLAT_INPUT = "flat"

_FORMAT = "calotools.Preprocessing/1"


# ---------------------------------------------------------------------------- images


def upsample(images: np.ndarray, source: str, target: str) -> np.ndarray:
    """Put ``source`` layer images on the pixel grid of ``target``, conserving energy.

    Each source pixel is split evenly over the target pixels it covers, e.g. an
    EMB3 pixel (Δη = 0.05) over two EMB2 pixels (Δη = 0.025). The factors and
    the alignment of the pixel edges come from `calotools.geometry`.

    Parameters
    ----------
    images
        Array shaped ``(n, *source image shape)``.
    """
    src, tgt = geometry.layer(source), geometry.layer(target)
    factors = (round(src.deta / tgt.deta), round(src.dphi / tgt.dphi))
    for edges_src, edges_tgt, factor in (
        (src.eta_edges, tgt.eta_edges, factors[0]),
        (src.phi_edges, tgt.phi_edges, factors[1]),
    ):
        if factor < 1 or not np.allclose(edges_tgt[::factor], edges_src):
            msg = f"the {source} pixels do not tile the {target} pixels; cannot upsample"
            raise PreprocessingError(msg)
    if factors == (1, 1):
        return images
    fine = np.repeat(np.repeat(images, factors[0], axis=1), factors[1], axis=2)
    return fine / np.float32(factors[0] * factors[1])


def _layer_shape(name: str) -> tuple[int, int]:
    shape = geometry.layer(name).image_shape
    if shape is None:
        msg = f"layer {name} has no image in the MLTree format"
        raise PreprocessingError(msg)
    return shape


# ---------------------------------------------------------------------------- checks


def _which(bad_rows: np.ndarray, entries: np.ndarray | None) -> str:
    """``"rows 3, 7"`` or ``"entries 1200, 1207, …"``: the first few clusters affected."""
    first = bad_rows[:5] if entries is None else np.asarray(entries)[bad_rows[:5]]
    label = "rows" if entries is None else "entries"
    return f"{label} {', '.join(map(str, first))}{', …' if len(bad_rows) > 5 else ''}"


def _check_finite(values: np.ndarray, what: str, where: str, entries: np.ndarray | None) -> None:
    """Raise, saying which, where and how many, if ``values`` has NaN or inf."""
    finite = np.isfinite(values)
    if finite.all():
        return
    bad_rows = np.flatnonzero(~finite.reshape(len(values), -1).all(axis=1))
    place = f"{where}: " if where else ""
    msg = (
        f"{place}{what} has {int(np.count_nonzero(~finite))} non-finite (NaN or inf) values in "
        f"{len(bad_rows)} clusters ({_which(bad_rows, entries)}); model inputs and targets "
        "must be finite"
    )
    raise PreprocessingError(msg)


def _check_log_domain(
    features: np.ndarray, expressions: Sequence[str], where: str, entries: np.ndarray | None
) -> None:
    """Raise with a hint if a logarithm feature met a branch value ≤ 0.

    The branches are finite by now, so a non-finite feature is log(x ≤ 0):
    clusters that the training cut (``cluster_E > 0`` by default) removes.
    """
    for column, expression in enumerate(expressions):
        bad_rows = np.flatnonzero(~np.isfinite(features[:, column]))
        if len(bad_rows):
            branch = feature_branch(expression)
            place = f"{where}: " if where else ""
            msg = (
                f"{place}{expression} is undefined for {len(bad_rows)} clusters with "
                f"{branch} ≤ 0 ({_which(bad_rows, entries)}); select the clusters with the cut "
                f"the model was trained with first (the default training cut requires "
                f"{branch} > 0; a model folder's training.json holds its cut)"
            )
            raise PreprocessingError(msg)


@dataclass
class _Moments:
    """Count, mean and sum of squared deviations, merged chunk by chunk (Chan et al.)."""

    n: int = 0
    mean: np.ndarray | float = 0.0
    m2: np.ndarray | float = 0.0

    def add(self, values: np.ndarray) -> None:
        n_new = len(values)
        if n_new == 0:
            return
        mean_new = values.mean(axis=0)
        m2_new = ((values - mean_new) ** 2).sum(axis=0)
        n_total = self.n + n_new
        delta = mean_new - self.mean
        self.mean = self.mean + delta * n_new / n_total
        self.m2 = self.m2 + m2_new + delta**2 * self.n * n_new / n_total
        self.n = n_total

    def std(self) -> np.ndarray:
        spread = np.sqrt(np.asarray(self.m2) / self.n)
        # A constant feature is centred but not scaled (nothing to scale by).
        return np.where(spread > 0, spread, 1.0)


# ---------------------------------------------------------------------------- the recipe


@dataclass
class Preprocessing:
    """How clusters become model inputs and targets.

    Parameters
    ----------
    layout
        ``"layers"``, ``"densenet"`` or ``"flat"`` (module docstring).
    layers
        Layers used by the ``"layers"`` and ``"flat"`` layouts; ``"densenet"``
        always uses all six.
    scale
        Pixel values: ``"fraction"`` (as stored: cell energy / cluster_E),
        ``"unit_sum"`` (each cluster's pixels over the layers used sum to 1) or
        ``"log"`` (log10(1 + fraction / log_floor)).
    log_floor
        Fraction of the cluster energy at which the ``"log"`` scale turns from
        linear to logarithmic.
    scalars
        Scalar features: branch names or abs/log/log10 of one.
    target
        ``"label"`` (0 for π0, 1 for π±); ``"log_ratio"``, ln(ENG_CALIB_TOT /
        cluster_E), the calibration's correction to the EM scale, not
        standardised so that 0 is the EM scale; ``"log_energy"`` (ln
        ENG_CALIB_TOT, standardised); or ``"energy_ratio"`` (ENG_CALIB_TOT /
        cluster_E).
    scalar_mean, scalar_std, target_mean, target_std
        Set by `fit` from the training split; saved with the recipe.
    """

    layout: Layout = "layers"
    layers: tuple[str, ...] = geometry.IMAGE_LAYER_NAMES
    scale: Scale = "fraction"
    log_floor: float = 1e-4
    scalars: tuple[str, ...] = ("log10(cluster_E)", "abs(cluster_Eta)")
    target: Target = "label"
    scalar_mean: tuple[float, ...] | None = field(default=None, repr=False)
    scalar_std: tuple[float, ...] | None = field(default=None, repr=False)
    target_mean: float | None = field(default=None, repr=False)
    target_std: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.layers = tuple(self.layers)
        self.scalars = tuple(self.scalars)
        for name, value, allowed in (
            ("layout", self.layout, _LAYOUTS),
            ("scale", self.scale, _SCALES),
            ("target", self.target, _TARGETS),
        ):
            if value not in allowed:
                msg = f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
                raise PreprocessingError(msg)
        if not self.layers:
            msg = "choose at least one layer"
            raise PreprocessingError(msg)
        for name in self.layers:
            if name not in geometry.IMAGE_LAYER_NAMES:
                msg = (
                    f"unknown image layer {name!r}; the layers with images are: "
                    f"{', '.join(geometry.IMAGE_LAYER_NAMES)}"
                )
                raise PreprocessingError(msg)
        for expression in self.scalars:
            try:
                feature_branch(expression)
            except CutError as err:
                raise PreprocessingError(str(err)) from None
        if not self.log_floor > 0:
            msg = f"log_floor must be positive, got {self.log_floor}"
            raise PreprocessingError(msg)
        if self.scalar_mean is not None:
            self.scalar_mean = tuple(float(v) for v in self.scalar_mean)
            self.scalar_std = tuple(float(v) for v in self.scalar_std or ())
            if len(self.scalar_mean) != len(self.scalars) or len(self.scalar_std) != len(
                self.scalars
            ):
                msg = "scalar_mean and scalar_std need one value per scalar feature"
                raise PreprocessingError(msg)

    # ------------------------------------------------------------------ what it needs

    @property
    def image_layers(self) -> tuple[str, ...]:
        """The layers whose images this recipe reads."""
        if self.layout == "densenet":
            return tuple(name for group in DENSENET_GROUPS.values() for name in group)
        return self.layers

    @property
    def input_branches(self) -> list[str]:
        """Branches `transform` reads."""
        scalars = [feature_branch(expression) for expression in self.scalars]
        return list(dict.fromkeys([*self.image_layers, *scalars]))

    @property
    def target_branches(self) -> list[str]:
        """Branches `targets` reads (labels come from the sample, not a branch)."""
        return {
            "label": [],
            "log_ratio": ["cluster_ENG_CALIB_TOT", "cluster_E"],
            "log_energy": ["cluster_ENG_CALIB_TOT"],
            "energy_ratio": ["cluster_ENG_CALIB_TOT", "cluster_E"],
        }[self.target]

    @property
    def branches(self) -> list[str]:
        """Every branch the recipe reads: inputs, targets and cluster_E for `inverse_target`."""
        return list(dict.fromkeys([*self.input_branches, *self.target_branches, "cluster_E"]))

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Input name → shape of one cluster's input (for building Keras models)."""
        shapes: dict[str, tuple[int, ...]] = {}
        if self.layout == "layers":
            shapes = {name: (*_layer_shape(name), 1) for name in self.layers}
        elif self.layout == "densenet":
            shapes = {
                name: (*_layer_shape(group[0]), len(group))
                for name, group in DENSENET_GROUPS.items()
            }
        else:
            shapes = {FLAT_INPUT: (sum(math.prod(_layer_shape(n)) for n in self.layers),)}
        if self.scalars:
            shapes[SCALARS_INPUT] = (len(self.scalars),)
        return shapes

    @property
    def is_fitted(self) -> bool:
        """Whether the statistics `transform` and `targets` need are set."""
        scalars_ready = not self.scalars or self.scalar_mean is not None
        target_ready = self.target != "log_energy" or self.target_mean is not None
        return scalars_ready and target_ready

    # ------------------------------------------------------------------ fit

    def fit(self, clusters: Clusters | Iterable[Clusters]) -> Preprocessing:
        """Set the standardisation from training clusters (one `Clusters` or chunks of them).

        Use the training split only, so that validation and test clusters stay unseen.
        Returns ``self``.
        """
        chunks = [clusters] if isinstance(clusters, Clusters) else clusters
        scalar_moments, target_moments = _Moments(), _Moments()
        for chunk in chunks:
            columns = self._columns(chunk, self.input_branches + self.target_branches)
            if self.scalars:
                features = self._raw_scalars(columns)
                _check_finite(features, "the scalar features", "fit", None)
                scalar_moments.add(features)
            if self.target == "log_energy":
                target = self._raw_target(columns)
                _check_finite(target, "the log-energy target", "fit", None)
                target_moments.add(target)
        n = max(scalar_moments.n, target_moments.n)
        if n == 0 and (self.scalars or self.target == "log_energy"):
            msg = "cannot fit the preprocessing on zero clusters"
            raise PreprocessingError(msg)
        if self.scalars:
            self.scalar_mean = tuple(float(v) for v in np.atleast_1d(scalar_moments.mean))
            self.scalar_std = tuple(float(v) for v in np.atleast_1d(scalar_moments.std()))
        if self.target == "log_energy":
            self.target_mean = float(target_moments.mean)
            self.target_std = float(target_moments.std())
        return self

    # ------------------------------------------------------------------ transform

    def transform(
        self, clusters: Clusters, *, where: str = "", entries: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Model inputs: input name → float32 array (see `input_shapes`).

        Parameters
        ----------
        clusters
            Clusters with at least `input_branches`.
        where, entries
            Where the clusters come from (file, entries) and their entry
            numbers, for error messages.

        Raises
        ------
        PreprocessingError
            If a branch is missing, the recipe is not fitted, or an input
            branch or a derived feature holds NaN or inf.
        """
        self.check_fitted()
        columns = self._columns(clusters, self.input_branches, where)
        n = len(clusters)
        for name in self.image_layers:
            _check_finite(columns[name], f"branch {name!r}", where, entries)
        images = {name: np.asarray(columns[name], dtype=np.float32) for name in self.image_layers}
        images = self._scale(images, n)
        inputs: dict[str, np.ndarray] = {}
        if self.layout == "layers":
            inputs = {name: images[name][..., np.newaxis] for name in self.layers}
        elif self.layout == "densenet":
            for name, group in DENSENET_GROUPS.items():
                channels = [upsample(images[layer], layer, group[0]) for layer in group]
                inputs[name] = np.stack(channels, axis=-1)
        else:
            inputs[FLAT_INPUT] = np.concatenate(
                [images[name].reshape(n, -1) for name in self.layers], axis=1
            )
        if self.scalars:
            for expression in self.scalars:
                branch = feature_branch(expression)
                _check_finite(np.asarray(columns[branch]), f"branch {branch!r}", where, entries)
            features = self._raw_scalars(columns)
            _check_log_domain(features, self.scalars, where, entries)
            mean = np.asarray(self.scalar_mean)
            std = np.asarray(self.scalar_std)
            inputs[SCALARS_INPUT] = (features - mean) / std
        for name, values in inputs.items():
            inputs[name] = np.ascontiguousarray(values, dtype=np.float32)
            if self.scale == "log":
                _check_finite(inputs[name], f"the log-scaled input {name!r}", where, entries)
        return inputs

    def _scale(self, images: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        if self.scale == "fraction":
            return images
        if self.scale == "unit_sum":
            total = sum(
                image.reshape(n, -1).sum(axis=1, dtype=np.float64) for image in images.values()
            )
            # An empty cluster (no pixel above threshold) stays all zeros.
            factor = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
            factor = factor.astype(np.float32)[:, np.newaxis, np.newaxis]
            return {name: image * factor for name, image in images.items()}
        floor = np.float32(self.log_floor)
        with np.errstate(invalid="ignore"):  # negative pixels are reported as non-finite
            return {name: np.log10(1 + image / floor) for name, image in images.items()}

    def _raw_scalars(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.stack([evaluate_feature(e, columns) for e in self.scalars], axis=1)

    # ------------------------------------------------------------------ targets

    def targets(
        self,
        clusters: Clusters,
        labels: np.ndarray | None = None,
        *,
        where: str = "",
        entries: np.ndarray | None = None,
    ) -> np.ndarray:
        """Training targets as float32, shape ``(n,)``.

        ``labels`` (0 for π0, 1 for π±, from the sample) are needed for
        ``target="label"`` only.
        """
        if self.target == "label":
            if labels is None:
                msg = "target='label' needs the labels (0 for π0, 1 for π±) of the clusters"
                raise PreprocessingError(msg)
            labels = np.asarray(labels)
            if len(labels) != len(clusters):
                msg = f"{len(labels)} labels for {len(clusters)} clusters"
                raise PreprocessingError(msg)
            return labels.astype(np.float32)
        self.check_fitted()
        columns = self._columns(clusters, self.target_branches, where)
        for branch in self.target_branches:
            _check_finite(np.asarray(columns[branch]), f"branch {branch!r}", where, entries)
        raw = self._raw_target(columns)
        _check_finite(raw, f"the {self.target} target", where, entries)
        if self.target == "log_energy":
            mean, std = self._target_moments()
            raw = (raw - mean) / std
        return raw.astype(np.float32)

    def _raw_target(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        truth = np.asarray(columns["cluster_ENG_CALIB_TOT"], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):  # reported by the finiteness check
            if self.target == "log_energy":
                return np.log(truth)
            ratio = truth / np.asarray(columns["cluster_E"], dtype=np.float64)
            return np.log(ratio) if self.target == "log_ratio" else ratio

    def inverse_target(
        self, values: np.ndarray, cluster_E: np.ndarray | Clusters | None = None
    ) -> np.ndarray:
        """Energy in GeV (float64) from targets or predictions: the inverse of `targets`.

        ``cluster_E`` (an array, or clusters carrying it) is needed for
        ``target="log_ratio"`` and ``"energy_ratio"``.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if self.target == "label":
            msg = "target='label' is a class, not an energy; there is nothing to invert"
            raise PreprocessingError(msg)
        if self.target == "log_energy":
            mean, std = self._target_moments()
            return np.exp(values * std + mean)
        if cluster_E is None:
            msg = f"target={self.target!r} needs cluster_E to turn ratios into energies"
            raise PreprocessingError(msg)
        if isinstance(cluster_E, Clusters):
            cluster_E = cluster_E.scalars["cluster_E"].to_numpy()
        ratio = np.exp(values) if self.target == "log_ratio" else values
        return ratio * np.asarray(cluster_E, dtype=np.float64)

    # ------------------------------------------------------------------ helpers

    def check_fitted(self) -> None:
        """Raise `PreprocessingError` if `fit` is needed and was not called."""
        if not self.is_fitted:
            msg = (
                "the preprocessing is not fitted: call fit(train_clusters) first, with the "
                "training split only (it standardises the scalar features and the log-energy target)"
            )
            raise PreprocessingError(msg)

    def _target_moments(self) -> tuple[float, float]:
        """Mean and standard deviation of the log-energy target, set by `fit`."""
        self.check_fitted()
        if self.target_mean is None or self.target_std is None:
            msg = "the log-energy target needs both target_mean and target_std"
            raise PreprocessingError(msg)
        return self.target_mean, self.target_std

    @staticmethod
    def _columns(clusters: Clusters, branches: Sequence[str], where: str = "") -> dict[str, Any]:
        available = {**clusters.images, **{c: clusters.scalars[c] for c in clusters.scalars}}
        missing = [b for b in branches if b not in available]
        if missing:
            place = f"{where}: " if where else ""
            msg = (
                f"{place}the preprocessing needs {', '.join(map(repr, missing))}, which the "
                f"clusters lack; they have: {', '.join(sorted(available))}"
            )
            raise PreprocessingError(msg)
        return {b: np.asarray(available[b]) for b in branches}

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields (tuples as lists) with a format tag."""
        fields = {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }
        return {"format": _FORMAT, **fields}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """The inverse of `to_dict`."""
        data = dict(data)
        fmt = data.pop("format", _FORMAT)
        if fmt != _FORMAT:
            msg = f"not a calotools preprocessing recipe (format {fmt!r}, expected {_FORMAT!r})"
            raise PreprocessingError(msg)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            msg = f"unknown preprocessing fields {unknown}; known: {sorted(known)}"
            raise PreprocessingError(msg)
        for name in ("layers", "scalars", "scalar_mean", "scalar_std"):
            if data.get(name) is not None:
                data[name] = tuple(data[name])
        return cls(**data)

    def to_json(self) -> str:
        """The recipe as JSON text (statistics included)."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        """Read a recipe written by `to_json`."""
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the recipe as JSON to ``path``."""
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Preprocessing:
        """Read a recipe saved with `save`."""
        return cls.from_json(Path(path).read_text())
