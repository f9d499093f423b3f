"""Selection, labels, balancing, spectrum matching and the saved split."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sample_factory import make_clusters, write_samples

from calotools import data, errors, ntuple
from calotools.cuts import evaluate_cut


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return write_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="module")
def selection(samples):
    return data.select(samples)


def passing_entries(path, cut=data.DEFAULT_CUT) -> np.ndarray:
    clusters = ntuple.read_clusters(path)
    columns = {name: clusters.scalars[name].to_numpy() for name in clusters.scalars}
    return np.flatnonzero(evaluate_cut(cut, columns))


def log_energy(path, entries) -> np.ndarray:
    return np.log10(ntuple.read_clusters(path).scalars["cluster_E"].to_numpy()[entries])


def test_selection_keeps_exactly_the_entries_passing_the_default_cut(samples, selection):
    for number, sample_file in enumerate(selection.files):
        assert sample_file.path == samples[sample_file.sample].resolve()
        entries = selection.entry[selection.file_index == number]
        np.testing.assert_array_equal(entries, passing_entries(sample_file.path))
    assert selection.cut == data.DEFAULT_CUT


def test_labels_follow_the_atlas_convention_pi0_0_pipm_1(selection):
    labels = selection.labels
    for number, sample_file in enumerate(selection.files):
        expected = {"pi0": 0, "pipm": 1}[sample_file.sample]
        assert np.all(labels[selection.file_index == number] == expected)


def test_balancing_downsamples_the_larger_class_reproducibly(samples, selection):
    balanced = data.select(samples, data.SelectionConfig(balance=True, seed=5))
    counts = np.bincount(balanced.labels)
    assert counts[0] == counts[1] == np.bincount(selection.labels).min()
    again = data.select(samples, data.SelectionConfig(balance=True, seed=5))
    np.testing.assert_array_equal(again.entry, balanced.entry)
    other = data.select(samples, data.SelectionConfig(balance=True, seed=6))
    assert not np.array_equal(other.entry, balanced.entry)
    # Subset of the unbalanced selection.
    assert set(map(tuple, balanced.ids)) <= set(map(tuple, selection.ids))


def class_histograms(selection, edges, weights=None):
    values = np.empty(len(selection))
    for number, sample_file in enumerate(selection.files):
        members = selection.file_index == number
        values[members] = log_energy(sample_file.path, selection.entry[members])
    return [
        np.histogram(
            values[selection.labels == c],
            edges,
            weights=None if weights is None else weights[selection.labels == c],
        )[0]
        for c in (0, 1)
    ]


def test_resampling_makes_the_energy_spectra_agree_bin_by_bin(samples):
    matched = data.select(samples, data.SelectionConfig(match="log10(cluster_E)", match_bins=12))
    edges = np.asarray(matched.info["match"]["edges"])
    pi0, pipm = class_histograms(matched, edges)
    np.testing.assert_array_equal(pi0, pipm)
    assert matched.weight is None
    assert matched.info["match"]["method"] == "resample"


def test_reweighting_makes_the_weighted_spectra_agree(samples):
    matched = data.select(
        samples,
        data.SelectionConfig(match="log10(cluster_E)", match_bins=12, match_method="reweight"),
    )
    edges = np.asarray(matched.info["match"]["edges"])
    pi0, pipm = class_histograms(matched, edges, matched.weight)
    np.testing.assert_allclose(pi0 / pi0.sum(), pipm / pipm.sum(), atol=1e-5)
    for c in (0, 1):
        assert matched.weight[matched.labels == c].mean() == pytest.approx(1.0, rel=1e-5)
    # Before weighting the spectra differ (π± are harder in these samples).
    raw0, raw1 = class_histograms(matched, edges)
    assert np.abs(raw0 / raw0.sum() - raw1 / raw1.sum()).max() > 0.05


def test_split_is_70_10_20_disjoint_stratified_and_seeded(selection):
    parts = data.split(selection, seed=11)
    assert list(parts) == ["train", "validation", "test"]
    ids = {name: set(map(tuple, parts[name].ids)) for name in parts}
    assert not ids["train"] & ids["test"]
    assert not ids["train"] & ids["validation"]
    assert not ids["validation"] & ids["test"]
    assert ids["train"] | ids["validation"] | ids["test"] == set(map(tuple, selection.ids))
    n_class = np.bincount(selection.labels)
    for name, share in data.DEFAULT_FRACTIONS.items():
        np.testing.assert_allclose(np.bincount(parts[name].labels), share * n_class, atol=1)
    again = data.split(selection, seed=11)
    np.testing.assert_array_equal(again["test"].entry, parts["test"].entry)
    assert not np.array_equal(data.split(selection, seed=12)["test"].entry, parts["test"].entry)


def test_saved_split_loads_back_with_the_same_clusters(selection, tmp_path):
    weighted = selection.take(np.arange(len(selection)))
    weighted = data.Selection(
        weighted.files,
        weighted.file_index,
        weighted.entry,
        np.linspace(0.5, 1.5, len(weighted)),
        weighted.info,
    )
    parts = data.split(weighted, seed=3)
    path = parts.save(tmp_path / "split.npz")
    back = data.Split.load(path)
    for name in parts:
        np.testing.assert_array_equal(back[name].ids, parts[name].ids)
        np.testing.assert_array_equal(back[name].labels, parts[name].labels)
        np.testing.assert_array_equal(back[name].weight, parts[name].weight)
        assert back[name].files == parts[name].files
        assert back[name].cut == data.DEFAULT_CUT
    assert back.info["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split.npz"]  # no temporary left


def test_saved_split_follows_the_data_to_another_folder(selection, samples, tmp_path):
    path = data.split(selection, seed=3).save(tmp_path / "split.npz")
    moved = tmp_path / "moved"
    moved.mkdir()
    for sample_path in samples.values():
        (moved / sample_path.name).write_bytes(sample_path.read_bytes())
    back = data.Split.load(path, data_dir=moved)
    assert {f.path.parent for f in back["test"].files} == {moved}
    clusters = data.read_selection(back["test"], ["eventNumber"])
    original = data.read_selection(data.Split.load(path)["test"], ["eventNumber"])
    np.testing.assert_array_equal(clusters.scalars["eventNumber"], original.scalars["eventNumber"])


def test_reading_a_selection_gives_its_entries_in_order(selection):
    part = selection.take(np.arange(0, len(selection), 7))
    clusters = data.read_selection(part, ["eventNumber", "EMB2"])
    assert len(clusters) == len(part)
    for number, sample_file in enumerate(part.files):
        members = part.file_index == number
        full = ntuple.read_clusters(sample_file.path, ["eventNumber", "EMB2"])
        entries = part.entry[members]
        np.testing.assert_array_equal(
            clusters.scalars["eventNumber"].to_numpy()[members],
            full.scalars["eventNumber"].to_numpy()[entries],
        )
        np.testing.assert_array_equal(
            clusters.images["EMB2"][members], full.images["EMB2"][entries]
        )


def test_a_remade_file_is_detected_when_reading_a_saved_selection(selection, tmp_path):
    copy = tmp_path / "pi0.root"
    ntuple.write_clusters(copy, make_clusters(1_200, seed=1), basket_size=500)
    small = data.select({"pi0": copy}, data.SelectionConfig(cut=None))
    ntuple.write_clusters(copy, make_clusters(1_000, seed=1), basket_size=500)
    with pytest.raises(data.DataError, match="had 1200 when the selection was made"):
        data.read_selection(small, ["cluster_E"])


# ---------------------------------------------------------------------------- bad input


def test_a_cut_on_a_missing_branch_names_the_file_and_the_branch(samples):
    with pytest.raises(data.DataError) as error:
        data.select(samples, data.SelectionConfig(cut="cluster_EM_PROB > 0.5"))
    message = str(error.value)
    assert "pi0.root" in message
    assert "'cluster_EM_PROB'" in message
    assert "cluster_EM_PROBABILITY" in message  # the branches it has


def test_an_empty_selection_names_the_sample_and_the_cut(samples):
    with pytest.raises(data.DataError, match=r"sample 'pi0' \(pi0.root\): none of its 3000"):
        data.select(samples, data.SelectionConfig(cut="cluster_E > 1e9"))


def test_balancing_a_single_class_is_an_error(samples):
    with pytest.raises(data.DataError, match="both classes"):
        data.select({"pipm": samples["pipm"]}, data.SelectionConfig(balance=True))
    with pytest.raises(data.DataError, match="two classes"):
        data.select({"pipm": samples["pipm"]}, data.SelectionConfig(match="log10(cluster_E)"))


def test_a_split_part_without_one_class_is_an_error(samples):
    few_pi0 = data.select(samples, data.SelectionConfig(cut="cluster_E > 40"))
    assert np.bincount(few_pi0.labels)[0] < 5
    with pytest.raises(data.DataError, match="'validation' part has no π0 clusters"):
        data.split(few_pi0, {"train": 0.9, "validation": 0.02, "test": 0.08})


def test_nan_in_a_cut_branch_names_file_entries_branch_and_count(tmp_path):
    clusters = make_clusters(1_500, seed=9)
    clusters.scalars.loc[[10, 700, 701], "cluster_Eta"] = np.nan
    path = ntuple.write_clusters(tmp_path / "pi0.root", clusters, basket_size=500)
    with pytest.raises(data.DataError) as error:
        data.select({"pi0": path})
    message = str(error.value)
    assert "pi0.root entries 0–1499" in message
    assert "branch 'cluster_Eta': 3" in message


def test_unknown_samples_and_files_in_two_samples_are_refused(samples):
    with pytest.raises(data.DataError, match=r"unknown sample 'pi\+'; the samples are: pi0, pipm"):
        data.select({"pi+": samples["pipm"]})
    with pytest.raises(data.DataError, match="both as 'pi0' and as 'pipm'"):
        data.select({"pi0": samples["pi0"], "pipm": [samples["pipm"], samples["pi0"]]})


def test_split_fractions_must_add_up_to_one(selection):
    with pytest.raises(data.DataError, match="add up to 1"):
        data.split(selection, {"train": 0.7, "test": 0.2})


def test_the_data_pipeline_imports_without_tensorflow_or_dask():
    """Keras and Dask load only when a loader class or a cluster is used."""
    code = (
        "import sys, calotools.data, calotools.preprocessing, calotools.loaders, "
        "calotools.dask_tools; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'dask', 'distributed') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- the configuration


def test_the_selection_config_is_saved_with_the_selection_and_its_split(samples, tmp_path):
    config = data.SelectionConfig(
        cut="cluster_E > 2", balance=True, match="log10(cluster_E)", match_bins=8, seed=7
    )
    selection = data.select(samples, config)
    assert selection.config == config
    assert selection.cut == "cluster_E > 2"
    back = data.Split.load(data.split(selection, seed=1).save(tmp_path / "split.npz"))
    assert back["test"].config == config
    assert back.info["selection"]["selection"] == config.to_dict()


def test_selection_config_round_trips_through_json_ready_fields():
    config = data.SelectionConfig(match="log10(cluster_E)", match_bins=(-1.0, 0.0, 1.0, 2.0))
    assert data.SelectionConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["match_bins"] == [-1.0, 0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cut": "cluster_E >"}, "cannot parse the cut"),
        ({"match": "sqrt(cluster_E)"}, "cannot read the feature 'sqrt"),
        ({"match_method": "interpolate"}, "match_method must be 'resample' or 'reweight'"),
        ({"match_bins": 0}, "match_bins must be at least 1"),
        ({"match_bins": (1.0, 1.0)}, "increasing edges"),
        ({"seed": -1}, "seed must be a whole number >= 0"),
    ],
)
def test_a_bad_selection_config_is_refused_when_made(fields, message):
    with pytest.raises(errors.CalotoolsError, match=message):
        data.SelectionConfig(**fields)


def test_unknown_selection_config_fields_are_named():
    with pytest.raises(data.DataError, match=r"unknown SelectionConfig fields \['cuts'\]"):
        data.SelectionConfig.from_dict({"cuts": "cluster_E > 1"})


def test_a_split_saved_by_calotools_0_1_still_knows_its_cut(selection):
    """0.1 kept the cut, seed and balancing at the top of a selection's info."""
    old = data.Selection(
        selection.files,
        selection.file_index,
        selection.entry,
        info={"cut": "cluster_E > 3", "seed": 2, "balance": True, "match": None},
    )
    assert old.config == data.SelectionConfig(cut="cluster_E > 3", balance=True, seed=2)
