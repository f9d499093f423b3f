"""Classify, then calibrate: the energy chain of the LLNL report (LLNL-TR-814867 §2.4.2).

π0 and π± clusters deposit their energy differently, so each class gets its
own regression, and a classifier decides which one a cluster gets:

- ``"hard"``: the cluster is called π0 when P(π0) = 1 − P(π±) exceeds the
  cutoff p (0.5 in the report, which also discusses 0.3), and takes the π0
  regression's energy; otherwise the π± regression's;
- ``"soft"``: E = P(π0) · E_π0 + (1 − P(π0)) · E_π±, the classifier's
  probability weighting the two calibrations, as LCW mixes its EM and
  hadronic weights with p_EM (w = p + (1 − p) · w_had).

A chain is one saved object: a folder with its manifest and the three member
models' folders inside it (``classifier/``, ``pi0/``, ``pipm/``), so it can be
copied and loaded as a whole. The members are any calotools models (networks
or BDTs).

Examples
--------
>>> chain = CalibrationChain.from_folders(
...     "models/densenet-classify", "models/densenet-regress-pi0",
...     "models/densenet-regress-pipm", cutoff=0.5)  # doctest: +SKIP
>>> chain.save("models/chain")  # doctest: +SKIP
>>> energy = calotools.models.load("models/chain").predict(clusters)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from calotools import artifacts
from calotools.ntuple import Clusters

__all__ = ["CalibrationChain", "ChainError"]

Mode = Literal["hard", "soft"]
_MEMBERS = ("classifier", "pi0", "pipm")


class ChainError(ValueError):
    """Members that cannot form a chain, or a bad cutoff or mode."""


class CalibrationChain(artifacts.FolderInfo):
    """A π0/π± classifier routing clusters to the regression of their class.

    Parameters
    ----------
    classifier
        A model with ``task == "classify"`` predicting P(π±).
    pi0, pipm
        Regressions trained on π0 and on π± clusters (energy in GeV).
    cutoff
        p of the hard call: π0 when P(π0) > p.
    mode
        ``"hard"`` or ``"soft"`` (module docstring).
    """

    kind = "chain"
    task = "regress"

    def __init__(
        self,
        classifier: Any,
        pi0: Any,
        pipm: Any,
        *,
        cutoff: float = 0.5,
        mode: Mode = "hard",
        folder: str | os.PathLike | None = None,
    ) -> None:
        for role, member, task in (
            ("classifier", classifier, "classify"),
            ("pi0", pi0, "regress"),
            ("pipm", pipm, "regress"),
        ):
            if getattr(member, "task", None) != task:
                msg = f"the {role} member must be a {task} model; got {member!r}"
                raise ChainError(msg)
        if not 0.0 <= cutoff <= 1.0:
            msg = f"the cutoff p must lie in [0, 1], got {cutoff}"
            raise ChainError(msg)
        if mode not in ("hard", "soft"):
            msg = f"mode must be 'hard' or 'soft', got {mode!r}"
            raise ChainError(msg)
        self.classifier, self.pi0, self.pipm = classifier, pi0, pipm
        self.cutoff = float(cutoff)
        self.mode: Mode = mode
        self.folder = None if folder is None else Path(folder)

    def __repr__(self) -> str:
        return f"CalibrationChain(mode={self.mode!r}, cutoff={self.cutoff})"

    @property
    def branches(self) -> list[str]:
        """Branches `predict` reads (those of the three members)."""
        return list(
            dict.fromkeys(b for m in (self.classifier, self.pi0, self.pipm) for b in m.branches)
        )

    def details(self, clusters: Clusters) -> pd.DataFrame:
        """Per cluster: ``p_pi0``, ``called_pi0``, ``energy_pi0``, ``energy_pipm``, ``energy``."""
        p_pi0 = 1.0 - np.clip(self.classifier.predict(clusters), 0.0, 1.0)
        energy_pi0 = self.pi0.predict(clusters)
        energy_pipm = self.pipm.predict(clusters)
        # Same call as calotools.metrics.cutoff_scan: π0 when P(π0) > p, strictly.
        called_pi0 = p_pi0 > self.cutoff
        if self.mode == "hard":
            energy = np.where(called_pi0, energy_pi0, energy_pipm)
        else:
            energy = p_pi0 * energy_pi0 + (1.0 - p_pi0) * energy_pipm
        return pd.DataFrame(
            {
                "p_pi0": p_pi0,
                "called_pi0": called_pi0,
                "energy_pi0": energy_pi0,
                "energy_pipm": energy_pipm,
                "energy": energy,
            }
        )

    def predict(self, clusters: Clusters) -> np.ndarray:
        """Calibrated energy in GeV."""
        if len(clusters) == 0:
            return np.zeros(0)
        return self.details(clusters)["energy"].to_numpy()

    def with_settings(self, *, cutoff: float | None = None, mode: Mode | None = None):
        """The same members with another cutoff or mode."""
        return CalibrationChain(
            self.classifier,
            self.pi0,
            self.pipm,
            cutoff=self.cutoff if cutoff is None else cutoff,
            mode=mode or self.mode,
        )

    # ------------------------------------------------------------------ folders

    @classmethod
    def from_folders(
        cls,
        classifier: str | os.PathLike,
        pi0: str | os.PathLike,
        pipm: str | os.PathLike,
        *,
        cutoff: float = 0.5,
        mode: Mode = "hard",
    ) -> CalibrationChain:
        """A chain of three saved models."""
        from calotools import models

        return cls(
            models.load(classifier),
            models.load(pi0),
            models.load(pipm),
            cutoff=cutoff,
            mode=mode,
        )

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the chain, with copies of its members' folders, to ``folder``.

        Written under a temporary name and renamed when complete; an existing
        ``folder`` is replaced.
        """
        folder = Path(folder)
        partial = artifacts.partial_folder(folder)
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        for role in _MEMBERS:
            member = getattr(self, role)
            source = getattr(member, "folder", None)
            if source is None:
                shutil.rmtree(partial)
                msg = (
                    f"the {role} member was not loaded from a folder; save it first "
                    "(calotools.training.train does) and build the chain from_folders"
                )
                raise ChainError(msg)
            shutil.copytree(source, partial / role)
        artifacts.write_manifest(
            partial,
            self.kind,
            task=self.task,
            cutoff=self.cutoff,
            mode=self.mode,
            members={role: role for role in _MEMBERS},
        )
        artifacts.write_json(partial / "versions.json", artifacts.software_versions())
        artifacts.commit_folder(partial, folder)
        self.folder = folder
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> CalibrationChain:
        """Restore a chain saved with `save`."""
        from calotools import models

        folder = Path(folder)
        manifest = artifacts.read_manifest(folder)
        members = {role: models.load(folder / manifest["members"][role]) for role in _MEMBERS}
        return cls(
            members["classifier"],
            members["pi0"],
            members["pipm"],
            cutoff=manifest["cutoff"],
            mode=manifest["mode"],
            folder=folder,
        )
