"""Performance of π0/π± classification and of energy calibration.

Pure NumPy/pandas, so that the numbers behind every plot can be computed, tested
and tabulated without matplotlib. Conventions are those of the ATLAS pion
studies (``docs/conventions.md``):

- labels π0 = 0, π± = 1; the ROC treats π± as the positive class and a score
  as "how π±-like", so background rejection is 1 / (π0 false-positive rate);
- the π0/π± call of the LLNL report (LLNL-TR-814867, section 2.3): a cluster
  is called π0 when its π0 probability **exceeds** the cutoff p;
- response E_pred / E_true, summarised in log-spaced bins of E_true by its
  median and its resolution (q84 − q16) / (2 · median).

Examples
--------
>>> y_true = [0, 0, 1, 1]
>>> auc(y_true, [0.1, 0.4, 0.35, 0.8])
0.75
>>> cutoff_scan(y_true, [0.9, 0.6, 0.3, 0.7], cutoffs=[0.5])["accuracy"].item()
0.75
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from calotools.errors import InvalidTypeError, InvalidValueError

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_CUTOFFS",
    "DEFAULT_RESPONSE_EDGES",
    "PI0",
    "PIPM",
    "auc",
    "best_cutoff",
    "binned_response",
    "confusion_matrix",
    "cutoff_scan",
    "rejection_at",
    "rejection_error",
    "resolution_difference",
    "response_summaries",
    "response_summary",
    "roc_curve",
]

#: Class labels of the ATLAS studies (``docs/conventions.md``).
PI0 = 0
PIPM = 1
CLASS_NAMES: dict[int, str] = {PI0: "π0", PIPM: "π±"}

#: Log-spaced E_true bin edges of the ATLAS response plots, 0.1–1000 GeV,
#: ten bins per decade (``docs/conventions.md``).
DEFAULT_RESPONSE_EDGES: np.ndarray = 10 ** np.arange(-1, 3.1, 0.1)

#: Cutoffs p of `cutoff_scan` unless told otherwise: 0, 0.01, …, 1.
DEFAULT_CUTOFFS: np.ndarray = np.linspace(0.0, 1.0, 101)

ArrayLike: TypeAlias = Sequence[float] | np.ndarray | pd.Series

# Quantiles of the response summary: the median and the central 68 % interval.
_Q16, _Q50, _Q84 = 0.16, 0.5, 0.84


# ---------------------------------------------------------------------------- validation


def _as_1d(name: str, values: ArrayLike) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        msg = f"{name} must hold one value per cluster (1-D), got shape {array.shape}"
        raise InvalidValueError(msg)
    if array.dtype.kind not in "biuf":
        msg = f"{name} must be numbers, got values of type {array.dtype}"
        raise InvalidTypeError(msg)
    if array.dtype.kind == "f":
        n_nan = int(np.count_nonzero(np.isnan(array)))
        if n_nan:
            msg = (
                f"{name} has {n_nan} NaN value(s) out of {array.size}; "
                "drop or fill them before computing metrics"
            )
            raise InvalidValueError(msg)
    return array


def _same_length(name: str, array: np.ndarray, other: str, n: int) -> None:
    if len(array) != n:
        msg = f"{other} has {n} clusters but {name} has {len(array)}"
        raise InvalidValueError(msg)


def _labels(y_true: ArrayLike) -> np.ndarray:
    """Labels as int8 0/1 after checking that both classes are there."""
    y = _as_1d("y_true", y_true)
    unexpected = np.unique(y[(y != PI0) & (y != PIPM)])
    if unexpected.size:
        msg = (
            f"y_true must hold the labels 0 (π0) and 1 (π±) only; "
            f"found {unexpected[:5].tolist()}{' …' if unexpected.size > 5 else ''}"
        )
        raise InvalidValueError(msg)
    y = y.astype(np.int8)
    n_pipm = int(np.count_nonzero(y))
    if n_pipm in (0, len(y)):
        present = "no clusters" if len(y) == 0 else f"only {CLASS_NAMES[int(y[0])]} clusters"
        msg = f"y_true has {present}; both π0 (0) and π± (1) are needed"
        raise InvalidValueError(msg)
    return y


def _scores(name: str, values: ArrayLike, n: int, *, probability: bool) -> np.ndarray:
    score = _as_1d(name, values).astype(np.float64)
    _same_length(name, score, "y_true", n)
    if probability:
        outside = (score < 0.0) | (score > 1.0)
        if outside.any():
            msg = (
                f"{name} must be probabilities in [0, 1]; {int(outside.sum())} value(s) lie "
                f"outside (min {score.min():g}, max {score.max():g})"
            )
            raise InvalidValueError(msg)
    return score


def _fractions(name: str, values: ArrayLike) -> np.ndarray:
    """Efficiencies or cutoffs: finite numbers in [0, 1], any shape."""
    array = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(array) | (array < 0.0) | (array > 1.0)
    if bad.any():
        msg = f"{name} must lie in [0, 1]; {int(bad.sum())} value(s) do not"
        raise InvalidValueError(msg)
    return array


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (no warning)."""
    out = np.full(np.shape(numerator), np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _sklearn_metrics() -> Any:
    """scikit-learn's metrics, imported on first use (a second or so)."""
    from sklearn import metrics

    return metrics


def _ranks(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct scores, sorted; the rank of each score among them).

    A ROC depends on the order of the scores only. Ranks keep ties tied and
    let scikit-learn, which refuses infinite scores, take saturated ones (±inf).
    """
    values, inverse = np.unique(scores, return_inverse=True)
    return values, inverse.ravel()


# ---------------------------------------------------------------------------- classification


def roc_curve(y_true: ArrayLike, score: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve with π± (label 1) as the positive class.

    A cluster is called π± when ``score >= threshold``. Clusters with equal
    scores are always called together, so a tie between classes gives one
    diagonal step rather than an arbitrary staircase.

    Parameters
    ----------
    y_true
        Labels, π0 = 0 and π± = 1.
    score
        Larger means more π±-like, e.g. P(π±) or 1 − ``cluster_EM_PROBABILITY``.

    Returns
    -------
    fpr, tpr, thresholds
        False-positive rate (π0 called π±), true-positive rate (π± efficiency)
        and the threshold of each point, thresholds decreasing. The first
        point is (0, 0) at threshold +inf; the last is (1, 1).

    Examples
    --------
    >>> fpr, tpr, thresholds = roc_curve([0, 1, 0, 1], [0.2, 0.8, 0.8, 0.9])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    >>> thresholds.tolist()
    [inf, 0.9, 0.8, 0.2]
    """
    y = _labels(y_true)
    s = _scores("score", score, len(y), probability=False)
    values, ranks = _ranks(s)
    fpr, tpr, thresholds = _sklearn_metrics().roc_curve(y, ranks, drop_intermediate=False)
    # scikit-learn's first threshold is +inf (nothing called π±); the others are ranks.
    return fpr, tpr, np.r_[np.inf, values[thresholds[1:].astype(np.int64)]]


def auc(y_true: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve, ties counting one half.

    scikit-learn's trapezoidal area under `roc_curve`, which equals the
    probability that a random π± scores above a random π0, plus half the
    probability of a tie (the Mann–Whitney U statistic over n(π0) · n(π±)).

    Examples
    --------
    >>> auc([0, 1, 0, 1], [0.2, 0.8, 0.8, 0.9])  # one tied pair out of four
    0.875
    """
    y = _labels(y_true)
    s = _scores("score", score, len(y), probability=False)
    return float(_sklearn_metrics().roc_auc_score(y, _ranks(s)[1]))


def rejection_at(
    y_true: ArrayLike, score: ArrayLike, efficiencies: ArrayLike | float
) -> np.ndarray | float:
    """Background (π0) rejection 1 / FPR at given signal (π±) efficiencies.

    The false-positive rate is interpolated linearly along the ROC curve
    between its points (the working point of a classifier that picks at
    random between the two neighbouring thresholds). Where the curve is flat
    in efficiency, the lowest FPR reaching that efficiency is used.

    Returns
    -------
    numpy.ndarray or float
        Rejection, same shape as ``efficiencies``; ``inf`` where the
        false-positive rate is 0 (no π0 passes: the rejection is unbounded and
        only a lower limit, about n(π0), can be quoted).

    Examples
    --------
    >>> y_true, score = [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]
    >>> rejection_at(y_true, score, [0.5, 0.75, 1.0]).tolist()
    [inf, 2.0, 2.0]
    """
    fpr, tpr, _ = roc_curve(y_true, score)
    efficiency = _fractions("efficiencies", efficiencies)
    # tpr is non-decreasing: `right` is the first point reaching the
    # efficiency (the lowest FPR there); `left`, the last point below it.
    right = np.searchsorted(tpr, efficiency, side="left")
    left = np.maximum(right - 1, 0)
    exact = tpr[right] == efficiency
    step = np.where(exact, 1.0, tpr[right] - tpr[left])
    fraction = np.where(exact, 0.0, (efficiency - tpr[left]) / step)
    fpr_at = np.where(exact, fpr[right], fpr[left] + fraction * (fpr[right] - fpr[left]))
    with np.errstate(divide="ignore"):
        rejection = 1.0 / fpr_at
    return rejection if efficiency.ndim else float(rejection)


def rejection_error(
    y_true: ArrayLike, score: ArrayLike, efficiencies: ArrayLike | float
) -> np.ndarray | float:
    """Binomial standard error of `rejection_at`: from the finite number of π0 clusters.

    With f = 1 / rejection the false-positive rate and n0 the number of π0,
    σ(f) = √(f (1 − f) / n0), so σ(1/f) = σ(f) / f². The spread of the working
    point from the finite number of π± (the efficiency itself) is left out: at
    90 % efficiency it is the smaller part for the study's samples. ``inf``
    where f = 0.

    Examples
    --------
    >>> y_true, score = [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]
    >>> rejection_error(y_true, score, 1.0)  # f = 0.5 of 2 π0: σ(f) = 0.354, σ(1/f) = 1.414
    1.4142135623730951
    """
    n_background = int(np.sum(_labels(y_true) == PI0))
    with np.errstate(divide="ignore", invalid="ignore"):
        fpr = 1.0 / np.asarray(rejection_at(y_true, score, efficiencies), dtype=np.float64)
        error = np.sqrt(fpr * (1.0 - fpr) / max(n_background, 1)) / fpr**2
    error = np.where(fpr > 0, error, np.inf)
    return error if np.ndim(efficiencies) else float(error)


def cutoff_scan(
    y_true: ArrayLike, p_pi0: ArrayLike, cutoffs: ArrayLike | None = None
) -> pd.DataFrame:
    """Accuracy, efficiencies and purities of the π0/π± call versus the cutoff p.

    A cluster is called π0 when ``p_pi0 > p`` (strictly) and π± otherwise,
    as in LLNL-TR-814867 (section 2.3), which compares p = 0.5 and p = 0.3.

    Parameters
    ----------
    y_true
        Labels, π0 = 0 and π± = 1.
    p_pi0
        The classifier's π0 probability, in [0, 1].
    cutoffs
        Values of p, in [0, 1]; default `DEFAULT_CUTOFFS` (0, 0.01, …, 1).

    Returns
    -------
    pandas.DataFrame
        One row per cutoff: ``cutoff``; ``accuracy`` (fraction called right);
        ``pi0_efficiency`` and ``pipm_efficiency`` (fraction of true π0, of
        true π±, called so); ``pi0_purity`` and ``pipm_purity`` (fraction of
        the clusters called π0, called π±, that are; NaN when none is called
        so); ``n_pi0`` and ``n_pipm`` (numbers of clusters **called** π0 and
        π±). The numbers of true π0 and π± are in ``attrs["n_true_pi0"]`` and
        ``attrs["n_true_pipm"]``.

    Examples
    --------
    >>> scan = cutoff_scan([0, 0, 1, 1], [0.9, 0.4, 0.45, 0.1], cutoffs=[0.3, 0.5])
    >>> scan[["cutoff", "pi0_efficiency", "pipm_efficiency", "n_pi0"]].to_numpy().tolist()
    [[0.3, 1.0, 0.5, 3.0], [0.5, 0.5, 1.0, 1.0]]
    """
    y = _labels(y_true)
    p = _scores("p_pi0", p_pi0, len(y), probability=True)
    cut = DEFAULT_CUTOFFS if cutoffs is None else _fractions("cutoffs", cutoffs)
    if cut.ndim != 1:
        msg = f"cutoffs must be a 1-D list of values of p, got shape {cut.shape}"
        raise InvalidValueError(msg)
    p_of_true_pi0 = np.sort(p[y == PI0])
    p_of_true_pipm = np.sort(p[y == PIPM])
    n_true_pi0, n_true_pipm = len(p_of_true_pi0), len(p_of_true_pipm)
    # Sorted once, every cutoff is a binary search; side="right" counts the
    # clusters with p <= cutoff, i.e. those *not* called π0.
    pi0_called_pi0 = n_true_pi0 - np.searchsorted(p_of_true_pi0, cut, side="right")
    pipm_called_pi0 = n_true_pipm - np.searchsorted(p_of_true_pipm, cut, side="right")
    pipm_called_pipm = n_true_pipm - pipm_called_pi0
    n_called_pi0 = pi0_called_pi0 + pipm_called_pi0
    n_called_pipm = len(y) - n_called_pi0
    scan = pd.DataFrame(
        {
            "cutoff": cut,
            "accuracy": (pi0_called_pi0 + pipm_called_pipm) / len(y),
            "pi0_efficiency": pi0_called_pi0 / n_true_pi0,
            "pipm_efficiency": pipm_called_pipm / n_true_pipm,
            "pi0_purity": _ratio(pi0_called_pi0, n_called_pi0),
            "pipm_purity": _ratio(pipm_called_pipm, n_called_pipm),
            "n_pi0": n_called_pi0,
            "n_pipm": n_called_pipm,
        }
    )
    scan.attrs.update(n_true_pi0=n_true_pi0, n_true_pipm=n_true_pipm)
    return scan


def best_cutoff(
    scan: pd.DataFrame, criterion: Literal["accuracy", "balanced"] = "accuracy"
) -> float:
    """The cutoff p of a `cutoff_scan` that is best by ``criterion``.

    ``"accuracy"`` maximises the accuracy (the smallest such p on a plateau);
    ``"balanced"`` minimises |π0 efficiency − π± efficiency| (the smallest such
    p on ties). The answer is one of the scanned cutoffs: scan finer for more
    precision.

    Examples
    --------
    >>> scan = cutoff_scan([0, 0, 1, 1], [0.9, 0.4, 0.6, 0.1], cutoffs=[0.3, 0.5, 0.95])
    >>> best_cutoff(scan), best_cutoff(scan, "balanced")
    (0.3, 0.5)
    """
    needed = {"cutoff", "accuracy", "pi0_efficiency", "pipm_efficiency"}
    missing = sorted(needed - set(scan.columns))
    if missing:
        msg = f"scan lacks the column(s) {missing}; pass the table made by cutoff_scan"
        raise InvalidValueError(msg)
    if len(scan) == 0:
        msg = "scan has no rows"
        raise InvalidValueError(msg)
    if criterion == "accuracy":
        best = int(np.argmax(scan["accuracy"].to_numpy()))
    elif criterion == "balanced":
        gap = np.abs(scan["pi0_efficiency"].to_numpy() - scan["pipm_efficiency"].to_numpy())
        best = int(np.argmin(gap))
    else:
        msg = f"criterion must be 'accuracy' or 'balanced', got {criterion!r}"
        raise InvalidValueError(msg)
    return float(scan["cutoff"].iloc[best])


def confusion_matrix(
    y_true: ArrayLike,
    p_pi0: ArrayLike,
    cutoff: float = 0.5,
    normalize: Literal["true", "pred"] | None = None,
) -> pd.DataFrame:
    """2 × 2 table of true class (rows) against called class (columns).

    A cluster is called π0 when ``p_pi0 > cutoff``, as in `cutoff_scan`.

    Parameters
    ----------
    normalize
        None: counts; ``"true"``: each row sums to 1 (the diagonal holds the
        efficiencies); ``"pred"``: each column sums to 1 (the diagonal holds
        the purities; NaN for a class nobody is called).

    Examples
    --------
    >>> confusion_matrix([0, 0, 1, 1], [0.9, 0.4, 0.6, 0.1])  # doctest: +NORMALIZE_WHITESPACE
    predicted  π0  π±
    true
    π0          1   1
    π±          1   1
    """
    y = _labels(y_true)
    p = _scores("p_pi0", p_pi0, len(y), probability=True)
    cutoff = float(_fractions("cutoff", cutoff))
    called = np.where(p > cutoff, PI0, PIPM)
    counts = _sklearn_metrics().confusion_matrix(y, called, labels=[PI0, PIPM])
    names = [CLASS_NAMES[PI0], CLASS_NAMES[PIPM]]
    table = pd.DataFrame(
        counts,
        index=pd.Index(names, name="true"),
        columns=pd.Index(names, name="predicted"),
    )
    if normalize is None:
        return table
    if normalize == "true":
        return table / counts.sum(axis=1, keepdims=True)
    if normalize == "pred":
        column_sums = counts.sum(axis=0, keepdims=True)
        return pd.DataFrame(
            _ratio(counts, np.broadcast_to(column_sums, counts.shape)),
            index=table.index,
            columns=table.columns,
        )
    msg = f"normalize must be None, 'true' or 'pred', got {normalize!r}"
    raise InvalidValueError(msg)


# ---------------------------------------------------------------------------- calibration


def _bin_quantiles(
    values: np.ndarray, starts: np.ndarray, counts: np.ndarray, prob: np.ndarray
) -> np.ndarray:
    """Quantile ``prob[i]`` of the sorted run ``values[starts[i]:starts[i] + counts[i]]``.

    NumPy's default ("linear") definition, for every bin at once; NaN for
    empty bins.
    """
    result = np.full(len(counts), np.nan)
    full = counts > 0
    position = (counts[full] - 1) * prob[full]
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, counts[full] - 1)
    low = values[starts[full] + below]
    high = values[starts[full] + above]
    result[full] = low + (position - below) * (high - low)
    return result


def _quantile_error(
    values: np.ndarray, starts: np.ndarray, counts: np.ndarray, prob: float
) -> np.ndarray:
    """Standard error of the sample ``prob``-quantile from the order statistics.

    The number of clusters below the true quantile is binomial(n, prob), so the
    68 % interval of the quantile is spanned by the order statistics of rank
    n · (prob ± δ), δ = sqrt(prob (1 − prob) / n) (normal approximation); half
    its width is the error. Near 0 or 1 the span is clipped and rescaled.
    NaN for fewer than two clusters.
    """
    n = np.maximum(counts, 1).astype(np.float64)
    delta = np.sqrt(prob * (1.0 - prob) / n)
    p_low = np.clip(prob - delta, 0.0, 1.0)
    p_high = np.clip(prob + delta, 0.0, 1.0)
    span = _bin_quantiles(values, starts, counts, p_high) - _bin_quantiles(
        values, starts, counts, p_low
    )
    error = span / (p_high - p_low) * delta
    return np.where(counts >= 2, error, np.nan)


def _quantile_correlation(prob_a: float, prob_b: float) -> float:
    """Asymptotic correlation of the sample quantiles at prob_a <= prob_b.

    Cov = a (1 − b) / (n f(q_a) f(q_b)) (Stuart & Ord, Kendall's Advanced
    Theory of Statistics, vol. 1, 10.10), divided by the two standard errors.
    """
    return float(np.sqrt(prob_a * (1.0 - prob_b) / (prob_b * (1.0 - prob_a))))


def _energies(e_true: ArrayLike, e_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted energies as float64, checked: 1-D, equally long, E_true > 0."""
    true = _as_1d("e_true", e_true).astype(np.float64)
    pred = _as_1d("e_pred", e_pred).astype(np.float64)
    _same_length("e_pred", pred, "e_true", len(true))
    not_positive = int(np.count_nonzero(true <= 0.0))
    if not_positive:
        msg = f"e_true must be positive (GeV); {not_positive} value(s) are not"
        raise InvalidValueError(msg)
    return true, pred


def binned_response(
    e_true: ArrayLike,
    e_pred: ArrayLike,
    edges: ArrayLike | None = None,
    *,
    min_count: int = 20,
) -> pd.DataFrame:
    """Median response E_pred / E_true and resolution in bins of E_true.

    Parameters
    ----------
    e_true
        True energies (GeV), e.g. ``cluster_ENG_CALIB_TOT``; must be positive.
    e_pred
        Reconstructed or predicted energies (GeV), e.g. ``cluster_E_LCCalib``.
    edges
        Increasing bin edges in E_true (GeV); bins are [low, high) and clusters
        outside all bins are left out. Default: `DEFAULT_RESPONSE_EDGES`.
    min_count
        Bins with fewer clusters are flagged ``too_few`` (their values are
        still given, but are noisy).

    Returns
    -------
    pandas.DataFrame
        One row per bin, also the empty ones: ``low``, ``high``, ``center``
        (geometric mean of the edges), ``count``, ``median`` and
        ``median_err``, ``q16``, ``q84``, ``resolution`` ((q84 − q16) /
        (2 · median)) and ``resolution_err``, ``too_few``. Quantiles follow
        NumPy's default ("linear") definition; all are NaN in empty bins.

    Notes
    -----
    Uncertainties need no resampling: the error of each quantile comes from
    the order statistics that bracket its binomial 68 % interval (see
    ``_quantile_error``); the resolution error propagates those of q16, the
    median and q84 with the asymptotic correlations of sample quantiles
    (0.44 between q16 and the median, 0.19 between q16 and q84). Both are
    large-sample approximations: trust them for bins that are not
    ``too_few``.

    Examples
    --------
    >>> table = binned_response([1.5] * 5, [1.2, 1.35, 1.5, 1.65, 2.25], edges=[1, 2, 4])
    >>> table[["count", "median", "q16", "q84", "too_few"]].round(3).to_numpy().tolist()
    [[5, 1.0, 0.864, 1.244, True], [0, nan, nan, nan, True]]
    """
    true, pred = _energies(e_true, e_pred)
    edges = DEFAULT_RESPONSE_EDGES if edges is None else np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        msg = "edges must be at least two strictly increasing bin edges (GeV)"
        raise InvalidValueError(msg)
    if min_count < 0:
        msg = f"min_count must be a number of clusters >= 0, got {min_count}"
        raise InvalidValueError(msg)

    n_bins = len(edges) - 1
    bin_index = np.searchsorted(edges, true, side="right") - 1
    inside = (bin_index >= 0) & (bin_index < n_bins)
    bin_index = bin_index[inside]
    response = pred[inside] / true[inside]
    # One sort by (bin, response) makes every bin a sorted run of `response`,
    # so each quantile is one fancy-indexing step over all bins.
    response = response[np.lexsort((response, bin_index))]
    counts = np.bincount(bin_index, minlength=n_bins)
    starts = np.cumsum(counts) - counts

    def quantile(prob: float) -> np.ndarray:
        return _bin_quantiles(response, starts, counts, np.full(n_bins, prob))

    median, q16, q84 = quantile(_Q50), quantile(_Q16), quantile(_Q84)
    err16, err50, err84 = (_quantile_error(response, starts, counts, p) for p in (_Q16, _Q50, _Q84))
    with np.errstate(divide="ignore", invalid="ignore"):
        resolution = (q84 - q16) / (2.0 * median)
        # Gradient of (q84 − q16) / (2 m) with respect to (q16, m, q84).
        gradient = (-0.5 / median, -resolution / median, 0.5 / median)
        errors = (err16, err50, err84)
        probs = (_Q16, _Q50, _Q84)
        variance = sum(g * g * e * e for g, e in zip(gradient, errors, strict=True))
        for i in range(3):
            for j in range(i + 1, 3):
                rho = _quantile_correlation(probs[i], probs[j])
                variance = variance + 2.0 * rho * gradient[i] * gradient[j] * errors[i] * errors[j]
        resolution_err = np.sqrt(variance)

    return pd.DataFrame(
        {
            "low": edges[:-1],
            "high": edges[1:],
            "center": np.sqrt(edges[:-1] * edges[1:]),
            "count": counts,
            "median": median,
            "median_err": err50,
            "q16": q16,
            "q84": q84,
            "resolution": resolution,
            "resolution_err": resolution_err,
            "too_few": counts < min_count,
        }
    )


def resolution_difference(
    e_true: ArrayLike,
    e_pred_a: ArrayLike,
    e_pred_b: ArrayLike,
    edges: ArrayLike,
    *,
    n_resamples: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Resolution of estimate a minus that of b on the same clusters, per E_true bin, with its error.

    Two calibrations of the same clusters share most of their fluctuations, so
    the error of their difference is smaller than the two errors of
    `binned_response` added in quadrature. It comes from a paired bootstrap:
    the clusters are resampled with replacement ``n_resamples`` times, the same
    draw for both estimates, and the error is the standard deviation of the
    resampled differences.

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``low``, ``high``, ``count``, ``resolution_a``,
        ``resolution_b``, ``difference`` (a − b; negative: a is sharper) and
        ``difference_err``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> truth = rng.uniform(10, 100, 4000)
    >>> sharp = truth * rng.normal(1, 0.05, 4000)
    >>> wide = sharp + truth * rng.normal(0, 0.05, 4000)
    >>> table = resolution_difference(truth, sharp, wide, [10, 100])
    >>> bool(table["difference"].item() < -5 * table["difference_err"].item())
    True
    """
    true, pred_a = _energies(e_true, e_pred_a)
    pred_b = _as_1d("e_pred_b", e_pred_b).astype(np.float64)
    _same_length("e_pred_b", pred_b, "e_true", len(true))
    if n_resamples < 2:
        msg = f"n_resamples must be at least 2 (the error is their spread), got {n_resamples}"
        raise InvalidValueError(msg)

    def resolution(pred: np.ndarray, index: np.ndarray | slice) -> np.ndarray:
        return binned_response(true[index], pred[index], edges)["resolution"].to_numpy()

    table = binned_response(true, pred_a, edges)
    res_a, res_b = table["resolution"].to_numpy(), resolution(pred_b, slice(None))
    rng = np.random.Generator(np.random.PCG64(seed))
    differences = []
    for _ in range(n_resamples):
        index = rng.integers(0, len(true), len(true))
        differences.append(resolution(pred_a, index) - resolution(pred_b, index))
    return table[["low", "high", "count"]].assign(
        resolution_a=res_a,
        resolution_b=res_b,
        difference=res_a - res_b,
        difference_err=np.std(differences, axis=0, ddof=1),
    )


def response_summary(e_true: ArrayLike, e_pred: ArrayLike) -> dict[str, float]:
    """Count, median response E_pred / E_true and resolution over all clusters, unbinned.

    The resolution is (q84 − q16) / (2 · median), as in `binned_response`; with
    no clusters, the median and resolution are NaN.

    Examples
    --------
    >>> summary = response_summary([1.5] * 5, [1.2, 1.35, 1.5, 1.65, 2.25])
    >>> summary["count"], summary["median"], round(summary["resolution"], 3)
    (5, 1.0, 0.19)
    """
    true, pred = _energies(e_true, e_pred)
    if len(true) == 0:
        return {"count": 0, "median": math.nan, "resolution": math.nan}
    q16, median, q84 = np.quantile(pred / true, [_Q16, _Q50, _Q84])
    return {
        "count": len(true),
        "median": float(median),
        "resolution": float((q84 - q16) / (2.0 * median)),
    }


def response_summaries(
    e_true: ArrayLike,
    predictions: dict[str, ArrayLike],
    *,
    min_true: float | None = None,
) -> pd.DataFrame:
    """`response_summary` of several energy estimates of the same clusters, one row each.

    Parameters
    ----------
    e_true
        True energies (GeV).
    predictions
        Method name → its energies (GeV) for the same clusters.
    min_true
        Summarise only clusters with E_true above this (GeV), e.g. 1.

    Examples
    --------
    >>> response_summaries([2.0, 4.0, 0.5], {"twice": [4.0, 8.0, 1.0]}, min_true=1.0)
           count  median  resolution
    twice      2     2.0         0.0
    """
    true = _as_1d("e_true", e_true).astype(np.float64)
    keep = np.ones(len(true), bool) if min_true is None else true > min_true
    rows = {}
    for name, values in predictions.items():
        pred = _as_1d(name, values).astype(np.float64)
        _same_length(name, pred, "e_true", len(true))
        rows[name] = response_summary(true[keep], pred[keep])
    return pd.DataFrame.from_dict(rows, orient="index", columns=["count", "median", "resolution"])
