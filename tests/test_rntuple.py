"""A ClusterTree stored as an RNTuple reads everywhere a TTree does, with the same names and checks.

Both kinds are written with plain uproot, as another program would: ``mktree`` for the
TTree, ``mkrntuple`` (one cluster per ``extend``) or ``file[name] = {...}`` for the RNTuple.
"""

from __future__ import annotations

import numpy as np
import pytest
import uproot

from calotools import cli, data, ntuple
from calotools.testing import random_clusters


def columns_of(clusters: ntuple.Clusters) -> dict[str, np.ndarray]:
    columns = {name: clusters.scalars[name].to_numpy() for name in clusters.scalars}
    return {**columns, **clusters.images}


def write_with_uproot(path, columns: dict[str, np.ndarray], *, kind: str, chunk: int = 1_000):
    """Write ``columns`` as a TTree or an RNTuple, ``chunk`` entries per basket / cluster."""
    types = {name: np.dtype((v.dtype, v.shape[1:])) for name, v in columns.items()}
    n = len(next(iter(columns.values())))
    with uproot.recreate(path) as file:
        tree = (
            file.mktree("ClusterTree", types)
            if kind == "TTree"
            else file.mkrntuple("ClusterTree", types)
        )
        for start in range(0, n, chunk):
            tree.extend({name: v[start : start + chunk] for name, v in columns.items()})
    return path


@pytest.fixture(scope="module")
def clusters():
    return random_clusters(2_300, seed=11)


@pytest.fixture(scope="module")
def both(tmp_path_factory, clusters):
    """The same clusters as a TTree and as an RNTuple."""
    folder = tmp_path_factory.mktemp("kinds")
    return {
        kind: write_with_uproot(folder / f"{kind}.root", columns_of(clusters), kind=kind)
        for kind in ("TTree", "RNTuple")
    }


def test_uproot_really_wrote_an_rntuple(both):
    with uproot.open(both["RNTuple"]) as file:
        assert file.classnames()["ClusterTree;1"] == "ROOT::RNTuple"
    assert ntuple.ChunkReader(both["RNTuple"], ["cluster_E"]).kind == "RNTuple"
    assert ntuple.ChunkReader(both["TTree"], ["cluster_E"]).kind == "TTree"


def test_read_clusters_gives_the_same_clusters_from_both_kinds(both, clusters):
    ttree, rntuple = (ntuple.read_clusters(both[kind]) for kind in ("TTree", "RNTuple"))
    assert list(rntuple.scalars.columns) == list(ttree.scalars.columns)
    for name in clusters.scalars:
        np.testing.assert_array_equal(rntuple.scalars[name], clusters.scalars[name])
        assert rntuple.scalars[name].dtype == ttree.scalars[name].dtype
    for name, image in clusters.images.items():
        assert rntuple.images[name].dtype == np.float32
        assert rntuple.images[name].flags.c_contiguous
        np.testing.assert_array_equal(rntuple.images[name], image)


def test_a_cut_and_chosen_branches_work_alike(both):
    options = {"branches": ["EMB2", "cluster_Eta"], "cut": "cluster_E > 5", "entry_stop": 1_700}
    ttree, rntuple = (ntuple.read_clusters(both[kind], **options) for kind in ("TTree", "RNTuple"))
    assert len(rntuple) == len(ttree) > 0
    assert list(rntuple.scalars.columns) == ["cluster_Eta"]
    np.testing.assert_array_equal(rntuple.images["EMB2"], ttree.images["EMB2"])


def test_iterating_in_chunks_gives_the_same_chunks(both):
    chunks = {
        kind: list(ntuple.iterate_clusters(both[kind], branches=["EMB1"], step_size=700))
        for kind in ("TTree", "RNTuple")
    }
    assert [len(c) for c in chunks["RNTuple"]] == [700, 700, 700, 200]
    for a, b in zip(chunks["TTree"], chunks["RNTuple"], strict=True):
        np.testing.assert_array_equal(a.images["EMB1"], b.images["EMB1"])


def test_chunk_reader_aligns_chunks_on_the_rntuple_clusters(both):
    reader = ntuple.ChunkReader(both["RNTuple"], ["cluster_E", "EMB3"])
    assert reader.chunk_bounds(1) == [(0, 1000), (1000, 2000), (2000, 2300)]
    assert reader.chunk_bounds(1_500) == [(0, 2000), (2000, 2300)]
    part = reader.read(1000, 2000, np.array([0, 5, 999]))
    expected = ntuple.ChunkReader(both["TTree"], ["cluster_E", "EMB3"]).read(
        1000, 2000, np.array([0, 5, 999])
    )
    np.testing.assert_array_equal(part.images["EMB3"], expected.images["EMB3"])
    np.testing.assert_array_equal(part.scalars["cluster_E"], expected.scalars["cluster_E"])


