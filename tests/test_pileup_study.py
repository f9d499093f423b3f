"""The study of notebook 09 (`calotools.pileup_study`) on a small real series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calotools import pileup_study
from calotools.errors import InvalidValueError
from calotools.sim import samples
from calotools.study import StudyContext

pytest.importorskip("pythia8mc", reason="the [events] extra is not installed")

SELECTION = "abs(cluster_Eta) < 0.7 and cluster_ENG_CALIB_TOT > 0.2 and cluster_E > 0"
BRANCHES = [
    "cluster_E",
    "cluster_E_LCCalib",
    "cluster_EM_PROBABILITY",
    "cluster_ENG_CALIB_TOT",
    "cluster_Eta",
    "cluster_Phi",
    "eventNumber",
    "EMB1",
    "EMB2",
    "EMB3",
]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    samples.make_lcw_tables(folder / samples.LCW_TABLES, n_events=1500, progress=False)
    context = StudyContext(data=samples.DefaultDataSet(folder), quick=True)
    return pileup_study.series(
        context, mu_values=(0.0, 60.0), n_events=400, library_events=8, workers=1
    )


def lcw_classifier(clusters):
    """LCW's own classification: P(π±) = 1 − the EM probability of its tables."""
    return 1.0 - clusters.scalars["cluster_EM_PROBABILITY"].to_numpy()


def test_the_lcw_classification_is_scored_on_the_test_events_at_each_mu(datasets):
    assert sorted(datasets) == [0.0, 60.0]
    table = pileup_study.classifier_vs_mu({"LCW": lcw_classifier}, datasets, SELECTION, BRANCHES)
    assert table.index.tolist() == [(0.0, "LCW"), (60.0, "LCW")]
    assert table.loc[(0.0, "LCW"), "auc"] > 0.8
    # Pile-up-only clusters carry no hard-scatter truth, so the cut keeps about as many.
    ratio = table.loc[(60.0, "LCW"), "clusters"] / table.loc[(0.0, "LCW"), "clusters"]
    assert 0.7 < ratio < 2.0
    training = pileup_study.classifier_vs_mu(
        {"LCW": lcw_classifier}, datasets, SELECTION, BRANCHES, events=pileup_study.TRAIN_EVENTS
    )
    assert training["clusters"].sum() != table["clusters"].sum()


def test_pileup_raises_the_em_scale_response_of_soft_clusters(datasets):
    table = pileup_study.response_vs_mu({}, datasets, SELECTION, BRANCHES, edges=(0.3, 3.0, 500.0))
    soft = table.xs((0.3, 3.0), level=("low", "high"))
    for sample in ("pi0", "pipm"):
        clean = soft.loc[(0.0, sample), ("EM scale", "median")]
        noisy = soft.loc[(60.0, sample), ("EM scale", "median")]
        assert noisy > clean
    assert {"EM scale", "LCW"} <= set(table.columns.get_level_values(0))


def test_partners_of_the_training_events_pair_row_by_row(datasets):
    noisy, clean = pileup_study.partner_clusters(datasets, 60.0, SELECTION, BRANCHES)
    assert len(noisy) == len(clean) > 50
    assert np.array_equal(noisy.scalars["eventNumber"], clean.scalars["eventNumber"])
    assert (noisy.scalars["eventNumber"].to_numpy() % 4 < 2).all()
    dr = np.hypot(
        noisy.scalars["cluster_Eta"] - clean.scalars["cluster_Eta"],
        np.angle(np.exp(1j * (noisy.scalars["cluster_Phi"] - clean.scalars["cluster_Phi"]))),
    )
    assert (dr < 0.1).all()
    mixed = pileup_study.mixture(datasets)
    assert [p.parent.name for p in mixed["pipm"]] == ["mu0", "mu60"]
    with pytest.raises(InvalidValueError, match="needs ⟨μ⟩ = 0 and 40"):
        pileup_study.partner_clusters(datasets, 40.0, SELECTION, BRANCHES)


def test_the_figures_and_the_explorer_of_notebook_09(datasets, render_and_close_figures):
    from calotools import plotting, widgets

    table = pileup_study.classifier_vs_mu({"LCW": lcw_classifier}, datasets, SELECTION, BRANCHES)
    auc_axis, rejection_axis = plotting.performance_vs_mu(table)
    assert auc_axis.lines[0].get_ydata().tolist() == table["auc"].tolist()
    assert rejection_axis.get_yscale() == "log"
    scan = pd.DataFrame(
        {"lam": [0.0, 1.0, 10.0], "auc": [0.9, 0.85, 0.7], "z_dependence": [0.3, 0.1, 0.02]}
    )
    _, right = plotting.lambda_scan(scan, label="binary Z")
    assert right.lines[0].get_ydata().tolist() == [0.3, 0.1, 0.02]
    with pytest.raises(InvalidValueError, match="z_dependence"):
        plotting.lambda_scan(scan.drop(columns="z_dependence"))

    noisy, clean = pileup_study.partner_clusters(datasets, 60.0, SELECTION, BRANCHES)
    grid = plotting.denoising_images({"with pile-up": noisy, "without": clean}, 3)
    assert grid.shape == (2, 3)
    drawn = np.ma.filled(grid[1, 1].collections[0].get_array(), 0.0).reshape(16, 16)
    expected = np.where(clean.images["EMB2"][3] > 0, clean.images["EMB2"][3], 0.0)
    assert np.allclose(drawn, expected.T)  # η along x, φ along y; empty pixels left blank
    explorer = widgets.DenoisingExplorer(
        {
            0.0: {"with pile-up": clean, "without": clean},
            60.0: {"with pile-up": noisy, "without": clean},
        }
    )
    explorer.controls["mu"].value = 60.0
    explorer.controls["index"].value = 3
    assert np.array_equal(explorer.result["with pile-up"]["EMB2"], noisy.images["EMB2"][3])
    assert "GeV in the EM layers" in explorer.text.value
    with pytest.raises(InvalidValueError, match="same clusters"):
        widgets.DenoisingExplorer({0.0: {"a": clean}, 60.0: {"a": noisy[:5]}})


def test_aligned_partners_follow_one_cluster_through_every_mu(datasets):
    clean, at = pileup_study.aligned_partners(datasets, SELECTION, BRANCHES, limit=20)
    assert sorted(at) == [0.0, 60.0]
    assert 0 < len(clean) <= 20
    for clusters in at.values():
        assert np.array_equal(clusters.scalars["eventNumber"], clean.scalars["eventNumber"])
    assert (clean.scalars["eventNumber"].to_numpy() % 4 >= 2).all()
