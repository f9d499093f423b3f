"""Samples at several ⟨μ⟩ with the same hard scatter, and their cluster partners.

``docs/pileup.md``. The studies of pile-up (the LAPP talk's performance
versus ⟨μ⟩ and its denoising autoencoder; the ATLAS-ML talk's adversarial
training) need each sample at several pile-up conditions, made of the *same*
hard-scatter events, so that every cluster with pile-up has a partner without.
`make_series` writes them, one folder per ⟨μ⟩::

    <folder>/mu0/pi0.root   <folder>/mu40/pi0.root   <folder>/mu80/pi0.root ...

Single particles (``pi0``, ``pipm``, ``gamma``) come from `make_sample` with
the same seed at every ⟨μ⟩, JZ slices (``jz2w``) from
`calotools.sim.event_samples.make_event_sample`; all overlay one shared
minimum-bias library. Each ⟨μ⟩ folder is a data set of the study
(`series_dataset`).

`partners` pairs the clusters of two files of a series: in the same event,
the mutual nearest clusters in (η, φ) within `PARTNER_MAX_DR`.

Examples
--------
>>> series_path("pileup", "pi0", 40).as_posix()
'pileup/mu40/pi0.root'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from calotools.errors import InvalidValueError
from calotools.ntuple import Clusters
from calotools.sim import event_samples, generator
from calotools.sim.samples import SAMPLES, DefaultDataSet, make_sample, quick_mode

__all__ = [
    "HL_LHC_MU",
    "PARTNER_MAX_DR",
    "SERIES_EVENTS",
    "SERIES_MU",
    "SERIES_SEED",
    "make_series",
    "partner_fraction",
    "partners",
    "series_dataset",
    "series_path",
]

#: The ⟨μ⟩ of a series, in full and in quick mode: Run 2 averaged 34 and Run 3
#: reaches 60 and more (ATLAS luminosity public results); 80 is the issue's top.
SERIES_MU = {"full": (0.0, 20.0, 40.0, 60.0, 80.0), "quick": (0.0, 40.0, 80.0)}
#: ⟨μ⟩ of the HL-LHC's nominal scenario (about 200: ATLAS HL-LHC TDRs); supported, not default.
HL_LHC_MU = 200.0
#: Events per file of a series: single particles, and collision events (JZ slices).
SERIES_EVENTS = {
    "full": {"single": 10_000, "events": 500},
    "quick": {"single": 600, "events": 12},
}
#: The seed of a series' hard scatter: not the default data set's, so a model
#: trained on the default data never saw these events.
SERIES_SEED = 5
#: Largest ΔR between a cluster and its partner [A]: a tenth of the 0.4-wide
#: image, several EMB2 cells; pile-up moves a cluster's barycentre by much less
#: (docs/pileup.md gives the fraction of clusters with a partner).
PARTNER_MAX_DR = 0.1


def _mode(quick: bool | None) -> str:
    return "quick" if (quick_mode() if quick is None else quick) else "full"


def series_path(folder: str | os.PathLike, sample: str, mu: float) -> Path:
    """The file of ``sample`` at ⟨μ⟩ = ``mu`` in the series folder ``folder``."""
    return Path(folder) / f"mu{mu:g}" / f"{sample}.root"


def series_dataset(folder: str | os.PathLike, mu: float) -> DefaultDataSet:
    """The π0 and π± files at ⟨μ⟩ = ``mu`` as a data set of the study (`calotools.study`)."""
    return DefaultDataSet(series_path(folder, "pi0", mu).parent)


def make_series(
    folder: str | os.PathLike,
    sample: str,
    *,
    mu_values: Sequence[float] | None = None,
    n_events: int | None = None,
    seed: int = SERIES_SEED,
    lcw: str | os.PathLike | None = None,
    library_events: int | None = None,
    quick: bool | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> dict[float, Path]:
    """Make (or reuse) ``sample`` at every ⟨μ⟩ of ``mu_values``, same hard scatter in all.

    Parameters
    ----------
    folder
        The series folder; files go to `series_path`, the shared minimum-bias
        library to `calotools.sim.event_samples.library_path_for` ``folder``.
    sample
        ``"pi0"``, ``"pipm"``, ``"gamma"`` or a JZ slice (``"jz2w"``).
    mu_values
        Default `SERIES_MU` (quick mode: fewer).
    n_events
        Events per file; default `SERIES_EVENTS`.
    seed
        Seed of the hard scatter (the library's is ``seed +
        event_samples.PILEUP_SEED_OFFSET``).
    lcw
        LCW tables for the ``cluster_E_LCCalib`` branches.
    library_events
        Minimum-bias events in the library; default
        `calotools.sim.event_samples.LIBRARY_EVENTS`.
    quick, progress, workers
        As for `calotools.sim.samples.make_default`.

    Returns
    -------
    dict
        ⟨μ⟩ → file.
    """
    mode = _mode(quick)
    mu_values = tuple(SERIES_MU[mode] if mu_values is None else mu_values)
    if not mu_values or any(not (np.isfinite(mu) and mu >= 0) for mu in mu_values):
        msg = f"mu_values must be numbers >= 0, at least one; got {mu_values!r}"
        raise InvalidValueError(msg)
    single = sample in SAMPLES
    if not single and sample not in generator.SAMPLES:
        known = [*SAMPLES, *generator.SAMPLES]
        msg = f"unknown sample {sample!r} for a pile-up series; the samples are: {', '.join(known)}"
        raise InvalidValueError(msg)
    count = n_events or SERIES_EVENTS[mode]["single" if single else "events"]
    n_library = library_events or event_samples.LIBRARY_EVENTS[mode]
    library = event_samples.library_path_for(folder, seed=seed, n_events=n_library)
    Path(folder).mkdir(parents=True, exist_ok=True)
    event_samples.make_pileup_library(
        library, n_events=n_library, seed=seed + event_samples.PILEUP_SEED_OFFSET
    )
    paths = {}
    for mu in mu_values:
        path = series_path(folder, sample, mu)
        path.parent.mkdir(parents=True, exist_ok=True)
        if single:
            # The library at μ = 0 too: every file then has the same branches.
            paths[float(mu)] = make_sample(
                sample,
                path,
                n_events=count,
                seed=seed,
                lcw=lcw,
                mu=float(mu),
                library=library,
                progress=progress,
                workers=workers,
            )
        else:
            paths[float(mu)] = event_samples.make_event_sample(
                sample,
                path,
                n_events=count,
                mu=float(mu),
                seed=seed,
                lcw=lcw,
                library=library if mu else None,
                library_events=n_library,
                progress=progress,
                workers=workers,
            )
    return paths


def partners(
    clean: Clusters | pd.DataFrame,
    noisy: Clusters | pd.DataFrame,
    *,
    max_dr: float = PARTNER_MAX_DR,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``clean`` and ``noisy`` that are the same cluster with and without pile-up.

    Within each ``eventNumber``, a clean cluster and a noisy one are partners
    when each is the other's nearest in ΔR = √(Δη² + Δφ²) and ΔR < ``max_dr``.
    Pile-up-only clusters and clean clusters that pile-up merged or split away
    have none.

    Returns
    -------
    (clean rows, noisy rows)
        Integer arrays of equal length, sorted by the clean row.

    Examples
    --------
    >>> a = pd.DataFrame({"eventNumber": [0, 0], "cluster_Eta": [0.0, 0.5], "cluster_Phi": [0.0, 1.0]})
    >>> b = pd.DataFrame({"eventNumber": [0, 0, 0], "cluster_Eta": [0.52, 0.9, 0.01], "cluster_Phi": [1.0, 0.0, 0.0]})
    >>> partners(a, b)
    (array([0, 1]), array([2, 0]))
    """
    if not (np.isfinite(max_dr) and max_dr > 0):
        msg = f"max_dr must be a positive number; got {max_dr!r}"
        raise InvalidValueError(msg)
    columns = ("eventNumber", "cluster_Eta", "cluster_Phi")
    tables = []
    for name, table in (("clean", clean), ("noisy", noisy)):
        scalars = table.scalars if isinstance(table, Clusters) else table
        missing = [c for c in columns if c not in scalars]
        if missing:
            msg = f"partners: the {name} clusters have no {', '.join(missing)}"
            raise InvalidValueError(msg)
        frame = scalars[list(columns)].reset_index(drop=True)
        tables.append(frame.rename_axis("row").reset_index())
    pairs = tables[0].merge(tables[1], on="eventNumber", suffixes=("_clean", "_noisy"))
    dphi = np.angle(np.exp(1j * (pairs["cluster_Phi_clean"] - pairs["cluster_Phi_noisy"])))
    pairs["dr"] = np.hypot(pairs["cluster_Eta_clean"] - pairs["cluster_Eta_noisy"], dphi)
    nearest_noisy = pairs.loc[pairs.groupby("row_clean")["dr"].idxmin()]
    nearest_clean = pairs.loc[pairs.groupby("row_noisy")["dr"].idxmin()]
    mutual = nearest_noisy.merge(nearest_clean[["row_clean", "row_noisy"]])
    mutual = mutual[mutual["dr"] < max_dr].sort_values("row_clean")
    return (
        mutual["row_clean"].to_numpy(dtype=np.int64),
        mutual["row_noisy"].to_numpy(dtype=np.int64),
    )


def partner_fraction(clean: Clusters, noisy: Clusters, mask: np.ndarray | None = None) -> float:
    """The share of the clean clusters (those in ``mask``) that have a partner in ``noisy``."""
    rows, _ = partners(clean, noisy)
    chosen = np.ones(len(clean), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return float(np.isin(np.flatnonzero(chosen), rows).mean()) if chosen.any() else float("nan")
