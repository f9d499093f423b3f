"""Files of collision events, end to end with the real Pythia, FastJet and uproot."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot

from calotools import cli, jets, ntuple
from calotools.errors import InvalidValueError
from calotools.sim import generator
from calotools.sim.event_samples import EVENT_TREE, make_event_sample, pair_path

pytest.importorskip("pythia8mc", reason="the [events] extra is not installed")
pytest.importorskip("fastjet", reason="the [events] extra is not installed")


@pytest.fixture(scope="module")
def jz2w(tmp_path_factory):
    folder = tmp_path_factory.mktemp("events")
    return make_event_sample(
        "jz2w", folder / "jz2w.root", n_events=5, seed=2, progress=False, workers=1
    )


def test_a_jet_file_has_clusters_every_loader_reads_and_an_event_tree(jz2w):
    clusters = ntuple.read_clusters(jz2w)
    s = clusters.scalars
    assert len(s) > 50  # dijets of 60-160 GeV make dozens of clusters per event
    assert set(clusters.images) == set(ntuple.IMAGE_BRANCHES)
    for name in (
        "truthEMLike",
        "cluster_ENG_CALIB_FRAC_PILEUP",
        "mcEventWeight",
        "actualInteractionsPerCrossing",
    ):
        assert name in s
    assert (s["averageInteractionsPerCrossing"] == 0).all()
    assert s["eventNumber"].nunique() == 5
    events = uproot.open(jz2w)[EVENT_TREE].arrays()
    assert len(events) == 5
    assert np.array_equal(np.unique(s["eventNumber"]), np.sort(events.eventNumber.to_numpy()))
    # The slice: the leading truth jet of every event in 60–160 GeV.
    lead = events.leadingTruthJetPt.to_numpy()
    assert ((lead >= 60) & (lead < 160)).all()
    # Jets of clusters at EM scale carry a good part of a 60-160 GeV jet's pT
    # (an event whose jets are all beyond |η| ≈ 1 has none).
    em = jets.cluster_jets(
        s["eventNumber"],
        s["cluster_E"],
        s["cluster_Eta"],
        s["cluster_Phi"],
        event_numbers=events.eventNumber.to_numpy(),
    )
    assert float(ak.max(em.pt)) > 20.0
    assert float(ak.max(events.truthJetPt)) >= 60.0
    sidecar = json.loads(jz2w.with_suffix(".json").read_text())
    assert sidecar["configuration"]["sample"] == "jz2w"


def test_the_same_seed_gives_the_same_file_and_another_number_of_workers_too(jz2w, tmp_path):
    again = make_event_sample(
        "jz2w", tmp_path / "again.root", n_events=5, seed=2, progress=False, workers=2
    )
    a, b = ntuple.read_clusters(jz2w), ntuple.read_clusters(again)
    assert a.scalars.equals(b.scalars)
    assert np.array_equal(a.images["EMB2"], b.images["EMB2"])


def test_pileup_adds_energy_is_recorded_and_comes_with_its_pair_without(tmp_path):
    path = make_event_sample(
        "minbias",
        tmp_path / "mb_mu5.root",
        n_events=4,
        mu=5.0,
        seed=1,
        library_events=8,
        pairs=True,
        progress=False,
        workers=1,
    )
    s = ntuple.read_clusters(path).scalars
    assert (s["averageInteractionsPerCrossing"] == 5.0).all()
    assert s["actualInteractionsPerCrossing"].max() > 0
    assert s["cluster_ENG_CALIB_FRAC_PILEUP"].max() > 0.5
    assert list(tmp_path.glob("minbias_library_*.npz"))
    # The pair: the same hard-scatter events, no pile-up in any cluster, less energy.
    alone = ntuple.read_clusters(pair_path(path)).scalars
    assert set(alone["eventNumber"]) <= set(s["eventNumber"])
    assert (alone["cluster_ENG_CALIB_FRAC_PILEUP"] == 0).all()
    assert (alone["averageInteractionsPerCrossing"] == 0).all()
    assert alone["cluster_E"].sum() < s["cluster_E"].sum()
    # Pile-up brings no calibration hits: clusters of pile-up alone have no truth energy.
    only_pileup = s["cluster_ENG_CALIB_FRAC_PILEUP"] == 1.0
    assert only_pileup.any()
    assert (s.loc[only_pileup, "cluster_ENG_CALIB_TOT"] == 0).all()
    with pytest.raises(InvalidValueError, match="mu > 0"):
        make_event_sample("minbias", tmp_path / "x.root", n_events=2, pairs=True)


def test_bad_requests_are_refused_by_name(tmp_path, capsys):
    with pytest.raises(InvalidValueError, match="unknown event sample"):
        make_event_sample("jz9w", tmp_path / "x.root", n_events=2)
    with pytest.raises(InvalidValueError, match="n_events"):
        make_event_sample("jz2w", tmp_path / "x.root", n_events=0)
    assert (
        cli.main(["simulate", "--sample", "pi0", "--pairs", "--out", str(tmp_path / "p.root")]) == 2
    )
    assert "--pairs needs --mu > 0" in capsys.readouterr().err


def test_the_command_line_knows_the_generator_samples_and_makes_one(tmp_path):
    assert cli._EVENT_SAMPLES == generator.SAMPLES
    out = tmp_path / "mb.root"
    assert (
        cli.main(
            ["simulate", "--sample", "minbias", "--n", "3", "--workers", "1", "--out", str(out)]
        )
        == 0
    )
    assert len(uproot.open(out)[EVENT_TREE]["eventNumber"].array()) == 3
