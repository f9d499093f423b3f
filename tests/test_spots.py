"""GFlash's radial fluctuations (``docs/physics.md`` §3a): a shower's core share moves with its spots.

A shower's energy is deposited as N_spot = n1 / c · E^n2 spots, each at a radius
drawn from the average radial profile, so the share of a layer's energy in the
profile's core is binomial about the average: these tests check its size, that
the average is kept, and that the simulation draws it reproducibly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from calotools import geometry
from calotools.sim.config import SimulationConfig
from calotools.sim.showers import build_stack, em_profiles, photon_showers, spot_count
from calotools.sim.simulation import simulate_batch


def photons(energy: float, n: int, config: SimulationConfig, seed: int = 0):
    rng = np.random.default_rng(seed)
    stack = build_stack(config.dead_material)
    shower = photon_showers(
        config.gflash,
        stack,
        np.full((n, 1), energy),
        rng.uniform(-0.5, 0.5, (n, 1)),
        rng.uniform(-np.pi, np.pi, (n, 1)),
        np.full((n, 1), 1.0),
        rng.standard_normal((n, 1, 2)),
    )
    return stack, shower


def core_share(profiles) -> np.ndarray:
    """Share of each shower's layer energy in the core profiles (even columns)."""
    weight = profiles.weight
    return weight[:, 0::2].sum(axis=1) / weight.sum(axis=1)


def test_spot_count_follows_the_gflash_sampling_formula():
    """N_spot = 10.3 / 0.10 · E^0.959 for the EMB's 10 %/√E; more spots, smaller fluctuations."""
    gflash = SimulationConfig().gflash
    counts = spot_count(gflash, np.array([1.0, 10.0, 100.0]))
    np.testing.assert_allclose(counts, 103.0 * np.array([1.0, 10.0, 100.0]) ** 0.959)
    no_sampling = dataclasses.replace(gflash, sampling_term=0.0)
    assert np.isinf(spot_count(no_sampling, np.array([5.0]))).all()


@pytest.mark.parametrize("energy", [1.0, 10.0])
def test_the_core_share_in_emb2_fluctuates_binomially_about_the_average(energy):
    """2,000 photons: σ of the core share in EMB2 ≈ √(p (1 − p) / n_EMB2); its mean stays."""
    config = SimulationConfig()
    stack, shower = photons(energy, 2000, config)
    emb2 = geometry.layer("EMB2")
    z = np.random.default_rng(5).standard_normal((2000, 1))
    average = core_share(em_profiles(config.gflash, stack, shower, emb2))
    fluctuating = core_share(em_profiles(config.gflash, stack, shower, emb2, z))
    in_layer = shower.slice_energy[:, 0, stack.layer_slices["EMB2"]].sum(axis=1)
    spots = spot_count(config.gflash, shower.energy[:, 0]) * in_layer / shower.energy[:, 0]
    expected = np.sqrt(average * (1 - average) / np.maximum(spots, 1.0))
    pulls = (fluctuating - average) / expected
    assert abs(pulls.mean()) < 0.1
    assert 0.9 < pulls.std() < 1.1
    # A 1 GeV shower fluctuates several times more than a 10 GeV one (1/√N_spot).
    assert np.median(expected) > (0.01 if energy == 1.0 else 0.002)


def test_no_spot_normals_give_the_average_profile():
    config = SimulationConfig()
    stack, shower = photons(10.0, 50, config)
    emb2 = geometry.layer("EMB2")
    zero = em_profiles(config.gflash, stack, shower, emb2, np.zeros((50, 1)))
    average = em_profiles(config.gflash, stack, shower, emb2)
    np.testing.assert_allclose(zero.weight, average.weight)


def test_simulated_photons_carry_spot_fluctuations_reproducibly():
    """The simulation draws the spot normals from their own stream: same seed, same cells.
    With (nearly) infinitely many spots the cells change, but each shower's EMB2 energy stays
    (the spots move energy between core and tail, not between layers)."""
    config = SimulationConfig(particle="gamma", n_events=64, e_min=5.0, e_max=5.0, seed=3)
    first, again = simulate_batch(config, 0, 64), simulate_batch(config, 0, 64)
    np.testing.assert_array_equal(first.layers["EMB2"].energy, again.layers["EMB2"].energy)
    smooth = simulate_batch(dataclasses.replace(config, gflash_spot_n1=1e12), 0, 64)
    emb2, smooth_emb2 = first.layers["EMB2"].calib_em, smooth.layers["EMB2"].calib_em
    assert not np.allclose(emb2, smooth_emb2, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(emb2.sum(axis=(1, 2)), smooth_emb2.sum(axis=(1, 2)), rtol=0.02)
