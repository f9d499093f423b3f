"""The pile-up study of notebook ``09_pileup``: performance versus ⟨μ⟩, denoising, decorrelation.

``docs/pileup.md``. The LAPP talk shows a CNN losing performance with pile-up
and proposes a denoising autoencoder (`calotools.denoising`); the ATLAS-ML talk
trains against an adversary to make a classifier independent of the pile-up
condition (`calotools.adversarial`). This module holds what the notebook does
with them, as pure functions of files and models:

- `series`: π0 and π± at every ⟨μ⟩ of `calotools.sim.pileup_samples.SERIES_MU`,
  the same hard-scatter events in every file, calibrated with the data set's
  LCW tables, in ``<data>/pileup``;
- `TRAIN_EVENTS` and `TEST_EVENTS`: the events a model trained on the series
  may learn from, and the others. A split by event, not by cluster, because
  the same event is in every file: a model trained at one ⟨μ⟩ must not be
  scored on its own events at another;
- `classifier_vs_mu`, `response_vs_mu`: a classifier's AUC and π0 rejection,
  a regression's median response and resolution, on the test events at each ⟨μ⟩;
- `mixture`: the series as one training sample, every ⟨μ⟩ together;
- `partner_clusters`: the clusters of the training events with their
  no-pile-up partners, what `calotools.denoising.train_paed` learns from.

Examples
--------
>>> round(cut_with("abs(cluster_Eta) < 0.7", TEST_EVENTS).count("and"), 0)
1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from calotools import metrics
from calotools.adversarial import PivotConfig
from calotools.denoising import EM_LAYERS, PaedConfig, from_pixels, to_pixels
from calotools.domain_shift import read_sample, response_tables
from calotools.errors import InvalidValueError
from calotools.ntuple import Clusters
from calotools.sim import pileup_samples, samples
from calotools.study import StudyContext

__all__ = [
    "EFFICIENCY",
    "LAMBDAS",
    "PAED",
    "PIVOT",
    "SERIES_FOLDER",
    "TEST_EVENTS",
    "TRAIN_EVENTS",
    "aligned_partners",
    "classifier_vs_mu",
    "cut_with",
    "efficiency_vs",
    "em_images",
    "labelled_clusters",
    "mixture",
    "partner_clusters",
    "response_vs_mu",
    "series",
]

#: Where the series lives, under the study's data folder.
SERIES_FOLDER = "pileup"
#: Half the events for training, half for testing, by event number. π± events
#: are numbered 2k + charge index (`calotools.sim.samples`), so the cut on k
#: even keeps both charges alike.
TRAIN_EVENTS = "eventNumber % 4 < 2"
TEST_EVENTS = "eventNumber % 4 >= 2"
#: π± efficiency at which the π0 rejection is quoted, as in notebook 02.
EFFICIENCY = 0.9
#: How the notebook trains its PAED, in full and in quick mode.
PAED = {"full": PaedConfig(epochs=8), "quick": PaedConfig(epochs=2, filters=(8, 16), latent=16)}
#: How the notebook trains against the adversary, in full and in quick mode.
PIVOT = {
    "full": PivotConfig(epochs=10),
    "quick": PivotConfig(pretrain_epochs=1, adversary_pretrain_epochs=1, epochs=2),
}
#: The λ values the notebook scans, in full and in quick mode.
LAMBDAS = {"full": (0.0, 0.3, 1.0, 3.0, 10.0), "quick": (0.0, 10.0)}

#: A function of clusters giving a number per cluster: a model's predict, or a chain.
Predictor = Callable[[Clusters], np.ndarray]


def cut_with(selection: str, events: str) -> str:
    """``selection`` and ``events`` together, as one cut."""
    return f"({selection}) and ({events})"


def series(
    context: StudyContext,
    *,
    sample_names: Sequence[str] = ("pi0", "pipm"),
    mu_values: Sequence[float] | None = None,
    n_events: int | None = None,
    library_events: int | None = None,
    workers: int | None = None,
) -> dict[float, samples.DefaultDataSet]:
    """The series of the study, made once and then reused: ⟨μ⟩ → data set.

    The arguments are those of `calotools.sim.pileup_samples.make_series`;
    by default its full or quick sizes, as the context's mode says.
    """
    folder = context.data.folder / SERIES_FOLDER
    made: dict[float, Path] = {}
    for sample in sample_names:
        made = pileup_samples.make_series(
            folder,
            sample,
            mu_values=mu_values,
            n_events=n_events,
            library_events=library_events,
            # Real data sets may come without calotools' LCW tables.
            lcw=context.data.lcw_tables if context.data.lcw_tables.is_file() else None,
            quick=context.quick,
            workers=workers,
        )
    # Every sample has the same ⟨μ⟩ folders: one data set per ⟨μ⟩.
    return {mu: pileup_samples.series_dataset(folder, mu) for mu in made}


def _labelled(
    dataset: samples.DefaultDataSet, cut: str, branches: Sequence[str]
) -> tuple[Clusters, np.ndarray]:
    """π0 and π± clusters passing ``cut`` and their labels (1: π±)."""
    parts = [read_sample(dataset, sample, cut, branches) for sample in ("pi0", "pipm")]
    labels = np.concatenate([np.zeros(len(parts[0])), np.ones(len(parts[1]))])
    return Clusters.concat(parts), labels


def labelled_clusters(
    datasets: Mapping[float, samples.DefaultDataSet],
    selection: str,
    branches: Sequence[str],
    *,
    events: str = TRAIN_EVENTS,
) -> tuple[Clusters, np.ndarray]:
    """The π0 and π± clusters of every ⟨μ⟩ together, and their labels (1: π±).

    What a model trained on the mixture by hand (`calotools.adversarial`)
    reads; the branch ``averageInteractionsPerCrossing`` is always among them.
    """
    wanted = sorted({*branches, "averageInteractionsPerCrossing"})
    parts = [
        _labelled(datasets[mu], cut_with(selection, events), wanted) for mu in sorted(datasets)
    ]
    if not parts:
        msg = "labelled_clusters: no data sets given"
        raise InvalidValueError(msg)
    return Clusters.concat([c for c, _ in parts]), np.concatenate([y for _, y in parts])


def efficiency_vs(
    score: np.ndarray,
    labels: np.ndarray,
    variable: np.ndarray,
    edges: Sequence[float],
    *,
    efficiency: float = EFFICIENCY,
) -> pd.DataFrame:
    """π± efficiency and π0 mistag rate per bin of ``variable``, at one cut on the score.

    The cut keeps ``efficiency`` of all the π± (the working point of the
    tables); a classifier decorrelated from ``variable`` keeps that efficiency
    in every bin. Rows: the bins; columns ``low``, ``high``, ``pipm``,
    ``pi0``, ``efficiency`` and ``mistag``.

    Examples
    --------
    >>> table = efficiency_vs(np.array([0.2, 0.9, 0.1, 0.8]), np.array([0, 1, 0, 1]),
    ...                       np.array([1.0, 1.0, 5.0, 5.0]), [0, 2, 10], efficiency=0.5)
    >>> table["efficiency"].tolist()
    [1.0, 0.0]
    """
    score, labels, variable = (
        np.asarray(a, dtype=float).reshape(-1) for a in (score, labels, variable)
    )
    if not len(score) == len(labels) == len(variable):
        msg = f"score, labels and variable differ in length: {len(score)}, {len(labels)}, {len(variable)}"
        raise InvalidValueError(msg)
    signal = labels == 1
    if not signal.any():
        msg = "efficiency_vs: no π± (label 1) among the clusters"
        raise InvalidValueError(msg)
    cut = np.quantile(score[signal], 1.0 - efficiency)
    passes = score > cut
    bins = np.asarray(edges, dtype=float)
    which = np.digitize(variable, bins) - 1
    rows = []
    for k in range(len(bins) - 1):
        inside = which == k
        n_signal, n_background = int((inside & signal).sum()), int((inside & ~signal).sum())
        rows.append(
            {
                "low": bins[k],
                "high": bins[k + 1],
                "pipm": n_signal,
                "pi0": n_background,
                "efficiency": (passes & inside & signal).sum() / n_signal if n_signal else np.nan,
                "mistag": (passes & inside & ~signal).sum() / n_background
                if n_background
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def classifier_vs_mu(
    classifiers: Mapping[str, Predictor],
    datasets: Mapping[float, samples.DefaultDataSet],
    selection: str,
    branches: Sequence[str],
    *,
    events: str = TEST_EVENTS,
    efficiency: float = EFFICIENCY,
) -> pd.DataFrame:
    """AUC and π0 rejection at ``efficiency`` of each classifier at each ⟨μ⟩.

    ``classifiers`` maps a name to a function of clusters giving P(π±): a
    model's ``predict``, or a chain (``lambda c: model.predict(paed.denoise(c))``).
    Rows: ⟨μ⟩ and classifier; columns ``clusters``, ``auc``, ``rejection``.
    """
    rows = []
    for mu, dataset in sorted(datasets.items()):
        clusters, labels = _labelled(dataset, cut_with(selection, events), branches)
        for name, predict in classifiers.items():
            score = np.asarray(predict(clusters), dtype=np.float64).reshape(-1)
            rows.append(
                {
                    "mu": mu,
                    "classifier": name,
                    "clusters": len(clusters),
                    "auc": metrics.auc(labels, score),
                    "rejection": metrics.rejection_at(labels, score, efficiency),
                }
            )
    if not rows:
        msg = "classifier_vs_mu: no data sets given"
        raise InvalidValueError(msg)
    return pd.DataFrame(rows).set_index(["mu", "classifier"])


def response_vs_mu(
    regressions: Mapping[str, Mapping[str, Predictor]],
    datasets: Mapping[float, samples.DefaultDataSet],
    selection: str,
    branches: Sequence[str],
    *,
    events: str = TEST_EVENTS,
    truth: str = "cluster_ENG_CALIB_TOT",
    edges: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Median response and resolution per true-energy bin, at each ⟨μ⟩ and for each sample.

    ``regressions`` maps a name to its ``{"pi0": predict, "pipm": predict}``;
    EM scale and LCW are added. Rows: (⟨μ⟩, sample, bin); columns as
    `calotools.domain_shift.response_tables`.
    """
    from calotools.domain_shift import ENERGY_BINS

    tables = {}
    for mu, dataset in sorted(datasets.items()):
        for sample in ("pi0", "pipm"):
            clusters = read_sample(dataset, sample, cut_with(selection, events), branches)
            s = clusters.scalars
            energies = {
                "EM scale": s["cluster_E"].to_numpy(),
                "LCW": s["cluster_E_LCCalib"].to_numpy(),
                **{
                    name: np.asarray(model[sample](clusters)) for name, model in regressions.items()
                },
            }
            tables[(mu, sample)] = response_tables(
                s[truth].to_numpy(), energies, ENERGY_BINS if edges is None else edges
            )
    return pd.concat(tables, names=["mu", "sample"])


