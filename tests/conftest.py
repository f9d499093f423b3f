"""Shared fixtures: small real inputs made with calotools' own code."""

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
