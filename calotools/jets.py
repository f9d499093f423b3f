"""Jets from topo-clusters, matched to truth jets, and their energy response.

The jet half of issue 16: anti-kt jets with R = 0.4 built with FastJet from
clusters, each cluster a massless four-vector (E, η, φ), as ATLAS builds its
calorimeter jets from topo-clusters (ATLAS, Eur. Phys. J. C 81 (2021) 689).
The cluster energy is whatever scale the caller passes: EM scale, LCW or a
network's calibration, so the three kinds of jets come from one function.

- `cluster_jets`: the jets of each event, from flat per-cluster arrays;
- `match_jets`: each reco jet's nearest truth jet within ΔR < `MATCH_MAX_DR`;
- `response_table`: median response pT_reco / pT_truth and resolution in bins
  of truth pT, with the definitions of `calotools.metrics.binned_response`,
  so jets and clusters are summarised alike;
- `jet_response`: the two last in one call.

Truth jets come from `calotools.sim.generator.truth_jets` (stable particles
less neutrinos and muons, same radius). FastJet comes with the ``[events]``
extra; matching and response need only the core install.

Examples
--------
>>> reco = ak.Array([[{"pt": 45.0, "eta": 0.1, "phi": 3.1}]])
>>> truth = ak.Array([[{"pt": 50.0, "eta": 0.0, "phi": -3.1}]])  # across φ = ±π
>>> table = jet_response(reco, truth, [20.0, 100.0], min_count=1)
>>> table[["count", "median", "resolution"]].to_numpy().tolist()
[[1.0, 0.9, 0.0]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeAlias

import awkward as ak
import numpy as np
import pandas as pd

from calotools import extras, metrics
from calotools.errors import InvalidTypeError, InvalidValueError
from calotools.sim.generator import JET_RADIUS, quiet_fastjet

__all__ = [
    "JET_RADIUS",
    "MATCH_MAX_DR",
    "MIN_PT_GEV",
    "cluster_jets",
    "jet_response",
    "match_jets",
    "response_table",
]

ArrayLike: TypeAlias = Sequence[float] | np.ndarray | pd.Series | ak.Array

#: Lowest jet pT kept (GeV): the threshold of the truth jets of
#: `calotools.sim.generator`, so that both collections are cut alike. A cut on
#: reco pT biases the response upward in truth-pT bins near it: read the
#: response well above it.
MIN_PT_GEV = 5.0
#: Largest ΔR between a reco jet and the truth jet it is matched to: the
#: conventional value of ATLAS jet-calibration studies for R = 0.4 jets, well
#: inside the jet radius so that a neighbouring jet is seldom taken.
MATCH_MAX_DR = 0.3


# ---------------------------------------------------------------------------- validation


def _column(name: str, values: ArrayLike, *, kinds: str = "biuf") -> np.ndarray:
    """``values`` as a 1-D NumPy array of numbers without NaN, or an error naming ``name``."""
    array = np.asarray(values)
    if array.ndim != 1:
        msg = f"{name} must hold one value per cluster or jet (1-D), got shape {array.shape}"
        raise InvalidValueError(msg)
    if array.size and array.dtype.kind not in kinds:
        expected = "integers" if kinds == "iu" else "numbers"
        msg = f"{name} must be {expected}, got values of type {array.dtype}"
        raise InvalidTypeError(msg)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        n_bad = int(np.count_nonzero(~np.isfinite(array)))
        msg = f"{name} has {n_bad} NaN or infinite value(s) out of {array.size}"
        raise InvalidValueError(msg)
    return array


def _same_lengths(columns: dict[str, np.ndarray]) -> None:
    lengths = {name: len(array) for name, array in columns.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} {n}" for name, n in lengths.items())
        msg = f"the per-cluster arrays must be equally long; got {listed}"
        raise InvalidValueError(msg)


def _jets(name: str, jets: ak.Array) -> ak.Array:
    """Events of jets with fields eta and phi, or an error naming ``name``."""
    jets = ak.Array(jets)
    if jets.ndim == 2 and not jets.fields and ak.sum(ak.num(jets)) == 0:
        # Events without a single jet, written by hand (``[[], []]``), have no
        # fields to read; give them the fields of jets.
        none = np.zeros(0)
        jets = ak.unflatten(ak.zip({"eta": none, "phi": none, "pt": none}), ak.num(jets))
    missing = [field for field in ("eta", "phi") if field not in jets.fields]
    if missing or jets.ndim != 2:
        msg = (
            f"{name} must be events of jets (a list of jets per event) with fields eta and "
            f"phi, as cluster_jets and truth_jets make; got type {jets.type}"
        )
        raise InvalidValueError(msg)
    return jets


# ---------------------------------------------------------------------------- jet finding


def cluster_jets(
    event: ArrayLike,
    energy: ArrayLike,
    eta: ArrayLike,
    phi: ArrayLike,
    *,
    event_numbers: ArrayLike | None = None,
    radius: float = JET_RADIUS,
    min_pt: float = MIN_PT_GEV,
) -> ak.Array:
    """Anti-kt jets of each event's clusters, highest pT first.

    Parameters
    ----------
    event
        The event number of each cluster; the clusters need not be sorted.
    energy
        Each cluster's energy at the scale the jets should have (EM scale, LCW,
        or a network's calibration), GeV. Clusters with E ≤ 0 are left out.
    eta, phi
        Each cluster's direction.
    event_numbers
        The events to return, in this order, each once: the output has one
        entry per number, an empty list for an event without clusters (or
        without jets). Every cluster's event must be among them. Default:
        the distinct numbers in ``event``, increasing.
    radius
        Anti-kt R.
    min_pt
        Jets below this pT (GeV) are dropped.

    Returns
    -------
    awkward.Array
        One list of jets per event, with fields ``pt``, ``eta`` (pseudorapidity),
        ``phi`` in (−π, π] and ``e`` (GeV).

    Examples
    --------
    >>> jets = cluster_jets(
    ...     event=[0, 0, 0], energy=[30.0, 20.0, 40.0], eta=[0.0, 0.1, 1.0],
    ...     phi=[0.0, 0.1, 3.0], event_numbers=[0, 1],
    ... )
    >>> ak.num(jets).tolist()
    [2, 0]
    >>> np.round(jets.pt[0], 1).tolist()  # 30 + 20 GeV near η = 0; 40 GeV at η = 1
    [49.8, 25.9]
    """
    columns = {
        "event": _column("event", event, kinds="iu"),
        "energy": _column("energy", energy),
        "eta": _column("eta", eta),
        "phi": _column("phi", phi),
    }
    _same_lengths(columns)
    if not (math.isfinite(radius) and radius > 0):
        msg = f"radius must be a positive anti-kt R, got {radius}"
        raise InvalidValueError(msg)
    if not (math.isfinite(min_pt) and min_pt >= 0):
        msg = f"min_pt must be a pT >= 0 (GeV), got {min_pt}"
        raise InvalidValueError(msg)
    numbers = _event_numbers(columns["event"], event_numbers)

    position = _positions(columns["event"], numbers)

    # ATLAS builds jets from positive-energy clusters only: a cluster with E ≤ 0
    # is a noise fluctuation (cells are kept at |E| > threshold, either sign),
    # and as a four-vector it would subtract momentum from the jet it joins.
    positive = columns["energy"] > 0
    order = np.argsort(position[positive], kind="stable")
    e = columns["energy"][positive][order].astype(np.float64)
    eta_c = columns["eta"][positive][order].astype(np.float64)
    phi_c = columns["phi"][positive][order].astype(np.float64)
    counts = np.bincount(position[positive], minlength=len(numbers))
    # Massless: |p| = E, pT = E / cosh η.
    pt_c = e / np.cosh(eta_c)
    vectors = ak.unflatten(
        ak.zip(
            {
                "px": pt_c * np.cos(phi_c),
                "py": pt_c * np.sin(phi_c),
                "pz": pt_c * np.sinh(eta_c),
                "E": e,
            },
            with_name="Momentum4D",
        ),
        counts,
    )

    fastjet = extras.fastjet()
    quiet_fastjet(fastjet)
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    # One ClusterSequence over all events: FastJet loops over them in C++.
    jets = fastjet.ClusterSequence(vectors, definition).inclusive_jets(min_pt=min_pt)
    pt = np.hypot(jets.px, jets.py)
    by_pt = ak.argsort(pt, axis=1, ascending=False)
    jets, pt = jets[by_pt], pt[by_pt]
    p = np.sqrt(pt**2 + jets.pz**2)
    return ak.zip(
        {
            "pt": pt,
            "eta": np.arctanh(jets.pz / np.maximum(p, 1e-12)),
            "phi": np.arctan2(jets.py, jets.px),
            "e": jets.E,
        }
    )


def _event_numbers(event: np.ndarray, event_numbers: ArrayLike | None) -> np.ndarray:
    """The events `cluster_jets` returns, checked: integers, each once."""
    if event_numbers is None:
        return np.unique(event)
    numbers = _column("event_numbers", event_numbers, kinds="iu")
    distinct, seen = np.unique(numbers, return_counts=True)
    if np.any(seen > 1):
        msg = (
            f"event_numbers must list each event once; repeated: {distinct[seen > 1][:5].tolist()}"
        )
        raise InvalidValueError(msg)
    return numbers


def _positions(event: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """The position of each cluster's event among ``numbers``, or an error for one not there."""
    if len(numbers) == 0:
        found = np.zeros(len(event), dtype=np.int64)
        unknown = np.ones(len(event), dtype=bool)
    else:
        sorter = np.argsort(numbers, kind="stable")
        at = np.searchsorted(numbers, event, sorter=sorter)
        found = sorter[np.minimum(at, len(numbers) - 1)]
        unknown = numbers[found] != event
    if unknown.any():
        examples = np.unique(event[unknown])[:5].tolist()
        msg = (
            f"event holds {int(unknown.sum())} cluster(s) of events not in event_numbers "
            f"(e.g. {examples}); list those events or select their clusters out"
        )
        raise InvalidValueError(msg)
    return found


