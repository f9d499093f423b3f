"""Samples at several ⟨μ⟩ with the same hard scatter (`calotools.sim.pileup_samples`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import uproot

from calotools import ntuple
from calotools.errors import InvalidValueError
from calotools.sim import event_samples, samples
from calotools.sim.pileup_samples import make_series, partner_fraction, partners, series_path

pytest.importorskip("pythia8mc", reason="the [events] extra is not installed")

LIBRARY_EVENTS = 8


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> dict[float, ntuple.Clusters]:
    """π± at ⟨μ⟩ = 0, 50 of one seed, 2-200 GeV, on a small real minimum-bias library."""
    folder = tmp_path_factory.mktemp("series")
    paths = make_series(
        folder,
        "pipm",
        mu_values=(0.0, 50.0),
        n_events=160,
        library_events=LIBRARY_EVENTS,
        progress=False,
        workers=1,
    )
    assert paths[50.0] == series_path(folder, "pipm", 50)
    return {mu: ntuple.read_clusters(path) for mu, path in paths.items()}


def test_every_file_of_a_series_holds_the_same_hard_scatter_events(series):
    clean, noisy = series[0.0].scalars, series[50.0].scalars
    truth = ["eventNumber", "truthE", "truthEta", "truthPhi", "truthPDG"]
    per_event = [
        t[truth].drop_duplicates().set_index("eventNumber").sort_index() for t in (clean, noisy)
    ]
    shared = per_event[0].index.intersection(per_event[1].index)
    assert len(shared) > 0.9 * len(per_event[0])
    pd.testing.assert_frame_equal(per_event[0].loc[shared], per_event[1].loc[shared])
    assert set(noisy["averageInteractionsPerCrossing"]) == {50.0}
    assert set(clean["averageInteractionsPerCrossing"]) == {0.0}
    assert noisy["actualInteractionsPerCrossing"].mean() == pytest.approx(50.0, rel=0.1)
    assert clean["cluster_ENG_CALIB_FRAC_PILEUP"].max() == 0.0
    assert noisy["cluster_ENG_CALIB_FRAC_PILEUP"].median() > 0.0


def test_most_energetic_clusters_keep_their_partner_and_partners_are_the_same_shower(series):
    clean, noisy = series[0.0], series[50.0]
    rows, partner = partners(clean, noisy)
    assert len(rows) == len(np.unique(rows))
    assert len(partner) == len(np.unique(partner))
    a, b = clean.scalars.iloc[rows], noisy.scalars.iloc[partner]
    assert np.array_equal(a["eventNumber"].to_numpy(), b["eventNumber"].to_numpy())
    energetic = clean.scalars["cluster_ENG_CALIB_TOT"].to_numpy() > 5.0
    assert partner_fraction(clean, noisy, energetic) > 0.8
    # Partners carry the same hard-scatter truth energy, and pile-up adds to it.
    hard = a["cluster_ENG_CALIB_TOT"].to_numpy()
    big = hard > 5.0
    ratio = b["cluster_ENG_CALIB_TOT"].to_numpy()[big] / hard[big]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
    assert np.median(b["cluster_E"].to_numpy()[big] - a["cluster_E"].to_numpy()[big]) > 0


def test_a_file_is_its_own_partner_file():
    frame = pd.DataFrame(
        {"eventNumber": [0, 0, 1], "cluster_Eta": [0.1, 0.3, 0.1], "cluster_Phi": [3.1, -3.1, 0.0]}
    )
    rows, partner = partners(frame, frame)
    assert rows.tolist() == partner.tolist() == [0, 1, 2]
    with pytest.raises(InvalidValueError, match="noisy clusters have no cluster_Phi"):
        partners(frame, frame.drop(columns="cluster_Phi"))
    with pytest.raises(InvalidValueError, match="max_dr"):
        partners(frame, frame, max_dr=0.0)


def test_mu_zero_with_a_library_is_the_sample_without_pileup(tmp_path):
    library = event_samples.make_pileup_library(tmp_path / "lib.npz", n_events=4, seed=3)
    plain = samples.make_sample(
        "pi0", tmp_path / "plain.root", n_events=60, seed=2, progress=False, workers=1
    )
    zero = samples.make_sample(
        "pi0",
        tmp_path / "zero.root",
        n_events=60,
        seed=2,
        mu=0.0,
        library=library,
        progress=False,
        workers=1,
    )
    a, b = ntuple.read_clusters(plain), ntuple.read_clusters(zero)
    pd.testing.assert_frame_equal(a.scalars, b.scalars[a.scalars.columns])
    for name, image in a.images.items():
        assert np.array_equal(image, b.images[name])


def test_pileup_without_a_library_and_bad_series_are_refused(tmp_path):
    with pytest.raises(InvalidValueError, match="needs a pile-up library"):
        samples.make_sample("pi0", tmp_path / "x.root", n_events=10, mu=40.0, progress=False)
    with pytest.raises(InvalidValueError, match="is not a file"):
        samples.make_sample(
            "pi0",
            tmp_path / "x.root",
            n_events=10,
            mu=40.0,
            library=tmp_path / "none.npz",
            progress=False,
        )
    with pytest.raises(InvalidValueError, match="mu"):
        samples.make_sample("pi0", tmp_path / "x.root", n_events=10, mu=-1.0, progress=False)
    with pytest.raises(InvalidValueError, match="unknown sample 'kaon'"):
        make_series(tmp_path, "kaon", mu_values=(0.0,), progress=False)
    with pytest.raises(InvalidValueError, match="mu_values"):
        make_series(tmp_path, "pi0", mu_values=(-5.0,), progress=False)


def test_the_command_line_writes_a_single_particle_sample_with_pileup_and_its_pair(
    tmp_path, monkeypatch
):
    from calotools import cli

    monkeypatch.setenv("CALOTOOLS_QUICK", "1")
    monkeypatch.setitem(event_samples.LIBRARY_EVENTS, "quick", 4)  # a small library: fast
    out = tmp_path / "pi0_mu30.root"
    argv = ["simulate", "--sample", "pi0", "--mu", "30", "--pairs", "--n", "30", "--workers", "1"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    noisy = ntuple.read_clusters(out).scalars
    clean = ntuple.read_clusters(event_samples.pair_path(out)).scalars
    assert set(noisy["averageInteractionsPerCrossing"]) == {30.0}
    assert set(clean["averageInteractionsPerCrossing"]) == {0.0}
    assert set(clean["eventNumber"]) <= set(noisy["eventNumber"])
    assert event_samples.library_path_for(tmp_path, seed=0, n_events=4).is_file()


def test_photon_and_dijet_series_share_their_hard_scatter_across_mu(tmp_path):
    photons, jets = (
        make_series(
            tmp_path,
            sample,
            mu_values=(0.0, 30.0),
            n_events=n,
            library_events=4,
            progress=False,
            workers=1,
        )
        for sample, n in (("gamma", 40), ("jz2w", 2))
    )
    for paths in (photons, jets):
        clean, noisy = (ntuple.read_clusters(paths[mu]).scalars for mu in (0.0, 30.0))
        assert set(noisy["averageInteractionsPerCrossing"]) == {30.0}
        assert set(clean["eventNumber"]) <= set(noisy["eventNumber"])
        rows, _ = partners(clean, noisy)
        energetic = clean["cluster_ENG_CALIB_TOT"].to_numpy()[rows] > 5.0
        assert energetic.any()
    assert set(ntuple.read_clusters(photons[0.0]).scalars["truthPDG"]) == {22}
    # One library for the whole folder, whatever the sample.
    assert len(list(tmp_path.glob("minbias_library_*.npz"))) == 1
    # The dijet events themselves: the same generator truth at both ⟨μ⟩.
    truth = [
        uproot.open(jets[mu])["EventTree"].arrays(
            ["eventNumber", "ptHat", "leadingTruthJetPt"], library="np"
        )
        for mu in (0.0, 30.0)
    ]
    for name in truth[0]:
        assert np.array_equal(truth[0][name], truth[1][name])