def test_an_rntuple_from_dict_assignment_reads_with_legacy_names(tmp_path):
    """uproot >= 5.7 writes an RNTuple for ``file[name] = {...}``; v7 names are aliases there too."""
    path = tmp_path / "legacy.root"
    energy = np.array([0.3, 2.0, 7.5], np.float32)
    with uproot.recreate(path) as file:
        file["ClusterTree"] = {"clusterE": energy, "clusterEta": np.zeros(3, np.float32)}
    clusters = ntuple.read_clusters(path, cut="clusterE > 1")
    np.testing.assert_array_equal(clusters.scalars["cluster_E"], energy[1:])
    assert set(clusters.scalars.columns) == {"cluster_E", "cluster_Eta"}


def test_the_errors_are_those_of_a_ttree(tmp_path, both):
    with pytest.raises(ntuple.NtupleError, match=r"has no branch 'EMB4'; it has: .*EMB1"):
        ntuple.read_clusters(both["RNTuple"], branches=["EMB4"])
    transposed = write_with_uproot(
        tmp_path / "transposed.root",
        {"cluster_E": np.ones(4, np.float32), "EMB1": np.zeros((4, 4, 128), np.float32)},
        kind="RNTuple",
    )
    with pytest.raises(ntuple.NtupleError, match=r"'EMB1' holds images of shape .*transposed"):
        ntuple.read_clusters(transposed)
    data_bytes = both["RNTuple"].read_bytes()
    cut = tmp_path / "cut.root"
    cut.write_bytes(data_bytes[:-100])
    with pytest.raises(ntuple.NtupleError, match=r"cut.root: truncated"):
        ntuple.read_clusters(cut)


def test_an_object_that_is_no_tree_is_refused_with_its_class(tmp_path):
    path = tmp_path / "histogram.root"
    with uproot.recreate(path) as file:
        file["ClusterTree"] = np.histogram(np.arange(10.0), bins=5)
    with pytest.raises(
        ntuple.NtupleError, match=r"'ClusterTree' is a TH1D, not a TTree or an RNTuple"
    ):
        ntuple.read_clusters(path)


def test_selection_and_info_read_an_rntuple(both, capsys):
    samples = {"pi0": both["TTree"], "pipm": both["RNTuple"]}
    selection = data.select(samples, data.SelectionConfig(cut="cluster_E > 2"))
    counts = selection.counts()
    assert counts["pi0"] == counts["pipm"] > 0
    back = data.read_selection(selection, ["EMB2"])
    halves = np.split(back.images["EMB2"], 2)
    np.testing.assert_array_equal(halves[0], halves[1])
    assert cli.main(["info", str(both["RNTuple"]), "--cut", "cluster_E > 1"]) == 0
    assert "EMB1[128, 4]" in capsys.readouterr().out


def test_the_streaming_loader_streams_an_rntuple(keras, both):
    from calotools import loaders
    from calotools.preprocessing import Preprocessing

    prep = Preprocessing(layers=("EMB2",), scalars=(), target="log_energy")
    prep.fit(ntuple.read_clusters(both["TTree"], branches=prep.branches))
    streams = {
        kind: loaders.StreamingDataset(
            {"pipm": both[kind]}, prep, batch_size=256, cut="cluster_E > 1", shuffle=False
        )
        for kind in ("TTree", "RNTuple")
    }
    assert len(streams["RNTuple"]) == len(streams["TTree"]) > 0
    for index in range(len(streams["TTree"])):
        (inputs_t, targets_t), (inputs_r, targets_r) = (s[index] for s in streams.values())
        np.testing.assert_array_equal(inputs_r["EMB2"], inputs_t["EMB2"])
        np.testing.assert_array_equal(targets_r, targets_t)


def test_dask_selects_from_an_rntuple_on_worker_processes(both):
    pytest.importorskip("dask_awkward")
    from calotools import dask_tools

    samples = {"pi0": both["TTree"], "pipm": both["RNTuple"]}
    config = data.SelectionConfig(cut="cluster_E > 2", seed=3)
    with dask_tools.dask_client(n_workers=2, threads_per_worker=1) as client:
        remote = dask_tools.select(samples, config, client=client, step_size=1_000)
    np.testing.assert_array_equal(remote.ids, data.select(samples, config).ids)