# ---------------------------------------------------------------------------- matching


def _delta_r(eta_a: ak.Array, phi_a: ak.Array, eta_b: ak.Array, phi_b: ak.Array) -> ak.Array:
    """ΔR = √(Δη² + Δφ²), Δφ wrapped into [−π, π) so that φ = ±π are neighbours."""
    delta_phi = np.remainder(phi_a - phi_b + np.pi, 2 * np.pi) - np.pi
    return np.sqrt((eta_a - eta_b) ** 2 + delta_phi**2)


def match_jets(reco: ak.Array, truth: ak.Array, *, max_dr: float = MATCH_MAX_DR) -> ak.Array:
    """For each reco jet, the index of the nearest truth jet of its event within ``max_dr``.

    ΔR uses pseudorapidity and φ wrapped at ±π. The match is not exclusive:
    two reco jets may share a truth jet (ATLAS calibration studies also ask
    the jets to be isolated; select that before matching if needed).

    Parameters
    ----------
    reco, truth
        Events of jets with fields eta and phi (`cluster_jets`, and
        `calotools.sim.generator.truth_jets`), the same events in the same order.
    max_dr
        Largest ΔR of a match (strictly below); default `MATCH_MAX_DR`.

    Returns
    -------
    awkward.Array
        Per event, one int64 per reco jet: the truth jet's index in its event,
        or −1 where no truth jet lies within ``max_dr``.

    Examples
    --------
    >>> reco = ak.Array([[{"eta": 0.0, "phi": 0.0}, {"eta": 2.0, "phi": 1.0}], []])
    >>> truth = ak.Array([[{"eta": 2.1, "phi": 1.0}, {"eta": 0.1, "phi": 0.05}], []])
    >>> match_jets(reco, truth).tolist()
    [[1, 0], []]
    """
    reco, truth = _jets("reco", reco), _jets("truth", truth)
    if len(reco) != len(truth):
        msg = f"reco has {len(reco)} events but truth has {len(truth)}; pass the same events"
        raise InvalidValueError(msg)
    if not (math.isfinite(max_dr) and max_dr > 0):
        msg = f"max_dr must be a positive ΔR, got {max_dr}"
        raise InvalidValueError(msg)
    pairs = ak.cartesian(
        {"reco": reco[["eta", "phi"]], "truth": truth[["eta", "phi"]]}, axis=1, nested=True
    )
    # events × reco jets × truth jets
    delta_r = _delta_r(pairs.reco.eta, pairs.reco.phi, pairs.truth.eta, pairs.truth.phi)
    nearest = ak.fill_none(ak.argmin(delta_r, axis=2), -1)
    closest = ak.fill_none(ak.min(delta_r, axis=2), np.inf)
    return ak.values_astype(ak.where(closest < max_dr, nearest, -1), np.int64)