def mixture(datasets: Mapping[float, samples.DefaultDataSet]) -> dict[str, list]:
    """The files of every ⟨μ⟩ as one training sample: ``{"pi0": [...], "pipm": [...]}``."""
    ordered = [datasets[mu] for mu in sorted(datasets)]
    return {"pi0": [d.pi0 for d in ordered], "pipm": [d.pipm for d in ordered]}


def partner_clusters(
    datasets: Mapping[float, samples.DefaultDataSet],
    mu: float,
    selection: str,
    branches: Sequence[str],
    *,
    events: str = TRAIN_EVENTS,
    sample_names: Sequence[str] = ("pi0", "pipm"),
) -> tuple[Clusters, Clusters]:
    """(with pile-up, without) partner clusters at ⟨μ⟩ = ``mu`` against ⟨μ⟩ = 0, row by row.

    The clusters at ``mu`` pass ``selection``; their partners
    (`calotools.sim.pileup_samples.partners`) are taken whatever their
    energy, so the pile-up does not choose which clean clusters are kept.
    """
    if mu not in datasets or 0.0 not in datasets:
        msg = f"partner_clusters needs ⟨μ⟩ = 0 and {mu} among the data sets {sorted(datasets)}"
        raise InvalidValueError(msg)
    wanted = sorted({*branches, "eventNumber", "cluster_Eta", "cluster_Phi"})
    noisy_parts, clean_parts = [], []
    for sample in sample_names:
        noisy = read_sample(datasets[mu], sample, cut_with(selection, events), wanted)
        clean = read_sample(datasets[0.0], sample, events, wanted)
        rows_clean, rows_noisy = pileup_samples.partners(clean, noisy)
        noisy_parts.append(noisy[rows_noisy])
        clean_parts.append(clean[rows_clean])
    return Clusters.concat(noisy_parts), Clusters.concat(clean_parts)


