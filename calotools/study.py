"""The study: its data set, its trained models, and running it headlessly from end to end.

Every notebook starts with one call, `setup`, which applies the ATLAS style,
makes (or finds) the data set, honours quick mode (``CALOTOOLS_QUICK``, as
`calotools.sim.samples.quick_mode` reads it) and returns a `StudyContext`.
Its `~StudyContext.trained` trains a registered model on the data set once,
with the notebook's selection and the quick or full settings of `TRAINING`,
and reuses it afterwards; `predictions_on_test` gives any model's predictions
on its own test split.

This is what ``make demo`` (``calotools demo``) does: make or reuse the default
data set, execute the numbered notebooks with papermill into
``outputs/notebooks/``, write an HTML page per notebook into ``outputs/html/``
and collect the key figures the notebooks save (`calotools.plotting.save`) in
``outputs/figures/``.

Examples
--------
>>> context = setup(quick=True, root="..")  # doctest: +SKIP
>>> model = context.trained("densenet", "classify")  # doctest: +SKIP
>>> predictions_on_test(model, extra_branches=["cluster_E"]).head()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calotools import atomic, extras
from calotools.data import Selection
from calotools.errors import DataChangedError, DataError, MissingFileError
from calotools.models import Task
from calotools.ntuple import FileSpec
from calotools.predictor import TrainedModel
from calotools.sim import samples
from calotools.stacking import Stack
from calotools.training import DEFAULT_CUT, train

__all__ = [
    "ALL_CLUSTERS_SCALARS",
    "DEFAULT_SELECTION",
    "FULL_MODE_LIMITS",
    "QUICK_CLASSIFIERS",
    "TRAINING",
    "StudyContext",
    "StudyResult",
    "common_test_split",
    "dataset",
    "default_classifiers",
    "model_folder",
    "notebooks",
    "predictions_on_test",
    "regression_table",
    "run_study",
    "setup",
    "shared_clusters",
    "stacked",
    "trained",
]

logger = logging.getLogger(__name__)

#: Training settings of the study's models (`calotools.training.TrainingConfig`
#: fields). Quick mode: a smoke run that still learns something. Full mode: the
#: whole training split of the default data set, 6 epochs with the rate falling
#: on a cosine to 0, stopped early on the validation loss. On 2 cores that keeps
#: ``make demo`` within 30 minutes: the DenseNet trains at 1,700–2,600
#: clusters/s there (`benchmarks/models.py`, ``docs/performance.md``). Raise
#: ``epochs`` on a GPU, or through `FULL_MODE_LIMITS`.
TRAINING: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 3, "max_clusters": 4_000, "patience": 2},
    "full": {"epochs": 6, "schedule": "cosine", "max_clusters": None, "patience": 3},
}
#: Full-mode settings of single models on top of `TRAINING`, by registry name
#: (say ``{"densenet": {"epochs": 12}}``); none at present, and none may cap the
#: clusters, so that every model trains on the whole training split.
FULL_MODE_LIMITS: dict[str, dict[str, Any]] = {}
#: Extra input of notebook 07's regression for all clusters, the alternative to
#: choosing a regression per class: a classifier's probability that the cluster
#: is electromagnetic. LCW's, ``cluster_EM_PROBABILITY``, is a branch of every
#: MLTree ntuple, so the regression needs no other model to run.
ALL_CLUSTERS_SCALARS: tuple[str, ...] = ("cluster_EM_PROBABILITY",)
#: The selection the study's models are trained on unless a notebook says
#: otherwise: `calotools.training.DEFAULT_CUT`, the studies' barrel cut and
#: minimum true energy (``docs/conventions.md``) with a positive EM-scale
#: energy, because the networks see log10(cluster_E).
DEFAULT_SELECTION: str = DEFAULT_CUT


#: The classifiers notebook 02 compares in quick mode (full mode: every registered one).
QUICK_CLASSIFIERS: tuple[str, ...] = (
    "dense3_emb2",
    "cnn_emb2",
    "dense3_all",
    "densenet",
    "hybrid",
    "bdt",
)
#: Column names of `regression_table` for the true energy and the classical energies.
TRUE_ENERGY = "cluster_ENG_CALIB_TOT"
_CLASSICAL = {"EM scale": "cluster_E", "LCW": "cluster_E_LCCalib"}


def _quick(quick: bool | None) -> bool:
    return samples.quick_mode() if quick is None else quick


def model_folder(
    name: str,
    task: str,
    sample: str | None = None,
    *,
    base: str | os.PathLike = "models",
    quick: bool | None = None,
    selection: str | None = None,
    extra_scalars: Sequence[str] = (),
) -> Path:
    """Where the study keeps a trained model: ``models/[quick/]NAME-TASK[-SAMPLE][-CUT][-SCALARS]``.

    A model trained on another selection than `DEFAULT_SELECTION` gets its own
    folder, suffixed with the first 8 hex digits of the SHA-256 of the cut, so
    that changing the selection never resumes (or clashes with) another run;
    one with ``extra_scalars`` likewise, with those of the joined expressions.
    """
    folder = Path(base) / "quick" if _quick(quick) else Path(base)
    tags = []
    if selection is not None and selection != DEFAULT_SELECTION:
        tags.append("cut" + hashlib.sha256(selection.encode()).hexdigest()[:8])
    if extra_scalars:
        joined = "|".join(extra_scalars).encode()
        tags.append("scalars" + hashlib.sha256(joined).hexdigest()[:8])
    return folder / "-".join(part for part in (name, task, sample, *tags) if part)


def trained(
    name: str,
    task: Task,
    data: str | os.PathLike | Mapping[str, FileSpec],
    *,
    sample: str | None = None,
    base: str | os.PathLike = "models",
    quick: bool | None = None,
    selection: str | None = None,
    verbose: int = 0,
    **settings: Any,
) -> TrainedModel:
    """The study's model ``name`` for ``task``: loaded if trained already, else trained now.

    Notebooks call this (through `StudyContext.trained`) for every model they
    use, so each notebook runs on its own and reuses what earlier ones trained.

    Parameters
    ----------
    name, task, sample
        Registry name, ``"classify"`` or ``"regress"``, and for regressions
        the sample (``"pi0"`` or ``"pipm"``) it calibrates.
    data
        Folder of the data set (``pi0.root``, ``pipm.root``), or the files of
        each sample (``{"pi0": [...], "pipm": [...]}``).
    base, quick
        Where models are kept (`model_folder`), and quick mode.
    selection
        The cut the model is trained and tested on; default `DEFAULT_SELECTION`.
    settings
        `calotools.training.TrainingConfig` fields overriding `TRAINING`.
    """
    quick = _quick(quick)
    limits = {} if quick else FULL_MODE_LIMITS.get(name, {})
    options = {**TRAINING["quick" if quick else "full"], **limits, **settings}
    options["cut"] = DEFAULT_SELECTION if selection is None else selection
    if sample is not None:
        options["sample"] = sample
    folder = model_folder(
        name,
        task,
        sample,
        base=base,
        quick=quick,
        selection=options["cut"],
        extra_scalars=tuple(options.get("extra_scalars", ())),
    )
    try:
        return train(name, data, folder, task=task, verbose=verbose, **options)
    except DataChangedError as err:
        # The study's models are a cache of its data set: remade data, new models.
        logger.info("%s; training it again", err)
        return train(name, data, folder, task=task, verbose=verbose, overwrite=True, **options)


def _split_part(model: TrainedModel, part: str = "test") -> Selection:
    split = model.split
    if split is None:
        msg = f"{model!r} has no saved split; it was not trained by calotools.training.train"
        raise MissingFileError(msg)
    if part not in split.parts:
        msg = f"{model!r} has no {part!r} clusters in its split; it has {', '.join(split.parts)}"
        raise MissingFileError(msg)
    return split[part]


def common_test_split(models: Iterable[TrainedModel], *, part: str = "test") -> Selection:
    """The largest of the models' test splits, checked to contain all the others.

    `calotools.training` splits the selection first and only then draws
    ``max_clusters`` from each part, so a capped model's test clusters are a
    subset of an uncapped model's and none of its training clusters is among
    them: every model can be compared on the largest test split. ``part``
    picks another part of the split (``"validation"``).
    """
    splits = [_split_part(model, part) for model in models]
    largest = max(splits, key=len)
    everything = set(_cluster_keys(largest))
    if any(not set(_cluster_keys(split)) <= everything for split in splits):
        msg = (
            f"the models' {part} splits are not nested (different data, cuts, samples or "
            "seeds); compare them on their own splits instead"
        )
        raise DataError(msg)
    return largest


def _cluster_keys(selection: Selection) -> list[tuple[str, int]]:
    paths = [str(Path(f.path).resolve()) for f in selection.files]
    return [(paths[i], int(e)) for i, e in zip(selection.file_index, selection.entry, strict=True)]


def shared_clusters(selection: Selection, *others: Selection) -> Selection:
    """The clusters of ``selection`` that are in every one of ``others`` too, in its order.

    Models trained on different selections (a classifier on balanced classes,
    a regression on all clusters) have different test splits; they can be
    compared fairly on the clusters that are in all of them.
    """
    keys = _cluster_keys(selection)
    common = set(keys).intersection(*(_cluster_keys(other) for other in others))
    keep = [i for i, key in enumerate(keys) if key in common]
    return selection.take(np.asarray(keep, dtype=np.int64))


def stacked(classifiers: Mapping[str, TrainedModel]) -> Stack:
    """A `calotools.stacking.Stack` of the classifiers, fitted on their validation clusters.

    Those clusters took no part in any member's fit (they only chose its
    best epoch), so the combination is judged fairly on the test split.
    """
    if not classifiers:
        raise DataError("classifiers is empty; give at least one trained classifier")
    validation = common_test_split(classifiers.values(), part="validation")
    scores, labels = {}, None
    for name, model in classifiers.items():
        table = predictions_on_test(model, selection=validation)
        scores[name] = table["prediction"].to_numpy()
        labels = table["label"].to_numpy()
    return Stack.fit(scores, labels)


def predictions_on_test(
    model: TrainedModel, *, extra_branches: Sequence[str] = (), selection: Selection | None = None
) -> pd.DataFrame:
    """The model's predictions on its own test split (or on ``selection``).

    Returns a table with ``prediction`` (P(π±) or energy in GeV), ``label``
    (π0 = 0, π± = 1) and the branches asked for, one row per test cluster.
    """
    from calotools import evaluation

    selection = _split_part(model) if selection is None else selection
    predictions, table = evaluation.predict_selection(
        model, selection, extra_branches=extra_branches
    )
    return table.assign(prediction=predictions)


def regression_table(models: dict[str, TrainedModel]) -> pd.DataFrame:
    """The regressions' energies next to the true, EM-scale and LCW ones, on common test clusters.

    Parameters
    ----------
    models
        Name → trained regression of one sample (e.g. the DenseNet and the BDT of π±).

    Returns
    -------
    pandas.DataFrame
        One row per cluster of `common_test_split`: ``label``,
        ``cluster_ENG_CALIB_TOT``, ``EM scale`` and ``LCW`` (GeV, where the
        files have them), and one column per model with its energy in GeV.
    """
    if not models:
        msg = "models is empty; give at least one trained regression"
        raise DataError(msg)
    test = common_test_split(models.values())
    table: pd.DataFrame | None = None
    for name, model in models.items():
        extra = [TRUE_ENERGY, *_CLASSICAL.values()] if table is None else []
        predictions = predictions_on_test(model, extra_branches=extra, selection=test)
        if table is None:
            renamed = {branch: label for label, branch in _CLASSICAL.items()}
            table = predictions.drop(columns="prediction").rename(columns=renamed)
        table[name] = predictions["prediction"].to_numpy()
    return table


def default_classifiers(quick: bool | None = None) -> list[str]:
    """The classifiers the study compares: `QUICK_CLASSIFIERS` in quick mode, else all."""
    from calotools import models

    return list(QUICK_CLASSIFIERS) if _quick(quick) else list(models.available("classify"))


# ---------------------------------------------------------------------------- notebooks


def dataset(
    data: str | os.PathLike | None = None,
    *,
    quick: bool | None = None,
    base: str | os.PathLike = "data",
) -> samples.DefaultDataSet:
    """The study's data set: the folder ``data`` (real ntuples, say), or the default one.

    Without ``data``, the default data set is made (or reused) in
    `calotools.sim.samples.default_folder` of ``base``: ``data/``, or
    ``data/quick/`` in quick mode (``quick=None`` follows ``CALOTOOLS_QUICK``).
    A given folder must hold ``pi0.root`` and ``pipm.root``.
    """
    quick = _quick(quick)
    if data is None:
        return samples.make_default(samples.default_folder(base, quick=quick), quick=quick)
    found = samples.DefaultDataSet(Path(data))
    missing = [str(path) for path in (found.pi0, found.pipm) if not path.is_file()]
    if missing:
        msg = f"the data folder {data} lacks {', '.join(missing)}; it needs pi0.root and pipm.root"
        raise MissingFileError(msg)
    return found


@dataclass(frozen=True)
class StudyContext:
    """What a study notebook works with: its data, quick mode, selection and model folder.

    Made by `setup`; `trained` and `model_folder` pass these on, so that a
    notebook names only the model it wants.
    """

    data: samples.DefaultDataSet
    quick: bool
    selection: str = DEFAULT_SELECTION
    models: Path = Path("models")

    def trained(
        self, name: str, task: Task, sample: str | None = None, **settings: Any
    ) -> TrainedModel:
        """`trained` on this context's data set, selection, model folder and mode."""
        return trained(
            name,
            task,
            self.data.folder,
            sample=sample,
            base=self.models,
            quick=self.quick,
            selection=self.selection,
            **settings,
        )

    def model_folder(
        self, name: str, task: str, sample: str | None = None, extra_scalars: Sequence[str] = ()
    ) -> Path:
        """`model_folder` of this context."""
        return model_folder(
            name,
            task,
            sample,
            base=self.models,
            quick=self.quick,
            selection=self.selection,
            extra_scalars=extra_scalars,
        )


