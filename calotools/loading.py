"""Restore any saved calotools model from its folder: one function for every kind.

A model folder (`calotools.artifacts`) says in its manifest what it holds; `load`
reads it and hands the folder to the class of that kind: a network
(`calotools.models.KerasModel`), boosted decision trees
(`calotools.baselines.BDTModel`) or a classify-then-calibrate chain
(`calotools.chain.CalibrationChain`), whose members are loaded the same way.

Examples
--------
>>> model = load("models/densenet-classify")  # doctest: +SKIP
>>> model.predict(clusters)  # P(π±)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from calotools import artifacts
from calotools.baselines import BDTModel
from calotools.chain import MEMBERS, CalibrationChain
from calotools.errors import ArtifactError
from calotools.models import KerasModel
from calotools.predictor import TrainedModel

__all__ = ["load"]


def load(
    folder: str | os.PathLike, *, trust: bool = False, check_versions: bool = True
) -> TrainedModel:
    """The model saved in ``folder``.

    Returns a `calotools.models.KerasModel`, a `calotools.baselines.BDTModel`
    or a `calotools.chain.CalibrationChain`; each has ``task`` and
    ``predict(clusters)`` (P(π±) for classifiers, energy in GeV for
    regressions) and the accessors of its folder (``history``, ``split``, …).

    Loading runs no code from the folder and reads only files inside it, so a
    folder received from someone else is safe to load; pickles are the
    exception, refused unless ``trust`` is True.

    Parameters
    ----------
    trust
        Unpickle the BDTs of calotools ≤ 0.2 (``model.joblib``), in a chain's
        members too. Unpickling can run any code: pass True only for a folder
        you made yourself.
    check_versions
        Warn once (`calotools.errors.VersionMismatchWarning`) if the model, or
        any member of a chain, was saved with other versions of calotools or
        of the packages it runs on than are installed (major.minor releases
        compared; see `calotools.artifacts.check_versions`).

    Raises
    ------
    ArtifactError
        If ``folder`` is not a complete calotools model folder, holds a
        kind of model this version does not know, or its manifest names a
        file outside it.
    calotools.errors.UntrustedFileError
        For a pickle, unless ``trust`` is True (an `ArtifactError` too).
    """
    model = _load(Path(folder), trust)
    if check_versions:
        artifacts.check_versions(dict(_version_sources(model)))
    return model


def _version_sources(model: TrainedModel) -> list[tuple[Path, tuple[str, ...]]]:
    """(folder, packages its predictions depend on) of a model, or of each member of a chain."""
    if isinstance(model, CalibrationChain):
        return [s for role in MEMBERS for s in _version_sources(getattr(model, role))]
    if isinstance(model, KerasModel | BDTModel) and model.folder is not None:
        return [(model.folder, model.result_packages)]
    return []


def _load(folder: Path, trust: bool) -> KerasModel | BDTModel | CalibrationChain:
    """The model in ``folder``, its versions not checked."""
    kind = artifacts.read_manifest(folder)["kind"]
    if kind == KerasModel.kind:
        return KerasModel.load(folder, check_versions=False)
    if kind == BDTModel.kind:
        return BDTModel.load(folder, trust=trust, check_versions=False)
    if kind == CalibrationChain.kind:
        members = {
            role: _load(path, trust)
            for role, path in CalibrationChain.member_folders(folder).items()
        }
        return CalibrationChain.restore(folder, members)
    msg = f"{folder}: unknown kind of model {kind!r}"
    raise ArtifactError(msg)
