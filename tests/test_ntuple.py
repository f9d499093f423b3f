"""Writing and reading ClusterTree ntuples (docs/ntuple-format.md) with real ROOT files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import uproot

from calotools import ntuple
from calotools.testing import random_clusters


def write_ttree(path, tree_name: str, branches: dict[str, np.ndarray]) -> None:
    """Write a TTree by hand with uproot, as another program would."""
    with uproot.recreate(path) as file:
        types = {
            name: np.dtype((values.dtype, values.shape[1:])) for name, values in branches.items()
        }
        file.mktree(tree_name, types).extend(branches)


def assert_same_clusters(a: ntuple.Clusters, b: ntuple.Clusters) -> None:
    pd.testing.assert_frame_equal(a.scalars, b.scalars)
    assert a.images.keys() == b.images.keys()
    for name in a.images:
        np.testing.assert_array_equal(a.images[name], b.images[name])


def test_round_trip_is_exact(cluster_file, clusters):
    """Every scalar and every image pixel comes back bit for bit, with schema types."""
    back = ntuple.read_clusters(cluster_file)
    assert_same_clusters(back, clusters)
    assert back.scalars["cluster_nCells"].dtype == np.int32
    assert back.scalars["eventNumber"].dtype == np.int64
    assert back.images["EMB1"].dtype == np.float32
    assert back.images["EMB1"].shape == (len(clusters), 128, 4)


def test_file_is_a_cluster_tree_with_fixed_size_images_in_baskets(cluster_file, clusters):
    """The tree is ClusterTree, images are float[n_η][n_φ], one basket per 1,000 entries."""
    with uproot.open(cluster_file) as file:
        tree = file["ClusterTree"]
        assert tree.num_entries == len(clusters)
        assert tree["EMB2"].typename == "float[16][16]"
        assert tree["cluster_E"].typename == "float"
        assert tree["cluster_E"].num_baskets == 3


def test_writer_regroups_small_chunks_into_whole_baskets(tmp_path, clusters):
    """Chunks of any size end up in baskets of basket_size entries (the last one shorter)."""
    path = tmp_path / "chunked.root"
    with ntuple.ClusterWriter(path, basket_size=1_000) as writer:
        for start in range(0, len(clusters), 333):
            writer.write(clusters[start : start + 333])
    with uproot.open(path) as file:
        branch = file["ClusterTree"]["cluster_E"]
        sizes = [branch.basket_entry_start_stop(i) for i in range(branch.num_baskets)]
    assert sizes == [(0, 1000), (1000, 2000), (2000, 2500)]
    assert_same_clusters(ntuple.read_clusters(path), clusters)


def test_interrupted_write_leaves_no_file(tmp_path, clusters):
    """An exception inside the writer removes the temporary file; nothing looks whole."""
    path = tmp_path / "pipm.root"
    with pytest.raises(RuntimeError, match="interrupted"), ntuple.ClusterWriter(path) as writer:  # noqa: PT012
        writer.write(clusters[:100])
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_rewrite_keeps_the_old_file(tmp_path, clusters):
    """Replacing a file is atomic: a failed rewrite leaves the previous file intact."""
    path = ntuple.write_clusters(tmp_path / "pi0.root", clusters[:10])
    with pytest.raises(RuntimeError), ntuple.ClusterWriter(path) as writer:  # noqa: PT012
        writer.write(clusters)
        raise RuntimeError("interrupted")
    assert len(ntuple.read_clusters(path)) == 10
    assert [p.name for p in tmp_path.iterdir()] == ["pi0.root"]


def test_iterate_yields_the_same_clusters_in_chunks(cluster_file, clusters):
    """iterate_clusters chunks concatenate to read_clusters."""
    chunks = list(ntuple.iterate_clusters(cluster_file, step_size=1_000))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert_same_clusters(ntuple.Clusters.concat(chunks), clusters)


def test_several_files_by_list_glob_and_folder(tmp_path, clusters):
    """A list, a glob and a folder all read the files in order."""
    ntuple.write_clusters(tmp_path / "a.root", clusters[:1000])
    ntuple.write_clusters(tmp_path / "b.root", clusters[1000:])
    for spec in ([tmp_path / "a.root", tmp_path / "b.root"], str(tmp_path / "*.root"), tmp_path):
        assert_same_clusters(ntuple.read_clusters(spec), clusters)


def test_branches_cut_and_entry_stop(cluster_file, clusters):
    """Branch selection, a cut on an unrequested branch and entry_stop before the cut."""
    back = ntuple.read_clusters(
        cluster_file, branches=["cluster_E", "EMB2"], cut="cluster_Eta > 5", entry_stop=1_500
    )
    first = clusters[:1500]
    mask = first.scalars["cluster_Eta"].to_numpy() > 5
    assert list(back.scalars.columns) == ["cluster_E"]
    assert list(back.images) == ["EMB2"]
    np.testing.assert_array_equal(back.scalars["cluster_E"], first.scalars["cluster_E"][mask])
    np.testing.assert_array_equal(back.images["EMB2"], first.images["EMB2"][mask])


def test_legacy_v7_names_are_aliases(tmp_path, clusters):
    """clusterE, clusterEta, … read as cluster_E, cluster_Eta; PSB and duplicate_* are skipped."""
    legacy = clusters[:200]
    renamed = legacy.scalars.rename(columns={v: k for k, v in ntuple.LEGACY_ALIASES.items()})
    path = tmp_path / "v7.root"
    write_ttree(
        path,
        "ClusterTree",
        {
            **{name: renamed[name].to_numpy() for name in renamed.columns},
            **legacy.images,
            "PSB": np.zeros((200, 16, 4), np.float32),
            "duplicate_EMB2": np.zeros(200, np.int32),
        },
    )
    back = ntuple.read_clusters(path)
    assert_same_clusters(back, legacy)
    picked = ntuple.read_clusters(path, branches=["clusterE", "cluster_Eta"], cut="clusterE > 1")
    assert list(picked.scalars.columns) == ["cluster_E", "cluster_Eta"]


def test_missing_file_is_named(tmp_path):
    """A missing file or a pattern that matches nothing names what was asked for."""
    with pytest.raises(FileNotFoundError, match="nope.root: no such file"):
        ntuple.read_clusters(tmp_path / "nope.root")
    with pytest.raises(FileNotFoundError, match="no file matches"):
        ntuple.read_clusters(str(tmp_path / "*.root"))


def test_not_a_root_file(tmp_path):
    """A text file gives an error naming it as not a ROOT file."""
    path = tmp_path / "notes.root"
    path.write_text("these are not the clusters you are looking for\n")
    with pytest.raises(ntuple.NtupleError, match="notes.root: not a readable ROOT file"):
        ntuple.read_clusters(path)


def test_truncated_file(tmp_path, cluster_file):
    """A real file cut in half is reported as truncated, with both sizes."""
    data = cluster_file.read_bytes()
    cut = tmp_path / "cut.root"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ntuple.NtupleError, match=r"cut.root: (truncated|not a readable ROOT file)"):
        ntuple.read_clusters(cut)


def test_truncated_file_with_intact_header(tmp_path, cluster_file):
    """Cutting only the tail (header intact) is caught by the header's end-of-file record."""
    data = cluster_file.read_bytes()
    cut = tmp_path / "tail.root"
    cut.write_bytes(data[:-100])
    with pytest.raises(ntuple.NtupleError, match=rf"truncated: its ROOT header says {len(data)}"):
        ntuple.read_clusters(cut)


