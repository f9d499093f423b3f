"""What a model is to the rest of calotools: the `Predictor` and `TrainedModel` protocols.

Networks (`calotools.models.KerasModel`), boosted decision trees
(`calotools.baselines.BDTModel`), the classify-then-calibrate chain
(`calotools.chain.CalibrationChain`) and the LCW references
(`calotools.baselines.BranchModel`) differ inside but look the same from
outside: a task, the branches they read, and ``predict(clusters)``, which
gives P(π±) for a classifier and the calibrated energy in GeV for a
regression (``docs/conventions.md``). Those trained into a folder also say
where it is and what it records.

Examples
--------
>>> from calotools import baselines
>>> isinstance(baselines.LCW_CLASSIFIER, Predictor)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from calotools.data import Split
    from calotools.ntuple import Clusters

__all__ = ["Predictor", "TrainedModel"]


@runtime_checkable
class Predictor(Protocol):
    """Anything that predicts from clusters: its task, the branches it reads, `predict`."""

    @property
    def task(self) -> str:
        """``"classify"`` (the prediction is P(π±)) or ``"regress"`` (energy in GeV)."""
        ...

    @property
    def branches(self) -> Sequence[str]:
        """The branches `predict` reads."""
        ...

    def predict(self, clusters: Clusters) -> np.ndarray:
        """One float64 value per cluster."""
        ...


@runtime_checkable
class TrainedModel(Predictor, Protocol):
    """A `Predictor` kept in a model folder (`calotools.artifacts`), with what the folder records."""

    folder: Path | None

    @property
    def history(self) -> pd.DataFrame | None:
        """Loss, metrics and learning rate per epoch."""
        ...

    @property
    def test_metrics(self) -> dict[str, Any] | None:
        """The test-set summary written after training."""
        ...

    @property
    def split(self) -> Split | None:
        """The train/validation/test split the model was trained on."""
        ...
