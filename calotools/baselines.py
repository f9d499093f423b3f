"""The classical references the networks are compared with, on the same clusters.

- **LCW** (what ATLAS runs): the classification score 1 − ``cluster_EM_PROBABILITY``
  (P(π±), ``docs/conventions.md``) and the energies at EM scale (``cluster_E``)
  and after LCW calibration (``cluster_E_LCCalib``). They read branches and
  train nothing: `LCW_CLASSIFIER`, `EM_SCALE`, `LCW_ENERGY`.
- **Boosted decision trees** on the cluster moments [THAIS2017], for both
  tasks: `BDTModel`, LightGBM's gradient boosting. Trained by
  `calotools.training.train` (``model="bdt"``) on the same splits as the
  networks, and saved as a model folder (``model.txt`` + manifest) that
  `calotools.loading.load` restores.

A BDT is saved in LightGBM's own text model format, not as a pickle, so that
a model folder received from someone else is data: the file is parsed by
LightGBM's C++ loader, which builds trees and constructs no Python objects,
and it loads across LightGBM versions (binary wheels for every supported
Python). calotools ≤ 0.2 pickled scikit-learn's estimator (``model.joblib``);
such a folder loads only with ``trust=True``, since unpickling can run any code.

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
from calotools.errors import BaselineError, UntrustedFileError
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
_MODEL_FILE = "model.txt"
_MODEL_FORMAT = "lightgbm-text"
#: A full-size forest: 200 trees of 31 leaves, learning rate 0.1 (LightGBM's defaults
#: but for the number of trees).
_DEFAULT_PARAMS: dict[str, Any] = {"n_estimators": 200, "learning_rate": 0.1, "num_leaves": 31}
#: Settings every fit gets: the same trees from the same seed, whatever the machine.
_FIXED = {"deterministic": True, "force_col_wise": True, "verbose": -1}
#: scikit-learn's names (calotools ≤ 0.2) → LightGBM's.
_RENAMED = {
    "max_iter": "n_estimators",
    "max_leaf_nodes": "num_leaves",
    "min_samples_leaf": "min_child_samples",
    "l2_regularization": "reg_lambda",
    "max_bins": "max_bin",
    "random_state": "seed",
    "early_stopping": "no early stopping (n_estimators trees are grown)",
}


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


class _Pickled:
    """A scikit-learn estimator of calotools ≤ 0.2, predicting like a LightGBM booster."""

    def __init__(self, estimator: Any, task: str) -> None:
        self.estimator, self.task = estimator, task

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        if self.task == "classify":
            return self.estimator.predict_proba(inputs)[:, 1]
        return self.estimator.predict(inputs)


def _check_params(params: Mapping[str, Any]) -> None:
    """Refuse the old scikit-learn names and names LightGBM does not know (it would ignore them)."""
    import inspect

    import lightgbm

    for name in params:
        if name in _RENAMED:
            msg = (
                f"BDT parameter {name!r} is scikit-learn's; calotools' BDTs are LightGBM's "
                f"now: use {_RENAMED[name]}"
            )
            raise TypeError(msg)
    known = set(inspect.signature(lightgbm.LGBMModel.__init__).parameters) - {"self", "kwargs"}
    try:  # LightGBM's own parameter names and their aliases (private, hence guarded)
        aliases = lightgbm.basic._ConfigAliases._get_all_param_aliases()
        known |= set(aliases) | {a for names in aliases.values() for a in names}
    except (AttributeError, TypeError):
        pass
    unknown = sorted(set(params) - known)
    if unknown:
        msg = f"unknown BDT parameters {unknown}; LightGBM's are e.g. {sorted(_DEFAULT_PARAMS)}"
        raise TypeError(msg)


class BDTModel(artifacts.FolderInfo):
    """Gradient-boosted decision trees on cluster moments, for either task.

    A classifier predicts P(π±). A regression learns ln(E_calib / E_EM), the
    log of the calibration factor, whose scale hardly changes from 0.2 GeV to
    2 TeV, and predicts E_EM · exp(prediction) in GeV.

    Parameters
    ----------
    estimator
        A fitted ``lightgbm.Booster``: its ``predict`` gives P(π±) for a
        classifier, ln(E_calib / E_EM) for a regression.
    features
        Feature expressions, in the estimator's column order.
    task
        ``"classify"`` or ``"regress"``.
    """

    kind = "bdt"
    #: Packages whose versions can change the predictions (`calotools.artifacts.check_versions`).
    result_packages: tuple[str, ...] = ("calotools", "numpy", "lightgbm")

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
        """Train on ``clusters``; the same seed and data give the same trees.

        Parameters
        ----------
        labels
            0 for π0, 1 for π± (classification).
        features
            Feature expressions; default: the `BDT_FEATURES` the clusters have.
        params
            Keywords of LightGBM's ``LGBMClassifier``/``LGBMRegressor``
            (``n_estimators``, ``learning_rate``, ``num_leaves``, …); default
            200 trees of 31 leaves, learning rate 0.1. The scikit-learn names
            of calotools ≤ 0.2 (``max_iter``, …) and names LightGBM does not
            know raise a `TypeError` (LightGBM would ignore them).
        """
        import lightgbm

        _check_params(params)
        features = tuple(features or cls.usable_features(list(clusters.scalars.columns)))
        if not features:
            msg = f"no BDT feature among the clusters' branches; expected some of {BDT_FEATURES}"
            raise BaselineError(msg)
        inputs = cls.feature_matrix(clusters, features)
        settings = {**_DEFAULT_PARAMS, **params, **_FIXED, "random_state": seed}
        if task == "classify":
            if labels is None:
                msg = "a BDT classifier needs the labels (0 for π0, 1 for π±)"
                raise BaselineError(msg)
            estimator = lightgbm.LGBMClassifier(**settings)
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
            estimator = lightgbm.LGBMRegressor(**settings)
        else:
            msg = f"task must be 'classify' or 'regress', got {task!r}"
            raise BaselineError(msg)
        estimator.fit(inputs, targets, sample_weight=sample_weight, feature_name=list(features))
        return cls(estimator.booster_, features, task)

    def predict(self, clusters: Clusters) -> np.ndarray:
        """P(π±) for a classifier, the calibrated energy in GeV for a regression."""
        if len(clusters) == 0:
            return np.zeros(0)
        raw = np.asarray(self.estimator.predict(self.feature_matrix(clusters, self.features)))
        if self.task == "classify":
            return raw.astype(np.float64)
        return _column(clusters, "cluster_E") * np.exp(raw)

    def save(self, folder: str | os.PathLike, **manifest: Any) -> Path:
        """Write ``model.txt``, ``versions.json`` and the manifest into ``folder`` (made if needed)."""
        if isinstance(self.estimator, _Pickled):
            msg = "a BDT of calotools ≤ 0.2 cannot be saved again; retrain it"
            raise BaselineError(msg)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_write(folder / _MODEL_FILE) as tmp:
            self.estimator.save_model(tmp)
        artifacts.write_json(folder / artifacts.VERSIONS, artifacts.software_versions())
        fields: Mapping[str, Any] = {
            "name": self.name,
            "task": self.task,
            "estimator": _MODEL_FILE,
            "estimator_format": _MODEL_FORMAT,
            "features": list(self.features),
            "versions": artifacts.VERSIONS,
            **manifest,
        }
        artifacts.write_manifest(folder, self.kind, **fields)
        return folder

    @classmethod
    def load(
        cls, folder: str | os.PathLike, *, trust: bool = False, check_versions: bool = True
    ) -> BDTModel:
        """Restore a BDT saved with `save`.

        Parameters
        ----------
        trust
            Unpickle the ``model.joblib`` of a folder made by calotools ≤ 0.2.
            Unpickling can run any code: pass True only for a folder you made
            yourself.
        check_versions
            Warn (`calotools.errors.VersionMismatchWarning`) if the folder's
            ``versions.json`` records other versions of calotools, NumPy or
            LightGBM than are installed.

        Raises
        ------
        calotools.errors.UntrustedFileError
            For a pickled estimator without ``trust=True``.
        calotools.errors.ArtifactError
            If the manifest names a file outside the folder, or the model
            file is not what the manifest says.
        """
        import lightgbm

        folder = Path(folder)
        manifest = artifacts.read_manifest(folder)
        path = artifacts.member_path(folder, manifest.get("estimator"), key="estimator")
        features, task = manifest["features"], manifest["task"]
        packages = cls.result_packages
        kind = manifest.get("estimator_format")
        if kind == _MODEL_FORMAT:
            try:
                estimator: Any = lightgbm.Booster(model_file=path)
            except lightgbm.basic.LightGBMError as err:
                msg = f"{path}: not a readable LightGBM model ({err})"
                raise artifacts.ArtifactError(msg) from None
            if estimator.feature_name() != list(features):
                msg = (
                    f"{path}: its trees take the features {estimator.feature_name()}, "
                    f"but {folder / artifacts.MANIFEST} lists {features}"
                )
                raise artifacts.ArtifactError(msg)
        elif kind is not None:
            msg = f"{path}: unknown BDT format {kind!r} (expected {_MODEL_FORMAT!r})"
            raise artifacts.ArtifactError(msg)
        elif trust:  # no format recorded: a joblib pickle of calotools ≤ 0.2
            import joblib

            estimator = _Pickled(joblib.load(path), task)
            packages = ("calotools", "numpy", "scikit-learn")
        else:
            msg = (
                f"{path}: refusing to unpickle it, since unpickling a file can run any code "
                "(a BDT of calotools ≤ 0.2 was a pickle). Pass trust=True only for a folder "
                "you made yourself, or retrain the BDT"
            )
            raise UntrustedFileError(msg)
        model = cls(estimator, features, task, name=manifest["name"], folder=folder)
        model.result_packages = packages
        if check_versions:
            artifacts.check_versions({folder: packages})
        return model
