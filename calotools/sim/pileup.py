"""In-time pile-up: minimum-bias events overlaid on a hard scatter, as ATLAS overlays presampled pile-up.

``docs/events.md``. A `PileupLibrary` holds the noiseless deposits
(`calotools.sim.barrel.EventDeposits`) of pre-simulated minimum-bias events,
sparse on the barrel grid. `overlay` adds to each hard-scatter event a
Poisson(⟨μ⟩) number of them, drawn from the library, before
`calotools.sim.barrel.digitise` adds the electronic noise. Only the bunch
crossing of the hard scatter is modelled (in-time pile-up): the pulse shaping
that makes out-of-time pile-up cancel in-time energy on average is not, so
pile-up adds energy on average.

The clustering cuts on the total noise σ, electronic ⊕ pile-up
(`noise_sigma`): the pile-up σ of a cell is the standard deviation of the energy
Poisson(⟨μ⟩) minimum-bias events leave there, √(⟨μ⟩ · E[x²]) for a compound
Poisson sum, with E[x²] over the library, averaged over φ (the barrel is
symmetric in φ) and over η ↔ −η.

Examples
--------
>>> from calotools.sim.config import SimulationConfig
>>> library = PileupLibrary.simulate(20, SimulationConfig(), seed=1)
>>> len(library), bool(library.noise_sigma(40.0).max() > library.noise_sigma(10.0).max())
(20, True)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calotools import atomic, geometry
from calotools.errors import InvalidValueError
from calotools.sim.barrel import EventDeposits, simulate_deposits
from calotools.sim.cells import ALIGN_PHI, BarrelWindow, CellBatch
from calotools.sim.clustering import _ranges
from calotools.sim.config import SimulationConfig
from calotools.sim.generator import GeneratorConfig, generate

__all__ = ["PILEUP_FLOOR_GEV", "PileupLibrary", "overlay", "overlay_window", "pileup_draws"]

#: Cells of a minimum-bias event with less truth than this (GeV, 0.1 MeV: 10⁻²
#: of the smallest noise σ) are left out of the library: a thousand events then
#: fit in memory. Their energy is that much below every threshold.
PILEUP_FLOOR_GEV = 1e-4
# Stream key of the pile-up draws (number and choice of library events).
_STREAM_PILEUP = 103
# Stream key of a window overlay's own draws: each interaction's rotation and
# mirror, and the pile-up's sampling fluctuations per window cell.
_STREAM_WINDOW = 104
#: φ rotations an overlaid interaction may get: multiples of 2π/64, the φ cell
#: of the presampler, EMB1 and Tile, so every layer's cells map onto cells.
ROTATIONS = 64
# Library entries gathered per step of `overlay_window`: bounds its temporaries.
_CHUNK_ENTRIES = 1 << 21
_QUANTITIES = ("signal", "variance", "calib_em", "calib_nonem", "calib_invisible", "calib_escaped")
_FORMAT = 1


@dataclass(frozen=True)
class _Buckets:
    """Library entries sorted by (event, φ bucket): where each lies on the barrel grid."""

    layer: np.ndarray  #: (K,) index into geometry.LAYERS
    ie: np.ndarray  #: (K,) η row on the barrel grid of its layer
    jp: np.ndarray  #: (K,) φ column on the barrel grid of its layer
    values: np.ndarray  #: (3, K) signal, sampling variance, truth
    offsets: np.ndarray  #: (M · ROTATIONS + 1,) entries of (event m, bucket b) start at m · R + b


@functools.cache
def _barrel_cells() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per barrel cell (template order): layer index, η row, φ column, φ cells per bucket."""
    window = BarrelWindow()
    parts: list[list[np.ndarray]] = [[], [], [], []]
    for index, lay in enumerate(geometry.LAYERS):
        n_eta, n_phi = window.shape(lay.name)
        ie, jp = np.divmod(np.arange(n_eta * n_phi), n_phi)
        unit = np.full(ie.size, n_phi // ROTATIONS)
        for part, values in zip(parts, (np.full(ie.size, index), ie, jp, unit), strict=True):
            part.append(values)
    layer, ie, jp, unit = (np.concatenate(p).astype(np.int32) for p in parts)
    return layer, ie, jp, unit


@dataclass
class PileupLibrary:
    """Noiseless deposits of M minimum-bias events, sparse on the barrel grid.

    Attributes
    ----------
    cells
        (K,) template index of every stored cell of every event.
    values
        (6, K) float32: signal, variance and the four truth parts, as in
        `calotools.sim.barrel.EventDeposits`.
    offsets
        (M + 1,) the entries of event m are offsets[m]:offsets[m + 1].
    n_cells
        Cells of the barrel grid.
    """

    cells: np.ndarray
    values: np.ndarray
    offsets: np.ndarray
    n_cells: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_deposits(cls, deposits: EventDeposits) -> PileupLibrary:
        """The library of the events of ``deposits``."""
        n, n_cells = deposits.signal.shape
        keep = np.abs(deposits.calib_total()) > PILEUP_FLOOR_GEV
        event, cell = np.nonzero(keep)
        stacked = [deposits.signal, deposits.variance, *deposits.calib]
        values = np.stack([q[keep] for q in stacked]).astype(np.float32)
        offsets = np.searchsorted(event, np.arange(n + 1))
        return cls(cell.astype(np.int32), values, offsets, n_cells)

    @classmethod
    def simulate(
        cls,
        n_events: int,
        config: SimulationConfig,
        *,
        seed: int,
        batch_size: int = 64,
    ) -> PileupLibrary:
        """Generate ``n_events`` minimum-bias events with Pythia and simulate their deposits."""
        if not (isinstance(n_events, int) and n_events > 0):
            msg = f"n_events must be a positive integer; got {n_events!r}"
            raise InvalidValueError(msg)
        events = generate(GeneratorConfig(sample="minbias", n_events=n_events, seed=seed))
        parts = []
        for start in range(0, n_events, batch_size):
            chunk = events[start : start + batch_size]
            deposits = simulate_deposits(
                chunk.particles, chunk.event_number.to_numpy(), config, seed=seed
            )
            parts.append(cls.from_deposits(deposits))
        return cls.concat(parts)

    @classmethod
    def concat(cls, parts: list[PileupLibrary]) -> PileupLibrary:
        """One library of the events of ``parts``, in order."""
        sizes = [len(p.cells) for p in parts]
        starts = np.concatenate(([0], np.cumsum(sizes)))
        offsets = np.concatenate(
            [[0]] + [p.offsets[1:] + start for p, start in zip(parts, starts, strict=False)]
        )
        return cls(
            np.concatenate([p.cells for p in parts]),
            np.concatenate([p.values for p in parts], axis=1),
            offsets.astype(np.int64),
            parts[0].n_cells,
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the library to ``path`` (``.npz``, no pickles), atomically."""
        with atomic.atomic_write(path) as tmp, Path(tmp).open("wb") as f:
            np.savez(
                f,
                format=np.int64(_FORMAT),
                cells=self.cells,
                values=self.values,
                offsets=self.offsets,
                n_cells=np.int64(self.n_cells),
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PileupLibrary:
        """Read a library `save` wrote; anything else is refused by name."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                fmt = int(data["format"])
                arrays = {k: data[k] for k in ("cells", "values", "offsets", "n_cells")}
        except (OSError, KeyError, ValueError) as err:
            msg = f"{path} is not a pile-up library written by PileupLibrary.save: {err}"
            raise InvalidValueError(msg) from err
        n_cells = int(arrays["n_cells"])
        if fmt != _FORMAT or n_cells != BarrelWindow().n_cells:
            msg = (
                f"{path}: pile-up library of format {fmt} on {n_cells} cells; this calotools "
                f"reads format {_FORMAT} on the {BarrelWindow().n_cells}-cell barrel: make it again"
            )
            raise InvalidValueError(msg)
        return cls(arrays["cells"], arrays["values"], arrays["offsets"], n_cells)

    def noise_sigma(self, mu: float) -> np.ndarray:
        """(n_cells,) σ of the pile-up energy per cell at ⟨μ⟩ = ``mu`` (GeV)."""
        _check_mu(mu)
        window = BarrelWindow()
        signal = self.values[0].astype(np.float64)
        second = np.bincount(self.cells, signal**2, self.n_cells) / max(len(self), 1)
        sigma = np.empty(self.n_cells)
        start = 0
        for lay in geometry.LAYERS:
            n_eta, n_phi = window.shape(lay.name)
            rows = second[start : start + n_eta * n_phi].reshape(n_eta, n_phi).mean(axis=1)
            rows = 0.5 * (rows + rows[::-1])  # η ↔ −η
            sigma[start : start + n_eta * n_phi] = np.repeat(np.sqrt(mu * rows), n_phi)
            start += n_eta * n_phi
        return sigma

    @functools.cached_property
    def _by_bucket(self) -> _Buckets:
        """The entries sorted by (event, φ bucket of 2π/`ROTATIONS`), for `overlay_window`."""
        layer, ie, jp, unit = (a[self.cells] for a in _barrel_cells())
        bucket = jp // unit
        event = np.repeat(np.arange(len(self)), np.diff(self.offsets))
        order = np.lexsort((bucket, event))
        key = event[order] * ROTATIONS + bucket[order]
        offsets = np.searchsorted(key, np.arange(len(self) * ROTATIONS + 1))
        values = self.values[:, order]
        return _Buckets(
            layer=layer[order],
            ie=ie[order],
            jp=jp[order],
            # signal, sampling variance, truth (the four parts summed)
            values=np.stack([values[0], values[1], values[2:].sum(axis=0)]),
            offsets=offsets,
        )


def _check_mu(mu: float) -> None:
    if not (isinstance(mu, (int, float)) and math.isfinite(mu) and mu >= 0):
        msg = f"mu (the mean number of pile-up interactions) must be a number >= 0; got {mu!r}"
        raise InvalidValueError(msg)


def _check_library(library: PileupLibrary, n_cells: int) -> None:
    """Refuse an empty library, or one on another grid than the ``n_cells`` it is overlaid on."""
    remedy = "make one with calotools.sim.event_samples.make_pileup_library"
    if len(library) == 0:
        msg = f"the pile-up library holds no events; {remedy}"
        raise InvalidValueError(msg)
    if library.n_cells != n_cells:
        msg = (
            f"the pile-up library is on {library.n_cells} cells, the barrel on {n_cells}: "
            f"it was made by another calotools; {remedy}"
        )
        raise InvalidValueError(msg)


def pileup_draws(
    event_number: np.ndarray,
    mu: float,
    n_library: int,
    *,
    seed: int,
    stream: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) interactions per event, Poisson(``mu``), and the library events they take, in order.

    Each event's draws come from a stream keyed by (seed, ``stream``, event
    number); ``stream`` tells apart samples whose event numbers repeat (the
    π+ and π− of a single-particle sample).

    Examples
    --------
    >>> counts, chosen = pileup_draws(np.arange(3), 2.0, 10, seed=0)
    >>> len(chosen) == int(counts.sum()), bool(chosen.max() < 10)
    (True, True)
    """
    counts = np.empty(len(event_number), dtype=np.int64)
    picks = []
    for row, number in enumerate(event_number):
        key = np.random.SeedSequence(seed, spawn_key=(_STREAM_PILEUP, *stream, int(number)))
        rng = np.random.Generator(np.random.PCG64(key))
        counts[row] = rng.poisson(mu)
        picks.append(rng.integers(n_library, size=counts[row]))
    return counts, np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)


def overlay(
    deposits: EventDeposits, library: PileupLibrary, mu: float, *, seed: int
) -> EventDeposits:
    """The deposits with Poisson(``mu``) library events added to each event.

    The number of interactions and which library events are drawn come from a
    stream keyed by (seed, event number). The calibration hits stay the hard
    scatter's; the result's ``extra`` holds ``pileup_calib`` (N, n_cells), the
    pile-up's truth energy per cell, and ``actual_mu`` (N,), the number of
    interactions overlaid.
    """
    _check_mu(mu)
    n, n_cells = deposits.signal.shape
    _check_library(library, n_cells)
    counts, chosen = pileup_draws(deposits.event_number, mu, len(library), seed=seed)
    sizes = np.diff(library.offsets)[chosen]
    ends = np.cumsum(sizes)
    entries = np.arange(int(ends[-1]) if len(ends) else 0)
    entries += np.repeat(library.offsets[chosen] - (ends - sizes), sizes)
    event = np.repeat(np.repeat(np.arange(n), counts), sizes)
    target = event * n_cells + library.cells[entries]

    def added(k: int) -> np.ndarray:
        values = library.values[k, entries].astype(np.float64)
        return np.bincount(target, values, minlength=n * n_cells).reshape(n, n_cells)

    signal = deposits.signal + added(0)
    variance = deposits.variance + added(1)
    extra = dict(deposits.extra)
    # Kept apart from the calibration hits, as in ATLAS, where presampled
    # pile-up brings no calibration hits: ENG_CALIB_TOT is the hard scatter's.
    extra["pileup_calib"] = np.sum([added(k) for k in range(2, 6)], axis=0)
    extra["actual_mu"] = counts.astype(np.float64)
    return EventDeposits(
        window=deposits.window,
        signal=signal,
        variance=variance,
        calib=deposits.calib,
        particles=deposits.particles,
        attribution=deposits.attribution,
        event_number=deposits.event_number,
        extra=extra,
    )


def _mirror_rows(rows: np.ndarray, n_eta: int) -> np.ndarray:
    """Barrel η rows for window rows beyond the barrel's edge, reflected back into it."""
    rows = np.where(rows < 0, -1 - rows, rows)
    return np.where(rows >= n_eta, 2 * n_eta - 1 - rows, rows)


def overlay_window(
    batch: CellBatch,
    library: PileupLibrary,
    mu: float,
    *,
    seed: int,
    stream: tuple[int, ...] = (),
) -> CellBatch:
    """The single-particle ``batch`` with Poisson(``mu``) library events overlaid on each window.

    ``docs/pileup.md``. Each event draws its number of interactions and the
    library events (`pileup_draws`, keyed by seed, ``stream`` and event number)
    and, from a stream of its own, for every interaction a rotation in φ by a
    multiple of 2π/`ROTATIONS` and a mirror η → −η with probability ½ (the
    barrel is symmetric under both, and they make a small library go further),
    then one standard normal per window cell for the pile-up's sampling
    fluctuations. Window rows beyond the barrel's |η| edge take the pile-up of
    the rows mirrored inside it (a few per cent short in energy: docs/pileup.md).

    The hard scatter's cells, calibration hits and truth are left as they
    are; the pile-up's truth energy goes to ``pileup_calib``, its σ per cell
    (`PileupLibrary.noise_sigma`, at each window's η) to every layer's
    ``pileup_sigma``, and the number of interactions to ``extra["actual_mu"]``.
    """
    _check_mu(mu)
    barrel = BarrelWindow()
    _check_library(library, barrel.n_cells)
    window = batch.window
    if window.wraps_phi:
        msg = "overlay_window is for single-particle windows; whole events take overlay()"
        raise InvalidValueError(msg)
    n = len(batch)
    if mu == 0:  # nothing to overlay: the batch as it is, with the pile-up records
        extra = {**batch.extra, "actual_mu": np.zeros(n)}
        return dataclasses.replace(batch, extra=extra, pileup_calib=np.zeros((n, window.n_cells)))
    shapes = [window.shape(lay.name) for lay in geometry.LAYERS]
    sizes = np.array([a * b for a, b in shapes])
    n_window = int(sizes.sum())
    layer_start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    n_eta_w = np.array([a for a, _ in shapes])
    n_phi_w = np.array([b for _, b in shapes])
    n_eta_b = np.array([barrel.shape(lay.name)[0] for lay in geometry.LAYERS])
    n_phi_b = np.array([barrel.shape(lay.name)[1] for lay in geometry.LAYERS])
    deta = np.array([lay.deta for lay in geometry.LAYERS])
    dphi = np.array([lay.dphi for lay in geometry.LAYERS])
    # Window origin on each layer's barrel grid (both grids are aligned on ALIGN_*).
    eta_row = np.rint((batch.eta_low[:, None] + barrel.eta_max) / deta).astype(np.int64)
    phi_col = np.rint((batch.phi_low[:, None] + math.pi) / dphi).astype(np.int64) % n_phi_b
    first_bucket = np.rint((batch.phi_low + math.pi) / ALIGN_PHI).astype(np.int64) % ROTATIONS

    counts, chosen = pileup_draws(batch.event_number, mu, len(library), seed=seed, stream=stream)
    rotation = np.empty(len(chosen), dtype=np.int64)
    mirrored = np.empty(len(chosen), dtype=bool)
    normal = np.empty((n, n_window), dtype=np.float32)
    start = 0
    for row, number in enumerate(batch.event_number):
        key = np.random.SeedSequence(seed, spawn_key=(_STREAM_WINDOW, *stream, int(number)))
        rng = np.random.Generator(np.random.PCG64(key))
        part = slice(start, start + counts[row])
        rotation[part] = rng.integers(ROTATIONS, size=counts[row])
        mirrored[part] = rng.random(counts[row]) < 0.5
        rng.standard_normal(dtype=np.float32, out=normal[row])
        start += counts[row]

    # The φ buckets each interaction needs: those its rotation brings into the window.
    buckets = library._by_bucket
    event = np.repeat(np.arange(n), counts)
    steps = np.arange(window.n_align_phi)
    source = (first_bucket[event][:, None] + steps - rotation[:, None]) % ROTATIONS
    lo = buckets.offsets[chosen[:, None] * ROTATIONS + source]
    hi = buckets.offsets[chosen[:, None] * ROTATIONS + source + 1]
    per_interaction = (hi - lo).sum(axis=1)

    added = np.zeros((3, n * n_window))
    ends = np.cumsum(per_interaction)
    first = 0
    while first < len(chosen):
        last = int(np.searchsorted(ends, ends[first] - per_interaction[first] + _CHUNK_ENTRIES))
        last = max(last, first + 1)
        entries = _ranges(lo[first:last].ravel(), hi[first:last].ravel())
        which = first + np.repeat(np.arange(last - first), per_interaction[first:last])
        k, lay = event[which], buckets.layer[entries]
        ie = np.where(mirrored[which], n_eta_b[lay] - 1 - buckets.ie[entries], buckets.ie[entries])
        jp = (buckets.jp[entries] + rotation[which] * (n_phi_b[lay] // ROTATIONS)) % n_phi_b[lay]
        j = (jp - phi_col[k, lay]) % n_phi_b[lay]
        # A row inside the barrel serves its own window row and, near the edge,
        # the window row beyond the edge that mirrors onto it.
        for rows in (ie, -1 - ie, 2 * n_eta_b[lay] - 1 - ie):
            i = rows - eta_row[k, lay]
            keep = (i >= 0) & (i < n_eta_w[lay]) & (j < n_phi_w[lay])
            if not keep.any():
                continue
            target = (
                k[keep] * n_window + layer_start[lay[keep]] + i[keep] * n_phi_w[lay[keep]] + j[keep]
            )
            for q in range(3):
                added[q] += np.bincount(
                    target, buckets.values[q, entries[keep]], minlength=n * n_window
                )
        first = last
    signal, variance, truth = (a.reshape(n, n_window) for a in added)
    measured = (signal + np.sqrt(variance) * normal).astype(np.float32)

    sigma_barrel = library.noise_sigma(mu)
    sizes_barrel = n_eta_b * n_phi_b
    barrel_start = np.concatenate(([0], np.cumsum(sizes_barrel)[:-1]))
    layers = {}
    for index, (lay, shape) in enumerate(zip(geometry.LAYERS, shapes, strict=True)):
        cells = batch.layers[lay.name]
        part = slice(layer_start[index], layer_start[index] + sizes[index])
        rows = _mirror_rows(eta_row[:, index, None] + np.arange(shape[0]), n_eta_b[index])
        # noise_sigma is the same along φ: one column of the layer's rows.
        column = sigma_barrel[barrel_start[index] : barrel_start[index] + sizes_barrel[index]]
        sigma_rows = column.reshape(n_eta_b[index], n_phi_b[index])[:, 0]
        layers[lay.name] = dataclasses.replace(
            cells,
            energy=cells.energy + measured[:, part].reshape(n, *shape),
            pileup_sigma=sigma_rows[rows][:, :, None],
        )
    extra = {**batch.extra, "actual_mu": counts.astype(np.float64)}
    return dataclasses.replace(batch, layers=layers, extra=extra, pileup_calib=truth)
