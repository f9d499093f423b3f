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
or BDTs). The manifest's member folders must lie inside the chain's folder
(`calotools.artifacts.member_path`): a chain never loads a model from elsewhere.

Examples
--------
>>> from calotools.loading import load
>>> chain = CalibrationChain(
...     load("models/densenet-classify"), load("models/densenet-regress-pi0"),
...     load("models/densenet-regress-pipm"), cutoff=0.5)  # doctest: +SKIP
>>> chain.save("models/chain")  # doctest: +SKIP
>>> energy = load("models/chain").predict(clusters)  # doctest: +SKIP

`combine` is the arithmetic of both modes, for a table of member predictions:

>>> combine([0.9, 0.2], [10.0, 10.0], [12.0, 12.0], mode="hard", cutoff=0.5).tolist()
[10.0, 12.0]
>>> combine([0.9, 0.2], [10.0, 10.0], [12.0, 12.0], mode="soft").round(3).tolist()
[10.2, 11.6]
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from calotools import artifacts, atomic, metrics
from calotools.errors import ChainError
from calotools.ntuple import Clusters
from calotools.predictor import Predictor

__all__ = [
    "DEFAULT_CUTOFFS",
    "MEMBERS",
    "CalibrationChain",
    "ChainError",
    "combine",
    "cutoff_effect",
]

Mode = Literal["hard", "soft"]
#: The roles of a chain's members, and the names of their folders inside the chain's.
MEMBERS: tuple[str, ...] = ("classifier", "pi0", "pipm")
#: The cutoffs p of `cutoff_effect` unless told otherwise: 0.05, 0.10, …, 0.95.
DEFAULT_CUTOFFS: np.ndarray = np.linspace(0.05, 0.95, 19)


def _check_settings(cutoff: float, mode: str) -> None:
    if not 0.0 <= cutoff <= 1.0:
        msg = f"the cutoff p must lie in [0, 1], got {cutoff}"
        raise ChainError(msg)
    if mode not in ("hard", "soft"):
        msg = f"mode must be 'hard' or 'soft', got {mode!r}"
        raise ChainError(msg)


def combine(
    p_pi0: np.ndarray | Sequence[float] | pd.Series,
    energy_pi0: np.ndarray | Sequence[float] | pd.Series,
    energy_pipm: np.ndarray | Sequence[float] | pd.Series,
    *,
    mode: Mode = "hard",
    cutoff: float = 0.5,
) -> np.ndarray:
    """The chain's energy from the classifier's P(π0) and the two regressions' energies.

    ``"hard"``: ``energy_pi0`` where P(π0) > ``cutoff`` (strictly, the call of
    `calotools.metrics.cutoff_scan`), else ``energy_pipm``; ``"soft"``:
    P(π0) · ``energy_pi0`` + (1 − P(π0)) · ``energy_pipm`` (``cutoff`` unused).
    """
    _check_settings(cutoff, mode)
    p = np.asarray(p_pi0, dtype=np.float64)
    e_pi0 = np.asarray(energy_pi0, dtype=np.float64)
    e_pipm = np.asarray(energy_pipm, dtype=np.float64)
    if mode == "hard":
        return np.where(p > cutoff, e_pi0, e_pipm)
    return p * e_pi0 + (1.0 - p) * e_pipm


