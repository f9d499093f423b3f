"""calotools: machine learning on ATLAS-like calorimeter topo-cluster images.

The package has two halves that meet in a shared contract:

- `calotools.sim`: the detector simulation and reconstruction that make the
  default data set (showers, cells, topo-clustering, moments, images, the
  LCW-style calibration, samples on disk);
- the contract both halves share: `calotools.geometry` (the barrel layers,
  cells and image window), `calotools.ntuple` (MLTree ``ClusterTree`` files,
  TTree or RNTuple) and `calotools.cuts` (selections and features as
  expressions on branch names);
- the analysis layer, in the order data flows through it: `calotools.data`
  (samples, selections, splits), `calotools.preprocessing` (model inputs as
  data), `calotools.loaders` (in memory or streamed), `calotools.models`,
  `calotools.baselines`, `calotools.chain` and `calotools.stacking` (the
  studies' networks, the classical references, classify-then-calibrate,
  combined scores), `calotools.loading` (any
  saved model), `calotools.training`, `calotools.evaluation`,
  `calotools.metrics`, `calotools.jets` (jets of clusters, matched to truth
  jets, and their response), `calotools.plotting`, `calotools.interpret` (what a
  network learned), `calotools.widgets`, `calotools.dask_tools`,
  `calotools.study`, `calotools.domain_shift` (the samples of the LLNL
  domain-shift study), `calotools.adversarial` (training against an
  adversary: a classifier independent of pile-up or energy),
  `calotools.denoising` (the LAPP pile-up denoising autoencoder),
  `calotools.pileup_study` (performance versus ⟨μ⟩) and `calotools.cli`.

Helpers every layer may use: `calotools.errors` (the error classes),
`calotools.atomic` (files and folders written whole or not at all),
`calotools.extras` (optional dependencies), `calotools.artifacts` (the model
folder), `calotools.backend` (Keras, imported once), `calotools.layers`
(calotools' own Keras layers) and `calotools.version`;
`calotools.testing` makes synthetic clusters for tests and benchmarks.

Papers are cited by their keys in ``docs/references.md`` ([LLNL2020], …); the
simulation's physics is in ``docs/physics.md``, the file format in
``docs/ntuple-format.md`` and the studies' conventions in ``docs/conventions.md``.

Submodules are imported on first use, so ``import calotools`` stays fast and
does not pull in TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from calotools import _deprecated
from calotools.version import __version__

__all__ = [
    "__version__",
    "adversarial",
    "artifacts",
    "atomic",
    "backend",
    "baselines",
    "chain",
    "cli",
    "cuts",
    "dask_tools",
    "data",
    "denoising",
    "domain_shift",
    "errors",
    "evaluation",
    "extras",
    "geometry",
    "interpret",
    "jets",
    "layers",
    "loaders",
    "loading",
    "metrics",
    "models",
    "ntuple",
    "pileup_study",
    "plotting",
    "predictor",
    "preprocessing",
    "shower_shapes",
    "sim",
    "stacking",
    "study",
    "testing",
    "training",
    "widgets",
]

if TYPE_CHECKING:
    from calotools import (
        adversarial,
        artifacts,
        atomic,
        backend,
        baselines,
        chain,
        cli,
        cuts,
        dask_tools,
        data,
        denoising,
        domain_shift,
        errors,
        evaluation,
        extras,
        geometry,
        interpret,
        jets,
        layers,
        loaders,
        loading,
        metrics,
        models,
        ntuple,
        pileup_study,
        plotting,
        predictor,
        preprocessing,
        shower_shapes,
        sim,
        stacking,
        study,
        testing,
        training,
        widgets,
    )

# calotools 0.1 had the simulation modules at the top level: keep those paths for a release.
_deprecated.install()
_MOVED = {old.rpartition(".")[2] for old in _deprecated.MOVED_MODULES}


def __getattr__(name: str) -> object:
    if name in __all__ or name in _MOVED:
        return importlib.import_module(f"calotools.{name}")
    msg = f"module 'calotools' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(__all__)
