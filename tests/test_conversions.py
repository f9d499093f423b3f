"""Photon conversions in the inner detector (``docs/physics.md`` §3a.1).

A photon converts in the tracker with probability 1 − exp(−7X/9), X the material
along its path; the e+e− pair bends apart in φ in the 2 T solenoid, a soft
electron curls up inside it, and the conversion is recorded as truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from calotools import ntuple
from calotools.sim import samples
from calotools.sim.config import SimulationConfig
from calotools.sim.showers import convert_photons
from calotools.sim.simulation import simulate_batch

DETECTOR = SimulationConfig().inner_detector


def _photons(n: int, eta: float, energy: float = 10.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (n, 1)
    return convert_photons(
        DETECTOR,
        np.full(shape, energy),
        np.full(shape, eta),
        np.zeros(shape),
        rng.random((n, 1, 4)),
    )


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_photons_convert_as_often_as_the_material_says(eta):
    """1 − exp(−7/9 · 0.5 cosh η): 32.4 % at η = 0, 38.6 % at 0.7; 20,000 photons (±0.35 %)."""
    pairs = _photons(20_000, eta)
    expected = -np.expm1(-7.0 / 9.0 * DETECTOR.x0 * np.cosh(eta))
    assert pairs.converted.mean() == pytest.approx(expected, abs=0.012)
    radii = pairs.radius_mm[pairs.converted]
    assert radii.min() >= DETECTOR.radius_mm[0]
    assert radii.max() <= DETECTOR.radius_mm[1]
    assert np.median(radii) == pytest.approx(np.mean(DETECTOR.radius_mm), rel=0.05)
    assert np.all(pairs.radius_mm[~pairs.converted] == 0.0)


def test_the_pair_shares_the_energy_and_bends_apart():
    """The pair carries the photon's energy; e− and e+ land on either side, the softer farther."""
    pairs = _photons(5_000, 0.3, energy=20.0)
    converted = pairs.converted[:, 0]
    energy = pairs.energy[converted]
    np.testing.assert_allclose(energy.sum(axis=1), 20.0, rtol=1e-12)
    phi = pairs.phi[converted]
    reaching = ~pairs.curls[converted].any(axis=1)
    assert np.all(phi[reaching, 0] > 0)
    assert np.all(phi[reaching, 1] < 0)
    softer = np.argmin(energy, axis=1)
    farther = np.argmax(np.abs(phi), axis=1)
    assert np.mean(softer[reaching] == farther[reaching]) > 0.99
    # Unconverted photons keep their direction and carry everything in their first slot.
    assert np.all(pairs.phi[~converted, 0] == 0.0)
    assert np.all(pairs.energy[~converted, 1] == 0.0)


def test_the_bending_agrees_with_the_small_angle_formula_for_stiff_tracks():
    """For p_T ≫ 0.3 B R the offset is (L²/2ρ + (L/ρ)(R − R_s)) / R, L = R_s − r."""
    from calotools.sim.showers import _bending

    energy, radius = np.array([200.0]), np.array([300.0])
    phi, curls = _bending(energy, np.zeros(1), radius, DETECTOR)
    rho = 200.0 / (0.3 * DETECTOR.field_t)
    lever = (DETECTOR.solenoid_radius_mm - 300.0) * 1e-3
    beyond = (DETECTOR.calorimeter_radius_mm - DETECTOR.solenoid_radius_mm) * 1e-3
    small_angle = (lever**2 / (2 * rho) + lever / rho * beyond) / (
        DETECTOR.calorimeter_radius_mm * 1e-3
    )
    assert not curls[0]
    assert phi[0] == pytest.approx(small_angle, rel=0.01)


def test_an_electron_too_soft_to_leave_the_solenoid_curls_up():
    """From r = 0 a track reaches R_s only with p_T > 0.3 B R_s / 2 = 0.369 GeV."""
    from calotools.sim.showers import _bending

    threshold = 0.3 * DETECTOR.field_t * DETECTOR.solenoid_radius_mm * 1e-3 / 2
    energy = np.array([0.95 * threshold, 1.05 * threshold])
    _, curls = _bending(energy, np.zeros(2), np.zeros(2), DETECTOR)
    assert list(curls) == [True, False]


def test_converted_photons_are_wider_in_phi_and_lose_no_energy_from_the_books():
    """20 GeV photons: converted ones spread wider in φ in EMB2; every event still balances."""
    config = SimulationConfig(
        particle="gamma", n_events=2000, e_min=20.0, e_max=20.0, eta_max=0.5, seed=4
    )
    batch = simulate_batch(config, 0, 2000)
    assert np.all(np.abs(batch.energy_balance()) <= 1e-12 * batch.truth_e)
    truth = batch.layers["EMB2"].calib_total
    profile = truth.sum(axis=1)  # over η: the φ profile
    index = np.arange(profile.shape[1])
    total = profile.sum(axis=1)
    mean = (profile * index).sum(axis=1) / total
    width = np.sqrt((profile * index**2).sum(axis=1) / total - mean**2)
    converted = batch.extra["conversions"] == 1
    assert 0.25 < converted.mean() < 0.45
    assert np.median(width[converted]) > 1.3 * np.median(width[~converted])


def test_the_conversion_is_written_as_truth(tmp_path):
    """truthConversions and truthConversionRadius in the ntuple: 0 for unconverted photons."""
    path = samples.make_sample(
        "gamma", tmp_path / "g.root", n_events=300, progress=False, workers=1
    )
    scalars = ntuple.read_clusters(path, branches=["truthConversions", "truthConversionRadius"])
    scalars = scalars.scalars
    converted = scalars["truthConversions"] > 0
    assert 0.15 < converted.mean() < 0.6
    assert np.all(scalars["truthConversionRadius"][converted] > 0)
    assert np.all(scalars["truthConversionRadius"][~converted] == 0)
