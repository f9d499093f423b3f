"""The simulated default data set against docs/physics.md §6, and its production.

One small default data set (3,000 events per sample, LCW tables from an
independent 3,000-event calibration sample) is made once for the module with
the real simulation, clustering and calibration. Statistical tolerances: with
≳ 500 clusters per energy range the medians are known to ≲ 1 % (1.25 σ/√N),
well inside the ranges of docs/physics.md §6.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from calotools import metrics, ntuple
from calotools.sim import samples

N_EVENTS = 3_000
SELECTION = "abs(cluster_Eta) < 0.7 and cluster_ENG_CALIB_TOT > 0.2"


@pytest.fixture(scope="module")
def default_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return samples.make_default(folder, n_events=N_EVENTS, n_calibration=N_EVENTS, progress=False)


@pytest.fixture(scope="module")
def pi0(default_data):
    return ntuple.read_clusters(default_data.pi0, cut=SELECTION).scalars


@pytest.fixture(scope="module")
def pipm(default_data):
    return ntuple.read_clusters(default_data.pipm, cut=SELECTION).scalars


def response(scalars, energy, low, high):
    truth = scalars["cluster_ENG_CALIB_TOT"].to_numpy()
    in_range = (truth > low) & (truth < high)
    return scalars[energy].to_numpy()[in_range] / truth[in_range]


def test_pi0_em_scale_response_is_one_from_3_to_100_gev(pi0):
    """§6: π0 median cluster_E / ENG_CALIB_TOT in 0.97–1.03 for 3–100 GeV."""
    ratio = response(pi0, "cluster_E", 3, 100)
    assert len(ratio) > 500
    assert 0.97 <= np.median(ratio) <= 1.03


def test_charged_pion_em_scale_response_is_low_and_rises_with_energy(pipm):
    """§6: π± median cluster_E / ENG_CALIB_TOT in 0.75–0.92 (non-compensation), rising 3→100 GeV."""
    medians = [
        np.median(response(pipm, "cluster_E", low, high))
        for low, high in ((3, 10), (10, 30), (30, 100))
    ]
    assert all(0.75 <= m <= 0.92 for m in medians), medians
    assert medians[0] < medians[2]


def test_em_probability_separates_pions_with_atlas_like_auc(pi0, pipm):
    """§6: 1 − cluster_EM_PROBABILITY as a π± vs π0 score has an AUC in 0.90–0.98."""
    labels = np.r_[np.zeros(len(pi0)), np.ones(len(pipm))]
    score = 1 - np.r_[pi0["cluster_EM_PROBABILITY"], pipm["cluster_EM_PROBABILITY"]]
    assert 0.90 <= metrics.auc(labels, score) <= 0.98


def test_lcw_calibrates_charged_pions_above_3_gev(pipm):
    """§6: π± median cluster_E_LCCalib / ENG_CALIB_TOT in 0.95–1.05 above 3 GeV."""
    ratio = response(pipm, "cluster_E_LCCalib", 3, np.inf)
    assert len(ratio) > 500
    assert 0.95 <= np.median(ratio) <= 1.05


def test_lcw_resolution_is_better_than_em_scale(pipm):
    """§5: the LCW weights narrow the π± response ((q84 − q16) / (2 median)) above 3 GeV."""

    def resolution(ratio):
        q16, q50, q84 = np.quantile(ratio, [0.16, 0.5, 0.84])
        return (q84 - q16) / (2 * q50)

    em = resolution(response(pipm, "cluster_E", 3, np.inf))
    lcw = resolution(response(pipm, "cluster_E_LCCalib", 3, np.inf))
    assert lcw < em


def test_cells_per_cluster_are_tens_to_hundreds(pi0, pipm):
    """§6: the median number of cells per cluster is tens to low hundreds."""
    for scalars in (pi0, pipm):
        assert 10 <= np.median(scalars["cluster_nCells"]) <= 500


def test_files_have_the_schema_images_and_sidecars(default_data):
    """The default files read back with every image and an LCW branch; sidecars say how."""
    clusters = ntuple.read_clusters(default_data.pipm, entry_stop=100)
    assert {name: image.shape[1:] for name, image in clusters.images.items()} == (
        ntuple.IMAGE_BRANCHES
    )
    pdg = ntuple.read_clusters(default_data.pipm, ["truthPDG"]).scalars["truthPDG"]
    assert set(pdg) == {211, -211}
    sidecar = json.loads(default_data.pipm.with_suffix(".json").read_text())
    assert sidecar["configuration"]["n_events"] == N_EVENTS
    assert [c["particle"] for c in sidecar["configuration"]["simulation"]] == ["pi+", "pi-"]
    assert sidecar["configuration"]["lcw_sha256"]
    assert (
        sidecar["n_clusters"]
        == ntuple.read_clusters(default_data.pipm, ["cluster_E"]).scalars.shape[0]
    )


def test_rerun_with_the_same_configuration_reuses_files(default_data, caplog):
    """Asking again for the same data set writes nothing new, and says so."""
    before = {p: p.stat().st_mtime_ns for p in default_data.folder.iterdir()}
    with caplog.at_level(logging.INFO, logger="calotools"):
        samples.make_default(
            default_data.folder, n_events=N_EVENTS, n_calibration=N_EVENTS, progress=False
        )
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert all("reusing" in message for message in messages)
    assert {p: p.stat().st_mtime_ns for p in default_data.folder.iterdir()} == before


def test_same_seed_same_data(tmp_path):
    """Two runs with one seed give identical files' contents."""
    paths = [
        samples.make_sample("pi0", tmp_path / f"{i}.root", n_events=200, seed=5, progress=False)
        for i in range(2)
    ]
    first, second = (ntuple.read_clusters(p) for p in paths)
    assert first.scalars.equals(second.scalars)
    for name in first.images:
        np.testing.assert_array_equal(first.images[name], second.images[name])


