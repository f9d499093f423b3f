"""The detector simulation and reconstruction: how calotools makes its default data set.

In the order events flow through it:

- `calotools.sim.generator`: collision events from Pythia 8 (dijets in ATLAS's
  JZ slices, minimum bias) and their truth jets (extra ``[events]``);
- `calotools.sim.config`: `SimulationConfig`, everything that defines a
  simulated sample, and the particle constants;
- `calotools.sim.showers`: the shower parameterisations (GFlash EM showers,
  Bock hadronic profiles, π0 → γγ) and how they deposit energy in the layers;
- `calotools.sim.cells`: the window of cells around each particle, or the whole barrel;
- `calotools.sim.simulation`: single particles through the barrel, batch by batch;
- `calotools.sim.barrel`: whole collision events, every particle showering into
  the cells of the whole barrel; `calotools.sim.pileup`: minimum-bias pile-up
  overlaid from a library of presimulated events;
- `calotools.sim.clustering`, `calotools.sim.moments`, `calotools.sim.images`:
  ATLAS 4-2-0 topo-clustering, cluster moments and the MLTree layer images;
- `calotools.sim.calibration`: the LCW-style classification and calibration;
- `calotools.sim.reconstruction`: cells → clusters, moments and images, one call per batch;
- `calotools.sim.workers`: worker processes computing a sample's tasks in order;
- `calotools.sim.samples`: samples written as ntuples with sidecars, and the
  default data set (``calotools simulate``);
- `calotools.sim.event_samples`: collision-event files (clusters and an event
  tree with jets), ``calotools simulate --sample jz2w --mu 40``;
- `calotools.sim.pileup_samples`: a sample at several ⟨μ⟩ with the same hard
  scatter, and the partners of its clusters with and without pile-up.

It writes what `calotools.ntuple` reads, and imports nothing of the analysis
layer but `calotools.jets`, for the jets of the event files. The physics and its sources are in ``docs/physics.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "barrel",
    "calibration",
    "cells",
    "clustering",
    "config",
    "event_samples",
    "generator",
    "images",
    "moments",
    "pileup",
    "pileup_samples",
    "reconstruction",
    "samples",
    "showers",
    "simulation",
    "workers",
]

if TYPE_CHECKING:
    from calotools.sim import (
        barrel,
        calibration,
        cells,
        clustering,
        config,
        event_samples,
        generator,
        images,
        moments,
        pileup,
        pileup_samples,
        reconstruction,
        samples,
        showers,
        simulation,
        workers,
    )


def __getattr__(name: str) -> object:
    if name in __all__:
        return importlib.import_module(f"calotools.sim.{name}")
    msg = f"module 'calotools.sim' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(__all__)
