"""The classical references: LCW score and energies, and boosted decision trees on moments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pion_factory import PIPM_SCALE, pion_clusters, write_pion_samples

from calotools import data, evaluation, loading, metrics, ntuple, training
from calotools.baselines import (
    EM_SCALE,
    LCW_CLASSIFIER,
    LCW_ENERGY,
    BaselineError,
    BDTModel,
)

pytestmark = pytest.mark.usefixtures("one_openmp_thread")

OPTIONAL_MOMENTS = [
    "cluster_SECOND_R",
    "cluster_SECOND_LAMBDA",
    "cluster_LATERAL",
    "cluster_LONGITUDINAL",
    "cluster_ENG_FRAC_EM",
    "cluster_SIGNIFICANCE",
]


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pions")
    write_pion_samples(folder, 500, 500, seed=4)
    return folder


@pytest.fixture(scope="module")
def held_out():
    clusters = ntuple.Clusters.concat(
        [pion_clusters(300, "pi0", seed=40), pion_clusters(300, "pipm", seed=41)]
    )
    return clusters, np.repeat([0, 1], 300)


def test_the_lcw_score_is_one_minus_the_em_probability():
    clusters = ntuple.Clusters(pd.DataFrame({"cluster_EM_PROBABILITY": [0.0, 0.25, 1.0, -1.0]}))
    # −1 is MLTree's "not available": treated as p_EM = 0, as athena does off its tables.
    np.testing.assert_allclose(LCW_CLASSIFIER.predict(clusters), [1.0, 0.75, 0.0, 1.0])
    assert LCW_CLASSIFIER.task == "classify"


def test_the_em_scale_and_lcw_energies_are_read_from_their_branches():
    clusters = pion_clusters(20, "pipm")
    np.testing.assert_array_equal(EM_SCALE.predict(clusters), clusters.scalars["cluster_E"])
    np.testing.assert_array_equal(
        LCW_ENERGY.predict(clusters), clusters.scalars["cluster_E_LCCalib"]
    )
    with pytest.raises(BaselineError, match="lack the branch 'cluster_E_LCCalib'"):
        LCW_ENERGY.predict(ntuple.Clusters(clusters.scalars[["cluster_E"]]))


def test_a_bdt_on_the_moments_separates_the_pions(held_out):
    train = ntuple.Clusters.concat(
        [pion_clusters(400, "pi0", seed=1), pion_clusters(400, "pipm", seed=2)]
    )
    bdt = BDTModel.fit(train, "classify", labels=np.repeat([0, 1], 400), n_estimators=30)
    clusters, labels = held_out
    assert metrics.auc(labels, bdt.predict(clusters)) > 0.95
    assert "cluster_ENG_FRAC_EM" in bdt.features


def test_a_bdt_regression_calibrates_the_pipm_energy(held_out):
    bdt = BDTModel.fit(pion_clusters(600, "pipm", seed=3), "regress", n_estimators=30)
    clusters, labels = held_out
    pipm = clusters[labels == 1]
    response = bdt.predict(pipm) / pipm.scalars["cluster_ENG_CALIB_TOT"].to_numpy()
    assert np.median(response) == pytest.approx(1.0, abs=0.03)
    uncalibrated = pipm.scalars["cluster_E"] / pipm.scalars["cluster_ENG_CALIB_TOT"]
    assert np.median(uncalibrated) == pytest.approx(1 / PIPM_SCALE, abs=0.03)


def test_a_bdt_uses_the_moments_the_files_have():
    clusters = pion_clusters(200, "pi0")
    clusters.scalars = clusters.scalars.drop(columns=OPTIONAL_MOMENTS)
    labels = np.arange(200) % 2
    bdt = BDTModel.fit(clusters, "classify", labels=labels, n_estimators=5)
    assert not set(OPTIONAL_MOMENTS) & set(bdt.features)
    assert "cluster_CENTER_LAMBDA" in bdt.features


def test_a_bdt_trains_on_the_same_split_as_the_networks_and_saves_as_a_model(
    data_folder, tmp_path, held_out
):
    bdt = training.train("bdt", data_folder, tmp_path / "bdt", model_kwargs={"n_estimators": 20})
    assert (tmp_path / "bdt" / "model.txt").exists()
    samples = {"pi0": data_folder / "pi0.root", "pipm": data_folder / "pipm.root"}
    expected = data.split(
        data.select(samples, data.SelectionConfig(cut=training.DEFAULT_CUT, balance=True))
    )
    for part in ("train", "validation", "test"):
        np.testing.assert_array_equal(bdt.split[part].ids, expected[part].ids)
    restored = loading.load(tmp_path / "bdt")
    assert isinstance(restored, BDTModel)
    clusters, _ = held_out
    np.testing.assert_array_equal(restored.predict(clusters), bdt.predict(clusters))


def test_the_test_metrics_put_the_model_next_to_lcw_on_the_same_clusters(data_folder, tmp_path):
    bdt = training.train("bdt", data_folder, tmp_path / "bdt", model_kwargs={"n_estimators": 20})
    results = bdt.test_metrics
    n_test = len(bdt.split["test"])
    assert results["model"]["n"] == results["baselines"]["lcw"]["n"] == n_test
    # Recomputed directly from the branches of the test clusters.
    clusters = data.read_selection(bdt.split["test"], ["cluster_EM_PROBABILITY"])
    lcw_auc = metrics.auc(bdt.split["test"].labels, LCW_CLASSIFIER.predict(clusters))
    assert results["baselines"]["lcw"]["auc"] == pytest.approx(lcw_auc)
    for key in ("accuracy", "best_cutoff", "pi0_efficiency", "pipm_efficiency"):
        assert key in results["model"]


def test_the_classification_summary_calls_pi0_above_the_cutoff():
    labels = np.array([0, 0, 1, 1])
    p_pipm = np.array([0.1, 0.6, 0.4, 0.9])  # P(π0) = 0.9, 0.4, 0.6, 0.1
    summary = evaluation.classification_summary(labels, p_pipm)
    assert summary["accuracy"] == 0.5
    assert summary["pi0_efficiency"] == 0.5
    assert summary["auc"] == 0.75
