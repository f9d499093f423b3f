"""Collision events from the real Pythia 8 and FastJet (`calotools.sim.generator`).

A few events per test: a chunk of Pythia candidates takes about a second.
"""

from __future__ import annotations

from functools import cache

import awkward as ak
import numpy as np
import pytest

from calotools.errors import InvalidValueError
from calotools.sim import generator
from calotools.sim.generator import GeneratorConfig, generate, truth_jets

pytest.importorskip("pythia8mc", reason="the [events] extra is not installed")
pytest.importorskip("fastjet", reason="the [events] extra is not installed")


@cache
def events(sample: str, n: int, seed: int = 3) -> ak.Array:
    return generate(GeneratorConfig(sample=sample, n_events=n, seed=seed))


def test_minimum_bias_events_hold_stable_particles_with_their_charges():
    sample = events("minbias", 20)
    assert len(sample) == 20
    particles = ak.flatten(sample.particles)
    pdg = ak.to_numpy(particles.pdg)
    charge = ak.to_numpy(particles.charge)
    # π0 decay (cτ = 25 nm); K0S (cτ = 27 mm) is stable at generator level.
    assert not np.any(pdg == 111)
    assert np.all(charge[pdg == 22] == 0)
    assert np.all(charge[pdg == 211] == 1)
    assert np.all(charge[pdg == -211] == -1)
    assert np.all(charge[pdg == 2212] == 1)
    assert np.all(ak.to_numpy(particles.e) > 0)
    # Charged pions are the most common stable hadrons of a minimum-bias event.
    assert np.sum(abs(pdg) == 211) > np.sum(abs(pdg) == 321)
    mass2 = ak.to_numpy(particles.e**2 - particles.px**2 - particles.py**2 - particles.pz**2)
    assert np.allclose(np.sqrt(np.clip(mass2[pdg == 22], 0, None)), 0, atol=1e-3)


def test_jz2w_events_have_their_leading_truth_jet_in_the_slice():
    sample = events("jz2w", 6)
    low, high = generator.JZ_SLICES["jz2w"]
    lead = ak.to_numpy(sample.leading_jet_pt)
    assert np.all((lead >= low) & (lead < high))
    pt_hat = ak.to_numpy(sample.pt_hat)
    assert np.all(pt_hat >= low * generator.PT_HAT_WINDOW[0])
    assert np.all(pt_hat <= high * generator.PT_HAT_WINDOW[1])
    # The numbers are the candidates', increasing, with gaps where events were dropped.
    numbers = ak.to_numpy(sample.event_number)
    assert np.all(np.diff(numbers) > 0)
    # The jets are found again from the particles alone.
    again = truth_jets(sample.particles)
    assert np.allclose(ak.to_numpy(ak.firsts(again.pt)), lead)


def test_same_seed_same_events_and_a_short_run_is_the_start_of_a_long_one():
    first = events("minbias", 20)
    assert ak.array_equal(
        generate(GeneratorConfig(sample="minbias", n_events=5, seed=3)), first[:5]
    )
    other = events("minbias", 20, seed=4)
    assert not ak.array_equal(other.particles[:5], first.particles[:5])


def test_pythia_stays_silent_unless_asked(capfd):
    generate(GeneratorConfig(sample="minbias", n_events=1, seed=9))
    out, err = capfd.readouterr()
    assert "PYTHIA" not in out + err
    generate(GeneratorConfig(sample="minbias", n_events=1, seed=9, verbose=True))
    out, _ = capfd.readouterr()
    assert "PYTHIA" in out


def test_truth_jets_of_two_back_to_back_particles_leave_out_neutrinos():
    # One event: a 100 GeV pion and a 50 GeV photon back to back, a neutrino beside the pion.
    particles = ak.Array(
        [
            {
                "pdg": [211, 22, 12],
                "px": [100.0, -50.0, 30.0],
                "py": [0.0, 0.0, 1.0],
                "pz": [0.0, 0.0, 0.0],
                "e": [100.0001, 50.0, 30.02],
            }
        ]
    )
    jets = truth_jets(particles)
    assert ak.to_list(ak.num(jets)) == [2]
    assert np.allclose(ak.to_numpy(jets.pt[0]), [100.0, 50.0], rtol=1e-6)
    assert np.allclose(abs(ak.to_numpy(jets.phi[0])), [0.0, np.pi])


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [("sample", "jz9w", "sample"), ("n_events", 0, "n_events"), ("sqrt_s", -1.0, "sqrt_s")],
)
def test_bad_settings_are_refused_by_name(field, value, named):
    with pytest.raises(InvalidValueError, match=named):
        GeneratorConfig(**{field: value})


def test_each_chunk_has_its_own_pythia_seed_in_pythias_range():
    config = GeneratorConfig(sample="jz2w", seed=0)
    seeds = {config.pythia_seed(chunk) for chunk in range(100)}
    assert len(seeds) == 100
    assert all(1 <= seed <= 900_000_000 for seed in seeds)
    assert GeneratorConfig(sample="jz1w", seed=0).pythia_seed(0) != config.pythia_seed(0)