# ---------------------------------------------------------------------------- response


def response_table(
    reco_pt: ArrayLike, truth_pt: ArrayLike, edges: ArrayLike, *, min_count: int = 20
) -> pd.DataFrame:
    """Median jet response pT_reco / pT_truth and resolution in bins of truth pT.

    `calotools.metrics.binned_response` with truth pT for E_true and reco pT
    for E_pred, so jets share the clusters' definitions: resolution
    (q84 − q16) / (2 · median), and errors from the order statistics.

    Parameters
    ----------
    reco_pt, truth_pt
        pT of matched pairs (GeV), one entry per pair; truth pT must be positive.
    edges
        Increasing truth-pT bin edges (GeV); bins are [low, high).
    min_count
        Bins with fewer pairs are flagged ``too_few``.

    Returns
    -------
    pandas.DataFrame
        The columns of `calotools.metrics.binned_response` (so
        `calotools.plotting.response` draws it): ``low``, ``high``, ``center``
        (truth pT, GeV), ``count`` (pairs), ``median`` (median response) and
        ``median_err``, ``q16``, ``q84``, ``resolution`` and
        ``resolution_err``, ``too_few``.

    Examples
    --------
    >>> table = response_table([18.0, 45.0, 90.0], [20.0, 50.0, 100.0], [10, 40, 200], min_count=1)
    >>> table[["low", "high", "count", "median", "resolution"]].to_numpy().tolist()
    [[10.0, 40.0, 1.0, 0.9, 0.0], [40.0, 200.0, 2.0, 0.9, 0.0]]
    """
    reco = _column("reco_pt", reco_pt).astype(np.float64)
    truth = _column("truth_pt", truth_pt).astype(np.float64)
    if len(reco) != len(truth):
        msg = f"reco_pt has {len(reco)} jets but truth_pt has {len(truth)}; pass matched pairs"
        raise InvalidValueError(msg)
    if np.any(truth <= 0):
        msg = f"truth_pt must be positive (GeV); {int(np.sum(truth <= 0))} value(s) are not"
        raise InvalidValueError(msg)
    return metrics.binned_response(truth, reco, edges, min_count=min_count)


