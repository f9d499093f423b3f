"""Feed clusters to Keras: from arrays in memory, or streamed from the ROOT files.

Both loaders give the same batches: ``(inputs, targets)``, or ``(inputs,
targets, weights)`` when the selection carries spectrum weights, with
``inputs`` the dict of named float32 arrays of a `Preprocessing`.

- `load_arrays` reads a selection into memory once (`Arrays`); pass
  ``arrays.inputs, arrays.targets`` to ``model.fit``, or wrap them in an
  `ArrayDataset` to get batches the same way as from the streaming loader.
- `StreamingDataset`, a ``keras.utils.PyDataset``, reads basket-aligned chunks
  with uproot while training, so memory stays flat whatever the file size. It
  applies the cut while streaming, restricts itself to a selection's (a split
  part's) clusters, and shuffles across chunks: every epoch (seeded by the
  epoch) the chunks are put in a new order and grouped by ``buffer_chunks``
  into windows, and the clusters of a window are shuffled together. A batch is
  a slice of this order, so worker threads or processes (``workers``,
  ``use_multiprocessing``) compute any batch independently. The next window
  is read in a background thread while the current one is used.

The streaming loader shuffles itself: pass ``shuffle=False`` to ``model.fit``,
whose default shuffles the order of the batches and would make every batch
read a window of its own (a `LoaderWarning` says so when it happens).

Examples
--------
>>> train = StreamingDataset(split["train"], prep, batch_size=256)  # doctest: +SKIP
>>> model.fit(train, epochs=10, shuffle=False)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from calotools import backend, ntuple
from calotools.cuts import branches_in
from calotools.data import (
    DEFAULT_CUT,
    SAMPLE_LABELS,
    DataError,
    SampleFile,
    Selection,
    iterate_selection,
    sample_files,
    scan_columns,
)
from calotools.errors import InvalidValueError, LoaderWarning, OutOfRangeError
from calotools.ntuple import ChunkReader
from calotools.preprocessing import Preprocessing

__all__ = [
    "ArrayDataset",
    "Arrays",
    "LoaderWarning",
    "StreamingDataset",
    "load_arrays",
]

Batch = tuple[dict[str, np.ndarray], np.ndarray] | tuple[dict[str, np.ndarray], np.ndarray, Any]


def _where(sample_file: SampleFile, entries: np.ndarray) -> str:
    if len(entries) == 0:
        return str(sample_file.path)
    return f"{sample_file.path} entries {entries[0]}–{entries[-1]}"


# ---------------------------------------------------------------------------- in memory


@dataclass
class Arrays:
    """Preprocessed clusters in memory.

    Attributes
    ----------
    inputs
        Input name → float32 array, one row per cluster.
    targets
        float32 targets.
    weights
        Sample weights (spectrum reweighting) or None.
    ids
        (file index, entry) per cluster, shape (n, 2).
    """

    inputs: dict[str, np.ndarray]
    targets: np.ndarray
    weights: np.ndarray | None
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, rows: np.ndarray | slice) -> Batch:
        """The batch of the clusters at ``rows``, as the loaders give it."""
        inputs = {name: values[rows] for name, values in self.inputs.items()}
        if self.weights is None:
            return inputs, self.targets[rows]
        return inputs, self.targets[rows], self.weights[rows]


def load_arrays(
    selection: Selection,
    preprocessing: Preprocessing,
    *,
    chunk_size: int = ntuple.DEFAULT_BASKET_SIZE,
) -> Arrays:
    """Read and preprocess a selection into memory, in the selection's order.

    The output arrays are allocated once, so the peak memory is their size
    plus one chunk.
    """
    n = len(selection)
    inputs = {
        name: np.empty((n, *shape), dtype=np.float32)
        for name, shape in preprocessing.input_shapes.items()
    }
    targets = np.empty(n, dtype=np.float32)
    labels = selection.labels
    branches = [*preprocessing.input_branches, *preprocessing.target_branches]
    for clusters, positions in iterate_selection(
        selection, list(dict.fromkeys(branches)), step_size=chunk_size
    ):
        entries = selection.entry[positions]
        where = _where(selection.files[selection.file_index[positions[0]]], entries)
        rows = slice(positions[0], positions[-1] + 1)
        for name, values in preprocessing.transform(clusters, where=where, entries=entries).items():
            inputs[name][rows] = values
        targets[rows] = preprocessing.targets(
            clusters, labels[positions], where=where, entries=entries
        )
    return Arrays(inputs, targets, selection.weight, selection.ids)


class _Epochs:
    """The epoch number that seeds the shuffle, kept in step with Keras.

    Keras calls `on_epoch_end` after each epoch, but (TensorFlow backend, no
    worker pool) it starts prefetching the next epoch's first batches before
    that call. So asking for batch 0 after the last batch was served also
    starts a new epoch, and the `on_epoch_end` that follows does not start
    another. Every epoch thus sees every cluster once, in its own order.
    """

    epoch: int = 0
    _served_last: bool = False
    _started_early: bool = False

    def __init__(self, **pydataset: Any) -> None:
        # Passed on to keras.utils.PyDataset (workers, use_multiprocessing,
        # max_queue_size), which follows in the MRO of the classes __getattr__ makes.
        super().__init__(**pydataset)

    def __len__(self) -> int:
        raise NotImplementedError

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            msg = f"batch {index} of a dataset of {len(self)} batches"
            raise OutOfRangeError(msg)

    def _track(self, index: int) -> None:
        self._check_index(index)
        if index == 0 and self._served_last:
            self.epoch += 1
            self._served_last = False
            self._started_early = True
        if index == len(self) - 1:
            self._served_last = True

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` from now on."""
        self.epoch = epoch
        self._served_last = self._started_early = False

    def on_epoch_end(self) -> None:
        """Called by Keras after each epoch: the next batches come in a new order."""
        if self._started_early:
            self._started_early = False
        else:
            self.epoch += 1
            self._served_last = False


