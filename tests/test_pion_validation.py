"""π± against the ATLAS test beams: LAr and Tile shares, MIP-like pions, non-compensation.

The robust figures of ``docs/pion-validation.md``, on single π+ at |η| in
[0.35, 0.55] (the 2004 combined test beam's η ≈ 0.45): how many pions cross the
LAr without interacting, whether the E/p analyses' MIP selection finds them, how
the LAr share and the EM-scale response move with energy, the e/h that the
response against the EM fraction implies, and the EM-scale resolution against the
1996 combined test beam. Sums are over all window cells (noise off where a ratio
per event would drown in it); the page's table uses topo-clustered cells
(``benchmarks/pion_shares.py``).
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import numpy as np
import pytest

from calotools import geometry
from calotools.sim.config import SimulationConfig
from calotools.sim.simulation import simulate_batch

ETA = (0.35, 0.55)
EM_LAYERS = tuple(lay.name for lay in geometry.LAYERS if lay.is_em)
TILE_LAYERS = tuple(lay.name for lay in geometry.LAYERS if not lay.is_em)
# The MIP selection of the ATLAS E/p analysis code (jmrolsson/EoverPAnalysis,
# Root/EoverPHists.cxx): EM-scale energy in the EM calorimeter within ΔR < 0.1
# of the track below 1.1 GeV.
MIP_CONE, MIP_EM_MAX_GEV = 0.1, 1.1
# 1996 combined test beam, pions of 10–300 GeV, energy from the e/h method
# (compartment sums at EM scale times e/h factors, no cell weighting):
# σ/E = [58 %/√E + 2.5 %] ⊕ 1.7 GeV/E (hep-ex/0004009, abstract).
E_OVER_H_METHOD = (0.58, 0.025, 1.7)
# e/h of the Tile (Budagov et al., JINR E1-2002-13) and of the LAr EM
# compartment (1.74 ± 0.04, hep-ex/9911033): docs/physics.md §2.
E_OVER_H_RANGE = (1.36, 1.74)


class Pions(NamedTuple):
    """Per-event sums of one sample of π+ at a fixed energy (GeV, EM scale unless truth)."""

    energy: float
    lar: np.ndarray  #: measured energy of PS + EMB1–3, whole window
    tile: np.ndarray  #: measured energy of TileBar0–2, whole window
    deposited: np.ndarray  #: truth energy in the window's cells, all layers
    em_cone: np.ndarray  #: measured EM-layer energy within ΔR < 0.1 of the track
    passes: np.ndarray  #: first interaction beyond the back of EMB3
    expected_pass: np.ndarray  #: exp(−λ_LAr cosh η / λ_π) from the layers' own depths
    em_fraction: np.ndarray


def _config(energy: float, n: int, noise: bool) -> SimulationConfig:
    return SimulationConfig(
        particle="pi+",
        n_events=n,
        e_min=energy,
        e_max=energy,
        eta_min=ETA[0],
        eta_max=ETA[1],
        seed=4,
        noise_scale=1.0 if noise else 0.0,
    )


def _cone_energy(batch, name: str) -> np.ndarray:
    """(N,) measured energy of ``name``'s cells whose centres lie within MIP_CONE of the track."""
    d_eta = batch.eta_centers(name) - batch.truth_eta[:, None]
    d_phi = geometry.wrap_phi(batch.phi_centers(name) - batch.truth_phi[:, None])
    near = d_eta[:, :, None] ** 2 + d_phi[:, None, :] ** 2 < MIP_CONE**2
    return np.where(near, batch.layers[name].energy, 0.0).sum(axis=(1, 2))