def test_no_such_tree_lists_the_trees(tmp_path):
    """A file without ClusterTree names the trees it does have."""
    path = tmp_path / "events.root"
    write_ttree(path, "EventTree", {"nCluster": np.ones(3, np.int32)})
    with pytest.raises(ntuple.NtupleError, match="has no tree 'ClusterTree'; it has: EventTree"):
        ntuple.read_clusters(path)


def test_missing_branch_lists_the_branches(cluster_file):
    """Asking for an absent branch names it and lists what the file has."""
    with pytest.raises(ntuple.NtupleError, match=r"has no branch 'EMB4'; it has: .*EMB1"):
        ntuple.read_clusters(cluster_file, branches=["EMB4"])


def test_cut_on_missing_branch_is_named(cluster_file):
    """A cut on a branch the file lacks fails before reading, naming the branch."""
    with pytest.raises(ntuple.NtupleError, match="has no branch 'cluster_Foo'"):
        ntuple.read_clusters(cluster_file, cut="cluster_Foo > 1")


def test_image_of_the_wrong_shape(tmp_path):
    """An EMB2 stored 8×8 (or transposed) is refused with the expected shape."""
    for shape, hint in (((8, 8), ""), ((4, 128), "transposed")):
        path = tmp_path / "bad.root"
        name = "EMB2" if shape == (8, 8) else "EMB1"
        write_ttree(
            path,
            "ClusterTree",
            {"cluster_E": np.ones(5, np.float32), name: np.zeros((5, *shape), np.float32)},
        )
        with pytest.raises(ntuple.NtupleError, match=rf"'{name}' holds images of shape .*{hint}"):
            ntuple.read_clusters(path)


def test_writer_refuses_images_of_the_wrong_shape(tmp_path, clusters):
    """Writing a transposed image fails before anything is written."""
    bad = ntuple.Clusters(clusters.scalars[:5], {"EMB1": np.zeros((5, 4, 128), np.float32)})
    with pytest.raises(ValueError, match=r"image 'EMB1' has shape \[4, 128\]; expected \[128, 4\]"):
        ntuple.write_clusters(tmp_path / "x.root", bad)
    assert list(tmp_path.iterdir()) == []


def test_nonfinite_values_are_reported_with_counts_and_kept(tmp_path):
    """NaN/inf values are counted per branch in a warning (or an error), never dropped."""
    clusters = random_clusters(50, seed=3)
    clusters.scalars.loc[[1, 4, 9], "cluster_E"] = np.nan
    clusters.scalars.loc[2, "cluster_Eta"] = np.inf
    clusters.images["EMB2"][7, 0, 0] = np.nan
    path = ntuple.write_clusters(tmp_path / "nan.root", clusters)
    with pytest.warns(ntuple.NonFiniteWarning, match="cluster_E: 3, cluster_Eta: 1, EMB2: 1"):
        back = ntuple.read_clusters(path)
    assert len(back) == 50
    assert back.scalars["cluster_E"].isna().sum() == 3
    with pytest.raises(ntuple.NtupleError, match=r"nan.root entries 0–49: non-finite"):
        ntuple.read_clusters(path, on_nonfinite="raise")


def test_clusters_select_and_summary(clusters):
    """Boolean masks, index arrays and slices select the same rows of scalars and images."""
    mask = clusters.scalars["cluster_E"].to_numpy() > 5
    by_mask, by_index = clusters[mask], clusters[np.flatnonzero(mask)]
    assert_same_clusters(by_mask, by_index)
    assert len(by_mask) == mask.sum()
    summary = clusters.summary()
    assert summary.loc["cluster_E", "count"] == len(clusters)
    assert "EMB2 (pixel sum)" in summary.index