class _ArrayBatches(_Epochs):
    """Batches of in-memory `Arrays`, reshuffled every epoch (seeded by the epoch)."""

    def __init__(
        self,
        arrays: Arrays,
        *,
        batch_size: int = 256,
        shuffle: bool = True,
        seed: int = 0,
        workers: int = 2,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ) -> None:
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        if batch_size < 1:
            msg = f"batch_size must be positive, got {batch_size}"
            raise InvalidValueError(msg)
        if len(arrays) == 0:
            msg = "no clusters to make batches of"
            raise DataError(msg)
        self.arrays = arrays
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.set_epoch(0)
        self._order_epoch: int | None = None
        self._order = np.arange(len(arrays))

    def __len__(self) -> int:
        return math.ceil(len(self.arrays) / self.batch_size)

    def _rows(self, index: int) -> np.ndarray:
        self._check_index(index)
        if self.shuffle and self._order_epoch != self.epoch:
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(
                len(self.arrays)
            )
            self._order_epoch = self.epoch
        return self._order[index * self.batch_size : (index + 1) * self.batch_size]

    def __getitem__(self, index: int) -> Batch:
        self._track(index)
        return self.arrays.batch(self._rows(index))

    def batch_ids(self, index: int) -> np.ndarray:
        """(file index, entry) of the clusters of batch ``index``."""
        return self.arrays.ids[self._rows(index)]


# ---------------------------------------------------------------------------- streaming


@dataclass(frozen=True)
class _Chunk:
    """A basket-aligned entry range of one file and how many of its clusters are used."""

    file_number: int
    start: int
    stop: int
    count: int
    positions: slice | None  # into the selection's arrays; None: all entries passing the cut


