"""LCW-style local hadronic calibration of topo-clusters (``docs/physics.md`` §5).

The baseline that ATLAS runs on every topo-cluster (athena ``CaloUtils/CaloLC*Tool``,
tables made by ``CaloLocalHadCalib/GetLC*``), in four steps, each a table filled
from single-pion training samples:

1. **Classification**: EM_PROBABILITY from π0 vs π± histograms in |η|, log10 E,
   log10⟨ρ⟩ − log10 E and log10 λ_center.
2. **Hadronic cell weights** from π±: the inverse EM-scale response of cells, per
   layer, in |η|, log10 E_clus and log10 ρ_cell, mixed with p_EM: w = p + (1 − p)·w_had.
3. **Out-of-cluster**: ENG_CALIB_OUT / E / ISOLATION in |η|, log10 E, log10 λ_center,
   one table from π0 and one from π±, mixed with p_EM.
4. **Dead material**: E_DM = α(E)·E_PS + β(E)·√(E_EMB3·E_TileBar0) fitted to
   ENG_CALIB_DEAD_TOT per log10 E bin (a stand-in for athena's CaloLCDeadMaterialTool).

E_LCW = E_EM · HAD_WEIGHT · OOC_WEIGHT · DM_WEIGHT = Σ w_had·w_ooc·w_dm·E_cell.

Inputs
------
The calibration reads two tables, so that it does not depend on how clusters are made:

- a **clusters table**: a `pandas.DataFrame`, one row per cluster, with the columns of
  `CLUSTER_COLUMNS` (and, to fit, `CLUSTER_TRUTH_COLUMNS`); optionally
  `EVENT_COLUMN` and the per-layer energies of `LAYER_ENERGY_COLUMNS`;
- a **cells table**: a `pandas.DataFrame` or a mapping of equal-length arrays, one
  row per (cluster, cell) pair, with the columns of `CELL_COLUMNS` (and, to fit,
  `CELL_TRUTH_COLUMNS`). ``cluster`` is the row position (0 … n − 1) in the clusters
  table, not its index label.

Energies are in GeV, lengths in mm. All binned look-ups clip to the edge bins, as
athena clamps log10 E to its table range.

Where this differs from athena
------------------------------
- Cell weights use athena's *inversion method* only (profile E_EM/E_calib against the
  true density, look up with the measured one): the other method biased calotools'
  noisy π± clusters low (see `_fit_cell_weights`). Bins whose summed EM energy is
  not measured above its electronic noise get no weight.
- Profiles are ratios of sums (energy-weighted means), not means of ratios, so
  that cells and clusters with a small denominator cannot dominate.
- Thin table bins fall back to marginals, then to the nearest usable bin along
  the main axis, where athena leaves them empty (p_EM = 0, no correction).
- The dead-material step is the two-term stand-in of docs/physics.md §5.4, not CaloLCDeadMaterialTool.

Examples
--------
>>> lcw = LCWCalibration.fit(pi0=(pi0_clusters, pi0_cells), pipm=(pipm_clusters, pipm_cells))  # doctest: +SKIP
>>> lcw.save("models/lcw.npz")  # doctest: +SKIP
>>> LCWCalibration.load("models/lcw.npz").apply(clusters, cells)["cluster_E_LCCalib"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from calotools import atomic, geometry
from calotools.errors import (
    CalibrationFileError,
    CalibrationInputError,
    InvalidValueError,
    MissingFileError,
)
from calotools.version import __version__

__all__ = [
    "CELL_COLUMNS",
    "CELL_TRUTH_COLUMNS",
    "CLUSTER_COLUMNS",
    "CLUSTER_TRUTH_COLUMNS",
    "EVENT_COLUMN",
    "LAYER_ENERGY_COLUMNS",
    "OUTPUT_COLUMNS",
    "Binning",
    "CalibrationFileError",
    "CalibrationInputError",
    "LCWCalibration",
    "LCWConfig",
]

# --------------------------------------------------------------------------- interface

#: Clusters-table columns that `LCWCalibration.apply` reads (ntuple branch names).
CLUSTER_COLUMNS: dict[str, str] = {
    "cluster_E": "cluster energy at EM scale, Σ weight·energy of its cells (GeV)",
    "cluster_Eta": "cluster η",
    "cluster_FIRST_ENG_DENS": "⟨ρ⟩ = Σ E²/V / Σ E over the cells with E > 0 (GeV/mm³)",
    "cluster_CENTER_LAMBDA": "depth of the shower centre from the calorimeter front face (mm)",
    "cluster_ISOLATION": "energy-weighted fraction of unclustered in-layer neighbours (0–1)",
}

#: Clusters-table truth columns that `LCWCalibration.fit` reads in addition.
CLUSTER_TRUTH_COLUMNS: dict[str, str] = {
    "cluster_ENG_CALIB_TOT": "calibration-hit energy of the cluster's cells, with weights (GeV)",
    "cluster_ENG_CALIB_OUT_T": "calibration-hit energy in unclustered cells attached (GeV)",
    "cluster_ENG_CALIB_DEAD_TOT": "calibration-hit energy in dead material attached (GeV)",
}

#: Optional clusters-table column: clusters with the same value come from one
#: event; their ENG_CALIB_TOT sum is the event's total in the fill weight
#: E_calib(cluster)/E_calib(event). Without it, every cluster is its own event.
EVENT_COLUMN = "eventNumber"

#: Optional clusters-table columns: the cluster's EM-scale energy in the layers
#: the dead-material stand-in uses (GeV, with cell weights). When any is missing,
#: all are computed from the cells table as Σ weight·energy per sampling.
LAYER_ENERGY_COLUMNS: dict[str, str] = {
    "PreSamplerB": "cluster_E_PreSamplerB",
    "EMB3": "cluster_E_EMB3",
    "TileBar0": "cluster_E_TileBar0",
}

#: Cells-table columns that `LCWCalibration.apply` reads: one row per (cluster, cell).
CELL_COLUMNS: dict[str, str] = {
    "cluster": "row position (0 … n − 1) of the cell's cluster in the clusters table",
    "sampling": "ATLAS sampling id of the cell's layer (see `calotools.geometry`)",
    "energy": "cell energy at EM scale (GeV), without the cluster weight",
    "weight": "the cell's weight in this cluster from splitting (1 for unshared cells)",
    "volume_mm3": "cell volume (mm³)",
    "noise_sigma": "noise σ of the cell, electronic ⊕ pile-up (GeV)",
}

#: Cells-table truth column that `LCWCalibration.fit` reads in addition (π± sample
#: only; the π0 sample may carry it too).
CELL_TRUTH_COLUMNS: dict[str, str] = {
    "calib": "calibration-hit energy of the cell (GeV): EM + non-EM + invisible + escaped",
}

#: Columns of the DataFrame returned by `LCWCalibration.apply` (ntuple branch names).
OUTPUT_COLUMNS: tuple[str, ...] = (
    "cluster_EM_PROBABILITY",
    "cluster_HAD_WEIGHT",
    "cluster_OOC_WEIGHT",
    "cluster_DM_WEIGHT",
    "cluster_E_LCCalib",
)

CellTable: TypeAlias = pd.DataFrame | Mapping[str, Any]

_FORMAT = "calotools.LCWCalibration"
_FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Binning:
    """``n_bins`` equal bins from ``low`` to ``high``; values outside go to the edge bins."""

    low: float
    high: float
    n_bins: int

    def __post_init__(self) -> None:
        if not (self.n_bins >= 1 and self.high > self.low):
            msg = f"a binning needs n_bins ≥ 1 and high > low, got {self}"
            raise InvalidValueError(msg)

    @property
    def edges(self) -> np.ndarray:
        """The ``n_bins + 1`` bin edges."""
        return np.linspace(self.low, self.high, self.n_bins + 1)


@dataclass(frozen=True)
class LCWConfig:
    """Binning and cuts of the LCW tables (``docs/physics.md`` §5).

    Energies in GeV, densities in GeV/mm³, λ in mm (athena's tables are in MeV:
    their log10 axes are shifted by 3). A bin is used when it holds *more than*
    ``*_entries_above`` training entries.
    """

    # 1. Classification
    #: Weight of π± against π0 in p_EM = w_π0 / (w_π0 + prior · w_π±): two charged
    #: states per neutral one (docs/physics.md §5.1, "isospin prior").
    isospin_prior: float = 2.0
    #: |η|: the barrel reaches 0.7 (docs/physics.md §1); 0.2-wide bins, the η dependence is weak there.
    class_abs_eta: Binning = Binning(0.0, 0.8, 4)
    #: log10(E_EM/GeV), 0.1 GeV–1 TeV (the ATLAS guns span 0.2–2000 GeV,
    #: docs/ntuple-format.md, "Samples").
    class_log10_energy: Binning = Binning(-1.0, 3.0, 16)
    #: log10(⟨ρ⟩/(GeV mm⁻³)) − log10(E/GeV): athena's normalised energy density.
    class_log10_density: Binning = Binning(-10.0, -4.0, 24)
    #: log10(λ_center/mm): EM showers sit ~0.1–0.3 m deep, hadronic ones ~0.3–1.5 m.
    class_log10_lambda: Binning = Binning(1.0, 3.5, 10)
    #: [A] A classification bin with this many clusters or fewer takes p_EM from
    #: the marginal histograms instead (see `LCWCalibration.fit`).
    class_entries_above: int = 10

    # 2. Hadronic cell weights
    #: Cells are weighted when |E|/σ > 2 (docs/physics.md §5.2; athena CaloLCWeightTool
    #: SignalOverNoiseCut, the 4-2-0 growth threshold).
    cell_signal_over_noise: float = 2.0
    #: Weights from bins with more than 10 entries only; others are 1 (docs/physics.md §5.2;
    #: athena CaloLCWeightTool uses BIN_ENTRIES > 10).
    cell_entries_above: int = 10
    cell_abs_eta: Binning = Binning(0.0, 0.8, 4)
    #: log10(E_clus/GeV) at EM scale.
    cell_log10_energy: Binning = Binning(-1.0, 3.0, 12)
    #: log10(ρ_cell/(GeV mm⁻³)): from noise in a TileBar1 cell (~1e-9.5) to
    #: the core of an EM shower in an EMB1 strip (~1e-4).
    cell_log10_density: Binning = Binning(-10.0, -3.0, 21)
    #: [A] A weight is used only where the electronic noise of the bin's summed
    #: EM energy, √Σ(f·σ)², is below this fraction of the sum: the response is
    #: then known to ~10 % or better.
    cell_max_relative_noise: float = 0.1

    # 3. Out-of-cluster
    ooc_abs_eta: Binning = Binning(0.0, 0.8, 4)
    ooc_log10_energy: Binning = Binning(-1.0, 3.0, 12)
    ooc_log10_lambda: Binning = Binning(1.0, 3.5, 10)
    #: Only isolated clusters fill the tables: athena GetLCOutOfCluster fills isol > 0.5.
    ooc_min_isolation: float = 0.5
    #: [A] Bins with this many clusters or fewer take the marginal table's value.
    ooc_entries_above: int = 10

    # 4. Dead material
    #: log10(E_EM/GeV) bins of the α(E), β(E) fit.
    dm_log10_energy: Binning = Binning(-1.0, 3.0, 8)
    #: [A] Bins with this many clusters or fewer take the nearest bin's coefficients.
    dm_entries_above: int = 20

    def __post_init__(self) -> None:
        if not self.isospin_prior > 0:
            msg = f"isospin_prior must be positive, got {self.isospin_prior}"
            raise InvalidValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LCWConfig:
        """Inverse of `to_dict`; unknown keys are an error."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            msg = f"unknown LCWConfig fields {unknown}; known: {sorted(fields)}"
            raise InvalidValueError(msg)
        values: dict[str, Any] = {
            name: Binning(**value) if isinstance(fields[name].default, Binning) else value
            for name, value in data.items()
        }
        return cls(**values)


