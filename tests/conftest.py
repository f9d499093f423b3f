"""Shared fixtures: small real inputs made with calotools' own code, and test hygiene."""

from __future__ import annotations

import pytest

from calotools import ntuple
from calotools.testing import random_clusters


@pytest.fixture(scope="session")
def clusters() -> ntuple.Clusters:
    """2,500 synthetic clusters with every schema branch (I/O tests only: not physics)."""
    return random_clusters(2_500, seed=7)


@pytest.fixture
def cluster_file(tmp_path, clusters):
    """A real ClusterTree file on disk, in baskets of 1,000 entries."""
    return ntuple.write_clusters(tmp_path / "pi0.root", clusters, basket_size=1_000)


@pytest.fixture(scope="module")
def keras():
    """Keras, seeded once per test module so that tiny trainings are reproducible."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    return keras


@pytest.fixture(scope="module")
def one_openmp_thread():
    """scikit-learn's OpenMP threads stall on a busy two-core machine; one is faster there."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="openmp"):
        yield


@pytest.fixture
def render_and_close_figures():
    """Render what a test drew (warnings at draw time fail it), then close every figure.

    Closing matters too: more than 20 open figures is a warning, hence an error.
    """
    import matplotlib.pyplot as plt

    yield
    try:
        for number in plt.get_fignums():
            plt.figure(number).canvas.draw()
    finally:
        plt.close("all")
