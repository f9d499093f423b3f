"""The study's set-up: one call per notebook, its selection taking effect, its tables."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from pion_factory import write_pion_samples

from calotools import chain, errors, metrics, plotting, study

SELECTION = f"{study.DEFAULT_SELECTION} and cluster_E > 5"


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pions")
    write_pion_samples(folder, 500, 500, seed=3)
    return folder


def test_a_data_folder_must_hold_both_samples(tmp_path):
    with pytest.raises(errors.MissingFileError, match=r"lacks .*pi0\.root.*pipm\.root"):
        study.dataset(tmp_path)


def test_setup_gives_the_notebook_its_data_style_and_figure_folder(
    data_folder, tmp_path, monkeypatch
):
    # setup() sets the variable: set it here first so that monkeypatch removes it afterwards.
    monkeypatch.setenv("CALOTOOLS_FIGURES", "unset")
    monkeypatch.delenv("CALOTOOLS_FIGURES")
    context = study.setup(data=data_folder, quick=True, root=tmp_path)
    assert context.data.pi0 == data_folder / "pi0.root"
    assert context.quick
    assert context.selection == study.DEFAULT_SELECTION
    assert context.models == tmp_path / "models"
    assert os.environ["CALOTOOLS_FIGURES"] == str(tmp_path / "outputs" / "figures")


def test_quick_mode_follows_the_environment_unless_told(data_folder, monkeypatch):
    monkeypatch.setenv("CALOTOOLS_QUICK", "1")
    assert study.setup(data=data_folder).quick
    monkeypatch.setenv("CALOTOOLS_QUICK", "0")
    assert not study.setup(data=data_folder).quick
    assert study.setup(data=data_folder, quick=True).quick


def test_a_model_of_another_selection_has_its_own_folder(tmp_path):
    default = study.model_folder("bdt", "classify", base=tmp_path, quick=True)
    assert default == tmp_path / "quick" / "bdt-classify"
    assert (
        study.model_folder(
            "bdt", "classify", base=tmp_path, quick=True, selection=study.DEFAULT_SELECTION
        )
        == default
    )
    other = study.model_folder(
        "bdt", "classify", "pipm", base=tmp_path, quick=False, selection=SELECTION
    )
    assert other.parent == tmp_path
    assert other.name.startswith("bdt-classify-pipm-cut")
    assert other != study.model_folder(
        "bdt",
        "classify",
        "pipm",
        base=tmp_path,
        quick=False,
        selection=f"{SELECTION} and cluster_E < 90",
    )


def test_a_model_with_extra_inputs_has_its_own_folder(tmp_path):
    plain = study.model_folder("densenet", "regress", base=tmp_path, quick=True)
    extra = study.model_folder(
        "densenet", "regress", base=tmp_path, quick=True, extra_scalars=study.ALL_CLUSTERS_SCALARS
    )
    assert extra.name.startswith("densenet-regress-scalars")
    assert extra != plain
    moments = study.model_folder(
        "densenet", "regress", base=tmp_path, quick=True, extra_scalars=("cluster_ISOLATION",)
    )
    assert moments not in (plain, extra)


def test_shared_clusters_are_those_of_every_test_split(tmp_path, one_openmp_thread):
    """A classifier (balanced classes) and a regression of all clusters split differently."""
    write_pion_samples(tmp_path / "data", 300, 500, seed=8)
    context = study.StudyContext(
        data=study.dataset(tmp_path / "data"), quick=True, models=tmp_path / "models"
    )
    small = {"n_estimators": 3, "num_leaves": 4}
    classifier = context.trained("bdt", "classify", model_kwargs=small)
    regression = context.trained("bdt", "regress", model_kwargs=small)
    a, b = classifier.split["test"], regression.split["test"]
    shared = study.shared_clusters(a, b)

    def keys(selection):
        paths = [str(f.path) for f in selection.files]
        return [(paths[i], e) for i, e in zip(selection.file_index, selection.entry, strict=True)]

    assert 0 < len(shared) < min(len(a), len(b))
    assert set(keys(shared)) == set(keys(a)) & set(keys(b))
    assert keys(shared) == [k for k in keys(a) if k in set(keys(b))]  # in the first one's order
    assert len(study.shared_clusters(a)) == len(a)


def test_the_notebook_selection_trains_and_tests_the_models(
    data_folder, tmp_path, one_openmp_thread
):
    """SELECTION reaches the training: the model's split and test clusters pass it."""
    context = study.StudyContext(
        data=study.dataset(data_folder), quick=True, selection=SELECTION, models=tmp_path
    )
    model = context.trained("bdt", "classify", model_kwargs={"n_estimators": 5})
    assert model.folder == context.model_folder("bdt", "classify")
    assert model.split["test"].cut == SELECTION
    table = study.predictions_on_test(model, extra_branches=["cluster_E"])
    assert len(table) > 0
    assert (table["cluster_E"] > 5).all()
    default = study.StudyContext(data=context.data, quick=True, models=tmp_path)
    everything = default.trained("bdt", "classify", model_kwargs={"n_estimators": 5})
    assert everything.folder != model.folder
    assert len(everything.split["test"]) > len(model.split["test"])


