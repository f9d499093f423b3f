"""Pile-up on single-particle windows (`calotools.sim.pileup.overlay_window`) and its clusters."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest

from calotools import geometry
from calotools.errors import InvalidValueError
from calotools.sim.cells import BarrelWindow
from calotools.sim.clustering import cell_sigma
from calotools.sim.config import SimulationConfig
from calotools.sim.pileup import PileupLibrary, overlay_window, pileup_draws
from calotools.sim.reconstruction import reconstruct
from calotools.sim.simulation import simulate_batch

pytest.importorskip("pythia8mc", reason="the [events] extra is not installed")


@cache
def library() -> PileupLibrary:
    return PileupLibrary.simulate(12, SimulationConfig(), seed=7)


def uniform_library() -> PileupLibrary:
    """One 'event' with 1 GeV of truth and signal in every barrel cell (a real library object)."""
    n_cells = BarrelWindow().n_cells
    values = np.zeros((6, n_cells), dtype=np.float32)
    values[0] = 1.0  # signal
    values[2] = 1.0  # EM truth
    return PileupLibrary(
        np.arange(n_cells, dtype=np.int32), values, np.array([0, n_cells]), n_cells
    )


def batch(n: int = 20, **fields) -> object:
    config = SimulationConfig(particle="pi0", n_events=n, seed=1, e_min=5.0, e_max=50.0, **fields)
    return simulate_batch(config, 0, n)


def test_every_window_cell_gets_each_interaction_once_even_beyond_the_barrel_edge():
    # Windows moved to 0.4-1.2 and −1.2 to −0.4 reach beyond the barrel's
    # |η| = 1.0: those rows take the mirrored rows' pile-up, so a flat library
    # stays flat, and every cell gets each interaction once.
    hard = batch()
    hard = dataclasses.replace(hard, eta_low=np.where(hard.eta_low >= 0, 0.4, -1.2))
    beyond = (hard.eta_low + hard.window.width_eta > geometry.CELLS_ETA_MAX) | (
        hard.eta_low < -geometry.CELLS_ETA_MAX
    )
    assert beyond.all()
    added = overlay_window(hard, uniform_library(), 5.0, seed=2)
    counts = added.extra["actual_mu"]
    assert counts.sum() > 0
    assert np.array_equal(added.pileup_calib, np.repeat(counts[:, None], hard.window.n_cells, 1))


def test_mu_zero_changes_nothing_and_the_hard_scatter_is_kept():
    hard = batch()
    same = overlay_window(hard, library(), 0.0, seed=3)
    for name, cells in hard.layers.items():
        assert np.array_equal(same.layers[name].energy, cells.energy)
        assert np.array_equal(same.layers[name].calib_em, cells.calib_em)
    assert np.array_equal(cell_sigma(same), cell_sigma(hard))
    assert not same.pileup_calib.any()
    noisy = overlay_window(hard, library(), 40.0, seed=3)
    assert np.allclose(noisy.energy_balance(), hard.energy_balance())  # truth: hard scatter only
    assert np.array_equal(noisy.truth_e, hard.truth_e)


def test_pileup_energy_grows_with_mu_and_matches_its_truth():
    hard = batch(40)

    def added(mu: float) -> tuple[float, float]:
        noisy = overlay_window(hard, library(), mu, seed=4)
        signal = sum(
            float((noisy.layers[k].energy.astype(np.float64) - c.energy).sum())
            for k, c in hard.layers.items()
        )
        return signal / len(hard), float(noisy.pileup_calib.sum()) / len(hard)

    (s40, t40), (s80, t80) = added(40.0), added(80.0)
    assert 0.0 < s40 < s80
    assert s80 / s40 == pytest.approx(2.0, rel=0.25)
    # EM scale against truth: below it (non-EM energy is not all seen) but of its order.
    assert 0.4 < s40 / t40 < 1.0
    assert 0.4 < s80 / t80 < 1.0


def test_the_same_seed_gives_the_same_pileup_and_events_do_not_depend_on_the_batch():
    hard = batch(20)
    a = overlay_window(hard, library(), 30.0, seed=5)
    b = overlay_window(hard, library(), 30.0, seed=5)
    first = overlay_window(batch(7), library(), 30.0, seed=5)
    other = overlay_window(hard, library(), 30.0, seed=6)
    for name in hard.layers:
        assert np.array_equal(a.layers[name].energy, b.layers[name].energy)
        assert np.array_equal(first.layers[name].energy, a.layers[name].energy[:7])
    assert not np.array_equal(a.pileup_calib, other.pileup_calib)
    counts, _ = pileup_draws(hard.event_number, 30.0, len(library()), seed=5)
    assert a.extra["actual_mu"].tolist() == counts.tolist()
    # Another stream (the π− of a π± sample) draws other pile-up for the same numbers.
    shifted = overlay_window(hard, library(), 30.0, seed=5, stream=(1,))
    assert not np.array_equal(shifted.pileup_calib, a.pileup_calib)


def test_the_clustering_cuts_on_the_noise_at_each_windows_eta():
    hard = batch(20)
    noisy = overlay_window(hard, library(), 40.0, seed=6)
    sigma = cell_sigma(noisy)
    assert sigma.shape == (len(hard), hard.window.n_cells)
    electronic = cell_sigma(hard)
    assert (sigma >= electronic - 1e-12).all()
    assert (sigma > electronic).mean() > 0.9
    result = reconstruct(noisy)
    share = result.clusters.scalars["cluster_ENG_CALIB_FRAC_PILEUP"].to_numpy()
    assert ((share >= 0) & (share <= 1)).all()
    # Pile-up makes clusters of its own: far more clusters than without.
    assert len(result.clusters) > 2 * len(reconstruct(hard).clusters)
    assert "cluster_ENG_CALIB_FRAC_PILEUP" not in reconstruct(hard).clusters.scalars


def test_bad_input_is_refused_by_name():
    hard = batch(4)
    with pytest.raises(InvalidValueError, match="mu"):
        overlay_window(hard, library(), -1.0, seed=0)
    empty = PileupLibrary(
        np.zeros(0, np.int32),
        np.zeros((6, 0), np.float32),
        np.zeros(1, np.int64),
        library().n_cells,
    )
    with pytest.raises(InvalidValueError, match="no events"):
        overlay_window(hard, empty, 10.0, seed=0)
    whole = dataclasses.replace(hard, window=BarrelWindow())
    with pytest.raises(InvalidValueError, match="single-particle windows"):
        overlay_window(whole, library(), 10.0, seed=0)