def jet_response(
    reco_jets: ak.Array,
    truth_jets: ak.Array,
    edges: ArrayLike,
    *,
    max_dr: float = MATCH_MAX_DR,
    min_count: int = 20,
) -> pd.DataFrame:
    """`match_jets`, then `response_table` of the matched pairs.

    Reco jets without a truth partner are left out; a truth jet matched by two
    reco jets counts twice.

    Examples
    --------
    >>> reco = ak.Array([[{"pt": 27.0, "eta": 0.0, "phi": 0.0}]])
    >>> truth = ak.Array([[{"pt": 30.0, "eta": 0.05, "phi": 0.0}]])
    >>> jet_response(reco, truth, [20.0, 40.0], min_count=1)["median"].item()
    0.9
    """
    reco_jets, truth_jets = _jets("reco_jets", reco_jets), _jets("truth_jets", truth_jets)
    for name, jets in (("reco_jets", reco_jets), ("truth_jets", truth_jets)):
        if "pt" not in jets.fields:
            msg = f"{name} must have a field pt (GeV); it has {jets.fields}"
            raise InvalidValueError(msg)
    partner = match_jets(reco_jets, truth_jets, max_dr=max_dr)
    matched = partner >= 0
    reco_pt = ak.to_numpy(ak.flatten(reco_jets.pt[matched]))
    truth_pt = ak.to_numpy(ak.flatten(truth_jets.pt[partner[matched]]))
    return response_table(reco_pt, truth_pt, edges, min_count=min_count)