# Ctrl-C right when the output file appears lands while the worker processes are
# forked (where Python would lose it); two seconds later, while batches are computed.
@pytest.mark.parametrize("delay", [0.0, 2.0], ids=["while-workers-start", "while-computing"])
def test_interrupted_simulation_leaves_no_file(tmp_path, delay):
    """Ctrl-C in the middle of `calotools simulate` stops it, leaving no file and no temporary."""
    out = tmp_path / "pipm.root"
    command = [sys.executable, "-m", "calotools", "simulate", "--sample", "pipm"]
    command += ["--n", "500000", "--workers", "2", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(tmp_path.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)  # wait until writing has started
        assert any(tmp_path.iterdir()), "calotools simulate wrote nothing within 60 s"
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        # 500k π± events take minutes; stopping takes the batches in flight, seconds.
        process.wait(timeout=60)
    finally:
        process.kill()  # no-op when it has stopped; never leave it running into other tests
        process.wait()
    assert process.returncode != 0
    assert list(tmp_path.iterdir()) == []


def test_unknown_sample_is_named():
    """A sample name that does not exist lists the ones that do."""
    with pytest.raises(
        ValueError, match="unknown sample 'kaon'; the samples are: pi0, pipm, gamma"
    ):
        samples.sample_configs("kaon", 10)


def test_output_does_not_depend_on_the_number_of_workers(tmp_path, default_data):
    """Batches computed in parallel processes give the file of a single process."""
    paths = [
        samples.make_sample(
            "pipm",
            tmp_path / f"w{workers}.root",
            n_events=300,
            seed=9,
            lcw=default_data.lcw_tables,
            progress=False,
            workers=workers,
            simulation={"batch_size": 64},
        )
        for workers in (1, 2)
    ]
    one, two = (ntuple.read_clusters(p) for p in paths)
    assert one.scalars.equals(two.scalars)
    for name in one.images:
        np.testing.assert_array_equal(one.images[name], two.images[name])