class _Window:
    """A slot of the window cache: filled once, by whichever thread gets there first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, Any] | None = None
        self.error: Exception | None = None


class _StreamingBatches(_Epochs):
    """Batches streamed from ROOT files (the logic of `StreamingDataset`)."""

    # Set by _reset_process_state; declared here as _epoch_windows uses them first.
    _layout_epoch: int | None
    _layout: tuple[list[np.ndarray], np.ndarray]

    def __init__(
        self,
        source: Selection | Mapping[str, ntuple.FileSpec],
        preprocessing: Preprocessing,
        *,
        batch_size: int = 256,
        shuffle: bool = True,
        seed: int = 0,
        buffer_chunks: int = 4,
        chunk_size: int = ntuple.DEFAULT_BASKET_SIZE,
        cut: str | None = DEFAULT_CUT,
        labels: Mapping[str, int] = SAMPLE_LABELS,
        cache_windows: int = 3,
        prefetch: bool = True,
        workers: int = 2,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ) -> None:
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        for name, value in (
            ("batch_size", batch_size),
            ("buffer_chunks", buffer_chunks),
            ("chunk_size", chunk_size),
            ("cache_windows", cache_windows),
        ):
            if value < 1:
                msg = f"{name} must be positive, got {value}"
                raise InvalidValueError(msg)
        if prefetch and cache_windows < 3:
            msg = (
                "prefetch=True keeps three windows (the previous one, for batches spanning "
                f"two, the current and the next): cache_windows must be ≥ 3, got {cache_windows}"
            )
            raise InvalidValueError(msg)
        preprocessing.check_fitted()
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.set_epoch(0)
        self.buffer_chunks = buffer_chunks
        self.cache_windows = cache_windows
        self.prefetch = prefetch
        if isinstance(source, Selection):
            self.selection: Selection | None = source
            self.cut = source.cut
            self.files = list(source.files)
        else:
            self.selection = None
            self.cut = cut
            self.files = [
                SampleFile(path, sample, label, -1)
                for path, sample, label in sample_files(source, labels)
            ]
        needed = [*preprocessing.input_branches, *preprocessing.target_branches]
        if self.cut:
            needed += sorted(branches_in(self.cut))
        self.branches = list(dict.fromkeys(needed))
        self._reset_process_state()
        self.chunks = self._plan(chunk_size)
        self.n_clusters = sum(chunk.count for chunk in self.chunks)
        if self.n_clusters == 0:
            msg = (
                f"no clusters to stream: none of the entries of "
                f"{', '.join(str(f.path) for f in self.files)} passes the cut {self.cut!r}"
            )
            raise DataError(msg)

    # ------------------------------------------------------------------ plan

    def _plan(self, chunk_size: int) -> list[_Chunk]:
        chunks: list[_Chunk] = []
        if self.selection is not None:
            for number, positions in self.selection.file_slices():
                reader = self._reader(number)
                entries = self.selection.entry[positions]
                for start, stop in reader.chunk_bounds(chunk_size):
                    low, high = (int(i) for i in np.searchsorted(entries, [start, stop]))
                    if high > low:
                        span = slice(positions.start + low, positions.start + high)
                        chunks.append(_Chunk(number, start, stop, high - low, span))
            return chunks
        # Without a selection only the number of clusters passing the cut in
        # each chunk is kept (not their entries): memory stays independent of
        # the file size, and the cut is applied again while streaming.
        cut_branches = sorted(branches_in(self.cut)) if self.cut else ["cluster_E"]
        for number, sample_file in enumerate(self.files):
            reader = self._reader(number)
            self.files[number] = SampleFile(
                sample_file.path, sample_file.sample, sample_file.label, reader.num_entries
            )
            cut_reader = ChunkReader(sample_file.path, cut_branches)
            for start, stop in reader.chunk_bounds(chunk_size):
                columns = _columns(cut_reader.read(start, stop))
                where = f"{sample_file.path} entries {start}–{stop - 1}"
                rows, _ = scan_columns(columns, self.cut, None, where)
                if len(rows):
                    chunks.append(_Chunk(number, start, stop, len(rows), None))
        return chunks

    def _epoch_windows(self, epoch: int) -> tuple[list[np.ndarray], np.ndarray]:
        """The chunks of every window of ``epoch`` and the windows' first cluster positions."""
        if self._layout_epoch != epoch:
            n_chunks = len(self.chunks)
            order = (
                np.random.default_rng([self.seed, epoch]).permutation(n_chunks)
                if self.shuffle
                else np.arange(n_chunks)
            )
            windows = [
                order[i : i + self.buffer_chunks] for i in range(0, n_chunks, self.buffer_chunks)
            ]
            counts = [sum(self.chunks[c].count for c in window) for window in windows]
            self._layout = (windows, np.concatenate([[0], np.cumsum(counts)]))
            self._layout_epoch = epoch
        return self._layout

    # ------------------------------------------------------------------ per-process state

    def _reset_process_state(self) -> None:
        # File handles, locks and cached windows belong to one process: a
        # forked or unpickled worker starts its own.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._readers: dict[int, ChunkReader] = {}
        self._cache: OrderedDict[tuple[int, int], _Window] = OrderedDict()
        self._layout_epoch = None
        self._layout = ([], np.zeros(1, np.int64))
        self._loads: dict[int, int] = {}
        self._warned = False
        self._prefetcher: ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in (
            "_lock",
            "_readers",
            "_cache",
            "_layout",
            "_layout_epoch",
            "_loads",
            "_prefetcher",
        ):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_process_state()

    def _check_process(self) -> None:
        if self._pid != os.getpid():
            self._reset_process_state()

    def _reader(self, number: int) -> ChunkReader:
        reader = self._readers.get(number)
        if reader is None:
            sample_file = self.files[number]
            reader = ChunkReader(sample_file.path, self.branches)
            if sample_file.n_entries >= 0 and reader.num_entries != sample_file.n_entries:
                msg = (
                    f"{sample_file.path} has {reader.num_entries} entries but had "
                    f"{sample_file.n_entries} when the selection was made; its entry numbers no "
                    "longer identify the same clusters (was the file remade?)"
                )
                raise DataError(msg)
            self._readers[number] = reader
        return reader

    # ------------------------------------------------------------------ reading

    def _read_chunk(self, chunk: _Chunk) -> dict[str, Any]:
        sample_file = self.files[chunk.file_number]
        reader = self._reader(chunk.file_number)
        where = f"{sample_file.path} entries {chunk.start}–{chunk.stop - 1}"
        if chunk.positions is not None:
            if self.selection is None:  # _plan gives chunks positions only from a selection
                msg = f"{where}: a chunk of selected clusters but no selection"
                raise RuntimeError(msg)  # a bug of calotools, not bad input
            entries = self.selection.entry[chunk.positions]
            clusters = reader.read(chunk.start, chunk.stop, entries - chunk.start)
            if self.cut:
                passing = scan_columns(_columns(clusters), self.cut, None, where)[0]
                if len(passing) != len(entries):
                    msg = (
                        f"{where}: {len(entries) - len(passing)} selected clusters no longer "
                        f"pass the selection's cut {self.cut!r}; the file changed since the "
                        "selection was made"
                    )
                    raise DataError(msg)
            weights = (
                None if self.selection.weight is None else self.selection.weight[chunk.positions]
            )
        else:
            clusters = reader.read(chunk.start, chunk.stop)
            rows, _ = scan_columns(_columns(clusters), self.cut, None, where)
            if len(rows) != chunk.count:
                msg = (
                    f"{where}: {len(rows)} clusters pass the cut now, {chunk.count} did when the "
                    "loader was made; the file changed while it was being read"
                )
                raise DataError(msg)
            entries = rows + chunk.start
            clusters = clusters[rows]
            weights = None
        labels = np.full(len(entries), sample_file.label, dtype=np.int32)
        prep = self.preprocessing
        return {
            "inputs": prep.transform(clusters, where=where, entries=entries),
            "targets": prep.targets(clusters, labels, where=where, entries=entries),
            "weights": weights,
            "ids": np.stack([np.full(len(entries), chunk.file_number, np.int64), entries], axis=1),
        }

    def _load_window(self, epoch: int, number: int) -> dict[str, Any]:
        windows, offsets = self._epoch_windows(epoch)
        n = int(offsets[number + 1] - offsets[number])
        # Where each cluster, in reading order, goes in the shuffled window:
        # scattering chunk by chunk into arrays of the window's size copies
        # every cluster once, with no concatenated intermediate.
        destination = (
            np.random.default_rng([self.seed, epoch, number]).permutation(n)
            if self.shuffle
            else np.arange(n)
        )
        window: dict[str, Any] = {}
        filled = 0
        for chunk_number in windows[number]:
            part = self._read_chunk(self.chunks[chunk_number])
            rows = destination[filled : filled + len(part["targets"])]
            filled += len(rows)
            if not window:
                window = {
                    "inputs": {k: _empty_like(v, n) for k, v in part["inputs"].items()},
                    **{k: _empty_like(v, n) for k, v in part.items() if k != "inputs"},
                }
            for name, values in part["inputs"].items():
                window["inputs"][name][rows] = values
            for key in ("targets", "weights", "ids"):
                if part[key] is not None:
                    window[key][rows] = part[key]
        if filled != n:
            msg = f"window {number}: read {filled} clusters, expected {n}"
            raise DataError(msg)
        return window

    def _slot(self, epoch: int, number: int) -> _Window:
        key = (epoch, number)
        with self._lock:
            window = self._cache.get(key)
            if window is None:
                window = self._cache[key] = _Window()
                self._note_load(epoch)
                while len(self._cache) > self.cache_windows:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
        return window

    def _fill(self, window: _Window, epoch: int, number: int) -> None:
        with window.lock:  # threads asking for the same window wait for one read
            if window.data is None and window.error is None:
                try:
                    window.data = self._load_window(epoch, number)
                except Exception as err:  # noqa: BLE001 (re-raised where the window is used)
                    window.error = err

    def _window(self, epoch: int, number: int) -> dict[str, Any]:
        self._check_process()
        window = self._slot(epoch, number)
        self._fill(window, epoch, number)
        if window.error is not None:
            raise window.error
        if window.data is None:  # _fill sets the data or the error
            msg = f"window {number} of epoch {epoch} was not read"
            raise RuntimeError(msg)  # a bug of calotools, not bad input
        if self.prefetch and number + 1 < len(self._epoch_windows(epoch)[0]):
            self._prefetch(epoch, number + 1)
        return window.data

    def _prefetch(self, epoch: int, number: int) -> None:
        """Read the next window in a background thread, so that training does not wait for it."""
        with self._lock:
            if (epoch, number) in self._cache:
                return
            if self._prefetcher is None:
                self._prefetcher = ThreadPoolExecutor(1, thread_name_prefix="calotools-prefetch")
        self._prefetcher.submit(self._fill, self._slot(epoch, number), epoch, number)

    def _note_load(self, epoch: int) -> None:
        loads = self._loads[epoch] = self._loads.get(epoch, 0) + 1
        n_windows = len(self._epoch_windows(epoch)[0])
        if loads > 2 * n_windows + self.cache_windows and not self._warned:
            self._warned = True
            warnings.warn(
                f"batches are being requested out of order: {loads} window reads for "
                f"{n_windows} windows this epoch. StreamingDataset shuffles itself; pass "
                "shuffle=False to model.fit()",
                LoaderWarning,
                stacklevel=4,
            )

    # ------------------------------------------------------------------ PyDataset API

    def __len__(self) -> int:
        return math.ceil(self.n_clusters / self.batch_size)

    def _span(self, index: int) -> tuple[int, list[tuple[int, slice]]]:
        """The epoch, and the windows and rows in them, of batch ``index``."""
        self._check_index(index)
        epoch = self.epoch
        _, offsets = self._epoch_windows(epoch)
        low = index * self.batch_size
        high = min(low + self.batch_size, self.n_clusters)
        first = int(np.searchsorted(offsets, low, side="right")) - 1
        last = int(np.searchsorted(offsets, high - 1, side="right")) - 1
        return epoch, [
            (n, slice(int(max(low, offsets[n]) - offsets[n]), int(high - offsets[n])))
            for n in range(first, last + 1)
        ]

    def __getitem__(self, index: int) -> Batch:
        self._track(index)
        epoch, span = self._span(index)
        return _join_batch([self._window(epoch, n) for n, _ in span], [rows for _, rows in span])

    def batch_ids(self, index: int) -> np.ndarray:
        """(file index, entry) of the clusters of batch ``index`` in the current epoch."""
        epoch, span = self._span(index)
        return np.concatenate([self._window(epoch, n)["ids"][rows] for n, rows in span])