# -------------------------------------------------------------------- array helpers


def _log10(values: np.ndarray) -> np.ndarray:
    """log10 of positive values; −inf (the lowest bin) for the rest, without warnings."""
    positive = values > 0
    return np.where(positive, np.log10(np.where(positive, values, 1.0)), -np.inf)


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value, clipped into the table; NaN goes to the first bin."""
    index = np.searchsorted(edges, values, side="right") - 1
    index = np.where(np.isnan(values), 0, index)
    return np.clip(index, 0, len(edges) - 2)


def _flat_bins(values: Sequence[np.ndarray], edges: Sequence[np.ndarray]) -> np.ndarray:
    """Flat index into the table spanned by ``edges`` of each row of ``values``."""
    shape = tuple(len(e) - 1 for e in edges)
    index = [_bin_index(v, e) for v, e in zip(values, edges, strict=True)]
    return np.ravel_multi_index(index, shape)


def _table_shape(edges: Sequence[np.ndarray]) -> tuple[int, ...]:
    return tuple(len(e) - 1 for e in edges)


def _nearest_valid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """1-D ``values`` with each invalid bin replaced by its nearest valid neighbour."""
    good = np.flatnonzero(valid)
    if good.size == 0:
        return np.full(values.shape, np.nan)
    position = np.arange(len(values))
    right = np.clip(np.searchsorted(good, position), 0, good.size - 1)
    left = np.clip(right - 1, 0, good.size - 1)
    nearer_left = np.abs(position - good[left]) <= np.abs(good[right] - position)
    return values[np.where(nearer_left, good[left], good[right])]


def _ratio_with_fallback(
    numerator: np.ndarray,
    denominator: np.ndarray,
    entries: np.ndarray,
    *,
    levels: Sequence[tuple[int, ...]],
    entries_above: int,
    default: float,
) -> np.ndarray:
    """numerator / denominator per bin, from coarser marginals where a bin is thin.

    ``levels`` lists the axes kept at each step, finest first; a bin takes its
    value from the first level whose (marginal) bin has more than
    ``entries_above`` entries and a positive denominator. If the last level
    keeps one axis, bins still empty then take the nearest usable bin along
    it (an energy-dependent table should not fall back to its all-energy
    mean); ``default`` is left for a table with no usable bin at all.
    """
    result = np.full(numerator.shape, np.nan)
    for level, kept in enumerate(levels):
        dropped = tuple(axis for axis in range(numerator.ndim) if axis not in kept)
        num = numerator.sum(axis=dropped, keepdims=True)
        den = denominator.sum(axis=dropped, keepdims=True)
        ok = (entries.sum(axis=dropped, keepdims=True) > entries_above) & (den > 0)
        value = np.where(ok, num / np.where(ok, den, 1.0), np.nan)
        if len(kept) == 1 and level == len(levels) - 1:
            value = _nearest_valid(value.ravel(), ok.ravel()).reshape(value.shape)
        result = np.where(np.isnan(result), np.broadcast_to(value, result.shape), result)
    return np.where(np.isnan(result), default, result)


def _nnls_2d(sums: np.ndarray) -> np.ndarray:
    """Non-negative least squares for y ≈ a·x1 + b·x2, from the sums of each bin.

    ``sums`` is (..., 5): Σx1², Σx1x2, Σx2², Σx1y, Σx2y. Two unknowns have four
    candidate solutions (both free, one at zero, both zero); the best feasible
    one is the exact constrained minimum. Returns (..., 2) = (a, b).
    """
    s11, s12, s22, b1, b2 = np.moveaxis(sums, -1, 0)
    det = s11 * s22 - s12**2
    regular = det > 1e-12 * s11 * s22
    safe_det = np.where(regular, det, 1.0)
    candidates = np.stack(
        [
            np.stack([(s22 * b1 - s12 * b2) / safe_det, (s11 * b2 - s12 * b1) / safe_det], -1),
            np.stack([b1 / np.where(s11 > 0, s11, 1.0), np.zeros_like(b1)], -1),
            np.stack([np.zeros_like(b2), b2 / np.where(s22 > 0, s22, 1.0)], -1),
            np.zeros((*b1.shape, 2)),
        ],
        axis=-2,
    )  # (..., 4, 2)
    feasible = np.stack([regular, s11 > 0, s22 > 0, np.ones_like(regular)], -1)
    feasible &= (candidates >= 0).all(axis=-1)
    a, b = candidates[..., 0], candidates[..., 1]
    chi2 = (
        s11[..., None] * a**2
        + 2 * s12[..., None] * a * b
        + s22[..., None] * b**2
        - 2 * (b1[..., None] * a + b2[..., None] * b)
    )
    best = np.argmin(np.where(feasible, chi2, np.inf), axis=-1)
    return np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]


# --------------------------------------------------------------------- input tables

_SAMPLINGS = np.array(sorted(lay.sampling for lay in geometry.LAYERS))


def _column(table: CellTable, name: str, what: str) -> np.ndarray:
    if name not in table:  # a DataFrame's columns, a mapping's keys
        msg = f"the {what} has no column {name!r}; it has: {', '.join(map(str, table.keys()))}"
        raise CalibrationInputError(msg)
    return np.asarray(table[name])


def _float_column(table: CellTable, name: str, what: str) -> np.ndarray:
    values = _column(table, name, what)
    if values.dtype.kind not in "biuf":
        msg = f"column {name!r} of the {what} is not numeric (dtype {values.dtype})"
        raise CalibrationInputError(msg)
    return values.astype(np.float64)


@dataclass
class _Sample:
    """One clusters table and its cells, as validated float arrays."""

    energy: np.ndarray
    abs_eta: np.ndarray
    first_eng_dens: np.ndarray
    center_lambda: np.ndarray
    isolation: np.ndarray
    layer_energy: dict[str, np.ndarray]
    cell_cluster: np.ndarray
    cell_layer: np.ndarray  #: index into _SAMPLINGS
    cell_energy: np.ndarray
    cell_weight: np.ndarray
    cell_volume: np.ndarray
    cell_sigma: np.ndarray
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    cell_calib: np.ndarray | None = None
    event_fraction: np.ndarray | None = None  #: E_calib(cluster) / E_calib(event)

    @property
    def n_clusters(self) -> int:
        return len(self.energy)

    @property
    def fit_event_fraction(self) -> np.ndarray:
        """`event_fraction`, which the fits need: the sample must be read with ``fit``."""
        if self.event_fraction is None:
            msg = "this sample was read without its truth columns (fit=False)"
            raise RuntimeError(msg)  # the fits read with fit=True: a bug, not bad input
        return self.event_fraction

    @property
    def fit_cell_calib(self) -> np.ndarray:
        """`cell_calib`, which the cell-weight fit needs: read with ``cell_truth``."""
        if self.cell_calib is None:
            msg = "this sample was read without the cells' calib column (cell_truth=False)"
            raise RuntimeError(msg)  # the cell-weight fit reads it: a bug, not bad input
        return self.cell_calib

    @property
    def classifiable(self) -> np.ndarray:
        """Clusters with the moments the classification needs (athena: else p_EM = 0)."""
        return (self.energy > 0) & (self.first_eng_dens > 0) & (self.center_lambda > 0)

    def dm_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """The dead-material regressors E_PS and √(E_EMB3·E_TileBar0), negatives at 0."""
        ps = np.clip(self.layer_energy["PreSamplerB"], 0.0, None)
        emb3 = np.clip(self.layer_energy["EMB3"], 0.0, None)
        tile0 = np.clip(self.layer_energy["TileBar0"], 0.0, None)
        return ps, np.sqrt(emb3 * tile0)


def _read_sample(
    clusters: pd.DataFrame, cells: CellTable, *, what: str, fit: bool, cell_truth: bool = False
) -> _Sample:
    """Validate a (clusters, cells) pair and turn it into arrays.

    ``fit`` reads the clusters' truth columns, ``cell_truth`` the cells' ``calib``.
    """
    if not isinstance(clusters, pd.DataFrame):
        msg = f"the {what} clusters table must be a pandas DataFrame, got {type(clusters).__name__}"
        raise CalibrationInputError(msg)
    ctable = f"{what} clusters table"
    names = list(CLUSTER_COLUMNS) + (list(CLUSTER_TRUTH_COLUMNS) if fit else [])
    scalars = {name: _float_column(clusters, name, ctable) for name in names}
    n_clusters = len(clusters)

    ztable = f"{what} cells table"
    cell_names = list(CELL_COLUMNS) + (list(CELL_TRUTH_COLUMNS) if cell_truth else [])
    cell = {name: _column(cells, name, ztable) for name in cell_names}
    lengths = {len(values) for values in cell.values()}
    if len(lengths) > 1:
        msg = f"the columns of the {ztable} differ in length: " + ", ".join(
            f"{name} {len(values)}" for name, values in cell.items()
        )
        raise CalibrationInputError(msg)

    cluster_index = cell["cluster"]
    if len(cluster_index) and cluster_index.dtype.kind not in "iu":
        msg = f"column 'cluster' of the {ztable} must hold integers, got {cluster_index.dtype}"
        raise CalibrationInputError(msg)
    if len(cluster_index) and (cluster_index.min() < 0 or cluster_index.max() >= n_clusters):
        msg = (
            f"column 'cluster' of the {ztable} must be row positions 0…{n_clusters - 1} "
            f"of the clusters table; it spans {cluster_index.min()}…{cluster_index.max()}"
        )
        raise CalibrationInputError(msg)
    cluster_index = cluster_index.astype(np.intp)
    sampling = cell["sampling"].astype(np.int64)
    layer_index = np.clip(np.searchsorted(_SAMPLINGS, sampling), 0, len(_SAMPLINGS) - 1)
    unknown = _SAMPLINGS[layer_index] != sampling
    if unknown.any():
        msg = (
            f"the {ztable} has cells of unknown sampling ids "
            f"{sorted(set(sampling[unknown].tolist()))}; "
            f"the barrel layers are {_SAMPLINGS.tolist()}"
        )
        raise CalibrationInputError(msg)
    floats = {
        name: _float_column(cells, name, ztable)
        for name in cell_names
        if name not in ("cluster", "sampling")
    }
    energy = floats["energy"]
    weight = floats["weight"]

    if all(column in clusters.columns for column in LAYER_ENERGY_COLUMNS.values()):
        layer_energy = {
            name: _float_column(clusters, column, ctable)
            for name, column in LAYER_ENERGY_COLUMNS.items()
        }
    else:
        layer_energy = {
            name: np.bincount(
                cluster_index,
                weights=np.where(sampling == geometry.layer(name).sampling, weight * energy, 0.0),
                minlength=n_clusters,
            )
            for name in LAYER_ENERGY_COLUMNS
        }

    sample = _Sample(
        energy=scalars["cluster_E"],
        abs_eta=np.abs(scalars["cluster_Eta"]),
        first_eng_dens=scalars["cluster_FIRST_ENG_DENS"],
        center_lambda=scalars["cluster_CENTER_LAMBDA"],
        isolation=scalars["cluster_ISOLATION"],
        layer_energy=layer_energy,
        cell_cluster=cluster_index,
        cell_layer=layer_index,
        cell_energy=energy,
        cell_weight=weight,
        cell_volume=floats["volume_mm3"],
        cell_sigma=floats["noise_sigma"],
    )
    if cell_truth:
        sample.cell_calib = floats["calib"]
    if fit:
        sample.truth = {name: scalars[name] for name in CLUSTER_TRUTH_COLUMNS}
        events = _column(clusters, EVENT_COLUMN, ctable) if EVENT_COLUMN in clusters else None
        sample.event_fraction = _event_fraction(sample.truth["cluster_ENG_CALIB_TOT"], events)
    return sample


def _event_fraction(calib_tot: np.ndarray, events: np.ndarray | None) -> np.ndarray:
    """Fill weight E_calib(cluster)/E_calib(event), athena's "Lin" normalisation.

    It makes each event count once however its energy is split into clusters
    (GetLCClassification, GetLCWeights, GetLCOutOfCluster). Clusters with
    E_calib ≤ 0 get weight 0.
    """
    positive = np.clip(np.nan_to_num(calib_tot), 0.0, None)
    if events is None:
        total = positive
    else:
        _, event_index = np.unique(events, return_inverse=True)
        total = np.bincount(event_index.ravel(), weights=positive)[event_index.ravel()]
    return np.divide(positive, total, out=np.zeros_like(positive), where=total > 0)


def _cell_signal(sample: _Sample, config: LCWConfig) -> np.ndarray:
    """Cells above the noise cut |E|/σ > cut with a positive volume (athena CaloLCWeightTool)."""
    sigma = sample.cell_sigma
    ok_sigma = np.isfinite(sigma) & (sigma > 0)
    significance = np.abs(sample.cell_energy) / np.where(ok_sigma, sigma, 1.0)
    return ok_sigma & (significance > config.cell_signal_over_noise) & (sample.cell_volume > 0)


# ----------------------------------------------------------------------- calibration


@dataclass(eq=False)
class LCWCalibration:
    """The four LCW tables, their bin edges and the configuration that made them.

    Make one with `fit` (or `load`), use it with `apply`. Table axes follow the
    order of the edge tuples; ``samplings`` lists the layers of the cell-weight
    table's first axis.
    """

    config: LCWConfig
    #: |η|, log10 E, log10⟨ρ⟩ − log10 E, log10 λ_center
    class_edges: tuple[np.ndarray, ...]
    #: p_EM per classification bin, thin bins already filled from the marginals
    em_probability: np.ndarray
    #: training clusters (π0 + π±) per classification bin
    class_entries: np.ndarray
    samplings: np.ndarray
    #: |η|, log10 E_clus, log10 ρ_cell
    cell_edges: tuple[np.ndarray, ...]
    #: (n_layers, n_η, n_E, n_ρ) hadronic weights; 1 where a bin has too few entries
    had_weight: np.ndarray
    #: training cells per hadronic-weight bin
    had_entries: np.ndarray
    #: |η|, log10 E, log10 λ_center
    ooc_edges: tuple[np.ndarray, ...]
    #: ENG_CALIB_OUT / E / ISOLATION for π0 and π± clusters
    ooc_pi0: np.ndarray
    ooc_pipm: np.ndarray
    #: log10 E edges of the dead-material fit
    dm_edges: np.ndarray
    #: (n_E, 2): α, β of E_DM = α·E_PS + β·√(E_EMB3·E_TileBar0) for π0 and π± clusters
    dm_pi0: np.ndarray
    dm_pipm: np.ndarray

    # ---------------------------------------------------------------------- fit

    @classmethod
    def fit(
        cls,
        *,
        pi0: tuple[pd.DataFrame, CellTable],
        pipm: tuple[pd.DataFrame, CellTable],
        config: LCWConfig | None = None,
    ) -> LCWCalibration:
        """Derive the tables from separate π0 and π± training samples.

        Parameters
        ----------
        pi0, pipm
            (clusters table, cells table) of each sample, with the truth columns
            (see the module docstring). They should be independent of the samples
            the calibration is later applied to (docs/physics.md §5).
        config
            Binning and cuts; `LCWConfig()` by default.

        Notes
        -----
        Classification bins with too few clusters take p_EM from coarser
        histograms: first summed over |η|, then also over λ_center, then over
        log10 E (density only), and last from the nearest usable density bin.
        Clusters with E ≤ 0 or with FIRST_ENG_DENS or CENTER_LAMBDA ≤ 0 (MLTree
        writes −1 for a missing moment) get p_EM = 0, as in athena.

        Each cluster fills with weight E_calib(cluster)/E_calib(event) (athena's
        "Lin" normalisation; events from `EVENT_COLUMN`), so that every event
        counts once however its energy is split into clusters.
        """
        config = config or LCWConfig()
        samples = {
            "π0": _read_sample(*pi0, what="π0 (pi0)", fit=True),
            "π±": _read_sample(*pipm, what="π± (pipm)", fit=True, cell_truth=True),
        }
        for name, sample in samples.items():
            if sample.n_clusters == 0:
                msg = f"cannot fit the LCW calibration: the {name} training sample has no clusters"
                raise CalibrationInputError(msg)
            if not (sample.fit_event_fraction > 0).any():
                msg = (
                    f"cannot fit the LCW calibration: no cluster of the {name} training sample "
                    "has cluster_ENG_CALIB_TOT > 0"
                )
                raise CalibrationInputError(msg)
        pi0_sample, pipm_sample = samples["π0"], samples["π±"]

        class_edges = tuple(
            b.edges
            for b in (
                config.class_abs_eta,
                config.class_log10_energy,
                config.class_log10_density,
                config.class_log10_lambda,
            )
        )
        em_probability, class_entries = _fit_classification(
            pi0_sample, pipm_sample, class_edges, config
        )
        cell_edges = tuple(
            b.edges
            for b in (config.cell_abs_eta, config.cell_log10_energy, config.cell_log10_density)
        )
        had_weight, had_entries = _fit_cell_weights(pipm_sample, cell_edges, config)
        ooc_edges = tuple(
            b.edges for b in (config.ooc_abs_eta, config.ooc_log10_energy, config.ooc_log10_lambda)
        )
        dm_edges = config.dm_log10_energy.edges
        return cls(
            config=config,
            class_edges=class_edges,
            em_probability=em_probability,
            class_entries=class_entries,
            samplings=_SAMPLINGS.copy(),
            cell_edges=cell_edges,
            had_weight=had_weight,
            had_entries=had_entries,
            ooc_edges=ooc_edges,
            ooc_pi0=_fit_out_of_cluster(pi0_sample, ooc_edges, config),
            ooc_pipm=_fit_out_of_cluster(pipm_sample, ooc_edges, config),
            dm_edges=dm_edges,
            dm_pi0=_fit_dead_material(pi0_sample, dm_edges, config),
            dm_pipm=_fit_dead_material(pipm_sample, dm_edges, config),
        )

    # -------------------------------------------------------------------- apply

    def apply(self, clusters: pd.DataFrame, cells: CellTable) -> pd.DataFrame:
        """The LCW moments and energy of each cluster.

        Parameters
        ----------
        clusters, cells
            The tables described in the module docstring (truth columns not needed).

        Returns
        -------
        pandas.DataFrame
            `OUTPUT_COLUMNS`, indexed like ``clusters``. HAD_WEIGHT is
            Σ w·E_cell / Σ E_cell over the cells table (with splitting weights);
            E_LCCalib = cluster_E · HAD_WEIGHT · OOC_WEIGHT · DM_WEIGHT. Clusters
            with E ≤ 0 keep their EM-scale energy (all weights 1), as in athena.
        """
        sample = _read_sample(clusters, cells, what="input", fit=False)
        energy = sample.energy
        positive = energy > 0

        # 1. classification
        class_bins = _flat_bins(_class_variables(sample), self.class_edges)
        p_em = np.where(sample.classifiable, self.em_probability.ravel()[class_bins], 0.0)

        # 2. hadronic cell weights: w = p_EM + (1 − p_EM)·w_had where the table is
        # populated (CaloLCWeightTool); other cells keep weight 1
        cell_factor = self._cell_weights(sample, p_em)
        cell_e = sample.cell_weight * sample.cell_energy
        e_em_cells = np.bincount(sample.cell_cluster, weights=cell_e, minlength=len(energy))
        e_had_cells = np.bincount(
            sample.cell_cluster, weights=cell_e * cell_factor, minlength=len(energy)
        )
        had_ok = positive & (e_em_cells > 0)
        had_weight = np.where(had_ok, e_had_cells / np.where(had_ok, e_em_cells, 1.0), 1.0)
        e_had = energy * had_weight

        # 3. out-of-cluster: E_ooc = ISOLATION · E_EM · (p·t_π0 + (1 − p)·t_π±),
        # added on top of the weighted energy (CaloLCOutOfClusterTool's
        # 1 + isolation·ratio·oocData with ratio = E_EM/E_weighted)
        ooc_bins = _flat_bins(
            (sample.abs_eta, _log10(energy), _log10(sample.center_lambda)), self.ooc_edges
        )
        table = p_em * self.ooc_pi0.ravel()[ooc_bins] + (1 - p_em) * self.ooc_pipm.ravel()[ooc_bins]
        ooc_ok = positive & (e_had > 0) & (sample.isolation > 0) & (sample.center_lambda > 0)
        ratio = energy / np.where(ooc_ok, e_had, 1.0)
        # athena treats a ratio outside [0.3, 3] as noise-dominated and uses 1
        ratio = np.where((ratio < 0.3) | (ratio > 3.0), 1.0, ratio)
        ooc_weight = np.where(ooc_ok, 1.0 + sample.isolation * ratio * table, 1.0)
        e_ooc = e_had * ooc_weight

        # 4. dead material, added to the weighted energy
        e_dm = self._dead_material(sample, p_em)
        dm_ok = positive & (e_ooc > 0)
        dm_weight = np.where(dm_ok, 1.0 + e_dm / np.where(dm_ok, e_ooc, 1.0), 1.0)

        return pd.DataFrame(
            {
                "cluster_EM_PROBABILITY": p_em,
                "cluster_HAD_WEIGHT": had_weight,
                "cluster_OOC_WEIGHT": ooc_weight,
                "cluster_DM_WEIGHT": dm_weight,
                "cluster_E_LCCalib": e_ooc * dm_weight,
            },
            index=clusters.index,
        )

    def _cell_weights(self, sample: _Sample, p_em: np.ndarray) -> np.ndarray:
        """Per-cell factor p_EM + (1 − p_EM)·w_had, 1 where no weight applies."""
        cluster = sample.cell_cluster
        signal = _cell_signal(sample, self.config)
        density = np.abs(sample.cell_energy) / np.where(signal, sample.cell_volume, 1.0)
        table_bins = _flat_bins(
            (sample.abs_eta[cluster], _log10(sample.energy[cluster]), _log10(density)),
            self.cell_edges,
        )
        n_table = int(np.prod(self.had_weight.shape[1:]))
        flat = sample.cell_layer * n_table + table_bins
        populated = self.had_entries.ravel()[flat] > self.config.cell_entries_above
        use = signal & (sample.energy[cluster] > 0) & populated
        p_cell = p_em[cluster]
        return np.where(use, p_cell + (1 - p_cell) * self.had_weight.ravel()[flat], 1.0)

    def _dead_material(self, sample: _Sample, p_em: np.ndarray) -> np.ndarray:
        """E_DM = p·(α0·E_PS + β0·S) + (1 − p)·(α±·E_PS + β±·S), S = √(E_EMB3·E_Tile0)."""
        ps, geometric_mean = sample.dm_inputs()
        dm_bin = _bin_index(_log10(sample.energy), self.dm_edges)
        coefficients = (
            p_em[:, None] * self.dm_pi0[dm_bin] + (1 - p_em[:, None]) * self.dm_pipm[dm_bin]
        )
        return coefficients[:, 0] * ps + coefficients[:, 1] * geometric_mean

    # ----------------------------------------------------------------- file I/O

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                arrays.update({f"{f.name}_{i}": edges for i, edges in enumerate(value)})
            elif isinstance(value, np.ndarray):
                arrays[f.name] = value
        return arrays

    def save(self, path: str | os.PathLike) -> Path:
        """Write the calibration to one ``.npz`` file with its JSON metadata inside.

        The file is written under a temporary name in the same folder and renamed
        when complete, so a reader never sees half a file.
        """
        path = Path(path)
        # Any, not ndarray: numpy's stub would match an ndarray in ``**arrays``
        # to savez_compressed's ``allow_pickle: bool``.
        arrays: dict[str, Any] = self._arrays()
        metadata = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "calotools_version": __version__,
            "config": self.config.to_dict(),
            "edge_counts": {
                name: len(getattr(self, name))
                for name in ("class_edges", "cell_edges", "ooc_edges")
            },
        }
        # A file object, so that numpy does not append ".npz" to the name.
        with atomic.atomic_write(path) as tmp, tmp.open("wb") as stream:
            np.savez_compressed(stream, metadata=np.array(json.dumps(metadata)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LCWCalibration:
        """Read a calibration written by `save`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        CalibrationFileError
            If the file is not a complete calotools LCW calibration.
        """
        path = Path(path)
        if not path.is_file():
            msg = f"no LCW calibration file at {path}"
            raise MissingFileError(msg)
        if not zipfile.is_zipfile(path):
            # np.load would try it as a pickle and advise loading it unsafely: never.
            msg = (
                f"{path} is not an LCW calibration: expected the .npz archive that "
                "LCWCalibration.save writes (e.g. lcw_tables.npz of `calotools simulate --default`)"
            )
            raise CalibrationFileError(msg)
        try:
            # our own file object: np.load leaks its handle when the zip is broken
            with path.open("rb") as stream, np.load(stream, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
            msg = f"{path} is not a readable LCW calibration (.npz) file: {err}"
            raise CalibrationFileError(msg) from err
        return cls._from_arrays(arrays, path)

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray], path: Path) -> LCWCalibration:
        def fail(reason: str) -> CalibrationFileError:
            return CalibrationFileError(f"{path} is not a usable LCW calibration: {reason}")

        if "metadata" not in arrays:
            raise fail("it has no 'metadata' entry (not written by LCWCalibration.save)")
        try:
            metadata = json.loads(str(arrays.pop("metadata")))
        except json.JSONDecodeError as err:
            raise fail(f"its metadata is not JSON ({err})") from err
        if not isinstance(metadata, dict) or metadata.get("format") != _FORMAT:
            raise fail(f"its metadata does not name the format {_FORMAT!r}")
        if metadata.get("format_version") != _FORMAT_VERSION:
            raise fail(
                f"format version {metadata.get('format_version')!r}; "
                f"this calotools reads version {_FORMAT_VERSION}"
            )
        try:
            config = LCWConfig.from_dict(metadata["config"])
            values: dict[str, Any] = {"config": config}
            for name, count in metadata["edge_counts"].items():
                values[name] = tuple(arrays.pop(f"{name}_{i}") for i in range(count))
            for f in dataclasses.fields(cls):
                if f.name not in values:
                    values[f.name] = arrays.pop(f.name)
            calibration = cls(**values)
        except (KeyError, TypeError, ValueError) as err:
            raise fail(f"missing or malformed entry {err}") from err
        calibration._check_shapes(fail)
        return calibration

    def _check_shapes(self, fail: Callable[[str], CalibrationFileError]) -> None:
        expected = {
            "em_probability": _table_shape(self.class_edges),
            "class_entries": _table_shape(self.class_edges),
            "had_weight": (len(self.samplings), *_table_shape(self.cell_edges)),
            "had_entries": (len(self.samplings), *_table_shape(self.cell_edges)),
            "ooc_pi0": _table_shape(self.ooc_edges),
            "ooc_pipm": _table_shape(self.ooc_edges),
            "dm_pi0": (len(self.dm_edges) - 1, 2),
            "dm_pipm": (len(self.dm_edges) - 1, 2),
        }
        for name, shape in expected.items():
            table = getattr(self, name)
            if table.shape != shape:
                raise fail(f"table {name!r} has shape {table.shape}, its bin edges need {shape}")
            if not np.isfinite(table).all():
                raise fail(f"table {name!r} has non-finite values")
        if not np.array_equal(self.samplings, _SAMPLINGS):
            raise fail(f"its layers {self.samplings.tolist()} are not {_SAMPLINGS.tolist()}")


# ------------------------------------------------------------------------ the fits


def _class_variables(sample: _Sample) -> tuple[np.ndarray, ...]:
    log10_energy = _log10(sample.energy)
    log10_density = _log10(sample.first_eng_dens)
    # −inf − (−inf) would be NaN (and a warning): such clusters are not classified anyway
    finite = np.isfinite(log10_energy) & np.isfinite(log10_density)
    normalised_density = np.where(
        finite, np.where(finite, log10_density, 0.0) - np.where(finite, log10_energy, 0.0), -np.inf
    )
    return (sample.abs_eta, log10_energy, normalised_density, _log10(sample.center_lambda))


def _fit_classification(
    pi0: _Sample, pipm: _Sample, edges: tuple[np.ndarray, ...], config: LCWConfig
) -> tuple[np.ndarray, np.ndarray]:
    """p_EM = h_π0 / (h_π0 + prior·h_π±) from normalised, E_calib-weighted histograms."""
    shape = _table_shape(edges)
    size = int(np.prod(shape))
    histograms: list[np.ndarray] = []
    entries: np.ndarray = np.zeros(size)
    for name, sample in (("π0", pi0), ("π±", pipm)):
        use = sample.classifiable & (sample.fit_event_fraction > 0)
        bins = _flat_bins([v[use] for v in _class_variables(sample)], edges)
        histogram = np.bincount(bins, weights=sample.fit_event_fraction[use], minlength=size)
        if histogram.sum() <= 0:
            msg = (
                f"cannot fit the classification: no {name} cluster has E > 0, "
                "ENG_CALIB_TOT > 0, FIRST_ENG_DENS > 0 and CENTER_LAMBDA > 0"
            )
            raise CalibrationInputError(msg)
        histograms.append(histogram / histogram.sum())
        entries += np.bincount(bins, minlength=size)
    h_pi0, h_pipm = (h.reshape(shape) for h in histograms)
    entries = entries.reshape(shape)
    # axes: 0 |η|, 1 log10 E, 2 density, 3 λ; drop the least telling first and
    # keep the density, the strongest discriminant, to the end
    probability = _ratio_with_fallback(
        h_pi0,
        h_pi0 + config.isospin_prior * h_pipm,
        entries,
        levels=[(0, 1, 2, 3), (1, 2, 3), (1, 2), (2,)],
        entries_above=config.class_entries_above,
        default=1.0 / (1.0 + config.isospin_prior),
    )
    return probability, entries.astype(np.int64)


def _fit_cell_weights(
    pipm: _Sample, edges: tuple[np.ndarray, ...], config: LCWConfig
) -> tuple[np.ndarray, np.ndarray]:
    """w_had = 1 / ⟨E_EM/E_calib⟩ per (layer, |η|, log10 E_clus, log10 ρ_cell) bin.

    athena's inversion method (GetLCWeights ``UseInversionMethod``): every cell
    with E_calib > 0, of either sign of E, binned in its *true* density
    E_calib/V; `apply` looks the weight up with the measured density |E|/V.
    At fixed true energy the noise averages out. (Profiling E_calib/E_EM of
    cells with E > 2σ against E/V, athena's other method, learns to remove
    upward noise that the negative cells then fail to cancel: on calotools' π±
    it lowered the 3–10 GeV response from 0.80 to 0.70 instead of raising it.)

    The profile is the ratio of sums Σ E_EM / Σ E_calib (the E_calib-weighted
    mean response), finite where E_calib is small. Cells enter with their
    splitting weight times E_calib(cluster)/E_calib(event).
    """
    cluster = pipm.cell_cluster
    use = (
        (pipm.energy[cluster] > 0)
        & (pipm.fit_event_fraction[cluster] > 0)
        & (pipm.fit_cell_calib > 0)
        & (pipm.cell_volume > 0)
    )
    if not use.any():
        msg = "cannot fit the hadronic cell weights: no π± cell has calib > 0"
        raise CalibrationInputError(msg)
    cluster = cluster[use]
    true_density = pipm.fit_cell_calib[use] / pipm.cell_volume[use]
    table_bins = _flat_bins(
        (pipm.abs_eta[cluster], _log10(pipm.energy[cluster]), _log10(true_density)), edges
    )
    shape = (len(_SAMPLINGS), *_table_shape(edges))
    n_table = int(np.prod(shape[1:]))
    flat = pipm.cell_layer[use] * n_table + table_bins
    fill = pipm.fit_event_fraction[cluster] * pipm.cell_weight[use]
    size = int(np.prod(shape))
    e_em = np.bincount(flat, weights=fill * pipm.cell_energy[use], minlength=size)
    e_calib = np.bincount(flat, weights=fill * pipm.fit_cell_calib[use], minlength=size)
    noise = np.sqrt(np.bincount(flat, weights=(fill * pipm.cell_sigma[use]) ** 2, minlength=size))
    entries = np.bincount(flat, minlength=size)
    # A bin whose summed EM energy is not measured above its own noise gives a
    # meaningless ratio (weights of 0.01 or 1000 at low true density): no weight.
    populated = (entries > config.cell_entries_above) & (
        noise < config.cell_max_relative_noise * e_em
    )
    weight = np.where(populated, e_calib / np.where(populated, e_em, 1.0), 1.0)
    # unusable bins count as empty, so that `apply` leaves their cells at weight 1
    return weight.reshape(shape), np.where(populated, entries, 0).reshape(shape)


def _fit_out_of_cluster(
    sample: _Sample, edges: tuple[np.ndarray, ...], config: LCWConfig
) -> np.ndarray:
    """ENG_CALIB_OUT / E / ISOLATION per (|η|, log10 E, log10 λ) bin.

    Filled by isolated clusters with E, ENG_CALIB_TOT and CENTER_LAMBDA > 0 and
    weight E_calib(cluster)/E_calib(event), as athena GetLCOutOfCluster; but the
    profile is the ratio of sums Σ OUT / Σ E·ISOLATION rather than the mean of
    the ratio: the OOC energy that `apply` adds, ISOLATION·E·t, then sums to
    the true OOC energy of each bin, and clusters with E → 0 cannot blow the
    mean up (on calotools' π± the lowest-E bin had mean 1.75, ratio of sums 0.53).
    Thin bins take the value summed over |η|, then over λ, then the nearest
    usable energy bin.
    """
    out = sample.truth["cluster_ENG_CALIB_OUT_T"]
    use = (
        (sample.energy > 0)
        & (sample.center_lambda > 0)
        & (sample.isolation > config.ooc_min_isolation)
        & (sample.fit_event_fraction > 0)
        & (out >= 0)  # −1: moment not available (MLTree convention)
    )
    shape = _table_shape(edges)
    size = int(np.prod(shape))
    bins = _flat_bins(
        (sample.abs_eta[use], _log10(sample.energy[use]), _log10(sample.center_lambda[use])), edges
    )
    fill = sample.fit_event_fraction[use]
    scale = sample.energy[use] * sample.isolation[use]
    numerator = np.bincount(bins, weights=fill * out[use], minlength=size).reshape(shape)
    denominator = np.bincount(bins, weights=fill * scale, minlength=size).reshape(shape)
    entries = np.bincount(bins, minlength=size).reshape(shape)
    return _ratio_with_fallback(
        numerator,
        denominator,
        entries,
        levels=[(0, 1, 2), (1, 2), (1,)],
        entries_above=config.ooc_entries_above,
        default=0.0,
    )


def _fit_dead_material(sample: _Sample, edges: np.ndarray, config: LCWConfig) -> np.ndarray:
    """α, β ≥ 0 of ENG_CALIB_DEAD_TOT ≈ α·E_PS + β·√(E_EMB3·E_TileBar0) per log10 E bin.

    Least squares weighted with E_calib(cluster)/E_calib(event). Bins with too
    few clusters take the coefficients of the nearest bin that has enough (α
    grows several-fold with E, so an all-energy fit would be a poor stand-in),
    or of the fit over all energies if none has. Returns (n_bins, 2).
    """
    dead = sample.truth["cluster_ENG_CALIB_DEAD_TOT"]
    use = (sample.energy > 0) & (sample.fit_event_fraction > 0) & (dead >= 0) & np.isfinite(dead)
    ps, geometric_mean = (x[use] for x in sample.dm_inputs())
    target, fill = dead[use], sample.fit_event_fraction[use]
    n_bins = len(edges) - 1
    bins = _bin_index(_log10(sample.energy[use]), edges)
    products = (
        ps * ps,
        ps * geometric_mean,
        geometric_mean**2,
        ps * target,
        geometric_mean * target,
    )
    sums = np.stack([np.bincount(bins, weights=fill * p, minlength=n_bins) for p in products], -1)
    entries = np.bincount(bins, minlength=n_bins)
    populated = entries > config.dm_entries_above
    if not populated.any():
        return np.tile(_nnls_2d(sums.sum(axis=0)), (n_bins, 1))
    return np.stack([_nearest_valid(column, populated) for column in _nnls_2d(sums).T], axis=-1)
