"""Scale the data pipeline out with Dask: selection and inference over many files.

Files are read with ``uproot.dask`` (dask-awkward), one partition per
basket-aligned chunk, and every partition is selected, preprocessed and, for
inference, passed through the model on a ``dask.distributed`` worker. Only
entry numbers (selection) or predictions (inference) travel back, so the
client's memory does not grow with the data.

- `dask_client`: a local cluster (2 single-threaded worker processes by
  default) or the scheduler at a given address (SWAN, dask-jobqueue, …);
- `select`: `calotools.data.select` with the cut evaluated on the workers;
- `predict`: predictions of any callable model (or a saved Keras model, loaded
  once per worker) written next to each input file, or into ``output_dir``, as
  ``<stem>.predictions.root`` (tree ``PredictionTree``: ``entry`` and, where
  the input has them, ``eventNumber`` and ``clusterIndex``, then
  ``prediction`` and, for energy targets, ``energy`` in GeV). Files are
  written under a temporary name and renamed when complete.

The output folder must be visible to the workers (a shared file system on a
real cluster).

Examples
--------
>>> with dask_client() as client:  # doctest: +SKIP
...     paths = predict(["data/pi0.root", "data/pipm.root"], "models/classifier.keras",
...                     prep, client=client)
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from calotools import backend, extras, models, ntuple
from calotools.cuts import branches_in, feature_branch
from calotools.data import (
    DEFAULT_CUT,
    SAMPLE_LABELS,
    FileScan,
    Selection,
    SelectionConfig,
    build_selection,
    sample_files,
    scan_columns,
)
from calotools.errors import MissingFileError, ModelError
from calotools.ntuple import ChunkReader
from calotools.preprocessing import Preprocessing

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["PREDICTION_TREE", "dask_client", "predict", "prediction_path", "select"]

#: Name of the tree in the prediction files.
PREDICTION_TREE = "PredictionTree"
#: Branches copied from the input into the prediction files, where present.
_ID_BRANCHES = ("eventNumber", "clusterIndex")

Model = Callable[[dict[str, np.ndarray]], np.ndarray] | str | os.PathLike


# ---------------------------------------------------------------------------- the cluster


@contextlib.contextmanager
def dask_client(
    address: str | None = None,
    *,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    processes: bool = True,
    **cluster_options: Any,
) -> Iterator[Client]:
    """A ``distributed.Client``: to the scheduler at ``address``, or to a new local cluster.

    The local cluster (``LocalCluster(n_workers, threads_per_worker,
    processes)``, further options passed on) is closed on leaving the block;
    a remote scheduler is left running.
    """
    distributed = extras.distributed()

    if address is not None:
        with distributed.Client(address) as client:
            yield client
        return
    # One TensorFlow thread per Dask thread: workers × threads should fill the
    # machine, not workers × threads × cores.
    threads = str(threads_per_worker)
    env = {
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": threads,
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get(
            "TF_CPP_MIN_LOG_LEVEL", backend.DEFAULT_TF_LOG_LEVEL
        ),
    }
    options: dict[str, Any] = {"dashboard_address": ":0"}
    if processes:
        options["env"] = env
    options.update(cluster_options)
    with (
        distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            **options,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@contextlib.contextmanager
def _client_for(client: Client | None, address: str | None) -> Iterator[Client]:
    if client is not None:
        yield client
        return
    with dask_client(address) as new_client:
        yield new_client


def _partitions(reader: ChunkReader, step_size: int) -> tuple[list, list[int]]:
    """Delayed dask-awkward partitions of one file (its branches read), and their first entries.

    The partitions are the reader's basket-aligned chunks, given to ``uproot.dask`` as
    explicit steps with ``open_files=False``: the graph then holds file names, not open
    files, which uproot 5.7 cannot pickle for an RNTuple (its metadata fails to
    unpickle), so it travels to worker processes for both storage kinds.
    """
    import uproot

    # An empty tree is one empty partition, so that every file gives a scan and an output.
    bounds = reader.chunk_bounds(step_size) or [(0, 0)]
    # Absolute paths: the workers need not share the client's working directory.
    source = {"object_path": reader.tree_name, "steps": [list(bound) for bound in bounds]}
    arrays = uproot.dask(
        {str(reader.path.resolve()): source},
        filter_name=list(reader.file_names),
        open_files=False,
    )
    return arrays.to_delayed(), [start for start, _ in bounds]


def _partition_columns(partition: Any, names: Mapping[str, str]) -> dict[str, np.ndarray]:
    import awkward as ak

    return {names[field]: ak.to_numpy(partition[field]) for field in partition.fields}


# ---------------------------------------------------------------------------- selection


def _scan_partition(
    partition: Any,
    start: int,
    names: Mapping[str, str],
    cut: str | None,
    variable: str | None,
    where: str,
) -> FileScan:
    columns = _partition_columns(partition, names)
    rows, values = scan_columns(columns, cut, variable, f"{where} entries from {start}")
    return FileScan(len(partition), rows + start, values)


def _merge_scans(scans: Sequence[FileScan]) -> FileScan:
    return FileScan(
        sum(scan.n_entries for scan in scans),
        np.concatenate([scan.entries for scan in scans]),
        None if scans[0].match_values is None else np.concatenate([s.match_values for s in scans]),
    )


def select(
    samples: Mapping[str, ntuple.FileSpec],
    config: SelectionConfig | None = None,
    *,
    labels: Mapping[str, int] = SAMPLE_LABELS,
    step_size: int = ntuple.DEFAULT_BASKET_SIZE,
    client: Client | None = None,
    address: str | None = None,
) -> Selection:
    """`calotools.data.select`, with the files scanned in parallel on a Dask cluster.

    Gives the same `Selection` as `calotools.data.select` with the same
    `SelectionConfig`. ``client`` (or ``address``) chooses the cluster; by
    default a local one is started for the call.
    """
    dask = extras.dask()

    config = config or SelectionConfig()
    cut, match = config.cut, config.match
    files = sample_files(samples, labels)
    branches = sorted(branches_in(cut)) if cut else []
    if match:
        branches.append(feature_branch(match))
    branches = list(dict.fromkeys(branches)) or ["cluster_E"]
    tasks = []
    for path, _, _ in files:
        # ChunkReader checks the file and the branches here, with calotools'
        # messages, and knows their names in the file (legacy names included).
        reader = ChunkReader(path, branches)
        partitions, starts = _partitions(reader, step_size)
        scans = [
            dask.delayed(_scan_partition)(part, start, reader.file_names, cut, match, str(path))
            for part, start in zip(partitions, starts, strict=True)
        ]
        tasks.append(dask.delayed(_merge_scans)(scans))
    with _client_for(client, address) as active:
        scans = active.gather(active.compute(tasks))
    return build_selection(files, scans, config)


# ---------------------------------------------------------------------------- inference

_MODELS: dict[tuple[str, float], tuple[Any, threading.Lock]] = {}
_MODELS_LOCK = threading.Lock()


def _keras_model(path: str) -> tuple[Any, threading.Lock]:
    """The Keras model saved at ``path``, loaded once per worker process."""
    key = (path, Path(path).stat().st_mtime)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = (models.load_network(path, compile=False), threading.Lock())
        return _MODELS[key]


def _run_model(model: Model, inputs: dict[str, np.ndarray], batch_size: int) -> np.ndarray:
    if isinstance(model, str | os.PathLike):
        keras_model, lock = _keras_model(os.fspath(model))
        # Worker threads of one process share the model; Keras predict is not re-entrant.
        with lock:
            output = backend.predict(keras_model, inputs, batch_size=batch_size)
    else:
        output = model(inputs)
    output = np.asarray(output)
    n = len(next(iter(inputs.values())))
    if output.shape[:1] != (n,):
        msg = f"the model gave {output.shape[0] if output.ndim else 'no'} outputs for {n} clusters"
        raise ModelError(msg)
    return output


def _predict_partition(
    partition: Any,
    start: int,
    names: Mapping[str, str],
    preprocessing: Preprocessing,
    cut: str | None,
    model: Model,
    batch_size: int,
    where: str,
) -> pd.DataFrame:
    columns = _partition_columns(partition, names)
    n = len(partition)
    where = f"{where} entries {start}–{start + n - 1}"
    rows, _ = scan_columns(columns, cut, None, where) if cut else (np.arange(n), None)
    columns = {name: values[rows] for name, values in columns.items()}
    entries = rows + start
    clusters = ntuple.Clusters(
        pd.DataFrame({k: v for k, v in columns.items() if v.ndim == 1}),
        {k: np.ascontiguousarray(v, np.float32) for k, v in columns.items() if v.ndim > 1},
    )
    result = pd.DataFrame({"entry": entries.astype(np.int64)})
    for name in _ID_BRANCHES:
        if name in columns:
            result[name] = columns[name]
    if len(rows) == 0:
        return result.assign(prediction=np.zeros(0, np.float32))
    output = _run_model(
        model, preprocessing.transform(clusters, where=where, entries=entries), batch_size
    )
    if output.ndim == 1 or output.shape[1:] == (1,):
        result["prediction"] = output.reshape(len(rows)).astype(np.float32)
        if preprocessing.target != "label":
            energy = preprocessing.inverse_target(output, columns["cluster_E"])
            result["energy"] = energy.astype(np.float32)
    else:
        for k in range(output.shape[1]):
            result[f"prediction_{k}"] = output[:, k].astype(np.float32)
    return result


def _write_predictions(parts: Sequence[pd.DataFrame], path: str) -> Path:
    table = pd.concat(parts, ignore_index=True)
    # ClusterWriter writes under a temporary name and renames when complete.
    with ntuple.ClusterWriter(path, tree=PREDICTION_TREE) as writer:
        writer.write(ntuple.Clusters(table))
    return Path(path)


def prediction_path(path: str | os.PathLike, output_dir: str | os.PathLike | None = None) -> Path:
    """Where `predict` writes the predictions for the input file ``path``."""
    path = Path(path)
    folder = path.parent if output_dir is None else Path(output_dir)
    return folder / f"{path.stem}.predictions.root"


def predict(
    files: ntuple.FileSpec,
    model: Model,
    preprocessing: Preprocessing,
    *,
    cut: str | None = DEFAULT_CUT,
    output_dir: str | os.PathLike | None = None,
    batch_size: int = 1024,
    step_size: int = ntuple.DEFAULT_BASKET_SIZE,
    client: Client | None = None,
    address: str | None = None,
) -> list[Path]:
    """Run a model on every cluster passing ``cut`` in ``files``; one prediction file per input.

    Parameters
    ----------
    files
        Paths, globs or folders of ntuples.
    model
        A callable taking the preprocessed input dict and returning one row
        per cluster (it is sent to the workers, so it must pickle), or the
        path of a saved Keras model, loaded once per worker.
    preprocessing
        The fitted recipe the model was trained with.
    cut
        Clusters to predict for; the ``entry`` branch of the output says which.
    output_dir
        Folder of the prediction files (default: next to each input).
    batch_size
        Clusters per call of a Keras model.
    step_size
        Entries per partition (a multiple of the basket size reads each basket once).
    client, address
        The Dask cluster; by default a local one is started for the call.

    Returns
    -------
    list of Path
        The prediction files, in the order of the inputs.
    """
    dask = extras.dask()

    preprocessing.check_fitted()
    if isinstance(model, str | os.PathLike):
        if not Path(model).exists():
            msg = f"{model}: no such model file"
            raise MissingFileError(msg)
        model = str(Path(model).resolve())
    paths = ntuple.resolve_files(files)
    branches = list(
        dict.fromkeys(
            [
                *preprocessing.input_branches,
                "cluster_E",
                *(sorted(branches_in(cut)) if cut else []),
            ]
        )
    )
    tasks = []
    for path in paths:
        optional = [b for b in _ID_BRANCHES if b in ChunkReader(path, ["cluster_E"]).available]
        reader = ChunkReader(path, [*branches, *optional])
        partitions, starts = _partitions(reader, step_size)
        parts = [
            dask.delayed(_predict_partition)(
                part, start, reader.file_names, preprocessing, cut, model, batch_size, str(path)
            )
            for part, start in zip(partitions, starts, strict=True)
        ]
        target = prediction_path(path, output_dir).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        tasks.append(dask.delayed(_write_predictions)(parts, str(target)))
    with _client_for(client, address) as active:
        return list(active.gather(active.compute(tasks)))