@functools.cache
def pions(energy: float, n: int, *, noise: bool) -> Pions:
    """``n`` π+ of ``energy``, simulated 500 at a time so that no (N, cells) array grows large."""
    config = _config(energy, n, noise)
    # λ_I from the origin to the back of EMB3 at η = 0, from the geometry's layer
    # depths and the dead material in front, not from the simulation's stack.
    lar_lambda = config.dead_material_front_lambda + sum(
        geometry.layer(name).depth_lambda for name in EM_LAYERS
    )
    parts = []
    for start in range(0, n, 500):
        batch = simulate_batch(config, start, min(n, start + 500))
        path = np.cosh(batch.truth_eta)

        def total(names, field="energy", batch=batch):
            return sum(getattr(batch.layers[m], field).sum(axis=(1, 2)) for m in names)

        parts.append(
            (
                total(EM_LAYERS),
                total(TILE_LAYERS),
                total(EM_LAYERS + TILE_LAYERS, "calib_total"),
                sum(_cone_energy(batch, name) for name in EM_LAYERS),
                batch.extra["first_interaction_lambda"] > lar_lambda * path,
                np.exp(-lar_lambda * path / config.pion_interaction_length),
                batch.extra["em_fraction"],
            )
        )
    return Pions(energy, *(np.concatenate(column) for column in zip(*parts, strict=True)))


def _width(ratio: np.ndarray) -> float:
    """Half the 16–84 % interval over the median (docs/conventions.md)."""
    q16, median, q84 = np.quantile(ratio, [0.16, 0.5, 0.84])
    return (q84 - q16) / (2.0 * median)


def test_pions_cross_the_lar_without_interacting_as_often_as_its_depth_says():
    """20 GeV: the fraction whose first interaction lies beyond EMB3 is exp(−λ_LAr cosh η / λ_π).

    λ_LAr = 0.2 λ of dead material in front plus the presampler and EMB1–3
    (geometry's depths: 1.248 λ_I at η = 0), λ_π = 1.2 λ_I (docs/physics.md §1,
    §3b.1): 31.7 % at η = 0.45. 2,000 pions: binomial error ≈ 1.0 %, the test
    allows 3.5 of them. No published fraction could be verified for this
    (docs/pion-validation.md): the check is the simulation against its own
    geometry, the number ATLAS's MIP-like pions are compared with below.
    """
    sample = pions(20.0, 2000, noise=True)
    expected = sample.expected_pass.mean()
    error = math.sqrt(expected * (1 - expected) / len(sample.passes))
    assert 0.28 < expected < 0.36
    assert abs(sample.passes.mean() - expected) < 3.5 * error


def test_the_e_over_p_mip_selection_finds_the_pions_that_cross_the_lar():
    """20 GeV, with noise: E_EM(ΔR < 0.1) < 1.1 GeV keeps pions that pass the LAr, and mostly them.

    A pion crossing 22.3 X0 of Pb/LAr at η ≈ 0.45 ionises ≈ 0.26 GeV (10.5 MeV
    per X0, docs/physics.md §3b.1), 0.373 GeV at EM scale (e/mip = 0.7), far
    below the 1.1 GeV cut of the ATLAS E/p MIP selection even with the noise of
    the ≈ 190 cells in the cone (σ ≈ 0.28 GeV): over 95 % of them pass it. The
    selection is meant to pick late showers, so at least 75 % of the pions it
    keeps must not have interacted in the LAr at all (the rest start in EMB3 or
    deposit little). Their mean signal in the cone is the MIP's, within 10 %
    (statistical error ≈ 3 %: the cone's noise over ≈ 600 pions).
    """
    sample = pions(20.0, 2000, noise=True)
    mip_like = sample.em_cone < MIP_EM_MAX_GEV
    assert mip_like[sample.passes].mean() > 0.95
    assert sample.passes[mip_like].mean() > 0.75
    config = _config(20.0, 1, True)
    # Rossi: a MIP loses the critical energy per X0 (docs/physics.md §3b.1).
    layers = [geometry.layer(name) for name in EM_LAYERS]
    mip_gev = sum(lay.depth_x0 * lay.medium.critical_energy_mev for lay in layers) * 1e-3
    expected = mip_gev * np.cosh(np.mean(ETA)) / config.e_over_mip_lar
    assert sample.em_cone[sample.passes].mean() == pytest.approx(expected, rel=0.10)


