"""Train any registered model on a data set, into a self-describing, resumable folder.

`train` selects and splits the samples (or takes a saved `Split`), fits the
model's `Preprocessing` on the training part, trains with early stopping, a
learning-rate schedule, class weights and fixed seeds, feeding Keras from
memory or streaming from the ROOT files (`calotools.loaders`), then measures
the best model on the test part (`calotools.evaluation`). The result is a
folder:

====================  ==========================================================
``model.json``        manifest: kind, registry name, task, sample, file names
``model.keras``       the network at its best validation loss (BDT: ``model.txt``)
``preprocessing.json``  the fitted `Preprocessing`
``split.npz``         the train/validation/test clusters (`calotools.data.Split`)
``training.json``     the `TrainingConfig`
``history.csv``       loss, metrics and learning rate per epoch
``metrics.json``      test-set performance, with the LCW baselines
``versions.json``     Python, platform and package versions
``checkpoint/``       the last epoch's model with its optimizer state, and the
                      run state (epoch, history, early-stopping and
                      learning-rate-schedule counters) to resume from
====================  ==========================================================

The folder is written as ``.NAME.partial`` and renamed when complete. Calling
`train` again resumes: from the partial folder after an interruption, or from
a complete one with more ``epochs``, starting at the epoch after the last
checkpoint with the optimizer state, the history and the counters as they were.

The command line (``calotools train``, ``calotools models``) is wired with
`add_train_parser` and `add_models_parser`.

Examples
--------
>>> model = train("densenet", "data", "models/densenet-classify", epochs=20)  # doctest: +SKIP
>>> model.predict(clusters)  # P(π±)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from calotools import artifacts, atomic, backend, data, evaluation, loading, models, ntuple
from calotools._argtypes import positive_float, positive_int
from calotools.baselines import BDTModel
from calotools.cuts import feature_branch
from calotools.errors import (
    ArtifactError,
    DataChangedError,
    Interrupted,
    MissingFileError,
    OutputPathError,
    TrainingError,
)
from calotools.predictor import TrainedModel
from calotools.preprocessing import Preprocessing

__all__ = [
    "DEFAULT_CUT",
    "QUICK",
    "TrainingConfig",
    "TrainingError",
    "add_models_parser",
    "add_train_parser",
    "class_weights",
    "train",
]

Schedule = Literal["plateau", "cosine", "constant"]
DataSource = str | os.PathLike | Mapping[str, ntuple.FileSpec] | data.Split

#: What ``--quick`` changes: a smoke run that finishes in about a minute on a CPU.
QUICK: dict[str, Any] = {"epochs": 2, "max_clusters": 4_000}
#: The selection of the studies, plus a positive EM-scale energy: the networks
#: see log10(cluster_E) and the BDT regression ln(E_calib / cluster_E), and
#: noise can make a real cluster's energy negative.
DEFAULT_CUT = f"{data.DEFAULT_CUT} and cluster_E > 0"
#: File names of the default data set in a data folder (``data/README.md``).
DEFAULT_SAMPLES: dict[str, str] = {"pi0": "pi0.root", "pipm": "pipm.root"}

_CHECKPOINT = "checkpoint"
_STATE = "state.json"
_FILES = {
    "network": "model.keras",
    "preprocessing": "preprocessing.json",
    "split": "split.npz",
    "training": "training.json",
    "history": "history.csv",
    "metrics": "metrics.json",
    "versions": "versions.json",
}


logger = logging.getLogger(__name__)


def _say(config: TrainingConfig, message: str) -> None:
    """Log what the run does, prefixed with the model and task it trains."""
    logger.info("[%s %s] %s", config.model, config.task, message)


@dataclass
class TrainingConfig:
    """How a model was trained; saved as ``training.json`` in its folder.

    Parameters
    ----------
    model, task
        Registry name (`calotools.models.available`) and ``"classify"`` or ``"regress"``.
    sample
        Regressions: train on this sample only (``"pi0"`` or ``"pipm"``), as
        the LLNL report calibrates each class with its own regression.
    epochs, batch_size
        Training length and clusters per step.
    learning_rate
        Adam's initial rate; None: the model's (`ModelSpec.learning_rate`).
    schedule
        ``"plateau"`` (halve the rate after ``lr_patience`` epochs without a
        better validation loss), ``"cosine"`` (cosine decay to 0 at
        ``epochs``) or ``"constant"``.
    patience
        Early stopping: stop after this many epochs without a better
        validation loss; the saved model is the best one.
    class_weight
        ``"auto"`` (the model's choice), ``"balanced"`` (n / (2 n_class)) or ``"none"``.
    streaming
        Stream batches from the ROOT files instead of loading the split into memory.
    seed
        Seeds the selection, the split, the shuffling and Keras.
    cut, balance
        Selection cut (`DEFAULT_CUT`), and whether classifiers get balanced classes.
    max_clusters
        Use at most this many training clusters (validation and test in
        proportion); None for all.
    model_kwargs
        Size keywords of the model's builder (or BDT parameters).
    extra_scalars
        Feature expressions the network takes beside its images and scalars
        (`calotools.models.MOMENT_SCALARS`: what the BDT sees); not for the BDT.
    workers
        Threads preparing batches (`keras.utils.PyDataset`).
    run_eagerly
        Run Keras steps eagerly, without compiling them to a graph: slower per
        step, but it skips seconds of graph tracing (tiny runs, debugging).
    """

    model: str
    task: Literal["classify", "regress"] = "classify"
    sample: str | None = None
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float | None = None
    schedule: Schedule = "plateau"
    lr_patience: int = 2
    lr_factor: float = 0.5
    patience: int = 5
    class_weight: Literal["auto", "balanced", "none"] = "auto"
    streaming: bool = False
    seed: int = 0
    cut: str | None = DEFAULT_CUT
    balance: bool = True
    max_clusters: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    extra_scalars: tuple[str, ...] = ()
    workers: int = 1
    run_eagerly: bool = False

    def __post_init__(self) -> None:
        model_spec = models.spec(self.model)
        model_spec.check_task(self.task)
        if self.sample is not None and self.sample not in data.SAMPLE_LABELS:
            msg = f"sample must be one of {', '.join(data.SAMPLE_LABELS)}; got {self.sample!r}"
            raise TrainingError(msg)
        if self.sample is not None and self.task == "classify":
            msg = "a classifier needs both samples; --sample is for regressions"
            raise TrainingError(msg)
        # patience 0 would stop after the first epoch, whatever it gave.
        for name in ("epochs", "batch_size", "workers", "patience", "lr_patience"):
            if getattr(self, name) < 1:
                msg = f"{name} must be at least 1, got {getattr(self, name)}"
                raise TrainingError(msg)
        if self.max_clusters is not None and self.max_clusters < 1:
            msg = f"max_clusters must be at least 1 (or None for all), got {self.max_clusters}"
            raise TrainingError(msg)
        rate = self.learning_rate
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            msg = (
                f"learning_rate must be a finite number above 0 (or None: the model's), got {rate}"
            )
            raise TrainingError(msg)
        if not 0 < self.lr_factor < 1:
            msg = f"lr_factor must lie between 0 and 1 (the rate is multiplied by it), got {self.lr_factor}"
            raise TrainingError(msg)
        for name, value, allowed in (
            ("schedule", self.schedule, ("plateau", "cosine", "constant")),
            ("class_weight", self.class_weight, ("auto", "balanced", "none")),
        ):
            if value not in allowed:
                msg = f"{name} must be one of {', '.join(allowed)}; got {value!r}"
                raise TrainingError(msg)
        self.model_kwargs = dict(self.model_kwargs)
        self.extra_scalars = tuple(self.extra_scalars)
        if self.extra_scalars and model_spec.kind != "keras":
            msg = f"extra_scalars are inputs of a network; {self.model!r} reads its own features"
            raise TrainingError(msg)
        for expression in self.extra_scalars:
            feature_branch(expression)  # a CutError names one it cannot read

    def selection(self, *, n_samples: int = 2) -> data.SelectionConfig:
        """The `calotools.data.SelectionConfig` of the run.

        Its cut and seed, and for a classifier of two samples the balancing of
        the classes that ``balance`` asks for.
        """
        balance = self.task == "classify" and self.balance and n_samples > 1
        return data.SelectionConfig(cut=self.cut, balance=balance, seed=self.seed)

    @property
    def spec(self) -> models.ModelSpec:
        """The registry entry of the model."""
        return models.spec(self.model)

    def to_dict(self) -> dict[str, Any]:
        """Plain fields, for JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingConfig:
        """The inverse of `to_dict`."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def differences(self, other: TrainingConfig) -> dict[str, tuple[Any, Any]]:
        """Settings that make ``other`` a different run: name → (this value, other value).

        Model, task, sample, sizes and data must match for a run to continue;
        epochs, schedule, streaming and the like may change.
        """
        keys = (
            "model",
            "task",
            "sample",
            "model_kwargs",
            "extra_scalars",
            "seed",
            "cut",
            "balance",
            "max_clusters",
        )
        mine, theirs = self.to_dict(), other.to_dict()
        return {
            key: (mine[key], theirs[key])
            for key in keys
            if artifacts.to_json_ready(mine[key]) != artifacts.to_json_ready(theirs[key])
        }


# ---------------------------------------------------------------------------- data


def _samples(source: str | os.PathLike | Mapping[str, ntuple.FileSpec]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    folder = Path(source)
    if not folder.is_dir():
        msg = (
            f"{folder}: not a data folder; give a folder with "
            f"{' and '.join(DEFAULT_SAMPLES.values())} (the default data set layout)"
        )
        raise MissingFileError(msg)
    samples = {sample: folder / name for sample, name in DEFAULT_SAMPLES.items()}
    missing = [str(path) for path in samples.values() if not path.is_file()]
    if missing:
        msg = (
            f"the data folder {folder} lacks {', '.join(missing)}; it needs "
            f"{' and '.join(DEFAULT_SAMPLES.values())} (the default data set layout)"
        )
        raise MissingFileError(msg)
    return samples


def _cap(selection: data.Selection, n: int, seed: int) -> data.Selection:
    """At most ``n`` clusters of ``selection``, drawn at random (seeded), in order."""
    if len(selection) <= n:
        return selection
    rng = np.random.default_rng([seed, 7])
    return selection.take(np.sort(rng.choice(len(selection), n, replace=False)))


def _only_sample(selection: data.Selection, sample: str) -> data.Selection:
    label = data.SAMPLE_LABELS[sample]
    return selection.take(np.flatnonzero(selection.labels == label))


def _make_split(config: TrainingConfig, source: DataSource) -> data.Split:
    """Select and split the samples, or narrow a given split, as ``config`` says."""
    if isinstance(source, data.Split):
        parts = dict(source.parts)
        info = dict(source.info)
    else:
        samples = _samples(source)
        if config.sample is not None:
            if config.sample not in samples:
                msg = f"no {config.sample!r} sample among {', '.join(samples)}"
                raise TrainingError(msg)
            samples = {config.sample: samples[config.sample]}
        selection = data.select(samples, config.selection(n_samples=len(samples)))
        made = data.split(selection, seed=config.seed)
        parts, info = dict(made.parts), dict(made.info)
    if config.sample is not None:
        parts = {name: _only_sample(part, config.sample) for name, part in parts.items()}
    if config.max_clusters is not None:
        train_size = max(len(parts.get("train", ())), 1)
        parts = {
            name: _cap(part, max(1, config.max_clusters * len(part) // train_size), config.seed)
            for name, part in parts.items()
        }
    for name in ("train", "test"):
        if name not in parts or len(parts[name]) == 0:
            msg = f"the split has no {name!r} clusters; use more data"
            raise TrainingError(msg)
    return data.Split(parts, {**info, "sample": config.sample, "max_clusters": config.max_clusters})


def class_weights(selection: data.Selection) -> dict[int, float]:
    """Balanced class weights, n / (2 · n_class), from a selection's labels."""
    labels = selection.labels
    counts = np.bincount(labels, minlength=2)
    if np.any(counts == 0):
        msg = "class weights need clusters of both classes in the training part"
        raise TrainingError(msg)
    return {c: len(labels) / (2.0 * counts[c]) for c in (0, 1)}


def _weighted(selection: data.Selection, weights: Mapping[int, float] | None) -> data.Selection:
    """The selection with class weights folded into its per-cluster weights.

    Both loaders hand a selection's weights to Keras as sample weights, so this
    weights classes the same way in memory and streaming (Keras' own
    ``class_weight`` refuses batches that already carry weights).
    """
    if not weights:
        return selection
    per_class = np.asarray([weights[0], weights[1]], dtype=np.float32)[selection.labels]
    base = np.ones(len(selection), np.float32) if selection.weight is None else selection.weight
    return data.Selection(
        selection.files, selection.file_index, selection.entry, base * per_class, selection.info
    )


# ---------------------------------------------------------------------------- Keras callbacks


def _learning_rate(optimizer: Any) -> float:
    # Variable.numpy(): NumPy 2 warns on np.asarray of a Keras variable.
    return float(optimizer.learning_rate.numpy())


def _run_state_callback(
    folder: Path,
    config: TrainingConfig,
    state: dict[str, Any],
    monitor: str,
    base_rate: float,
) -> Any:
    """One callback for everything a resumed run must find as it was.

    Early stopping, the learning-rate schedule, the best model, the per-epoch
    checkpoint and the history all live in ``state``, which is saved next to
    the checkpoint after every epoch. (Keras' own EarlyStopping and
    ReduceLROnPlateau reset their counters at the start of every ``fit``.)
    """
    keras = backend.keras()
    # Any: backend.keras() is a plain ModuleType to mypy, so Callback is no valid base for it.
    callback: Any = keras.callbacks.Callback

    class RunState(callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            optimizer = self.model.optimizer
            if config.schedule == "cosine":
                progress = epoch / config.epochs
                optimizer.learning_rate = base_rate * 0.5 * (1.0 + math.cos(math.pi * progress))
            self.rate = _learning_rate(optimizer)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items()}
            state["history"].append({"epoch": epoch + 1, **logs, "learning_rate": self.rate})
            # A new checkpoint file per epoch, the state naming it written after
            # it: an interruption at any moment leaves a consistent pair.
            checkpoints = folder / _CHECKPOINT
            name = f"epoch_{epoch + 1}.keras"
            value = logs.get(monitor, math.nan)
            best = state["best"]
            if math.isfinite(value) and (best is None or value < best):
                state.update(best=value, best_epoch=epoch + 1, wait=0)
                improved = True
            else:
                state["wait"] += 1
                improved = False
            if config.schedule == "plateau" and not improved:
                state["plateau_wait"] = state.get("plateau_wait", 0) + 1
                if state["plateau_wait"] >= config.lr_patience:
                    rate = _learning_rate(self.model.optimizer) * config.lr_factor
                    self.model.optimizer.learning_rate = rate
                    state["plateau_wait"] = 0
                    _say(
                        config,
                        f"{monitor} has not improved for {config.lr_patience} epochs: rate {rate:.3g}",
                    )
            elif improved:
                state["plateau_wait"] = 0
            if state["wait"] >= config.patience:
                state["stopped_early"] = True
                self.model.stop_training = True
                _say(
                    config,
                    f"early stopping: {monitor} has not improved for {config.patience} "
                    f"epochs; keeping epoch {state.get('best_epoch')}",
                )
            # Saved after the schedule changed the rate, so a resumed run starts with it.
            models.save_network(self.model, checkpoints / name)
            if improved:
                atomic.copy_file(checkpoints / name, folder / _FILES["network"])
            previous = state.get("checkpoint")
            state.update(epoch=epoch + 1, checkpoint=name)
            artifacts.write_json(checkpoints / _STATE, state)
            _write_history(folder, state["history"])
            if previous and previous != name:
                (checkpoints / previous).unlink(missing_ok=True)

    return RunState()


def _write_history(folder: Path, history: Sequence[Mapping[str, Any]]) -> None:
    with atomic.atomic_write(folder / _FILES["history"]) as tmp:
        pd.DataFrame(list(history)).to_csv(tmp, index=False)


# ---------------------------------------------------------------------------- training


def _datasets(
    config: TrainingConfig, parts: data.Split, prep: Preprocessing, weights: Any
) -> tuple[Any, Any]:
    from calotools import loaders

    train_part = _weighted(parts["train"], weights)
    validation = parts.parts.get("validation")
    validation = (
        None if validation is None or len(validation) == 0 else _weighted(validation, weights)
    )
    options: dict[str, Any] = {
        "batch_size": config.batch_size,
        "seed": config.seed,
        "workers": config.workers,
    }
    if config.streaming:
        train_data = loaders.StreamingDataset(train_part, prep, **options)
        val_data = validation and loaders.StreamingDataset(
            validation, prep, shuffle=False, **options
        )
    else:
        train_data = loaders.ArrayDataset(loaders.load_arrays(train_part, prep), **options)
        val_data = validation and loaders.ArrayDataset(
            loaders.load_arrays(validation, prep), shuffle=False, **options
        )
    return train_data, val_data


def _resolve_class_weights(config: TrainingConfig, train_part: data.Selection):
    if config.task != "classify":
        return None
    choice = config.class_weight
    if choice == "auto":
        choice = config.spec.class_weight or "none"
    return class_weights(train_part) if choice == "balanced" else None


def _train_keras(
    folder: Path,
    config: TrainingConfig,
    parts: data.Split,
    prep: Preprocessing,
    state: dict[str, Any],
    callbacks: Sequence[Any],
    verbose: int | str,
) -> models.KerasModel:
    keras = backend.keras()

    done = state["epoch"]
    # Seeded by the epoch too, so a resumed run does not replay the first epochs' draws.
    keras.utils.set_random_seed(config.seed + done)
    if done:
        try:
            network = models.load_network(folder / _CHECKPOINT / state["checkpoint"])
        except ArtifactError as err:
            msg = (
                f"cannot resume the run in {folder}: the checkpoint of epoch {done} is "
                f"unusable ({err}); pass overwrite=True (--overwrite) to start afresh"
            )
            raise TrainingError(msg) from None
    else:
        network = models.build(config.model, config.task, prep, **config.model_kwargs)
        models.compile_model(network, config.model, config.task, learning_rate=config.learning_rate)
    network.run_eagerly = config.run_eagerly
    base_rate = config.spec.learning_rate if config.learning_rate is None else config.learning_rate
    weights = _resolve_class_weights(config, parts["train"])
    if weights:
        _say(config, f"class weights: π0 {weights[0]:.3f}, π± {weights[1]:.3f}")
    if done < config.epochs and not state["stopped_early"]:
        train_data, val_data = _datasets(config, parts, prep, weights)
        train_data.set_epoch(done)  # the shuffle order of the epoch it starts at
        monitor = "val_loss" if val_data is not None else "loss"
        state["monitor"] = monitor
        network.fit(
            train_data,
            validation_data=val_data,
            epochs=config.epochs,
            initial_epoch=done,
            shuffle=False,  # the loaders shuffle themselves, seeded by the epoch
            callbacks=[
                _run_state_callback(folder, config, state, monitor, base_rate),
                *callbacks,
            ],
            verbose=verbose,
        )
    best = folder / _FILES["network"]
    if not best.exists():
        msg = f"no epoch gave a finite {state.get('monitor', 'loss')}; there is no model to save"
        raise TrainingError(msg)
    network = models.load_network(best, compile=False)
    return models.KerasModel(network, prep, name=config.model, task=config.task, folder=folder)


def _branches_of_every_file(selection: data.Selection) -> set[str]:
    """Branches all the selection's files have (optional moments may be missing from some)."""
    return set.intersection(
        *(set(ntuple.ChunkReader(f.path, []).available) for f in selection.files)
    )


def _present_moments(
    config: TrainingConfig, prep: Preprocessing, train_part: data.Selection
) -> Preprocessing:
    """``prep`` without the `models.MOMENT_SCALARS` whose branches the files lack.

    Real MLTree ntuples lack some moments that calotools writes; a network
    then sees the others, as the BDT does (`BDTModel.usable_features`). The
    saved recipe lists what it saw.
    """
    # Energy and |η| are in every file; only the other moments are worth a look at the files.
    moments = set(models.MOMENT_SCALARS) - set(models.REGRESSION_SCALARS)
    if not moments & set(prep.scalars):
        return prep
    present = _branches_of_every_file(train_part)
    missing = [s for s in prep.scalars if s in moments and feature_branch(s) not in present]
    if not missing:
        return prep
    _say(config, f"the files lack the branches of {', '.join(missing)}: the network goes without")
    kept = tuple(s for s in prep.scalars if s not in missing)
    return dataclasses.replace(prep, scalars=kept)


def _train_bdt(folder: Path, config: TrainingConfig, parts: data.Split) -> BDTModel:
    train_part = parts["train"]
    features = BDTModel.usable_features(sorted(_branches_of_every_file(train_part)))
    truth = ["cluster_ENG_CALIB_TOT"] if config.task == "regress" else []
    branches = list(dict.fromkeys([*map(feature_branch, features), "cluster_E", *truth]))
    clusters = data.read_selection(train_part, branches)
    weights = _resolve_class_weights(config, train_part)
    sample_weight = _weighted(train_part, weights).weight
    params = {**config.spec.sizes, **config.model_kwargs}
    _say(
        config,
        f"fitting gradient-boosted trees on {len(clusters)} clusters, {len(features)} features",
    )
    model = BDTModel.fit(
        clusters,
        config.task,
        labels=train_part.labels,
        features=features,
        sample_weight=sample_weight,
        seed=config.seed,
        **params,
    )
    model.folder = folder
    return model


def train(
    model: str,
    data_source: DataSource,
    out: str | os.PathLike,
    *,
    task: Literal["classify", "regress"] = "classify",
    config: TrainingConfig | None = None,
    preprocessing: Preprocessing | None = None,
    callbacks: Sequence[Any] = (),
    verbose: int | str = 0,
    overwrite: bool = False,
    **settings: Any,
) -> TrainedModel:
    """Train ``model`` for ``task`` on ``data_source`` into the folder ``out``.

    Parameters
    ----------
    model
        Registry name (`calotools.models.available`).
    data_source
        A data folder holding ``pi0.root`` and ``pipm.root``, a samples
        mapping ``{"pi0": files, "pipm": files}``, or a `calotools.data.Split`.
    out
        The model folder to write (see the module docstring).
    task
        ``"classify"`` or ``"regress"``.
    config
        All settings at once; otherwise ``settings`` are `TrainingConfig` fields
        (``epochs=``, ``streaming=``, ``sample=``, ``model_kwargs=``, …).
    preprocessing
        An unfitted recipe replacing the model's own (it must give the inputs
        the model expects).
    callbacks
        Extra Keras callbacks, run after calotools' own each epoch.
    verbose
        Keras' progress display (0 silent, 1 progress bar, 2 one line per epoch).
        What calotools does is logged to the ``calotools.training`` logger at
        INFO level (``calotools train`` shows it).
    overwrite
        Start afresh even if ``out`` or an interrupted run of it exists.

    Returns
    -------
    The trained model (`calotools.models.KerasModel` or `calotools.baselines.BDTModel`),
    as `calotools.loading.load` restores it from ``out``.
    """
    config = config or TrainingConfig(model=model, task=task, **settings)
    out = Path(out)
    _check_out(out, overwrite)
    if not overwrite:
        _check_same_data(out, data_source)
    try:
        return _train_into(out, config, data_source, preprocessing, callbacks, verbose, overwrite)
    except KeyboardInterrupt as err:
        if isinstance(err, Interrupted):
            raise
        # One line that says how to go on, instead of Keras' traceback.
        raise Interrupted(_resume_hint(out, config)) from None


def _check_same_data(out: Path, data_source: DataSource) -> None:
    """Refuse to resume or reuse a run whose input files were remade since it began."""
    if isinstance(data_source, data.Split):
        return
    data_dir = None
    if isinstance(data_source, str | os.PathLike) and Path(data_source).is_dir():
        data_dir = data_source
    for folder in (atomic.partial_folder(out), out):
        split_path = folder / _FILES["split"]
        if split_path.is_file():
            changed = data.Split.load(split_path, data_dir=data_dir).changed_files()
            if changed:
                msg = (
                    f"{folder} was trained on other data: {'; '.join(changed)}; pass "
                    "overwrite=True (--overwrite) to train afresh on the data as they are"
                )
                raise DataChangedError(msg)
            return


def _resume_hint(out: Path, config: TrainingConfig) -> str:
    """What an interrupted run kept, and that running it again resumes."""
    state_path = atomic.partial_folder(out) / _CHECKPOINT / _STATE
    try:
        done = int(artifacts.read_json(state_path)["epoch"])
    except (OSError, KeyError, TypeError, ValueError):  # no or no readable state: none done
        done = 0
    if done:
        kept = f"epochs 1–{done} of {config.epochs} are saved in {atomic.partial_folder(out)}"
        return f"{kept}; run the same command again to resume from epoch {done + 1}"
    return f"no epoch was finished; run the same command again to start {out}"


def _train_into(
    out: Path,
    config: TrainingConfig,
    data_source: DataSource,
    preprocessing: Preprocessing | None,
    callbacks: Sequence[Any],
    verbose: int | str,
    overwrite: bool,
) -> TrainedModel:
    """`train`'s work, once the output is known to be writable."""
    partial = atomic.partial_folder(out)
    if overwrite and partial.exists():
        shutil.rmtree(partial)
    state = _resume_state(out, partial, config, overwrite)
    if state is None:
        _say(config, f"{out} is complete; nothing to do (pass more epochs to continue)")
        return loading.load(out)
    fresh = state["epoch"] == 0 and not (partial / _FILES["split"]).exists()
    if fresh:
        parts = _make_split(config, data_source)  # bad data fails before a folder is made
        if partial.exists():
            shutil.rmtree(partial)
        (partial / _CHECKPOINT).mkdir(parents=True)
        parts.save(partial / _FILES["split"])
        artifacts.write_json(partial / _FILES["training"], config.to_dict())
    else:
        data_dir = None
        if isinstance(data_source, str | os.PathLike) and Path(data_source).is_dir():
            data_dir = data_source  # the data may have moved since the run began
        parts = data.Split.load(partial / _FILES["split"], data_dir=data_dir)
        artifacts.write_json(partial / _FILES["training"], config.to_dict())
    _say(config, ", ".join(f"{name} {len(part)} clusters" for name, part in parts.parts.items()))

    trained: BDTModel | models.KerasModel
    if config.spec.kind == "bdt":
        trained = _train_bdt(partial, config, parts)
        trained.save(partial, sample=config.sample, **_manifest_files(config))
    else:
        prep_path = partial / _FILES["preprocessing"]
        if prep_path.exists():
            prep = Preprocessing.load(prep_path)
        else:
            prep = preprocessing or _present_moments(
                config,
                config.spec.preprocessing(config.task, extra_scalars=config.extra_scalars),
                parts["train"],
            )
            branches = list(dict.fromkeys([*prep.input_branches, *prep.target_branches]))
            prep.fit(chunk for chunk, _ in data.iterate_selection(parts["train"], branches))
            prep.save(prep_path)
        if state["epoch"]:
            _say(config, f"resuming at epoch {state['epoch'] + 1} of {config.epochs}")
        trained = _train_keras(partial, config, parts, prep, state, callbacks, verbose)
        artifacts.write_manifest(
            partial,
            "keras",
            name=config.model,
            task=config.task,
            sample=config.sample,
            output=config.spec.output,
            epochs=state["epoch"],
            best_epoch=state.get("best_epoch"),
            **_manifest_files(config),
        )
    _say(config, "evaluating on the test split")
    results = evaluation.evaluate(trained, parts["test"])
    artifacts.write_json(partial / _FILES["metrics"], results)
    artifacts.write_json(partial / _FILES["versions"], artifacts.software_versions())
    atomic.commit_folder(partial, out)
    _say(config, f"saved to {out}: {_headline(results)}")
    trained.folder = out
    return trained


def _manifest_files(config: TrainingConfig) -> dict[str, str]:
    files = dict(_FILES)
    if config.spec.kind == "bdt":
        for key in ("network", "preprocessing", "history"):
            files.pop(key)
    return files


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an output that training would destroy or cannot write.

    ``overwrite`` replaces only a folder calotools made: one with a calotools
    ``model.json`` or the run's ``training.json``. A data folder, or anything
    else, is left intact.
    """
    if out.exists() and not out.is_dir():
        msg = f"{out} is a file, not a model folder; choose another output folder"
        raise OutputPathError(msg)
    if overwrite and out.is_dir():
        ours = (out / _FILES["training"]).is_file()
        try:
            artifacts.read_manifest(out)
            ours = True
        except ArtifactError:
            pass
        if not ours:
            held = ", ".join(sorted(p.name for p in out.iterdir())[:5]) or "nothing"
            msg = (
                f"{out} was not made by calotools (no model.json or training.json; it holds "
                f"{held}); --overwrite replaces only calotools model folders, so it is left intact"
            )
            raise OutputPathError(msg)
    atomic.check_writable(out)


def _resume_state(
    out: Path,
    partial: Path,
    config: TrainingConfig,
    overwrite: bool,
) -> dict[str, Any] | None:
    """The run state to continue from (epoch 0 for a new run), or None if nothing is left to do."""
    new: dict[str, Any] = {
        "epoch": 0,
        "history": [],
        "best": None,
        "wait": 0,
        "stopped_early": False,
    }
    if overwrite:
        return new
    if partial.is_dir():
        source = partial
    elif out.exists():
        source = out
    else:
        return new
    saved_config_path = source / _FILES["training"]
    if not saved_config_path.exists():
        if source is out:
            msg = f"{out} exists and is not a calotools training folder; choose another --out"
            raise TrainingError(msg)
        return new  # interrupted before anything was written: start again
    saved = TrainingConfig.from_dict(artifacts.read_json(saved_config_path))
    differences = saved.differences(config)
    if differences:
        detail = "; ".join(
            f"{key} {there!r} there, {here!r} here" for key, (there, here) in differences.items()
        )
        msg = (
            f"{source} holds another run ({detail}); choose another output folder or "
            "pass overwrite=True (--overwrite)"
        )
        raise TrainingError(msg)
    state_path = source / _CHECKPOINT / _STATE
    state = artifacts.read_json(state_path) if state_path.exists() else new
    if source is out:
        finished = config.spec.kind == "bdt" or state["stopped_early"]
        if finished or state["epoch"] >= config.epochs:
            return None
        _say(config, f"continuing the complete run in {out} from epoch {state['epoch']}")
        if partial.exists():
            shutil.rmtree(partial)
        shutil.copytree(out, partial)
    return {**new, **state}


def _headline(results: Mapping[str, Any]) -> str:
    summary = results["model"]
    if results["task"] == "classify":
        return f"test AUC {summary['auc']:.4f}, accuracy {summary['accuracy']:.4f} at p = 0.5"
    return (
        f"test median response {summary['median_response']:.3f}, "
        f"resolution {summary['resolution']:.3f}"
    )


# ---------------------------------------------------------------------------- command line


def _run_train(args: argparse.Namespace) -> int:
    settings: dict[str, Any] = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "streaming": args.streaming,
        "sample": args.sample,
        "seed": args.seed,
        "schedule": args.schedule,
        "patience": args.patience,
    }
    if args.learning_rate is not None:
        settings["learning_rate"] = args.learning_rate
    if args.moments:
        settings["extra_scalars"] = models.MOMENT_SCALARS
    if args.quick:
        settings["epochs"] = min(args.epochs, QUICK["epochs"])
        settings["max_clusters"] = QUICK["max_clusters"]
        settings["model_kwargs"] = dict(models.spec(args.model).tiny)
    out = args.out or Path("models") / "-".join(
        filter(None, [args.model, args.task, args.sample, "quick" if args.quick else None])
    )
    verbose = 1 if sys.stdout.isatty() else 2
    train(
        args.model,
        args.data,
        out,
        task=args.task,
        verbose=verbose,
        overwrite=args.overwrite,
        **settings,
    )
    return 0


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``calotools train`` to the sub-command parsers of the calotools CLI.

    The parser sets ``run`` to the function to call with the parsed arguments
    (returning the exit status), as the other calotools commands do.
    """
    parser = subparsers.add_parser(
        "train",
        help="train a model (see `calotools models`) into a resumable model folder",
        description=(
            "Train a registered model on a data folder with pi0.root and pipm.root. "
            "Running it again on the same --out resumes an interrupted run or continues "
            "a finished one to more --epochs."
        ),
    )
    parser.add_argument("--task", choices=models.TASKS, default="classify")
    parser.add_argument(
        "--model",
        required=True,
        choices=list({**models.available("classify"), **models.available("regress")}),
        metavar="NAME",
        help="registry name; `calotools models` lists them",
    )
    parser.add_argument("--data", default="data", help="folder with pi0.root and pipm.root")
    parser.add_argument("--out", help="model folder (default: models/NAME-TASK[-SAMPLE])")
    parser.add_argument("--epochs", type=positive_int, default=20)
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--learning-rate", type=positive_float, help="default: the model's")
    parser.add_argument("--schedule", choices=("plateau", "cosine", "constant"), default="plateau")
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=5,
        help="early stopping: epochs without a better validation loss (at least 1)",
    )
    parser.add_argument("--streaming", action="store_true", help="stream batches from the files")
    parser.add_argument(
        "--sample", choices=list(data.SAMPLE_LABELS), help="regress: train on one sample only"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--moments",
        action="store_true",
        help="a network also sees log E, |η| and the cluster moments (models.MOMENT_SCALARS)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: tiny model, {QUICK['epochs']} epochs, {QUICK['max_clusters']} clusters",
    )
    parser.add_argument("--overwrite", action="store_true", help="start afresh")
    parser.set_defaults(run=_run_train)
    return parser


def _run_models(args: argparse.Namespace) -> int:
    rows = []
    for name, description in models.available().items():
        model_spec = models.spec(name)
        row = {"name": name, "tasks": ",".join(model_spec.tasks), "description": description}
        if args.params and model_spec.kind == "keras":
            row["parameters"] = models.build(name, "classify").count_params()
        rows.append(row)
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def add_models_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``calotools models`` (list the registry) to the calotools CLI."""
    parser = subparsers.add_parser("models", help="list the models `calotools train` knows")
    parser.add_argument(
        "--params", action="store_true", help="also count parameters (builds each network)"
    )
    parser.set_defaults(run=_run_models)
    return parser
