"""Collision events from the real Pythia 8 and FastJet (`calotools.sim.generator`).

A few events per test: a chunk of Pythia candidates takes about two seconds.
"""

from __future__ import annotations

import math
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
def events(sample: str, n: int, seed: int = 3, power: float | None = None) -> ak.Array:
    return generate(GeneratorConfig(sample=sample, n_events=n, seed=seed, pt_hat_bias_power=power))


# JZ2W biased (the default) and unbiased: about 1.3 and 4 chunks of candidates.
N_BIASED, N_UNBIASED = 150, 80
# The JZ2W samples' seed. (With seed 3 the weighted acceptance of the first 330
# biased candidates lies 4 standard errors high: the kept events' weights have a
# long tail from p̂T near the window's lower edge; 8 chunks of seed 21 give
# 0.086 ± 0.006 against 0.09 unbiased.)
JZ_SEED = 4


def candidates(sample: ak.Array) -> int:
    """The candidates a run drew until its last kept event."""
    return int(sample.event_number[-1]) + 1


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """The weighted mean and its standard error (to first order in 1/n)."""
    mean = float(np.sum(weights * values) / np.sum(weights))
    error = float(np.sqrt(np.sum(weights**2 * (values - mean) ** 2)) / np.sum(weights))
    return mean, error


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
    sample = events("jz2w", N_BIASED, JZ_SEED)
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


def test_same_seed_same_weights_and_a_short_biased_run_is_the_start_of_a_long_one():
    long = events("jz2w", N_BIASED, JZ_SEED)
    short = generate(GeneratorConfig(sample="jz2w", n_events=6, seed=JZ_SEED))
    assert ak.array_equal(short, long[:6])
    assert np.array_equal(ak.to_numpy(short.weight), ak.to_numpy(long.weight[:6]))
    # Biased: the weights vary, and within a chunk fall with p̂T as (p̂T)^-3.
    first = long[ak.to_numpy(long.event_number) < generator.CHUNK]
    weight, pt_hat = ak.to_numpy(first.weight), ak.to_numpy(first.pt_hat)
    assert np.ptp(weight) > 0
    # (Not exactly: Pythia biases with the p̂T of its phase-space point; pt_hat,
    # with c and b masses, differs from it by up to ~1e-3.)
    scaled = weight * pt_hat**3
    assert np.allclose(scaled, np.median(scaled), rtol=1e-2)


def test_unbiased_and_minimum_bias_events_all_weigh_one():
    assert np.all(ak.to_numpy(events("jz2w", N_UNBIASED, JZ_SEED, power=0.0).weight) == 1.0)
    assert np.all(ak.to_numpy(events("minbias", 20).weight) == 1.0)


def test_weighted_biased_jz2w_has_the_unbiased_leading_jet_spectrum_and_acceptance():
    biased = events("jz2w", N_BIASED, JZ_SEED)
    unbiased = events("jz2w", N_UNBIASED, JZ_SEED, power=0.0)
    weight = ak.to_numpy(biased.weight)
    lead_biased, lead_unbiased = (ak.to_numpy(s.leading_jet_pt) for s in (biased, unbiased))
    reference = (lead_unbiased.mean(), lead_unbiased.std(ddof=1) / np.sqrt(len(lead_unbiased)))
    weighted = weighted_mean(lead_biased, weight)
    unweighted = weighted_mean(lead_biased, np.ones_like(weight))
    # Within 3 standard errors with the weights; without them the test would see the bias.
    assert abs(weighted[0] - reference[0]) < 3 * np.hypot(weighted[1], reference[1])
    assert unweighted[0] - reference[0] > 3 * np.hypot(unweighted[1], reference[1])

    # The candidates' weights average to 1: the kept weights / candidates is the
    # unbiased acceptance, which the unbiased run measures as kept / candidates.
    n_biased, n_unbiased = candidates(biased), candidates(unbiased)
    kept_weight = np.zeros(n_biased)
    kept_weight[ak.to_numpy(biased.event_number)] = weight
    estimate = kept_weight.mean(), kept_weight.std(ddof=1) / np.sqrt(n_biased)
    acceptance = len(unbiased) / n_unbiased
    acceptance_error = np.sqrt(acceptance * (1 - acceptance) / n_unbiased)
    assert abs(estimate[0] - acceptance) < 3 * np.hypot(estimate[1], acceptance_error)
    # ... and the bias keeps a larger share of the candidates (about 4 times).
    share = len(biased) / n_biased
    share_error = np.sqrt(share * (1 - share) / n_biased)
    assert share - acceptance > 3 * np.hypot(share_error, acceptance_error)
    assert share > 2.5 * acceptance


def test_the_bias_power_defaults_by_sample_and_is_refused_out_of_range():
    assert GeneratorConfig(sample="jz2w").pt_hat_bias_power == 3.0
    assert GeneratorConfig(sample="minbias").pt_hat_bias_power == 0.0
    assert GeneratorConfig(sample="jz2w") == GeneratorConfig(sample="jz2w", pt_hat_bias_power=3)
    assert GeneratorConfig(sample="jz2w").to_dict()["pt_hat_bias_power"] == 3.0
    settings = GeneratorConfig(sample="jz2w", pt_hat_bias_power=0).pythia_settings(0)
    assert not any("bias2Selection" in setting for setting in settings)
    assert "PhaseSpace:bias2SelectionPow = 3" in GeneratorConfig().pythia_settings(0)
    for power in (-1.0, 11.0, math.nan):
        with pytest.raises(InvalidValueError, match="pt_hat_bias_power"):
            GeneratorConfig(sample="jz2w", pt_hat_bias_power=power)
    with pytest.raises(InvalidValueError, match="minbias"):
        GeneratorConfig(sample="minbias", pt_hat_bias_power=3.0)


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
