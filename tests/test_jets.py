"""Jets from clusters with the real FastJet, matching to truth jets, response (`calotools.jets`)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from calotools import metrics
from calotools.errors import InvalidTypeError, InvalidValueError
from calotools.jets import (
    MATCH_MAX_DR,
    cluster_jets,
    jet_response,
    match_jets,
    response_table,
)
from calotools.sim.generator import truth_jets


@pytest.fixture
def fastjet():
    """Jet finding needs the [events] extra; matching and response do not."""
    return pytest.importorskip("fastjet", reason="the [events] extra is not installed")


def massless_pt(energy, eta):
    return np.asarray(energy) / np.cosh(eta)


# ---------------------------------------------------------------------------- cluster_jets


def test_two_well_separated_groups_of_clusters_give_two_jets_with_their_summed_pt(fastjet):
    # Group A: three clusters at φ ≈ 0; group B: two clusters back to back with it, all at η = 0,
    # so the jets' pT is the clusters' scalar pT sum (collinear within a group up to ΔR 0.1).
    energy = np.array([30.0, 20.0, 10.0, 25.0, 15.0])
    eta = np.zeros(5)
    phi = np.array([0.0, 0.0, 0.0, np.pi, np.pi])
    jets = cluster_jets(np.zeros(5, dtype=int), energy, eta, phi)
    assert ak.num(jets).tolist() == [2]
    assert np.allclose(ak.to_numpy(jets.pt[0]), [60.0, 40.0])
    assert np.allclose(ak.to_numpy(jets.e[0]), [60.0, 40.0])
    assert np.allclose(np.abs(ak.to_numpy(jets.phi[0])), [0.0, np.pi])
    assert jets.fields == ["pt", "eta", "phi", "e"]


def test_jet_pt_is_the_vector_sum_of_nearby_clusters_at_any_eta(fastjet):
    energy, eta, phi = [40.0, 30.0], [1.2, 1.3], [0.5, 0.6]
    jets = cluster_jets([7, 7], energy, eta, phi)
    pt = massless_pt(energy, eta)
    px, py = np.sum(pt * np.cos(phi)), np.sum(pt * np.sin(phi))
    assert np.allclose(ak.to_numpy(jets.pt[0]), [np.hypot(px, py)])
    assert np.allclose(ak.to_numpy(jets.e[0]), [70.0])
    assert 1.2 < jets.eta[0, 0] < 1.3


def test_clusters_with_negative_or_zero_energy_are_left_out(fastjet):
    jets = cluster_jets([0, 0, 0], [50.0, -8.0, 0.0], [0.0, 0.05, 0.1], [0.0, 0.05, 0.1])
    assert np.allclose(ak.to_numpy(jets.pt[0]), [50.0])


def test_an_event_without_clusters_gives_an_empty_list_in_its_place(fastjet):
    jets = cluster_jets([5, 3], [30.0, 40.0], [0.0, 0.0], [0.0, 1.0], event_numbers=[3, 4, 5])
    assert ak.num(jets).tolist() == [1, 0, 1]
    assert np.allclose(ak.to_numpy(ak.flatten(jets.pt)), [40.0, 30.0])
    nothing = cluster_jets([], [], [], [], event_numbers=[0, 1])
    assert ak.num(nothing).tolist() == [0, 0]


def test_unsorted_clusters_land_in_their_own_events_and_jets_come_highest_pt_first(fastjet):
    event = [2, 0, 2, 0, 2]
    energy = [10.0, 20.0, 30.0, 6.0, 70.0]
    phi = [0.0, 0.0, 2.0, 3.0, -2.0]
    jets = cluster_jets(event, energy, np.zeros(5), phi)
    assert ak.num(jets).tolist() == [2, 3]  # events 0 and 2, in increasing order
    assert ak.to_list(jets.pt[0]) == pytest.approx([20.0, 6.0])
    assert ak.to_list(jets.pt[1]) == pytest.approx([70.0, 30.0, 10.0])


def test_jets_below_min_pt_are_dropped(fastjet):
    jets = cluster_jets([0, 0], [50.0, 4.0], [0.0, 0.0], [0.0, 2.0])
    assert ak.to_list(jets.pt[0]) == pytest.approx([50.0])  # the 4 GeV jet is below 5 GeV
    jets = cluster_jets([0, 0], [50.0, 4.0], [0.0, 0.0], [0.0, 2.0], min_pt=1.0)
    assert ak.to_list(jets.pt[0]) == pytest.approx([50.0, 4.0])


def test_the_radius_decides_whether_two_clusters_are_one_jet(fastjet):
    args = ([0, 0], [30.0, 20.0], [0.0, 0.0], [0.0, 0.5])
    assert ak.num(cluster_jets(*args)).tolist() == [2]
    assert ak.num(cluster_jets(*args, radius=0.6)).tolist() == [1]


def test_clusters_of_particles_make_the_truth_jets_of_those_particles(fastjet):
    # The same massless particles as clusters and as generator particles give the same jets.
    energy = np.array([40.0, 25.0, 12.0, 33.0])
    eta = np.array([0.2, 0.3, -1.0, 1.5])
    phi = np.array([0.1, 0.2, 2.5, -2.0])
    pt = massless_pt(energy, eta)
    particles = ak.Array(
        [
            {
                "pdg": [211, 22, 22, -211],
                "px": (pt * np.cos(phi)).tolist(),
                "py": (pt * np.sin(phi)).tolist(),
                "pz": (pt * np.sinh(eta)).tolist(),
                "e": energy.tolist(),
            }
        ]
    )
    reco = cluster_jets(np.zeros(4, dtype=int), energy, eta, phi)
    truth = truth_jets(particles)
    for field in ("pt", "eta", "phi", "e"):
        assert np.allclose(ak.to_numpy(reco[field][0]), ak.to_numpy(truth[field][0]))


def test_fastjet_stays_silent(fastjet, capfd):
    cluster_jets([0], [30.0], [0.0], [0.0])
    out, err = capfd.readouterr()
    assert "FastJet" not in out + err


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"energy": [30.0]}, "energy 1"),
        ({"eta": [[0.0, 0.0]]}, "eta must hold one value"),
        ({"phi": [0.0, np.nan]}, "phi has 1 NaN"),
        ({"radius": 0.0}, "radius must be a positive"),
        ({"radius": -0.4}, "radius"),
        ({"min_pt": -1.0}, "min_pt"),
        ({"event_numbers": [0, 0]}, "event_numbers must list each event once"),
        ({"event_numbers": [1]}, r"not in event_numbers \(e.g. \[0\]\)"),
    ],
)
def test_bad_cluster_inputs_are_refused_by_name(kwargs, named):
    args = {"event": [0, 0], "energy": [30.0, 20.0], "eta": [0.0, 0.0], "phi": [0.0, 1.0]}
    with pytest.raises(InvalidValueError, match=named):
        cluster_jets(**(args | kwargs))


def test_event_numbers_must_be_integers():
    with pytest.raises(InvalidTypeError, match="event must be integers"):
        cluster_jets([0.5], [30.0], [0.0], [0.0])


# ---------------------------------------------------------------------------- match_jets


def jets_at(*events):
    """Events of jets from (pt, eta, phi) tuples, typed even where every event is empty."""
    flat = np.array([jet for event in events for jet in event], dtype=np.float64).reshape(-1, 3)
    records = ak.zip({"pt": flat[:, 0], "eta": flat[:, 1], "phi": flat[:, 2]})
    return ak.unflatten(records, [len(event) for event in events])


def test_each_reco_jet_is_matched_to_its_nearest_truth_jet_of_its_own_event():
    reco = jets_at([(50, 0.0, 0.0), (30, 1.0, 2.0)], [(20, 0.0, 0.0)])
    truth = jets_at([(35, 1.05, 2.0), (55, 0.1, 0.0), (40, 0.2, 0.0)], [(25, 0.0, 1.0)])
    # Event 1's truth jet is ΔR = 1 away: no partner.
    assert match_jets(reco, truth).tolist() == [[1, 0], [-1]]


def test_a_truth_jet_beyond_max_dr_is_no_partner():
    reco = jets_at([(50, 0.0, 0.0)])
    truth = jets_at([(50, MATCH_MAX_DR + 0.01, 0.0)])
    assert match_jets(reco, truth).tolist() == [[-1]]
    assert match_jets(reco, truth, max_dr=0.4).tolist() == [[0]]


def test_matching_works_across_phi_equal_plus_minus_pi():
    reco = jets_at([(50, 0.0, np.pi - 0.05)])
    truth = jets_at([(50, 0.0, -np.pi + 0.05)])  # ΔR = 0.1, not 2π − 0.1
    assert match_jets(reco, truth).tolist() == [[0]]


def test_events_without_jets_on_either_side_match_nothing():
    reco = jets_at([], [(50, 0.0, 0.0)], [])
    truth = jets_at([(50, 0.0, 0.0)], [], [])
    assert match_jets(reco, truth).tolist() == [[], [-1], []]
    # Lists of no jets at all, written by hand, have no fields: still events without jets.
    assert match_jets(ak.Array([[], []]), ak.Array([[], []])).tolist() == [[], []]


@pytest.mark.parametrize(
    ("reco", "truth", "kwargs", "named"),
    [
        (jets_at([]), jets_at([], []), {}, "reco has 1 events but truth has 2"),
        (ak.Array([[{"pt": 1.0}]]), jets_at([]), {}, "reco must be events of jets"),
        (jets_at([]), ak.Array([1.0]), {}, "truth must be events of jets"),
        (jets_at([]), jets_at([]), {"max_dr": 0.0}, "max_dr must be a positive"),
    ],
)
def test_bad_matching_inputs_are_refused_by_name(reco, truth, kwargs, named):
    with pytest.raises(InvalidValueError, match=named):
        match_jets(reco, truth, **kwargs)


# ---------------------------------------------------------------------------- response


def test_a_response_of_exactly_0_9_has_median_0_9_and_zero_width():
    truth = np.geomspace(20.0, 500.0, 200)
    table = response_table(0.9 * truth, truth, [20.0, 100.0, 600.0])
    assert table["count"].tolist() == [int(np.sum(truth < 100.0)), int(np.sum(truth >= 100.0))]
    assert np.allclose(table["median"], 0.9)
    assert np.allclose(table["resolution"], 0.0)


def test_the_response_table_uses_the_cluster_definitions_of_metrics():
    rng = np.random.default_rng(4)
    truth = rng.uniform(20.0, 200.0, 3000)
    reco = truth * rng.normal(0.95, 0.1, 3000)
    edges = [20.0, 60.0, 200.0]
    table = response_table(reco, truth, edges)
    expected = metrics.binned_response(truth, reco, edges)
    assert table.equals(expected)
    # The resolution is (q84 − q16) / (2 · median): about 0.1 / 0.95 here.
    assert np.allclose(table["resolution"], 0.1 / 0.95, rtol=0.1)


def test_jet_response_matches_then_tabulates_and_leaves_unmatched_jets_out():
    reco = jets_at([(45, 0.0, 3.1), (100, 2.0, 0.0)], [(27, 0.0, 0.0)])
    truth = jets_at([(50, 0.05, -3.1)], [(30, 0.05, 0.0), (90, -2.0, 1.0)])
    table = jet_response(reco, truth, [20.0, 40.0, 80.0], min_count=1)
    assert table["count"].tolist() == [1, 1]
    assert np.allclose(table["median"], 0.9)


@pytest.mark.parametrize(
    ("reco_pt", "truth_pt", "named"),
    [
        ([1.0, 2.0], [1.0], "reco_pt has 2 jets but truth_pt has 1"),
        ([1.0], [0.0], "truth_pt must be positive"),
        ([np.nan], [1.0], "reco_pt has 1 NaN"),
    ],
)
def test_bad_response_inputs_are_refused_by_name(reco_pt, truth_pt, named):
    with pytest.raises(InvalidValueError, match=named):
        response_table(reco_pt, truth_pt, [0.5, 10.0])


def test_jet_response_needs_pt():
    jets = ak.Array([[{"eta": 0.0, "phi": 0.0}]])
    with pytest.raises(InvalidValueError, match="reco_jets must have a field pt"):
        jet_response(jets, jets, [1.0, 10.0])
