"""The study: its trained models, and running it headlessly from end to end.

The notebooks get their models from `trained`, which trains a registered model
on the default data set once (with the quick or full settings of `TRAINING`)
and reuses it afterwards; `predictions_on_test` gives any model's predictions on
its own test split.

This is what ``make demo`` (``calotools demo``) does: make or reuse the default
data set, execute the numbered notebooks with papermill into
``outputs/notebooks/``, write an HTML page per notebook into ``outputs/html/``
and collect the key figures the notebooks save (`calotools.plotting.save`) in
``outputs/figures/``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from calotools import atomic, extras
from calotools.sim import samples

__all__ = [
    "FULL_MODE_LIMITS",
    "TRAINING",
    "StudyResult",
    "common_test_split",
    "model_folder",
    "notebooks",
    "predictions_on_test",
    "run_study",
    "trained",
]

#: Training settings of the study's models (`calotools.training.TrainingConfig`
#: fields). Quick mode: a smoke run that still learns something; full mode: the
#: whole default data set, stopped early on the validation loss.
TRAINING: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 3, "max_clusters": 4_000, "patience": 2},
    "full": {"epochs": 12, "max_clusters": None, "patience": 3},
}
#: Full-mode limits of the models that are slow on a CPU, so that ``make demo``
#: stays within an hour on 2 cores (measured: the DenseNet trains at about 300
#: clusters/s there, the LAPP CNN at about 600). Raise them on a GPU.
FULL_MODE_LIMITS: dict[str, dict[str, Any]] = {
    "densenet": {"epochs": 5, "max_clusters": 20_000},
    "lapp_cnn": {"epochs": 6, "max_clusters": 40_000},
}


def model_folder(
    name: str,
    task: str,
    sample: str | None = None,
    *,
    base: str | os.PathLike = "models",
    quick: bool | None = None,
) -> Path:
    """Where the study keeps a trained model: ``models/[quick/]NAME-TASK[-SAMPLE]``."""
    quick = samples.quick_mode() if quick is None else quick
    folder = Path(base) / "quick" if quick else Path(base)
    return folder / "-".join(part for part in (name, task, sample) if part)


def trained(
    name: str,
    task: str,
    data: str | os.PathLike,
    *,
    sample: str | None = None,
    base: str | os.PathLike = "models",
    quick: bool | None = None,
    verbose: int = 0,
    **settings: Any,
) -> Any:
    """The study's model ``name`` for ``task``: loaded if trained already, else trained now.

    Notebooks call this for every model they use, so each notebook runs on its
    own and reuses what earlier notebooks trained.

    Parameters
    ----------
    name, task, sample
        Registry name, ``"classify"`` or ``"regress"``, and for regressions
        the sample (``"pi0"`` or ``"pipm"``) it calibrates.
    data
        Folder of the data set (``pi0.root``, ``pipm.root``).
    base, quick
        Where models are kept (`model_folder`).
    settings
        `calotools.training.TrainingConfig` fields overriding `TRAINING`.
    """
    from calotools import training

    quick = samples.quick_mode() if quick is None else quick
    limits = {} if quick else FULL_MODE_LIMITS.get(name, {})
    options = {**TRAINING["quick" if quick else "full"], **limits, **settings}
    if sample is not None:
        options["sample"] = sample
    folder = model_folder(name, task, sample, base=base, quick=quick)
    return training.train(name, data, folder, task=task, verbose=verbose, **options)


def _test_split(model: Any) -> Any:
    from calotools import data

    return data.Split.load(Path(model.folder) / "split.npz")["test"]


def common_test_split(models: Iterable[Any]) -> Any:
    """The largest of the models' test splits, checked to contain all the others.

    `calotools.training` splits the selection first and only then draws
    ``max_clusters`` from each part, so a capped model's test clusters are a
    subset of an uncapped model's and none of its training clusters is among
    them: every model can be compared on the largest test split.
    """
    splits = [_test_split(model) for model in models]
    largest = max(splits, key=len)

    def clusters(selection: Any) -> set[tuple[str, int]]:
        paths = [str(Path(f.path).resolve()) for f in selection.files]
        return {
            (paths[i], int(e)) for i, e in zip(selection.file_index, selection.entry, strict=True)
        }

    everything = clusters(largest)
    if any(not clusters(split) <= everything for split in splits):
        msg = (
            "the models' test splits are not nested (different data, cuts, samples or seeds); "
            "compare them on their own test splits instead"
        )
        raise ValueError(msg)
    return largest


def predictions_on_test(
    model: Any, *, extra_branches: Sequence[str] = (), selection: Any = None
) -> pd.DataFrame:
    """The model's predictions on its own test split (or on ``selection``).

    Returns a table with ``prediction`` (P(π±) or energy in GeV), ``label``
    (π0 = 0, π± = 1) and the branches asked for, one row per test cluster.
    """
    from calotools import evaluation

    selection = _test_split(model) if selection is None else selection
    predictions, table = evaluation.predict_selection(
        model, selection, extra_branches=extra_branches
    )
    return table.assign(prediction=predictions)


def notebooks(folder: str | os.PathLike = "notebooks") -> list[Path]:
    """The numbered notebooks of the study (``NN_name.ipynb``), in order."""
    found = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        msg = f"no numbered notebooks (NN_name.ipynb) in {Path(folder).resolve()}"
        raise FileNotFoundError(msg)
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
    log: Callable[[str], None] = print,
) -> StudyResult:
    """Make the default data, then execute every numbered notebook and export it.

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
    log
        Where to say what is done.
    """
    papermill = extras.papermill()

    quick = samples.quick_mode() if quick is None else quick
    out = Path(out).resolve()
    result = StudyResult(figures=out / "figures")
    for sub in ("notebooks", "html", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    samples.make_default(samples.default_folder(data_base, quick=quick), quick=quick, log=log)
    # The kernels inherit the environment: quick mode and the figure folder.
    os.environ["CALOTOOLS_QUICK"] = "1" if quick else "0"
    os.environ["CALOTOOLS_FIGURES"] = str(result.figures)
    for notebook in notebooks(notebook_folder):
        log(f"running {notebook.name} ...")
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
        log(f"  {notebook.stem}: {result.seconds[notebook.stem]:.0f} s")
    log(f"executed notebooks: {out / 'notebooks'}")
    log(f"HTML pages:         {out / 'html'}")
    log(f"figures:            {result.figures}")
    return result
