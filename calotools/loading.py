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
from calotools.chain import CalibrationChain
from calotools.errors import ArtifactError
from calotools.models import KerasModel
from calotools.predictor import TrainedModel

__all__ = ["load"]


def load(folder: str | os.PathLike) -> TrainedModel:
    """The model saved in ``folder``.

    Returns a `calotools.models.KerasModel`, a `calotools.baselines.BDTModel`
    or a `calotools.chain.CalibrationChain`; each has ``task`` and
    ``predict(clusters)`` (P(π±) for classifiers, energy in GeV for
    regressions) and the accessors of its folder (``history``, ``split``, …).

    Raises
    ------
    ArtifactError
        If ``folder`` is not a complete calotools model folder, or holds a
        kind of model this version does not know.
    """
    folder = Path(folder)
    kind = artifacts.read_manifest(folder)["kind"]
    if kind == KerasModel.kind:
        return KerasModel.load(folder)
    if kind == BDTModel.kind:
        return BDTModel.load(folder)
    if kind == CalibrationChain.kind:
        members = {
            role: load(path) for role, path in CalibrationChain.member_folders(folder).items()
        }
        return CalibrationChain.restore(folder, members)
    msg = f"{folder}: unknown kind of model {kind!r}"
    raise ArtifactError(msg)