def aligned_partners(
    datasets: Mapping[float, samples.DefaultDataSet],
    selection: str,
    branches: Sequence[str],
    *,
    sample: str = "pi0",
    events: str = TEST_EVENTS,
    limit: int | None = None,
) -> tuple[Clusters, dict[float, Clusters]]:
    """Clean clusters with a partner at *every* ⟨μ⟩, and those partners, row by row.

    What `calotools.widgets.DenoisingExplorer` shows: the same cluster as
    ⟨μ⟩ grows. The clean clusters (⟨μ⟩ = 0) pass ``selection``; ``limit``
    keeps the first so many.
    """
    if 0.0 not in datasets:
        msg = f"aligned_partners needs ⟨μ⟩ = 0 among the data sets {sorted(datasets)}"
        raise InvalidValueError(msg)
    wanted = sorted({*branches, "eventNumber", "cluster_Eta", "cluster_Phi"})
    clean = read_sample(datasets[0.0], sample, cut_with(selection, events), wanted)
    found: dict[float, dict[int, int]] = {}
    others = {}
    for mu in sorted(m for m in datasets if m > 0):
        others[mu] = read_sample(datasets[mu], sample, events, wanted)
        rows, partner = pileup_samples.partners(clean, others[mu])
        found[mu] = dict(zip(rows.tolist(), partner.tolist(), strict=True))
    # Clean rows with a partner at every ⟨μ⟩ > 0 (all of them when there is none).
    common = sorted(set(range(len(clean))).intersection(*found.values()))[:limit]
    rows = np.asarray(common, dtype=np.int64)
    partners_at = {0.0: clean[rows]}
    for mu, mapping in found.items():
        partners_at[mu] = others[mu][np.asarray([mapping[r] for r in common], dtype=np.int64)]
    return clean[rows], partners_at


def em_images(clusters: Clusters, layers: Sequence[str] = EM_LAYERS) -> dict[str, np.ndarray]:
    """The cell energies (GeV) of the EM-layer images: what pile-up adds and a PAED removes.

    Stored images are fractions of ``cluster_E`` (`calotools.sim.images`); with
    pile-up ``cluster_E`` grows too, so images of partners compare in GeV only.
    """
    return from_pixels(to_pixels(clusters, layers), layers)