def test_the_lar_share_falls_and_the_em_scale_response_rises_with_energy():
    """3 → 20 → 180 GeV, noise off: the per-event LAr share falls, the response E/E_beam rises.

    The share: Bock's profile (NIM 186 (1981) 533; a = 0.6165 + 0.3183 ln E)
    carries the non-EM part deeper as E grows, while the pions that cross the
    LAr (31.7 % at η = 0.45) leave only their fixed MIP signal there. The
    response: the EM fraction grows with energy and the non-EM part is seen at
    1/(e/h) < 1, so the EM-scale response is below 1 and rises
    (non-compensation; e/h of docs/physics.md §2). The falling share of dead
    material adds to the rise, so this alone does not prove e/h > 1; the next
    test does. 1,000 pions each, the same seed at every energy, so event i has
    the same interaction depth and draws at every energy and the steps are
    paired differences: each must exceed 5 times its standard error (for the
    share 0.0044 and 0.0017, against steps of 0.110 and 0.026).
    """
    samples = [pions(energy, 1000, noise=False) for energy in (3.0, 20.0, 180.0)]
    share = [s.lar / (s.lar + s.tile) for s in samples]
    response = [(s.lar + s.tile) / s.energy for s in samples]
    for values, sign in ((share, 1.0), (response, -1.0)):
        for low, high in itertools.pairwise(values):
            step = sign * (low - high)
            assert np.mean(step) > 5.0 * np.std(step) / math.sqrt(len(step))
    # At least a purely hadronic LAr shower's 1/1.74 = 0.57, less ≤ 15 % dead material.
    assert np.mean(response[0]) > 0.5
    assert np.mean(response[-1]) < 1.0


def test_the_response_against_the_em_fraction_gives_an_e_over_h_between_tile_and_lar():
    """50 GeV: measured / deposited energy is linear in f_em, 1/(e/h) at f_em = 0 and 1 at f_em = 1.

    Non-compensation in the form the 1996 combined test beam measured it
    (hep-ex/9911033): the visible share of the non-EM energy is 1/(e/h), so the
    response extrapolates to 1/(e/h)_eff for a purely hadronic shower and to 1
    (electron scale) for a purely electromagnetic one. e/h_eff must lie between
    Tile's 1.36 and the LAr's 1.74, since both compartments share the non-EM
    part; the f_em = 1 end within 3 % of 1 (MIP ionisation over e/mip = 0.7
    lifts the signal a little). 1,500 pions with noise: the slope is known to
    ≈ 0.01.
    """
    sample = pions(50.0, 1500, noise=True)
    slope, intercept = np.polyfit(
        sample.em_fraction, (sample.lar + sample.tile) / sample.deposited, 1
    )
    assert 1.0 / E_OVER_H_RANGE[1] < intercept < 1.0 / E_OVER_H_RANGE[0]
    assert slope + intercept == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("energy", [50.0, 100.0])
def test_em_scale_resolution_is_near_the_1996_combined_test_beam(energy):
    """E/E_beam of all window cells, with noise, against [58 %/√E + 2.5 %] ⊕ 1.7 GeV/E.

    The 1996 combined test beam's resolution with the e/h method (hep-ex/0004009,
    abstract; 11.22 % at 50 GeV, 8.47 % at 100 GeV), the nearest published
    figure to an unweighted EM-scale one that could be verified; its 1.7 GeV
    noise term is of the order of the window's 4,000 noisy cells (≈ 1.3 GeV).
    The prototype, its depth and its noise differ from the simulation's, hence
    the generous 0.7–1.3 × band. 1,500 pions: the width is known to ≈ 3 %.
    """
    sample = pions(energy, 1500, noise=True)
    stochastic, constant, noise = E_OVER_H_METHOD
    published = math.hypot(stochastic / math.sqrt(energy) + constant, noise / energy)
    assert 0.7 < _width((sample.lar + sample.tile) / energy) / published < 1.3