def _empty_like(values: np.ndarray | None, n: int) -> np.ndarray | None:
    return None if values is None else np.empty((n, *values.shape[1:]), dtype=values.dtype)


def _columns(clusters: ntuple.Clusters) -> dict[str, np.ndarray]:
    return {
        **{name: clusters.scalars[name].to_numpy() for name in clusters.scalars},
        **clusters.images,
    }


def _join_batch(datas: Sequence[dict[str, Any]], rows: Sequence[slice]) -> Batch:
    def join(values: list[np.ndarray]) -> np.ndarray:
        return values[0] if len(values) == 1 else np.concatenate(values)

    inputs = {
        name: join([d["inputs"][name][r] for d, r in zip(datas, rows, strict=True)])
        for name in datas[0]["inputs"]
    }
    targets = join([d["targets"][r] for d, r in zip(datas, rows, strict=True)])
    if datas[0]["weights"] is None:
        return inputs, targets
    return inputs, targets, join([d["weights"][r] for d, r in zip(datas, rows, strict=True)])


# ---------------------------------------------------------------------------- Keras classes

_DOCS = {
    "ArrayDataset": """Batches of in-memory `Arrays` as a ``keras.utils.PyDataset``.

    Parameters
    ----------
    arrays
        From `load_arrays`.
    batch_size
        Clusters per batch.
    shuffle, seed
        Reshuffle every epoch, seeded by ``seed`` and the epoch number.
    workers, use_multiprocessing, max_queue_size
        Those of ``keras.utils.PyDataset``; two threads by default (see
        `StreamingDataset`).
    """,
    "StreamingDataset": """Batches streamed from ROOT files as a ``keras.utils.PyDataset``.

    Parameters
    ----------
    source
        A `Selection` (e.g. a split part): its clusters, with its cut checked
        while streaming; or samples ``{"pi0": files, "pipm": files}``: all
        clusters passing ``cut``, applied while streaming.
    preprocessing
        The fitted recipe.
    batch_size
        Clusters per batch.
    shuffle, seed
        Reshuffle every epoch, seeded by ``seed`` and the epoch number.
    buffer_chunks
        Chunks mixed in one shuffle window (memory: ``cache_windows`` windows
        of ``buffer_chunks × chunk_size`` preprocessed clusters).
    chunk_size
        Entries per chunk at least; chunks end on basket boundaries.
    cut
        Selection applied to samples (ignored for a `Selection`, which has its own).
    labels
        Sample name → class label, for samples.
    cache_windows
        Windows kept in memory per process (at least 3 with ``prefetch``).
    prefetch
        Read the next window in a background thread while the current one is used.
    workers, use_multiprocessing, max_queue_size
        Those of ``keras.utils.PyDataset``. The default, two threads, makes
        Keras prefetch batches in its worker pool; with one, Keras calls the
        loader from inside the input pipeline, which measured about a quarter
        slower in training (``benchmarks/loader.py``, 2 cores).
    """,
}
_CORES = {"ArrayDataset": _ArrayBatches, "StreamingDataset": _StreamingBatches}

if TYPE_CHECKING:  # what __getattr__ makes, for type checkers
    import keras

    class ArrayDataset(_ArrayBatches, keras.utils.PyDataset): ...

    class StreamingDataset(_StreamingBatches, keras.utils.PyDataset): ...


def __getattr__(name: str) -> type:
    # The Keras classes are made on first use so that importing this module
    # does not import TensorFlow; pickling finds them here by name.
    if name not in _CORES:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    keras = backend.keras()

    cls = type(
        name,
        (_CORES[name], keras.utils.PyDataset),
        {"__module__": __name__, "__qualname__": name, "__doc__": _DOCS[name]},
    )
    globals()[name] = cls
    return cls