def setup(
    *,
    data: str | os.PathLike | None = None,
    quick: bool | None = None,
    selection: str | None = None,
    root: str | os.PathLike = ".",
) -> StudyContext:
    """Set a study notebook up: the ATLAS style, where figures go, the data set.

    Parameters
    ----------
    data
        A folder with ``pi0.root`` and ``pipm.root``; None: the default data
        set under ``ROOT/data`` (`dataset`).
    quick
        Quick mode; None follows ``CALOTOOLS_QUICK``.
    selection
        The cut of the models the notebook trains; None: `DEFAULT_SELECTION`.
    root
        The project folder as seen from where the notebook runs (``".."`` from
        ``notebooks/``): data in ``ROOT/data``, models in ``ROOT/models`` and
        figures in ``ROOT/outputs/figures`` unless ``CALOTOOLS_FIGURES`` says
        otherwise.
    """
    from calotools import plotting

    plotting.use_style()
    root = Path(root)
    os.environ.setdefault("CALOTOOLS_FIGURES", str(root / "outputs" / "figures"))
    quick = _quick(quick)
    return StudyContext(
        data=dataset(data, quick=quick, base=root / "data"),
        quick=quick,
        selection=DEFAULT_SELECTION if selection is None else selection,
        models=root / "models",
    )