def test_the_regression_table_puts_every_method_on_the_same_clusters(
    data_folder, tmp_path, one_openmp_thread
):
    context = study.StudyContext(data=study.dataset(data_folder), quick=True, models=tmp_path)
    models = {
        name: context.trained("bdt", "regress", "pipm", model_kwargs={"n_estimators": iterations})
        for name, iterations in (("bdt", 5),)
    }
    table = study.regression_table(models)
    assert list(table.columns) == ["label", "cluster_ENG_CALIB_TOT", "EM scale", "LCW", "bdt"]
    assert len(table) == len(models["bdt"].split["test"])
    assert (table["label"] == 1).all()
    summary = metrics.response_summaries(
        table["cluster_ENG_CALIB_TOT"], {m: table[m] for m in ("EM scale", "bdt")}, min_true=1.0
    )
    assert list(summary.index) == ["EM scale", "bdt"]
    assert summary.loc["bdt", "median"] == pytest.approx(1.0, abs=0.1)


def test_default_classifiers_are_a_few_in_quick_mode():
    from calotools import models

    assert study.default_classifiers(quick=True) == list(study.QUICK_CLASSIFIERS)
    assert study.default_classifiers(quick=False) == list(models.available("classify"))
    assert "paed" not in study.default_classifiers(quick=False)  # a denoiser, not a classifier


# ---------------------------------------------------------------------------- the chain


def test_the_hard_and_soft_chain_by_hand():
    """P(π0) 0.9, 0.5, 0.2 with E_π0 = 10 and E_π± = 12 GeV."""
    p_pi0, e_pi0, e_pipm = [0.9, 0.5, 0.2], [10.0] * 3, [12.0] * 3
    assert chain.combine(p_pi0, e_pi0, e_pipm, mode="hard", cutoff=0.5).tolist() == [10, 12, 12]
    assert chain.combine(p_pi0, e_pi0, e_pipm, mode="hard", cutoff=0.3).tolist() == [10, 10, 12]
    np.testing.assert_allclose(chain.combine(p_pi0, e_pi0, e_pipm, mode="soft"), [10.2, 11, 11.6])
    with pytest.raises(chain.ChainError, match="cutoff"):
        chain.combine(p_pi0, e_pi0, e_pipm, cutoff=2.0)


def test_the_cutoff_effect_follows_the_hard_call(render_and_close_figures):
    """Two true π0 clusters: the π0 regression is exact, the π± one 20 % high."""
    details = pd.DataFrame(
        {"p_pi0": [0.8, 0.4], "energy_pi0": [10.0, 20.0], "energy_pipm": [12.0, 24.0]}
    )
    truth = np.array([10.0, 20.0])
    table = chain.cutoff_effect(
        details, truth, {"true π0": np.array([True, True])}, [0.3, 0.6, 0.9]
    )
    # p = 0.3: both called π0 (exact); 0.6: one of two; 0.9: none (1.2 each).
    np.testing.assert_allclose(table["median"], [1.0, 1.1, 1.2])
    soft = np.median([0.8 * 10 + 0.2 * 12, 0.4 * 20 + 0.6 * 24] / truth)
    np.testing.assert_allclose(table["soft_median"], soft)
    axes = plotting.cutoff_effect(table)
    assert len(axes[0].lines) == 2  # the hard chain and the soft one's line
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), [1.0, 1.1, 1.2])


def test_the_stack_is_fitted_on_validation_clusters_and_judged_on_test_ones(
    data_folder, tmp_path, one_openmp_thread
):
    members = {
        f"bdt{trees}": study.StudyContext(
            data=study.dataset(data_folder), quick=True, models=tmp_path / str(trees)
        ).trained("bdt", "classify", model_kwargs={"n_estimators": trees, "num_leaves": 4})
        for trees in (3, 30)
    }
    stack = study.stacked(members)
    assert stack.members == ("bdt3", "bdt30")
    test = study.common_test_split(members.values())
    validation = study.common_test_split(members.values(), part="validation")
    validation_clusters = set(zip(validation.file_index, validation.entry, strict=True))
    test_clusters = set(zip(test.file_index, test.entry, strict=True))
    assert validation_clusters
    assert not validation_clusters & test_clusters
    tables = {n: study.predictions_on_test(m, selection=test) for n, m in members.items()}
    labels = tables["bdt30"]["label"].to_numpy()
    combined = stack.predict({n: t["prediction"].to_numpy() for n, t in tables.items()})
    assert metrics.auc(labels, combined) >= metrics.auc(labels, tables["bdt3"]["prediction"])
    assert stack.weights[1] > 0
