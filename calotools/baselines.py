"""The classical references the networks are compared with, on the same clusters.

- **LCW** (what ATLAS runs): the classification score 1 − ``cluster_EM_PROBABILITY``
  (P(π±), ``docs/conventions.md``) and the energies at EM scale (``cluster_E``)
  and after LCW calibration (``cluster_E_LCCalib``). They read branches and
  train nothing: `LCW_CLASSIFIER`, `EM_SCALE`, `LCW_ENERGY`.
- **Boosted decision trees** on the cluster moments [THAIS2017], for both
  tasks: `BDTModel`, scikit-learn's histogram gradient boosting. Trained by
  `calotools.training.train` (``model="bdt"``) on the same splits as the
  networks, and saved as a model folder (``model.joblib`` + manifest) that
  `calotools.loading.load` restores.

All have ``task``, ``branches`` and ``predict(clusters)`` like a trained
network: P(π±) for classifiers, the energy in GeV for regressions.

Examples
--------
>>> import pandas as pd
>>> clusters = Clusters(pd.DataFrame({"cluster_EM_PROBABILITY": [0.9, 0.25, -1.0]}))
>>> LCW_CLASSIFIER.predict(clusters).tolist()  # P(π±) = 1 − EM_PROBABILITY; −1: not classified
[0.09999999999999998, 0.75, 1.0]
>>> bdt = BDTModel.fit(train_clusters, "classify", labels=train_labels)  # doctest: +SKIP
>>> bdt.save("models/bdt-classify")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from calotools import artifacts, atomic
from calotools.cuts import evaluate_feature, feature_branch
from calotools.errors import BaselineError
from calotools.ntuple import Clusters

__all__ = [
    "BDT_FEATURES",
    "EM_SCALE",
    "LCW_CLASSIFIER",
    "LCW_ENERGY",
    "BDTModel",
    "BaselineError",
    "BranchModel",
]

#: Inputs of the BDT: the cluster energy, |η| and the shape moments of the
#: MLTree schema (the last six are calotools additions, used when present).
#: Truth moments and the LCW outputs are left out: the BDT is an alternative
#: to LCW, built from what LCW itself sees. Trees need no scaling or logs.
BDT_FEATURES: tuple[str, ...] = (
    "cluster_E",
    "abs(cluster_Eta)",
    "cluster_nCells",
    "cluster_CENTER_MAG",
    "cluster_CENTER_LAMBDA",
    "cluster_FIRST_ENG_DENS",
    "cluster_ISOLATION",
    "cluster_SECOND_R",
    "cluster_SECOND_LAMBDA",
    "cluster_LATERAL",
    "cluster_LONGITUDINAL",
    "cluster_ENG_FRAC_EM",
    "cluster_SIGNIFICANCE",
)
_JOBLIB = "model.joblib"


def _column(clusters: Clusters, branch: str) -> np.ndarray:
    if branch not in clusters.scalars:
        msg = (
            f"the clusters lack the branch {branch!r}; "
            f"they have: {', '.join(map(str, clusters.scalars.columns))}"
        )
        raise BaselineError(msg)
    return clusters.scalars[branch].to_numpy(dtype=np.float64)


# ---------------------------------------------------------------------------- LCW


@dataclass(frozen=True)
class BranchModel:
    """A baseline that is a function of branches already in the ntuple."""

    name: str
    task: Literal["classify", "regress"]
    branches: tuple[str, ...]
    function: Callable[..., np.ndarray] = field(repr=False)
    description: str = ""

    def predict(self, clusters: Clusters) -> np.ndarray:
        """P(π±) or the energy in GeV, as float64."""
        return self.function(*(_column(clusters, b) for b in self.branches))


#: LCW classification: P(π±) = 1 − EM_PROBABILITY. MLTree writes −1 for a
#: moment it lacks; clipping to [0, 1] treats that as p_EM = 0, as athena does
#: for clusters outside its tables.
LCW_CLASSIFIER = BranchModel(
    "lcw",
    "classify",
    ("cluster_EM_PROBABILITY",),
    lambda p_em: 1.0 - np.clip(p_em, 0.0, 1.0),
    "LCW classification, 1 − cluster_EM_PROBABILITY",
)
#: The uncalibrated cluster energy.
EM_SCALE = BranchModel(
    "em_scale", "regress", ("cluster_E",), lambda e: e, "cluster energy at EM scale"
)
#: The LCW-calibrated cluster energy.
LCW_ENERGY = BranchModel(
    "lcw", "regress", ("cluster_E_LCCalib",), lambda e: e, "LCW-calibrated cluster energy"
)


# ---------------------------------------------------------------------------- BDT


class BDTModel(artifacts.FolderInfo):
    """Gradient-boosted decision trees on cluster moments, for either task.

    A classifier predicts P(π±). A regression learns ln(E_calib / E_EM), the
    log of the calibration factor, whose scale hardly changes from 0.2 GeV to
    2 TeV, and predicts E_EM · exp(prediction) in GeV.

    Parameters
    ----------
    estimator
        A fitted ``HistGradientBoostingClassifier`` or ``…Regressor``.
    features
        Feature expressions, in the estimator's column order.
    task
        ``"classify"`` or ``"regress"``.
    """

    kind = "bdt"

    def __init__(
        self,
        estimator: Any,
        features: Sequence[str],
        task: Literal["classify", "regress"],
        *,
        name: str = "bdt",
        folder: str | os.PathLike | None = None,
    ) -> None:
        self.estimator = estimator
        self.features = tuple(features)
        self.task = task
        self.name = name
        self.folder = None if folder is None else Path(folder)

    def __repr__(self) -> str:
        return f"BDTModel(task={self.task!r}, {len(self.features)} features)"

    @property
    def branches(self) -> list[str]:
        """Branches `predict` reads."""
        return list(dict.fromkeys([*(feature_branch(f) for f in self.features), "cluster_E"]))

    @staticmethod
    def feature_matrix(clusters: Clusters, features: Sequence[str]) -> np.ndarray:
        """The (n, k) float64 inputs of the trees."""
        columns = {name: clusters.scalars[name].to_numpy() for name in clusters.scalars}
        try:
            return np.stack([evaluate_feature(f, columns) for f in features], axis=1)
        except ValueError as err:
            raise BaselineError(str(err)) from err

    @staticmethod
    def usable_features(branches: Sequence[str]) -> tuple[str, ...]:
        """The `BDT_FEATURES` whose branches are among ``branches``."""
        present = set(branches)
        return tuple(f for f in BDT_FEATURES if feature_branch(f) in present)

    @classmethod
    def fit(
        cls,
        clusters: Clusters,
        task: Literal["classify", "regress"],
        *,
        labels: np.ndarray | None = None,
        features: Sequence[str] | None = None,
        sample_weight: np.ndarray | None = None,
        seed: int = 0,
        **params: Any,
    ) -> BDTModel:
        """Train on ``clusters``.

        Parameters
        ----------
        labels
            0 for π0, 1 for π± (classification).
        features
            Feature expressions; default: the `BDT_FEATURES` the clusters have.
        params
            Keywords of scikit-learn's ``HistGradientBoosting*`` (``max_iter``,
            ``learning_rate``, ``max_leaf_nodes``, …).
        """
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        features = tuple(features or cls.usable_features(list(clusters.scalars.columns)))
        if not features:
            msg = f"no BDT feature among the clusters' branches; expected some of {BDT_FEATURES}"
            raise BaselineError(msg)
        inputs = cls.feature_matrix(clusters, features)
        if task == "classify":
            if labels is None:
                msg = "a BDT classifier needs the labels (0 for π0, 1 for π±)"
                raise BaselineError(msg)
            estimator = HistGradientBoostingClassifier(random_state=seed, **params)
            targets = np.asarray(labels)
        elif task == "regress":
            with np.errstate(divide="ignore", invalid="ignore"):
                targets = np.log(
                    _column(clusters, "cluster_ENG_CALIB_TOT") / _column(clusters, "cluster_E")
                )
            bad = int(np.count_nonzero(~np.isfinite(targets)))
            if bad:
                msg = (
                    f"{bad} clusters have no finite ln(ENG_CALIB_TOT / cluster_E) (energies ≤ 0); "
                    "select clusters with positive energies, e.g. cluster_E > 0"
                )
                raise BaselineError(msg)
            estimator = HistGradientBoostingRegressor(random_state=seed, **params)
        else:
            msg = f"task must be 'classify' or 'regress', got {task!r}"
            raise BaselineError(msg)
        estimator.fit(inputs, targets, sample_weight=sample_weight)
        return cls(estimator, features, task)

    def predict(self, clusters: Clusters) -> np.ndarray:
        """P(π±) for a classifier, the calibrated energy in GeV for a regression."""
        if len(clusters) == 0:
            return np.zeros(0)
        inputs = self.feature_matrix(clusters, self.features)
        if self.task == "classify":
            return self.estimator.predict_proba(inputs)[:, 1]
        return _column(clusters, "cluster_E") * np.exp(self.estimator.predict(inputs))

    def save(self, folder: str | os.PathLike, **manifest: Any) -> Path:
        """Write ``model.joblib`` and the manifest into ``folder`` (created if needed)."""
        import joblib

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_write(folder / _JOBLIB) as tmp:
            joblib.dump(self.estimator, tmp)
        fields: Mapping[str, Any] = {
            "name": self.name,
            "task": self.task,
            "estimator": _JOBLIB,
            "features": list(self.features),
            **manifest,
        }
        artifacts.write_manifest(folder, self.kind, **fields)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> BDTModel:
        """Restore a BDT saved with `save` (the folder must be trusted: joblib unpickles)."""
        import joblib

        folder = Path(folder)
        manifest = artifacts.read_manifest(folder)
        estimator = joblib.load(folder / manifest["estimator"])
        return cls(
            estimator, manifest["features"], manifest["task"], name=manifest["name"], folder=folder
        )
