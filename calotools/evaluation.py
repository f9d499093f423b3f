"""A trained model's performance on a selection of clusters (e.g. the test split).

`evaluate` reads the selection chunk by chunk, asks the model for its
predictions and summarises them with `calotools.metrics`, next to the LCW
baselines on the same clusters when the files carry them:

- classifiers: AUC (π± positive), accuracy and π0/π± efficiencies at the
  cutoff p = 0.5 and at the p of best accuracy, a cluster being called π0
  when P(π0) = 1 − P(π±) exceeds p (LLNL-TR-814867 §2.3); baseline: the LCW
  score 1 − ``cluster_EM_PROBABILITY``;
- regressions: the median response E_pred / E_true and the resolution
  (q84 − q16) / (2 · median), overall and in the log-spaced E_true bins of the
  ATLAS plots; baselines: the EM-scale and the LCW energies.

The summaries are plain dicts, ready for JSON (``metrics.json`` in every model
folder) and for the results tables of ``benchmarks/models.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from calotools import baselines as classical
from calotools import data, metrics, ntuple
from calotools.ntuple import Clusters
from calotools.predictor import Predictor

__all__ = [
    "TRUE_ENERGY",
    "classification_summary",
    "evaluate",
    "predict_selection",
    "regression_summary",
]

#: The regression target: calibration-hit energy in the cluster (``docs/ntuple-format.md``).
TRUE_ENERGY = "cluster_ENG_CALIB_TOT"
#: Cutoff p of the LLNL report's default call (§2.3).
DEFAULT_CUTOFF = 0.5


def _available(selection: data.Selection) -> set[str]:
    """Branches present in every file of the selection."""
    found: set[str] | None = None
    for number, _ in selection.file_slices():
        names = set(ntuple.ChunkReader(selection.files[number].path, []).available)
        found = names if found is None else found & names
    return found or set()


def predict_selection(
    model: Predictor,
    selection: data.Selection,
    *,
    extra_branches: Sequence[str] = (),
) -> tuple[np.ndarray, pd.DataFrame]:
    """The model's predictions for every cluster of ``selection``, in its order.

    Returns
    -------
    predictions, columns
        The predictions, and a table with ``label`` and the ``extra_branches``
        (read alongside, e.g. the true energy), one row per cluster.
    """
    branches = list(dict.fromkeys([*model.branches, *extra_branches]))
    predictions = np.empty(len(selection))
    columns = {name: np.empty(len(selection)) for name in extra_branches}
    for clusters, positions in data.iterate_selection(selection, branches):
        predictions[positions] = model.predict(clusters)
        for name in extra_branches:
            columns[name][positions] = clusters.scalars[name].to_numpy()
    table = pd.DataFrame({"label": selection.labels, **columns})
    return predictions, table


def classification_summary(labels: np.ndarray, p_pipm: np.ndarray) -> dict[str, Any]:
    """AUC, and accuracy and efficiencies at p = 0.5 and at the best p, of P(π±) scores."""
    labels = np.asarray(labels)
    p_pi0 = 1.0 - np.clip(np.asarray(p_pipm, dtype=np.float64), 0.0, 1.0)
    scan = metrics.cutoff_scan(labels, p_pi0)
    best = metrics.best_cutoff(scan)
    at = metrics.cutoff_scan(labels, p_pi0, cutoffs=[DEFAULT_CUTOFF, best])
    return {
        "n": len(labels),
        "auc": metrics.auc(labels, p_pipm),
        "accuracy": float(at["accuracy"].iloc[0]),
        "pi0_efficiency": float(at["pi0_efficiency"].iloc[0]),
        "pipm_efficiency": float(at["pipm_efficiency"].iloc[0]),
        "best_cutoff": best,
        "best_accuracy": float(at["accuracy"].iloc[1]),
        "best_pi0_efficiency": float(at["pi0_efficiency"].iloc[1]),
        "best_pipm_efficiency": float(at["pipm_efficiency"].iloc[1]),
    }


def regression_summary(
    e_true: np.ndarray, e_pred: np.ndarray, edges: Sequence[float] | None = None
) -> dict[str, Any]:
    """Median response and resolution, overall and per E_true bin (non-empty bins only)."""
    overall = metrics.response_summary(e_true, e_pred)
    table = metrics.binned_response(e_true, e_pred, edges)
    table = table[table["count"] > 0]
    bins = table[["low", "high", "count", "median", "resolution", "too_few"]]
    return {
        "n": overall["count"],
        "median_response": overall["median"],
        "resolution": overall["resolution"],
        "bins": bins.to_dict(orient="records"),
    }


def evaluate(
    model: Predictor, selection: data.Selection, *, baselines: bool = True
) -> dict[str, Any]:
    """Summaries of the model on ``selection``, and of the LCW baselines when ``baselines``.

    Returns
    -------
    dict
        ``{"task": ..., "model": summary, "baselines": {name: summary}}``.
    """
    available = _available(selection)
    if model.task == "classify":
        references = [classical.LCW_CLASSIFIER] if baselines else []
        extra = []
    else:
        references = [classical.EM_SCALE, classical.LCW_ENERGY] if baselines else []
        extra = [TRUE_ENERGY]
        if TRUE_ENERGY not in available:
            msg = f"the regression cannot be evaluated: the files lack the true energy {TRUE_ENERGY!r}"
            raise data.DataError(msg)
    references = [ref for ref in references if set(ref.branches) <= available]
    extra += [branch for ref in references for branch in ref.branches]
    predictions, table = predict_selection(model, selection, extra_branches=extra)

    def summary(values: np.ndarray) -> dict[str, Any]:
        if model.task == "classify":
            return classification_summary(table["label"].to_numpy(), values)
        return regression_summary(table[TRUE_ENERGY].to_numpy(), values)

    reference_summaries = {}
    for ref in references:
        columns = Clusters(table[list(ref.branches)])
        reference_summaries[ref.name] = summary(ref.predict(columns))
    return {"task": model.task, "model": summary(predictions), "baselines": reference_summaries}