def cutoff_effect(
    details: pd.DataFrame,
    e_true: np.ndarray | pd.Series,
    groups: Mapping[str, np.ndarray],
    cutoffs: np.ndarray | Sequence[float] = DEFAULT_CUTOFFS,
) -> pd.DataFrame:
    """Median response and resolution of the hard chain against its cutoff p, per group.

    Parameters
    ----------
    details
        `CalibrationChain.details` of the clusters: ``p_pi0``, ``energy_pi0``,
        ``energy_pipm``.
    e_true
        The clusters' true energies (GeV).
    groups
        Group name → boolean mask of the clusters in it (e.g. true π0 above 1 GeV).
    cutoffs
        Values of p.

    Returns
    -------
    pandas.DataFrame
        One row per (group, cutoff): ``group``, ``cutoff``, ``count``,
        ``median`` and ``resolution`` (`calotools.metrics.response_summary`),
        and the soft chain's ``soft_median`` and ``soft_resolution``.
    """
    e_true = np.asarray(e_true, dtype=np.float64)
    columns = [details[c].to_numpy() for c in ("p_pi0", "energy_pi0", "energy_pipm")]
    soft = combine(*columns, mode="soft")
    rows = []
    for name, members in groups.items():
        mask = np.asarray(members, dtype=bool)
        soft_summary = metrics.response_summary(e_true[mask], soft[mask])
        for cutoff in np.asarray(cutoffs, dtype=np.float64):
            energy = combine(*columns, mode="hard", cutoff=float(cutoff))
            summary = metrics.response_summary(e_true[mask], energy[mask])
            rows.append(
                {
                    "group": name,
                    "cutoff": float(cutoff),
                    **summary,
                    "soft_median": soft_summary["median"],
                    "soft_resolution": soft_summary["resolution"],
                }
            )
    return pd.DataFrame(rows)


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
        classifier: Predictor,
        pi0: Predictor,
        pipm: Predictor,
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
        _check_settings(cutoff, mode)
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
        return pd.DataFrame(
            {
                "p_pi0": p_pi0,
                # Same call as calotools.metrics.cutoff_scan: π0 when P(π0) > p, strictly.
                "called_pi0": p_pi0 > self.cutoff,
                "energy_pi0": energy_pi0,
                "energy_pipm": energy_pipm,
                "energy": combine(
                    p_pi0, energy_pi0, energy_pipm, mode=self.mode, cutoff=self.cutoff
                ),
            }
        )

    def predict(self, clusters: Clusters) -> np.ndarray:
        """Calibrated energy in GeV."""
        if len(clusters) == 0:
            return np.zeros(0)
        return self.details(clusters)["energy"].to_numpy()

    def with_settings(
        self, *, cutoff: float | None = None, mode: Mode | None = None
    ) -> CalibrationChain:
        """The same members with another cutoff or mode."""
        return CalibrationChain(
            self.classifier,
            self.pi0,
            self.pipm,
            cutoff=self.cutoff if cutoff is None else cutoff,
            mode=mode or self.mode,
        )

    # ------------------------------------------------------------------ folders

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the chain, with copies of its members' folders, to ``folder``.

        Written under a temporary name and renamed when complete; an existing
        ``folder`` is replaced. `calotools.loading.load` restores it.
        """
        folder = Path(folder)
        sources: dict[str, str | os.PathLike] = {}
        for role in MEMBERS:
            source = getattr(getattr(self, role), "folder", None)
            if source is None:
                msg = (
                    f"the {role} member was not loaded from a folder; save it first "
                    "(calotools.training.train does) and load it with calotools.loading.load"
                )
                raise ChainError(msg)
            sources[role] = source
        with atomic.atomic_folder(folder) as partial:
            for role, source in sources.items():
                shutil.copytree(source, partial / role)
            artifacts.write_manifest(
                partial,
                self.kind,
                task=self.task,
                cutoff=self.cutoff,
                mode=self.mode,
                members={role: role for role in MEMBERS},
            )
            artifacts.write_json(partial / "versions.json", artifacts.software_versions())
        self.folder = folder
        return folder

    @staticmethod
    def member_folders(folder: str | os.PathLike) -> dict[str, Path]:
        """Role → folder of each member of the chain saved in ``folder``."""
        folder = Path(folder)
        manifest = artifacts.read_manifest(folder)
        members = manifest.get("members")
        if not isinstance(members, dict) or set(MEMBERS) - set(members):
            msg = (
                f"{folder / artifacts.MANIFEST}: 'members' is {members!r}; expected the "
                f"folders of {', '.join(MEMBERS)} inside the chain's folder"
            )
            raise artifacts.ArtifactError(msg)
        return {
            role: artifacts.member_path(folder, members[role], key=f"members.{role}")
            for role in MEMBERS
        }

    @classmethod
    def restore(
        cls, folder: str | os.PathLike, members: Mapping[str, Predictor]
    ) -> CalibrationChain:
        """The chain saved in ``folder``, given its members loaded from `member_folders`.

        `calotools.loading.load` does both steps.
        """
        manifest = artifacts.read_manifest(folder)
        return cls(
            members["classifier"],
            members["pi0"],
            members["pipm"],
            cutoff=manifest["cutoff"],
            mode=manifest["mode"],
            folder=folder,
        )
