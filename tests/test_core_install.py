"""The core install (no TensorFlow, Dask or Jupyter) reads, writes and simulates ntuples,
selects data and computes metrics, and says which extra the rest needs.

``make test`` builds that environment in ``.venv-core`` (``pip install -c requirements.lock
-e .``) and names its Python in ``CALOTOOLS_CORE_PYTHON``; the script below runs there.
"""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

CORE_PYTHON = os.environ.get("CALOTOOLS_CORE_PYTHON")

SCRIPT = textwrap.dedent(
    """
    import importlib.util, sys, tempfile
    from pathlib import Path

    import numpy as np
    import uproot

    # Nothing of the extras is installed here.
    for name in ("tensorflow", "keras", "dask", "distributed", "ipywidgets", "papermill"):
        assert importlib.util.find_spec(name) is None, f"{name} is installed in the core env"

    from calotools import cli, data, errors, extras, metrics, ntuple, plotting
    from calotools.sim import samples
    from calotools.testing import random_clusters

    folder = Path(tempfile.mkdtemp())
    # Write and read a ClusterTree (TTree), and one stored as an RNTuple by plain uproot.
    clusters = random_clusters(300, seed=1)
    ntuple.write_clusters(folder / "pi0.root", clusters)
    back = ntuple.read_clusters(folder / "pi0.root", cut="cluster_E > 1")
    assert len(back) == int((clusters.scalars["cluster_E"] > 1).sum())
    with uproot.recreate(folder / "rntuple.root") as file:
        file["ClusterTree"] = {"cluster_E": np.array([0.5, 2.0, 3.0], np.float32)}
    assert len(ntuple.read_clusters(folder / "rntuple.root", cut="cluster_E > 1")) == 2

    # Simulate, cluster and write a small sample with the real simulation.
    path = samples.make_sample("pipm", folder / "pipm.root", n_events=40, progress=False, workers=1)
    simulated = ntuple.read_clusters(path)
    assert len(simulated) >= 40 and simulated.images["EMB2"].shape[1:] == (16, 16)

    # Select, split, and compute the metrics of the LCW-free EM-scale response.
    selection = data.select({"pi0": folder / "pi0.root", "pipm": path}, data.SelectionConfig(cut=None))
    parts = data.split(selection, seed=1)
    assert len(parts["test"]) > 0
    labels = np.r_[np.zeros(50), np.ones(50)]
    assert metrics.auc(labels, np.r_[np.zeros(50), np.ones(50)]) == 1.0
    table = metrics.binned_response(simulated.scalars["cluster_ENG_CALIB_TOT"].clip(0.3),
                                    simulated.scalars["cluster_E"])
    assert table["count"].sum() > 0
    import matplotlib
    matplotlib.use("Agg")
    plotting.response({"EM scale": table})
    assert cli.main(["info", str(path)]) == 0

    # The extras say what to install.
    from calotools import backend, dask_tools, widgets
    for call, extra in (
        (backend.keras, "ml"),
        (lambda: dask_tools.select({"pi0": folder / "pi0.root"}), "dask"),
        (lambda: widgets.ClusterBrowser({"pi0": clusters}), "notebooks"),
    ):
        try:
            call()
        except errors.MissingExtraError as err:
            assert f'pip install "calotools[{extra}]"' in str(err), str(err)
        else:
            raise AssertionError(f"{call} worked without the [{extra}] extra")
    print("core install: OK")
    """
)


@pytest.mark.skipif(
    CORE_PYTHON is None,
    reason="make test builds the core-only environment (.venv-core) and sets CALOTOOLS_CORE_PYTHON",
)
def test_the_core_api_works_without_the_extras(tmp_path):
    result = subprocess.run(
        [CORE_PYTHON, "-c", SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "core install: OK" in result.stdout