# ---------------------------------------------------------------------------- running it


def notebooks(folder: str | os.PathLike = "notebooks") -> list[Path]:
    """The numbered notebooks of the study (``NN_name.ipynb``), in order."""
    found = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        msg = f"no numbered notebooks (NN_name.ipynb) in {Path(folder).resolve()}"
        raise MissingFileError(msg)
    return found


@dataclass
class StudyResult:
    """Where the results of a study run are, and how long each notebook took."""

    executed: list[Path] = field(default_factory=list)
    html: list[Path] = field(default_factory=list)
    figures: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def _to_html(notebook: Path, out: Path) -> Path:
    nbconvert, nbformat = extras.nbconvert(), extras.nbformat()
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    return atomic.write_text(out / notebook.with_suffix(".html").name, body)


def run_study(
    notebook_folder: str | os.PathLike = "notebooks",
    out: str | os.PathLike = "outputs",
    *,
    quick: bool | None = None,
    data_base: str | os.PathLike = "data",
) -> StudyResult:
    """Make the default data, then execute every numbered notebook and export it.

    What it does is logged to the ``calotools.study`` logger (``calotools
    demo`` shows it).

    Parameters
    ----------
    notebook_folder
        Where the numbered notebooks are; they run with it as working folder.
    out
        Where executed notebooks, HTML pages and figures go.
    quick
        Quick mode (small data, few epochs); default ``CALOTOOLS_QUICK``.
    data_base
        Base folder of the default data set (``data/``; quick mode ``data/quick/``).
    """
    papermill = extras.papermill()

    quick = _quick(quick)
    out = Path(out).resolve()
    result = StudyResult(figures=out / "figures")
    for sub in ("notebooks", "html", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    dataset(quick=quick, base=data_base)
    # The kernels inherit the environment: quick mode and the figure folder.
    os.environ["CALOTOOLS_QUICK"] = "1" if quick else "0"
    os.environ["CALOTOOLS_FIGURES"] = str(result.figures)
    for notebook in notebooks(notebook_folder):
        logger.info("running %s ...", notebook.name)
        start = time.perf_counter()
        executed = out / "notebooks" / notebook.name
        papermill.execute_notebook(
            notebook,
            executed,
            cwd=str(notebook.parent),
            kernel_name="python3",
            progress_bar=False,
        )
        result.seconds[notebook.stem] = time.perf_counter() - start
        result.executed.append(executed)
        result.html.append(_to_html(executed, out / "html"))
        logger.info("  %s: %.0f s", notebook.stem, result.seconds[notebook.stem])
    logger.info("executed notebooks: %s", out / "notebooks")
    logger.info("HTML pages:         %s", out / "html")
    logger.info("figures:            %s", result.figures)
    return result
