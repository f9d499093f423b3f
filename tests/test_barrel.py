"""Whole events in the whole barrel (`calotools.sim.barrel`), with hand-made particles.

No generator here: each test places the particles it needs, so that the
physics can be checked against what a single particle does.
"""

from __future__ import annotations

import functools
import math

import awkward as ak
import numpy as np
import pytest

from calotools import geometry
from calotools.errors import InvalidValueError
from calotools.sim import moments
from calotools.sim.barrel import (
    KIND_EM,
    KIND_HADRON,
    KIND_INVISIBLE,
    KIND_MUON,
    cluster_truth,
    digitise,
    particle_kinds,
    simulate_deposits,
)
from calotools.sim.cells import BarrelWindow
from calotools.sim.clustering import neighbour_edges, topo_cluster
from calotools.sim.config import SimulationConfig
from calotools.sim.reconstruction import reconstruct
from calotools.sim.simulation import simulate_batch

CONFIG = SimulationConfig()
MASS = {
    22: 0.0,
    11: 0.000511,
    -11: 0.000511,
    211: 0.13957,
    -211: 0.13957,
    13: 0.10566,
    -13: 0.10566,
    14: 0.0,
    2112: 0.93957,
    2212: 0.93827,
}
CHARGE = {
    22: 0.0,
    11: -1.0,
    -11: 1.0,
    211: 1.0,
    -211: -1.0,
    13: -1.0,
    -13: 1.0,
    14: 0.0,
    2112: 0.0,
    2212: 1.0,
}


def particle(pdg: int, e: float, eta: float, phi: float) -> dict[str, float]:
    """A particle of total energy ``e`` from the origin towards (η, φ)."""
    p = math.sqrt(max(e**2 - MASS[pdg] ** 2, 0.0))
    pt = p / math.cosh(eta)
    return {
        "pdg": pdg,
        "charge": CHARGE[pdg],
        "px": pt * math.cos(phi),
        "py": pt * math.sin(phi),
        "pz": pt * math.sinh(eta),
        "e": e,
    }


def events(*lists: list[dict[str, float]]) -> ak.Array:
    return ak.Array(list(lists))


def deposits_of(*lists, seed: int = 1, first: int = 0):
    return simulate_deposits(
        events(*lists), np.arange(first, first + len(lists)), CONFIG, seed=seed
    )


def test_the_barrel_window_is_the_whole_ring_and_its_phi_cells_are_neighbours():
    barrel = BarrelWindow()
    assert barrel.shape("EMB2") == (80, 256)
    assert barrel.shape("TileBar2") == (10, 64)
    edges = neighbour_edges(barrel)
    n_phi = 256
    emb2 = sum(math.prod(barrel.shape(lay.name)) for lay in geometry.LAYERS[:2])
    first, last = emb2, emb2 + n_phi - 1  # EMB2 cells (0, 0) and (0, 255)
    pairs = {tuple(e) for e in edges.tolist()}
    assert (first, last) in pairs
    with pytest.raises(InvalidValueError, match="eta_max"):
        BarrelWindow(eta_max=0.9)


def test_particle_kinds():
    kinds = particle_kinds(np.array([22, 11, -211, 2112, 130, -13, 12, -16]), np.zeros(8))
    assert kinds.tolist() == [
        KIND_EM,
        KIND_EM,
        KIND_HADRON,
        KIND_HADRON,
        KIND_HADRON,
        KIND_MUON,
        KIND_INVISIBLE,
        KIND_INVISIBLE,
    ]


def test_every_gev_of_every_particle_is_accounted_for():
    evs = [
        [
            particle(22, 30.0, 0.2, 1.0),
            particle(211, 12.0, -0.5, -2.0),
            particle(13, 20.0, 0.1, 3.1),
        ],
        [particle(2212, 8.0, 0.9, 0.0), particle(14, 5.0, 0.0, 0.0), particle(11, 4.0, 1.2, 2.0)],
        [particle(22, 3.0, 2.5, 0.0)],  # beyond the barrel's reach: all outside
    ]
    deposits = deposits_of(*evs)
    table = deposits.particles
    generated = np.bincount(table["event"], table["shower_e"], minlength=3)
    assert np.allclose(deposits.calib_total().sum(axis=1) + deposits.lost(), generated, atol=1e-9)
    assert deposits.calib_total()[2].sum() == 0
    # The neutrino and the muon's remaining energy leave the detector.
    neutrino = table[table["pdg"] == 14].iloc[0]
    assert neutrino["escaped_detector"] == pytest.approx(5.0)
    assert neutrino["deposited"] == 0
    muon = table[table["pdg"] == 13].iloc[0]
    # A MIP leaves ≈ 1.5–3 GeV in ≈ 10 λ of iron and lead at η ≈ 0.
    assert 1.0 < muon["deposited"] < 4.0
    assert muon["escaped_detector"] == pytest.approx(
        20.0 - muon["deposited"] - muon[["dead_material_front", "dead_material_cryostat"]].sum(),
        abs=1e-9,
    )
    # The proton's shower has its kinetic energy only.
    proton = table[table["pdg"] == 2212].iloc[0]
    assert proton["shower_e"] == pytest.approx(8.0 - MASS[2212])


