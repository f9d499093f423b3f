"""In-time pile-up from a library of real Pythia minimum-bias events (`calotools.sim.pileup`)."""

from __future__ import annotations

import math
from functools import cache

import awkward as ak
import numpy as np
import pytest

from calotools.errors import InvalidValueError
from calotools.sim.barrel import simulate_deposits
from calotools.sim.config import SimulationConfig
from calotools.sim.pileup import PileupLibrary, overlay, pileup_draws

pytest.importorskip("pythia8mc", reason="the [events] extra is not installed")

CONFIG = SimulationConfig()


@cache
def library() -> PileupLibrary:
    return PileupLibrary.simulate(12, CONFIG, seed=7)


def hard_scatter() -> object:
    photon = {"pdg": 22, "charge": 0.0, "px": 30.0, "py": 0.0, "pz": 0.0, "e": 30.0}
    return simulate_deposits(ak.Array([[photon], [photon]]), np.array([0, 1]), CONFIG, seed=2)


def test_the_library_survives_a_round_trip_and_refuses_other_files(tmp_path):
    lib = library()
    assert len(lib) == 12
    assert lib.values.dtype == np.float32
    path = lib.save(tmp_path / "minbias.npz")
    back = PileupLibrary.load(path)
    assert np.array_equal(back.cells, lib.cells)
    assert np.array_equal(back.values, lib.values)
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(InvalidValueError, match="bad.npz"):
        PileupLibrary.load(bad)


def test_overlay_adds_exactly_the_drawn_library_events():
    lib, hard = library(), hard_scatter()
    added = overlay(hard, lib, 6.0, seed=3)
    counts, chosen = pileup_draws(hard.event_number, 6.0, len(lib), seed=3)
    assert added.extra["actual_mu"].tolist() == counts.tolist()
    start = np.cumsum(counts) - counts
    for row in range(2):
        picks = chosen[start[row] : start[row] + counts[row]]
        expected = sum(
            float(lib.values[0, lib.offsets[m] : lib.offsets[m + 1]].astype(np.float64).sum())
            for m in picks
        )
        assert added.signal[row].sum() - hard.signal[row].sum() == pytest.approx(expected)
    # The calibration hits stay the hard scatter's; the pile-up's truth is apart.
    assert np.array_equal(added.calib, hard.calib)
    start_entries = np.concatenate([np.arange(lib.offsets[m], lib.offsets[m + 1]) for m in chosen])
    expected_truth = lib.values[2:, start_entries].astype(np.float64).sum()
    assert added.extra["pileup_calib"].sum() == pytest.approx(expected_truth)
    again = overlay(hard, lib, 6.0, seed=3)
    assert np.array_equal(again.signal, added.signal)
    assert np.array_equal(overlay(hard, lib, 0.0, seed=3).signal, hard.signal)


def test_interactions_per_crossing_are_poisson():
    counts, _ = pileup_draws(np.arange(4000), 40.0, 100, seed=1)
    assert abs(counts.mean() - 40.0) < 4 * math.sqrt(40.0 / 4000)
    assert abs(counts.var() - 40.0) < 0.1 * 40.0


def test_pileup_noise_grows_as_the_root_of_mu():
    lib = library()
    ten, forty = lib.noise_sigma(10.0), lib.noise_sigma(40.0)
    assert np.allclose(forty, 2.0 * ten)
    assert ten.max() > 0.001  # minimum bias leaves more than a MeV somewhere
    with pytest.raises(InvalidValueError, match="mu"):
        lib.noise_sigma(-1.0)
