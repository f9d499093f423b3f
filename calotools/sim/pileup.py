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

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calotools import atomic, geometry
from calotools.errors import InvalidValueError
from calotools.sim.barrel import EventDeposits, simulate_deposits
from calotools.sim.cells import BarrelWindow
from calotools.sim.config import SimulationConfig
from calotools.sim.generator import GeneratorConfig, generate

__all__ = ["PILEUP_FLOOR_GEV", "PileupLibrary", "overlay", "pileup_draws"]

#: Cells of a minimum-bias event with less truth than this (GeV, 0.1 MeV: 10⁻²
#: of the smallest noise σ) are left out of the library: a thousand events then
#: fit in memory. Their energy is that much below every threshold.
PILEUP_FLOOR_GEV = 1e-4
# Stream key of the pile-up draws (number and choice of library events).
_STREAM_PILEUP = 103
_QUANTITIES = ("signal", "variance", "calib_em", "calib_nonem", "calib_invisible", "calib_escaped")
_FORMAT = 1


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


def _check_mu(mu: float) -> None:
    if not (isinstance(mu, (int, float)) and math.isfinite(mu) and mu >= 0):
        msg = f"mu (the mean number of pile-up interactions) must be a number >= 0; got {mu!r}"
        raise InvalidValueError(msg)


def pileup_draws(
    event_number: np.ndarray, mu: float, n_library: int, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) interactions per event, Poisson(``mu``), and the library events they take, in order.

    Each event's draws come from a stream keyed by (seed, event number).

    Examples
    --------
    >>> counts, chosen = pileup_draws(np.arange(3), 2.0, 10, seed=0)
    >>> len(chosen) == int(counts.sum()), bool(chosen.max() < 10)
    (True, True)
    """
    counts = np.empty(len(event_number), dtype=np.int64)
    picks = []
    for row, number in enumerate(event_number):
        key = np.random.SeedSequence(seed, spawn_key=(_STREAM_PILEUP, int(number)))
        rng = np.random.Generator(np.random.PCG64(key))
        counts[row] = rng.poisson(mu)
        picks.append(rng.integers(n_library, size=counts[row]))
    return counts, np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)


def overlay(
    deposits: EventDeposits, library: PileupLibrary, mu: float, *, seed: int
) -> EventDeposits:
    """The deposits with Poisson(``mu``) library events added to each event.

    The number of interactions and which library events are drawn come from a
    stream keyed by (seed, event number). The result's ``extra`` holds
    ``pileup_calib`` (N, n_cells), the pile-up's truth energy per cell, and
    ``actual_mu`` (N,), the number of interactions overlaid.
    """
    _check_mu(mu)
    if len(library) == 0:
        msg = "the pile-up library holds no events"
        raise InvalidValueError(msg)
    n, n_cells = deposits.signal.shape
    if n_cells != library.n_cells:
        msg = f"the library is on {library.n_cells} cells, the deposits on {n_cells}"
        raise InvalidValueError(msg)
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
    pileup = np.stack([added(k) for k in range(2, 6)])
    extra = dict(deposits.extra)
    extra["pileup_calib"] = pileup.sum(axis=0)
    extra["actual_mu"] = counts.astype(np.float64)
    return EventDeposits(
        window=deposits.window,
        signal=signal,
        variance=variance,
        calib=deposits.calib + pileup,
        particles=deposits.particles,
        attribution=deposits.attribution,
        event_number=deposits.event_number,
        extra=extra,
    )