def test_a_particle_in_an_event_deposits_as_a_single_particle_does():
    # 300 photons of 10 GeV at η = 0.35 in separate events against the
    # single-particle simulation: same physics, different random streams.
    n = 300
    photons = [[particle(22, 10.0, 0.35, 0.3)] for _ in range(n)]
    barrel = deposits_of(*photons).calib_total().sum(axis=1)
    single = simulate_batch(
        SimulationConfig(
            particle="gamma",
            n_events=n,
            e_min=10.0,
            e_max=10.0,
            eta_min=0.35,
            eta_max=0.35,
            phi_min=0.3,
            phi_max=0.3,
            seed=2,
        ),
        0,
        n,
    )
    window = single.deposited_in_window()
    error = math.hypot(barrel.std(), window.std()) / math.sqrt(n)
    assert abs(barrel.mean() - window.mean()) < 4 * error
    assert barrel.mean() > 8.0  # most of a 10 GeV photon reaches the cells


def test_the_same_event_number_gives_the_same_cells_and_another_does_not():
    evs = [[particle(211, 20.0, 0.1, 0.5), particle(22, 5.0, 0.12, 0.55)]]
    a, b = deposits_of(*evs), deposits_of(*evs)
    assert np.array_equal(a.signal, b.signal)
    assert np.array_equal(a.calib, b.calib)
    c = deposits_of(*evs, first=7)
    assert not np.array_equal(a.signal, c.signal)
    cells_a, cells_b = digitise(a, CONFIG, seed=1), digitise(b, CONFIG, seed=1)
    assert np.array_equal(cells_a.layers["EMB2"].energy, cells_b.layers["EMB2"].energy)


def test_charged_particles_bend_opposite_ways_and_soft_ones_curl_up():
    pt = 2.0
    evs = [
        [particle(211, pt * math.cosh(0.2), 0.2, 0.0)],
        [particle(-211, pt * math.cosh(0.2), 0.2, 0.0)],
    ]
    table = deposits_of(*evs).particles
    plus, minus = table["phi_calo"].to_numpy()
    assert plus < 0 < minus
    assert plus == pytest.approx(-minus, rel=1e-9)
    # Leaving a 2 T field at 1.23 m turns the track by asin(0.3 B R / 2 pT) ≈ 0.18 rad.
    assert 0.1 < minus < 0.4
    soft = deposits_of([particle(211, 0.3, 0.0, 1.0)])
    assert soft.calib_total().sum() == 0
    assert soft.particles["dead_material_front"].iloc[0] == pytest.approx(0.3)


def test_clusters_across_phi_pi_are_whole_and_in_the_right_place():
    # The same 40 GeV photon at φ = 0 and just below φ = π (event numbers equal).
    at_zero = deposits_of([particle(22, 40.0, 0.3, 0.02)], seed=4)
    at_pi = deposits_of([particle(22, 40.0, 0.3, math.pi - 0.02)], seed=4)
    for deposits, phi in ((at_zero, 0.02), (at_pi, math.pi - 0.02)):
        topo = topo_cluster(digitise(deposits, CONFIG, seed=4))
        lead = topo.table.iloc[0]
        assert abs(geometry.wrap_phi(lead["cluster_Phi"] - phi)) < 0.02
        assert lead["cluster_E"] > 30.0
    e_zero = topo_cluster(digitise(at_zero, CONFIG, seed=4)).table["cluster_E"].iloc[0]
    e_pi = topo_cluster(digitise(at_pi, CONFIG, seed=4)).table["cluster_E"].iloc[0]
    assert e_pi == pytest.approx(e_zero, rel=0.02)


