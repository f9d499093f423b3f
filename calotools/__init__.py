"""calotools: machine learning on ATLAS-like calorimeter topo-cluster images.

The modules, in the order data flows through them:

- `calotools.geometry`: the barrel layers, cells and image window;
- `calotools.simulation` (with `calotools.showers`): the fast shower
  simulation, filling the window cells of `calotools.cells`;
- `calotools.clustering`, `calotools.moments`, `calotools.images`: ATLAS 4-2-0
  topo-clustering, cluster moments and the MLTree layer images;
- `calotools.calibration`: the LCW-style classification and calibration;
- `calotools.reconstruction`, `calotools.samples`: cells → clusters → LCW →
  ntuple files, and the default data set (``calotools simulate``);
- `calotools.ntuple`: read and write MLTree ``ClusterTree`` ntuples;
- `calotools.cuts`: selections as expressions on branch names;
- `calotools.data`, `calotools.preprocessing`, `calotools.loaders`: samples,
  labels and splits; model inputs as data; in-memory and streaming loaders;
- `calotools.dask_tools`: selection and inference over many files with Dask;
- `calotools.models`, `calotools.baselines`, `calotools.training`,
  `calotools.chain`, `calotools.evaluation`: the studies' networks and the
  classical baselines, trained into self-describing folders, and the
  classify-then-calibrate chain;
- `calotools.backend`: Keras on TensorFlow, imported once, its start-up log
  lines kept to ``TF_CPP_MIN_LOG_LEVEL``;
- `calotools.metrics`: ROC, rejection, cutoff-p scans, binned response;
- `calotools.plotting`: ATLAS-style figures of all of the above;
- `calotools.interpret`: what a network learned (activation, correlation maps);
- `calotools.widgets`: ipywidgets explorers over the pure functions above;
- `calotools.study`: the study's models, and running it end to end (``make demo``).

Submodules are imported on first use, so ``import calotools`` stays fast and
does not pull in TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

try:
    from calotools._version import __version__
except ImportError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "artifacts",
    "backend",
    "baselines",
    "calibration",
    "cells",
    "chain",
    "clustering",
    "cuts",
    "dask_tools",
    "data",
    "evaluation",
    "geometry",
    "images",
    "interpret",
    "loaders",
    "metrics",
    "models",
    "moments",
    "ntuple",
    "plotting",
    "preprocessing",
    "reconstruction",
    "samples",
    "showers",
    "simulation",
    "study",
    "training",
    "widgets",
]

if TYPE_CHECKING:
    from calotools import (
        artifacts,
        backend,
        baselines,
        calibration,
        cells,
        chain,
        clustering,
        cuts,
        dask_tools,
        data,
        evaluation,
        geometry,
        images,
        interpret,
        loaders,
        metrics,
        models,
        moments,
        ntuple,
        plotting,
        preprocessing,
        reconstruction,
        samples,
        showers,
        simulation,
        study,
        training,
        widgets,
    )


def __getattr__(name: str):
    if name in __all__:
        return importlib.import_module(f"calotools.{name}")
    msg = f"module 'calotools' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(__all__)
