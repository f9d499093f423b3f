"""Inputs that cannot be trusted together are refused by name, before any cluster is read.

Two cases of issue 13: the same content given twice (a copy of the π0 file as
the π± sample, or a file twice within one sample), and files of a study that
disagree on their branches or image shapes. Every file here is a real
``ClusterTree`` written with calotools or plain uproot.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import uproot
from sample_factory import make_clusters, write_samples

from calotools import data, ntuple, study, training
from calotools.errors import DataChangedError, DataError, NtupleError


@pytest.fixture
def samples(tmp_path):
    """Small ``pi0.root`` and ``pipm.root``, different and of one layout."""
    return write_samples(tmp_path, n_pi0=600, n_pipm=400)


def _named(path, sample: str) -> str:
    return re.escape(f"{path} (sample {sample!r})")


def _write_plain(path, clusters: ntuple.Clusters, images: dict[str, np.ndarray]) -> None:
    """A TTree written with uproot alone, so that its images may have any shape."""
    columns = {name: clusters.scalars[name].to_numpy() for name in clusters.scalars.columns}
    columns.update(images)
    with uproot.recreate(path) as file:
        tree = file.mktree(
            ntuple.TREE_NAME,
            {name: np.dtype((values.dtype, values.shape[1:])) for name, values in columns.items()},
        )
        tree.extend(columns)


# ---------------------------------------------------------------------------- same content


def test_a_copy_of_the_pi0_file_as_the_pipm_sample_is_refused_before_training(samples, tmp_path):
    shutil.copyfile(samples["pi0"], samples["pipm"])
    expected = (
        f"{_named(samples['pipm'], 'pipm')} has the same content as "
        f"{_named(samples['pi0'], 'pi0')}; the two classes must come from different files"
    )
    with pytest.raises(DataError, match=expected):
        data.select(samples)
    # `calotools train` selects through the same check, before it makes a model folder.
    with pytest.raises(DataError, match=expected):
        training.train("bdt", tmp_path, tmp_path / "bdt", model_kwargs={"n_estimators": 5})
    assert not (tmp_path / "bdt").exists()


def test_a_file_given_twice_within_one_sample_is_refused(samples, tmp_path):
    copy = shutil.copyfile(samples["pi0"], tmp_path / "pi0_again.root")
    with pytest.raises(
        DataError,
        match=f"{_named(copy, 'pi0')} has the same content as {_named(samples['pi0'], 'pi0')}; "
        "a file of sample 'pi0' given twice counts its clusters twice",
    ):
        data.select({"pi0": [samples["pi0"], copy], "pipm": samples["pipm"]})
    with pytest.raises(DataError, match=re.escape(f"{samples['pi0']} is listed twice in sample")):
        data.select({"pi0": [samples["pi0"], samples["pi0"]], "pipm": samples["pipm"]})


# ---------------------------------------------------------------------------- one layout


def test_a_pipm_file_without_an_image_layer_is_refused_at_select_naming_both_files(
    samples, tmp_path
):
    clusters = make_clusters(300, seed=3, energy_scale=15.0)
    del clusters.images["EMB3"]
    lacking = ntuple.write_clusters(tmp_path / "pipm_2.root", clusters, basket_size=100)
    with pytest.raises(
        NtupleError,
        match=f"{_named(lacking, 'pipm')} lacks the image branch 'EMB3' that "
        f"{_named(samples['pipm'], 'pipm')} has",
    ):
        data.select({"pi0": samples["pi0"], "pipm": [samples["pipm"], lacking]})
    # The only file of the other class: compared with the first sample's first file.
    with pytest.raises(
        NtupleError,
        match=f"{_named(lacking, 'pipm')} lacks the image branch 'EMB3' that "
        f"{_named(samples['pi0'], 'pi0')} has",
    ):
        data.select({"pi0": samples["pi0"], "pipm": lacking})


def test_the_two_samples_may_differ_in_other_branches(samples, tmp_path):
    """A π± sample made without LCW tables lacks the LCW weights: still selected."""
    clusters = make_clusters(300, seed=3, energy_scale=15.0)
    clusters.scalars = clusters.scalars.drop(columns=["cluster_HAD_WEIGHT"])
    pipm = ntuple.write_clusters(tmp_path / "pipm_nolcw.root", clusters, basket_size=100)
    selection = data.select({"pi0": samples["pi0"], "pipm": pipm}, data.SelectionConfig(cut=None))
    assert selection.counts() == {"pi0": 600, "pipm": 300}


def test_an_image_of_another_shape_is_refused_at_select(samples, tmp_path):
    clusters = make_clusters(300, seed=4, energy_scale=15.0)
    images = dict(clusters.images)
    images["EMB2"] = images["EMB2"].reshape(300, 4, 64)
    other = tmp_path / "pipm_2.root"
    _write_plain(other, clusters, images)
    with pytest.raises(
        NtupleError,
        match=re.escape(
            f"image 'EMB2' is (16, 16) in {samples['pipm']} (sample 'pipm') "
            f"but (4, 64) in {other} (sample 'pipm')"
        ),
    ):
        data.select({"pi0": samples["pi0"], "pipm": [samples["pipm"], other]})


def test_a_file_without_a_scalar_branch_is_refused_at_select(samples, tmp_path):
    clusters = make_clusters(300, seed=5)
    clusters.scalars = clusters.scalars.drop(columns=["cluster_SIGNIFICANCE", "cluster_LATERAL"])
    lacking = ntuple.write_clusters(tmp_path / "pi0_2.root", clusters, basket_size=100)
    with pytest.raises(
        NtupleError,
        match=f"{_named(lacking, 'pi0')} lacks the branches 'cluster_LATERAL', "
        f"'cluster_SIGNIFICANCE' that {_named(samples['pi0'], 'pi0')} has",
    ):
        data.select({"pi0": [samples["pi0"], lacking], "pipm": samples["pipm"]})


def test_read_clusters_names_both_files_when_a_later_one_lacks_a_branch(samples, tmp_path):
    clusters = make_clusters(200, seed=6)
    del clusters.images["TileBar2"]
    clusters.scalars = clusters.scalars.drop(columns=["truthPDG"])
    lacking = ntuple.write_clusters(tmp_path / "later.root", clusters, basket_size=100)
    with pytest.raises(NtupleError) as error:
        ntuple.read_clusters([samples["pi0"], lacking])
    message = str(error.value)
    assert f"{lacking} lacks the image branch 'TileBar2' that {samples['pi0']} has" in message
    assert f"{lacking} lacks the branch 'truthPDG' that {samples['pi0']} has" in message


def test_two_different_files_of_one_layout_still_select_and_read(samples):
    selection = data.select(samples, data.SelectionConfig(cut=None))
    assert selection.counts() == {"pi0": 600, "pipm": 400}
    clusters = ntuple.read_clusters([samples["pi0"], samples["pipm"]])
    assert len(clusters) == 1_000
    assert set(clusters.images) == set(ntuple.IMAGE_BRANCHES)


# ---------------------------------------------------------------------------- remade data


def test_a_model_folder_of_remade_data_is_not_reused_silently(samples, tmp_path):
    """A data file remade since training: resuming or reusing the folder is refused, by name.

    Before: a complete folder was returned as it was (its split naming entries
    of a file that no longer holds them), and a study notebook failed later with
    "… has 8506 entries but had 6837 when the selection was made".
    """
    bdt = {"model_kwargs": {"n_estimators": 5}}
    out = tmp_path / "bdt"
    training.train("bdt", tmp_path, out, **bdt)
    ntuple.write_clusters(samples["pipm"], make_clusters(400, seed=9, energy_scale=15.0))
    with pytest.raises(DataChangedError, match=re.escape(f"{samples['pipm']} has other content")):
        training.train("bdt", tmp_path, out, **bdt)
    # --overwrite trains afresh, on the data as they are now.
    model = training.train("bdt", tmp_path, out, overwrite=True, **bdt)
    assert model.split["test"].files[1].changed() is None


def test_the_study_retrains_a_model_whose_data_were_remade(samples, tmp_path):
    """The study's models are a cache of its data: remade data, the model is trained again."""
    first = study.trained("bdt", "classify", tmp_path, base=tmp_path / "models", quick=True)
    ntuple.write_clusters(samples["pi0"], make_clusters(600, seed=11))
    again = study.trained("bdt", "classify", tmp_path, base=tmp_path / "models", quick=True)
    assert again.folder == first.folder
    assert [f.changed() for f in again.split["train"].files] == [None, None]