def test_cluster_truth_names_the_particle_behind_each_cluster():
    evs = [[particle(22, 50.0, 0.0, 1.0), particle(211, 50.0, 0.0, -2.0)]]
    deposits = deposits_of(*evs, seed=3)
    result = reconstruct(
        digitise(deposits, CONFIG, seed=3),
        truth=functools.partial(cluster_truth, deposits=deposits),
    )
    s = result.clusters.scalars
    photon = s[np.abs(s["cluster_Phi"] - 1.0) < 0.2].iloc[0]
    assert photon["truthPDG"] == 22
    assert photon["truthEMLike"] == 1
    assert photon["truthLeadingFraction"] == pytest.approx(1.0)
    assert photon["cluster_ENG_CALIB_EM"] / photon["cluster_ENG_CALIB_TOT"] == pytest.approx(1.0)
    pion = s[np.abs(s["cluster_Phi"] + 2.0) < 0.3]
    assert (pion["truthPDG"] == 211).all()
    assert np.allclose(
        s["cluster_ENG_CALIB_EM"] + s["cluster_ENG_CALIB_NONEM"], s["cluster_ENG_CALIB_TOT"]
    )
    assert (s["cluster_ENG_CALIB_FRAC_PILEUP"] == 0).all()


def test_out_of_cluster_truth_from_the_bins_near_each_cluster_is_that_of_every_bin():
    evs = [
        [particle(211, 30.0, 0.4, 3.0), particle(22, 8.0, 0.5, 3.1), particle(211, 5.0, -0.9, 0.2)]
    ]
    deposits = deposits_of(*evs, seed=5)
    batch = digitise(deposits, CONFIG, seed=5)
    topo = topo_cluster(batch)
    got = moments.cluster_moments(topo)["cluster_ENG_CALIB_OUT_T"].to_numpy()
    # Every bin of the EMB3 grid against every cluster, the documented rule.
    links = moments._Links.of(topo)
    calib_tot = links.total(topo.cells.weight * links.truth)
    n_eta, n_phi = batch.window.shape("EMB3")
    tpl = moments._template(batch.window)
    grid = geometry.layer("EMB3")
    lo_eta, hi_eta, lo_phi, hi_phi = tpl.fine[tpl.offsets[3]]
    centre_eta, centre_phi = tpl.fine[:, 0] + tpl.fine[:, 1], tpl.fine[:, 2] + tpl.fine[:, 3]
    cell_bin = (centre_eta // (2 * (hi_eta - lo_eta))) * n_phi + centre_phi // (
        2 * (hi_phi - lo_phi)
    )
    clustered = np.bincount(
        cell_bin[topo.cells.cell[links.owns] % tpl.n_cells],
        links.truth[links.owns],
        minlength=n_eta * n_phi,
    )
    outside = np.maximum(moments._binned_truth(batch, n_eta, n_phi)[0] - clustered, 0.0)
    bin_eta = np.repeat(-1.0 + (np.arange(n_eta) + 0.5) * grid.deta, n_phi)
    bin_phi = np.tile(-math.pi + (np.arange(n_phi) + 0.5) * grid.dphi, n_eta)
    eta, phi = topo.table["cluster_Eta"].to_numpy(), topo.table["cluster_Phi"].to_numpy()
    cos = (
        np.cos(bin_phi[None] - phi[:, None]) / np.cosh(eta)[:, None] / np.cosh(bin_eta)[None]
        + np.tanh(eta)[:, None] * np.tanh(bin_eta)[None]
    )
    cone = np.cos(moments.OUT_OF_CLUSTER_CONE * moments._angle_mollier_factor(eta))
    weight = (cos > cone[:, None]) * np.maximum(calib_tot, 0.0)[:, None]
    norm = weight.sum(axis=0)
    expected = (outside * np.divide(weight, norm, out=np.zeros_like(weight), where=norm > 0)).sum(1)
    assert expected.sum() > 0.01
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_bad_particles_are_refused_by_name():
    with pytest.raises(InvalidValueError, match="'pz'"):
        simulate_deposits(
            ak.Array([[{"pdg": 22, "charge": 0.0, "px": 1.0, "py": 0.0, "e": 1.0}]]),
            np.array([0]),
            CONFIG,
            seed=0,
        )
    with pytest.raises(InvalidValueError, match="event_number"):
        simulate_deposits(events([particle(22, 1.0, 0.0, 0.0)]), np.array([0, 1]), CONFIG, seed=0)
