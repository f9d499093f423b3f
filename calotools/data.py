"""Samples, selections, labels and the train/validation/test split.

A study starts from one set of files per class, ``{"pi0": files, "pipm": files}``
(``docs/conventions.md``: π0 = 0, π± = 1). `select` applies the cut, optionally
matches the two energy spectra and balances the classes; `split` divides the
selection into train/validation/test parts (70/10/20 by default, seeded and
stratified by class). Clusters are identified by (file, entry number), never by
their position in memory, so a saved `Split` picks the same test clusters in
every later notebook, whatever else changes.

How to select is one frozen `SelectionConfig` (cut, balancing, matching,
seed), saved with the selection and with every split made from it.

Spectrum matching (`SelectionConfig.match`), in bins of a variable such as
``"log10(cluster_E)"``:

- ``"resample"`` (default): in every bin, the more populated class is
  downsampled at random to the count of the other; the spectra then agree bin
  by bin and the classes are balanced;
- ``"reweight"``: every cluster keeps its place and gets a weight, so that both
  classes follow the combined spectrum; the weights average 1 per class and
  reach training as Keras sample weights.

In both, clusters in bins where one class is absent are dropped, as they
cannot be matched.

Examples
--------
>>> config = SelectionConfig(balance=True, match="log10(cluster_E)")
>>> config.cut
'abs(cluster_Eta) < 0.7 and cluster_ENG_CALIB_TOT > 0.2'
>>> selection = select({"pi0": "data/pi0.root", "pipm": "data/pipm.root"},
...                    config)  # doctest: +SKIP
>>> parts = split(selection, seed=1)  # doctest: +SKIP
>>> parts.save("outputs/split.npz")  # doctest: +SKIP
>>> Split.load("outputs/split.npz")["test"]  # doctest: +SKIP
Selection(40000 clusters in 2 files: pi0 20000, pipm 20000)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from calotools import atomic, ntuple
from calotools.cuts import branches_in, evaluate_cut, evaluate_feature, feature_branch
from calotools.errors import DataError, UnknownNameError
from calotools.ntuple import Clusters

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_CUT",
    "DEFAULT_FRACTIONS",
    "SAMPLE_LABELS",
    "DataError",
    "FileScan",
    "SampleFile",
    "Selection",
    "SelectionConfig",
    "Split",
    "build_selection",
    "iterate_selection",
    "match_spectra",
    "read_selection",
    "sample_files",
    "scan_columns",
    "scan_file",
    "select",
    "split",
]

#: Class labels of the ATLAS pion studies (``docs/conventions.md``): the score is P(π±).
SAMPLE_LABELS: dict[str, int] = {"pi0": 0, "pipm": 1}
CLASS_NAMES: dict[int, str] = {0: "π0", 1: "π±"}
#: The barrel and a minimum true energy in the cluster (``docs/conventions.md``, "Selection").
DEFAULT_CUT = "abs(cluster_Eta) < 0.7 and cluster_ENG_CALIB_TOT > 0.2"
DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.7, "validation": 0.1, "test": 0.2}

MatchMethod = Literal["resample", "reweight"]
_FORMAT = "calotools.Split/1"
# Independent random streams per purpose, so that e.g. turning balancing on
# does not change which clusters the split puts in the test part.
_STREAM = {"match": 1, "balance": 2, "split": 3}


@dataclass(frozen=True)
class SelectionConfig:
    """How clusters are selected from the samples; saved with the selection.

    Parameters
    ----------
    cut
        Selection expression on branches (`calotools.cuts`); None for none.
    balance
        Downsample the larger class at random (seeded) to the size of the smaller.
    match
        Feature whose spectra are matched between the classes, e.g.
        ``"log10(cluster_E)"``; None for no matching.
    match_bins
        Number of equal bins over the range of ``match``, or the bin edges.
    match_method
        ``"resample"`` or ``"reweight"`` (module docstring).
    seed
        Seed of the random choices (matching, balancing).
    """

    cut: str | None = DEFAULT_CUT
    balance: bool = False
    match: str | None = None
    match_bins: int | tuple[float, ...] = 20
    match_method: MatchMethod = "resample"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.cut is not None:
            branches_in(self.cut)  # a cut that does not parse fails here, with its text
        if self.match is not None:
            feature_branch(self.match)
        if self.match_method not in ("resample", "reweight"):
            msg = f"match_method must be 'resample' or 'reweight', got {self.match_method!r}"
            raise DataError(msg)
        if isinstance(self.match_bins, int | np.integer):
            if self.match_bins < 1:
                msg = f"match_bins must be at least 1 bin, got {self.match_bins}"
                raise DataError(msg)
            object.__setattr__(self, "match_bins", int(self.match_bins))
        else:
            edges = tuple(float(edge) for edge in self.match_bins)
            if len(edges) < 2 or not np.all(np.diff(edges) > 0):
                msg = f"match_bins must be a number of bins or increasing edges, got {edges}"
                raise DataError(msg)
            object.__setattr__(self, "match_bins", edges)
        is_int = isinstance(self.seed, int | np.integer) and not isinstance(self.seed, bool)
        if not is_int or self.seed < 0:
            msg = f"seed must be a whole number >= 0, got {self.seed!r}"
            raise DataError(msg)
        object.__setattr__(self, "seed", int(self.seed))

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        fields = dataclasses.asdict(self)
        if isinstance(self.match_bins, tuple):
            fields["match_bins"] = list(self.match_bins)
        return fields

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SelectionConfig:
        """The inverse of `to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            msg = f"unknown SelectionConfig fields {unknown}; known: {sorted(known)}"
            raise DataError(msg)
        values = dict(values)
        if isinstance(values.get("match_bins"), list):
            values["match_bins"] = tuple(values["match_bins"])
        return cls(**values)


@dataclass(frozen=True)
class SampleFile:
    """One input file: its path, sample, class label, number of entries and content hash.

    ``sha256`` (of the whole file, when the selection was made) tells a file
    remade since from the one the entry numbers refer to; None where unknown
    (splits of calotools before 0.3, loaders' own bookkeeping).
    """

    path: Path
    sample: str
    label: int
    n_entries: int
    sha256: str | None = None

    def changed(self) -> str | None:
        """Why the file on disk is not the one selected from; None if it is, or is missing.

        A missing file is left to the reader, which names it when it is needed.
        """
        if not self.path.is_file():
            return None
        if self.sha256 is None:  # a split of calotools before 0.3: the entries tell what they can
            entries = ntuple.ChunkReader(self.path, []).num_entries
            if self.n_entries >= 0 and entries != self.n_entries:
                return f"{self.path} has {entries} entries but had {self.n_entries}"
            return None
        if atomic.sha256(self.path) != self.sha256:
            return f"{self.path} has other content than when the selection was made"
        return None


# ---------------------------------------------------------------------------- reading


def _with_legacy_names(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Columns under their canonical and legacy names, so cuts may use either."""
    legacy = {old: columns[new] for old, new in ntuple.LEGACY_ALIASES.items() if new in columns}
    return {**columns, **legacy}


def _columns(clusters: Clusters) -> dict[str, np.ndarray]:
    return {
        **{name: clusters.scalars[name].to_numpy() for name in clusters.scalars},
        **clusters.images,
    }


def _check_finite_columns(columns: Mapping[str, np.ndarray], where: str, why: str) -> None:
    counts = {
        name: int(np.count_nonzero(~np.isfinite(values)))
        for name, values in columns.items()
        if values.dtype.kind == "f"
    }
    bad = {name: n for name, n in counts.items() if n}
    if bad:
        detail = ", ".join(f"branch {name!r}: {n}" for name, n in bad.items())
        msg = f"{where}: non-finite (NaN or inf) values ({detail}); {why}"
        raise DataError(msg)


# ---------------------------------------------------------------------------- samples


def _check_distinct_content(files: Sequence[tuple[Path, str]]) -> None:
    """No two of ``files`` ((path, sample)) hold the same bytes under different names.

    A copy given as the other class (``cp pi0.root pipm.root``) trains a
    classifier on identical inputs with opposite labels, and a copy within one
    sample counts its clusters twice. Only files of equal size can be equal,
    so only those are read and hashed.
    """
    by_size: dict[int, list[tuple[Path, str]]] = {}
    for path, sample in files:
        by_size.setdefault(path.stat().st_size, []).append((path, sample))
    for group in by_size.values():
        if len(group) < 2:
            continue
        first_with: dict[str, tuple[Path, str]] = {}
        for path, sample in group:
            digest = atomic.sha256(path)
            if digest in first_with:
                earlier, earlier_sample = first_with[digest]
                why = (
                    f"a file of sample {sample!r} given twice counts its clusters twice"
                    if sample == earlier_sample
                    else "the two classes must come from different files"
                )
                msg = (
                    f"{path} (sample {sample!r}) has the same content as {earlier} "
                    f"(sample {earlier_sample!r}); {why}"
                )
                raise DataError(msg)
            first_with[digest] = (path, sample)


def sample_files(
    samples: Mapping[str, ntuple.FileSpec], labels: Mapping[str, int] = SAMPLE_LABELS
) -> list[tuple[Path, str, int]]:
    """(path, sample, label) of every file of every sample, in order.

    Every file must be a different one, by path and by content; the files of
    one sample must have the same branches, and all files the same image
    branches and shapes (read from their metadata, before any cluster is).

    Raises
    ------
    DataError
        For an unknown sample name, a file given twice (in two samples or in
        one) and two files with the same content (a copy under another name).
    NtupleError
        For a file that is not a readable ntuple, and for files that disagree
        on their branches or image shapes.
    """
    if not samples:
        msg = f"no samples given; expected e.g. {{'pi0': files, 'pipm': files}} ({list(labels)})"
        raise DataError(msg)
    seen: dict[Path, str] = {}
    given: list[tuple[Path, str]] = []
    result = []
    for sample, spec in samples.items():
        if sample not in labels:
            msg = f"unknown sample {sample!r}; the samples are: {', '.join(labels)}"
            raise DataError(msg)
        for path in ntuple.resolve_files(spec):
            key = path.resolve()
            if key in seen:
                where = (
                    f"listed twice in sample {sample!r}"
                    if seen[key] == sample
                    else f"given both as {seen[key]!r} and as {sample!r}"
                )
                msg = f"{path} is {where}; every file may be read once"
                raise DataError(msg)
            seen[key] = sample
            given.append((path, sample))
            result.append((key, sample, labels[sample]))
    _check_distinct_content(given)
    named = {path: f"{path} (sample {sample!r})" for path, sample in given}
    for sample in samples:
        own = [path for path, of in given if of == sample]
        ntuple.check_same_layout(own, names=[named[path] for path in own])
    # The samples may differ in other branches (one made without LCW tables
    # lacks the LCW weights); what a model reads is checked when it is read.
    firsts = [next(path for path, of in given if of == sample) for sample in samples]
    ntuple.check_same_layout(firsts, names=[named[path] for path in firsts], images_only=True)
    return result


@dataclass
class FileScan:
    """What `scan_file` found in one file: entries passing the cut, and match-variable values."""

    n_entries: int
    entries: np.ndarray
    match_values: np.ndarray | None = None


def _scan_branches(cut: str | None, variable: str | None) -> list[str]:
    branches = sorted(branches_in(cut)) if cut else []
    if variable:
        branches.append(feature_branch(variable))
    # cluster_E is read even without a cut, to count the entries.
    return list(dict.fromkeys(branches)) or ["cluster_E"]


def scan_columns(
    columns: Mapping[str, np.ndarray],
    cut: str | None,
    variable: str | None,
    where: str,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows passing ``cut`` and their ``variable`` values, for one chunk of columns."""
    _check_finite_columns(
        {name: columns[name] for name in _scan_branches(cut, variable) if name in columns},
        where,
        "the selection cannot be evaluated on them",
    )
    n = len(next(iter(columns.values())))
    mask = (
        evaluate_cut(cut, _with_legacy_names(columns), where=where)
        if cut
        else np.ones(n, dtype=bool)
    )
    rows = np.flatnonzero(mask)
    values = None
    if variable:
        values = evaluate_feature(variable, columns)[rows]
        _check_finite_columns({variable: values}, where, "the spectrum cannot be matched")
    return rows, values


def scan_file(
    path: str | os.PathLike,
    *,
    cut: str | None = DEFAULT_CUT,
    variable: str | None = None,
    step_size: int = ntuple.DEFAULT_BASKET_SIZE,
) -> FileScan:
    """Entry numbers passing ``cut`` in one file (reading only the branches it needs).

    ``variable`` (e.g. ``"log10(cluster_E)"``) is also evaluated, for spectrum matching.
    """
    branches = _scan_branches(cut, variable)
    entries: list[np.ndarray] = []
    values: list[np.ndarray] = []
    start = 0
    try:
        with warnings.catch_warnings():
            # Non-finite values are an error here, reported below with their branch.
            warnings.simplefilter("ignore", ntuple.NonFiniteWarning)
            for chunk in ntuple.iterate_clusters(path, branches=branches, step_size=step_size):
                where = f"{path} entries {start}–{start + len(chunk) - 1}"
                rows, chunk_values = scan_columns(_columns(chunk), cut, variable, where)
                entries.append(rows + start)
                if chunk_values is not None:  # None unless a variable is asked for
                    values.append(chunk_values)
                start += len(chunk)
    except ntuple.NtupleError as err:
        context = f"the cut {cut!r}" if cut else "the selection"
        msg = f"{err} (needed by {context}{f' and {variable!r}' if variable else ''})"
        raise DataError(msg) from err
    return FileScan(
        n_entries=start,
        entries=np.concatenate(entries) if entries else np.zeros(0, np.int64),
        match_values=np.concatenate(values) if variable and values else None,
    )


# ---------------------------------------------------------------------------- selection


@dataclass(frozen=True, eq=False)
class Selection:
    """Clusters identified by (file, entry), with their class from the sample.

    Kept sorted by file, then entry, which is the order in which they are read.

    Attributes
    ----------
    files
        The input files (path, sample, label, number of entries).
    file_index, entry
        Per cluster: index into ``files`` and entry number in that file.
    weight
        Per-cluster weights from spectrum reweighting, or None.
    info
        How the selection was made (cut, seed, balancing, matching, counts).
    """

    files: tuple[SampleFile, ...]
    file_index: np.ndarray
    entry: np.ndarray
    weight: np.ndarray | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        file_index = np.asarray(self.file_index, dtype=np.int32)
        entry = np.asarray(self.entry, dtype=np.int64)
        weight = None if self.weight is None else np.asarray(self.weight, dtype=np.float32)
        if len(file_index) != len(entry) or (weight is not None and len(weight) != len(entry)):
            msg = "file_index, entry and weight need one value per cluster"
            raise DataError(msg)
        order = np.lexsort((entry, file_index))
        if np.any(order != np.arange(len(order))):
            file_index, entry = file_index[order], entry[order]
            weight = None if weight is None else weight[order]
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "file_index", file_index)
        object.__setattr__(self, "entry", entry)
        object.__setattr__(self, "weight", weight)

    def __len__(self) -> int:
        return len(self.entry)

    def __repr__(self) -> str:
        counts = ", ".join(f"{sample} {n}" for sample, n in self.counts().items())
        return (
            f"Selection({len(self)} clusters in {len(self.files)} file"
            f"{'s' if len(self.files) != 1 else ''}: {counts})"
        )

    @property
    def labels(self) -> np.ndarray:
        """Class of every cluster (0 for π0, 1 for π±)."""
        return np.asarray([f.label for f in self.files], dtype=np.int32)[self.file_index]

    @property
    def ids(self) -> np.ndarray:
        """(file index, entry) of every cluster, shape (n, 2), int64."""
        return np.stack([self.file_index.astype(np.int64), self.entry], axis=1)

    @property
    def config(self) -> SelectionConfig:
        """How the selection was made."""
        if "selection" in self.info:
            return SelectionConfig.from_dict(self.info["selection"])
        # Selections saved by calotools 0.1 kept the settings at the top of their info.
        match = self.info.get("match") or {}
        return SelectionConfig(
            cut=self.info.get("cut"),
            balance=bool(self.info.get("balance", False)),
            match=match.get("variable"),
            match_method=match.get("method", "resample"),
            seed=int(self.info.get("seed", 0)),
        )

    @property
    def cut(self) -> str | None:
        """The cut every selected cluster passes."""
        return self.config.cut

    def counts(self) -> dict[str, int]:
        """Clusters per sample."""
        per_file = np.bincount(self.file_index, minlength=len(self.files))
        counts: dict[str, int] = {}
        for sample_file, n in zip(self.files, per_file, strict=True):
            counts[sample_file.sample] = counts.get(sample_file.sample, 0) + int(n)
        return counts

    def take(self, indices: np.ndarray | slice, **info: Any) -> Selection:
        """The clusters at ``indices`` (a slice, integer positions or a boolean mask)."""
        if not isinstance(indices, slice):
            indices = np.asarray(indices)
        return Selection(
            self.files,
            self.file_index[indices],
            self.entry[indices],
            None if self.weight is None else self.weight[indices],
            {**self.info, **info},
        )

    def file_slices(self) -> Iterator[tuple[int, slice]]:
        """(file index, positions of its clusters) for every file with selected clusters."""
        bounds = np.searchsorted(self.file_index, np.arange(len(self.files) + 1))
        for number in range(len(self.files)):
            if bounds[number + 1] > bounds[number]:
                yield number, slice(int(bounds[number]), int(bounds[number + 1]))


def match_spectra(
    values: np.ndarray,
    labels: np.ndarray,
    bins: int | Sequence[float] = 20,
    method: MatchMethod = "resample",
    *,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Make the spectra of two classes in ``values`` agree (see the module docstring).

    Returns
    -------
    keep
        Sorted positions of the clusters kept.
    weights
        Their weights (``"reweight"``) or None (``"resample"``).
    edges
        The bin edges used.
    """
    if method not in ("resample", "reweight"):
        msg = f"method must be 'resample' or 'reweight', got {method!r}"
        raise DataError(msg)
    classes = np.unique(labels)
    if len(classes) != 2:
        msg = f"matching spectra needs clusters of two classes; found {len(classes)}"
        raise DataError(msg)
    edges = np.histogram_bin_edges(values, bins) if np.ndim(bins) == 0 else np.asarray(bins, float)
    # Bins are [low, high), the last one closed; values outside the edges are unmatched.
    which = np.searchsorted(edges, values, side="right") - 1
    which[values == edges[-1]] = len(edges) - 2
    inside = (which >= 0) & (which < len(edges) - 1)
    n_bins = len(edges) - 1
    counts = np.stack(
        [np.bincount(which[inside & (labels == c)], minlength=n_bins) for c in classes]
    )
    rng = np.random.default_rng([seed, _STREAM["match"]])
    if method == "resample":
        keep = []
        for b in np.flatnonzero(counts.min(axis=0)):
            n_keep = counts[:, b].min()
            for c in classes:
                members = np.flatnonzero(inside & (which == b) & (labels == c))
                keep.append(rng.choice(members, n_keep, replace=False))
        keep_all = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
        return keep_all, None, edges
    matched = counts.min(axis=0) > 0
    keep_all = np.flatnonzero(inside & matched[np.clip(which, 0, n_bins - 1)])
    total = counts.sum(axis=0) * matched
    target = total / max(total.sum(), 1)
    weights = np.zeros(len(values))
    for row, c in enumerate(classes):
        density = counts[row] * matched / max((counts[row] * matched).sum(), 1)
        ratio = np.divide(target, density, out=np.zeros(n_bins), where=density > 0)
        members = keep_all[labels[keep_all] == c]
        weights[members] = ratio[which[members]]
    return keep_all, weights[keep_all].astype(np.float32), edges


def _balance(selection: Selection, seed: int) -> Selection:
    labels = selection.labels
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        msg = "balance=True needs clusters of both classes (π0 and π±)"
        raise DataError(msg)
    rng = np.random.default_rng([seed, _STREAM["balance"]])
    n_keep = counts.min()
    keep = np.sort(
        np.concatenate(
            [rng.choice(np.flatnonzero(labels == c), n_keep, replace=False) for c in classes]
        )
    )
    balanced = selection.take(keep)
    if balanced.weight is None:
        return balanced
    # Renormalise the spectrum weights: mean 1 per class again after downsampling.
    weight = balanced.weight.copy()
    for c in classes:
        members = balanced.labels == c
        weight[members] /= weight[members].mean()
    return Selection(balanced.files, balanced.file_index, balanced.entry, weight, balanced.info)


def build_selection(
    files: Sequence[tuple[Path, str, int]],
    scans: Sequence[FileScan],
    config: SelectionConfig | None = None,
) -> Selection:
    """Turn per-file scans (`scan_file`, or the Dask version) into a `Selection`.

    Checks that every sample keeps clusters, then matches spectra and balances
    classes as ``config`` asks (see `select`).
    """
    config = config or SelectionConfig()
    cut = config.cut
    sample_list = tuple(
        SampleFile(path, sample, label, scan.n_entries, atomic.sha256(path))
        for (path, sample, label), scan in zip(files, scans, strict=True)
    )
    per_sample: dict[str, tuple[int, int, list[str]]] = {}
    for sample_file, scan in zip(sample_list, scans, strict=True):
        read, kept, names = per_sample.get(sample_file.sample, (0, 0, []))
        per_sample[sample_file.sample] = (
            read + scan.n_entries,
            kept + len(scan.entries),
            [*names, sample_file.path.name],
        )
    for sample, (read, kept, names) in per_sample.items():
        if kept == 0:
            what = f"none of its {read} clusters passes the cut {cut!r}" if read else "no clusters"
            msg = f"sample {sample!r} ({', '.join(names)}): {what}"
            raise DataError(msg)
    file_index = np.concatenate(
        [np.full(len(scan.entries), i, np.int32) for i, scan in enumerate(scans)]
    )
    entry = np.concatenate([scan.entries for scan in scans])
    info: dict[str, Any] = {
        "selection": config.to_dict(),
        "match": None,
        "passing_cut": {s: kept for s, (_, kept, _) in per_sample.items()},
    }
    selection = Selection(sample_list, file_index, entry, None, info)
    if config.match:
        values = np.concatenate([scan.match_values for scan in scans])
        labels = np.asarray([f.label for f in sample_list], dtype=np.int32)[file_index]
        keep, weights, edges = match_spectra(
            values, labels, config.match_bins, config.match_method, seed=config.seed
        )
        if len(keep) == 0:
            msg = f"no bin of {config.match!r} has clusters of both classes; nothing can be matched"
            raise DataError(msg)
        info["match"] = {
            "variable": config.match,
            "method": config.match_method,
            "edges": edges.tolist(),
        }
        selection = Selection(sample_list, file_index[keep], entry[keep], weights, info)
    if config.balance:
        selection = _balance(selection, config.seed)
    return selection.take(np.arange(len(selection)), counts=selection.counts())


def select(
    samples: Mapping[str, ntuple.FileSpec],
    config: SelectionConfig | None = None,
    *,
    labels: Mapping[str, int] = SAMPLE_LABELS,
    step_size: int = ntuple.DEFAULT_BASKET_SIZE,
) -> Selection:
    """Select clusters from labelled samples.

    Only the branches the cut and the matching variable use are read, chunk by chunk.

    Parameters
    ----------
    samples
        Sample name → files (a path, glob, folder or list), e.g.
        ``{"pi0": "data/pi0.root", "pipm": "data/pipm.root"}``.
    config
        How to select (default: `SelectionConfig()`, the studies' cut).
    labels
        Sample name → class label.
    step_size
        Entries read per chunk.

    Raises
    ------
    DataError
        For a file given twice or a copy of one (`sample_files`), a cut naming
        a branch a file lacks, NaN/inf in a branch the cut uses, or a sample
        with no cluster passing the cut.
    NtupleError
        For files that disagree on their branches or image shapes.
    """
    config = config or SelectionConfig()
    files = sample_files(samples, labels)
    scans = [
        scan_file(path, cut=config.cut, variable=config.match, step_size=step_size)
        for path, _, _ in files
    ]
    return build_selection(files, scans, config)


# ---------------------------------------------------------------------------- split


@dataclass(frozen=True, eq=False)
class Split:
    """Train/validation/test parts of one selection; saved so later notebooks reuse them."""

    parts: Mapping[str, Selection]
    info: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Selection:
        try:
            return self.parts[name]
        except KeyError:
            msg = f"the split has no part {name!r}; it has: {', '.join(self.parts)}"
            raise UnknownNameError(msg) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.parts)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name} {len(part)}" for name, part in self.parts.items())
        return f"Split({sizes})"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the split to ``path`` (``.npz``): files, entry numbers per part, provenance."""
        path = Path(path)
        files = next(iter(self.parts.values())).files
        # Any, not ndarray: numpy's stub would match an ndarray in ``**arrays``
        # to savez_compressed's ``allow_pickle: bool``.
        arrays: dict[str, Any] = {
            "files": np.asarray([str(f.path) for f in files]),
            "samples": np.asarray([f.sample for f in files]),
            "labels": np.asarray([f.label for f in files], dtype=np.int64),
            "n_entries": np.asarray([f.n_entries for f in files], dtype=np.int64),
            "sha256": np.asarray([f.sha256 or "" for f in files]),
        }
        part_info = {}
        for name, part in self.parts.items():
            if part.files != files:
                msg = f"part {name!r} refers to other files than the others; cannot save"
                raise DataError(msg)
            arrays[f"{name}.file_index"] = part.file_index
            arrays[f"{name}.entry"] = part.entry
            if part.weight is not None:
                arrays[f"{name}.weight"] = part.weight
            part_info[name] = dict(part.info)
        meta = {"format": _FORMAT, "parts": list(self.parts), "info": self.info}
        meta["part_info"] = part_info
        arrays["meta"] = np.asarray(json.dumps(meta, default=_json_default))
        with atomic.atomic_write(path) as tmp, tmp.open("wb") as stream:
            np.savez_compressed(stream, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, data_dir: str | os.PathLike | None = None) -> Split:
        """Read a split written by `save`.

        Parameters
        ----------
        data_dir
            Look the files up by name in this folder instead of their saved
            paths (data moved to another machine or folder).
        """
        with np.load(path, allow_pickle=False) as stored:
            arrays = dict(stored)
        meta = json.loads(str(arrays["meta"]))
        if meta.get("format") != _FORMAT:
            msg = f"{path}: not a calotools split (format {meta.get('format')!r})"
            raise DataError(msg)
        paths = [Path(p) for p in arrays["files"]]
        if data_dir is not None:
            paths = [Path(data_dir) / p.name for p in paths]
        hashes = arrays.get("sha256", np.full(len(paths), ""))
        files = tuple(
            SampleFile(p, str(s), int(label), int(n), str(h) or None)
            for p, s, label, n, h in zip(
                paths, arrays["samples"], arrays["labels"], arrays["n_entries"], hashes, strict=True
            )
        )
        parts = {
            name: Selection(
                files,
                arrays[f"{name}.file_index"],
                arrays[f"{name}.entry"],
                arrays.get(f"{name}.weight"),
                meta["part_info"][name],
            )
            for name in meta["parts"]
        }
        for part in parts.values():
            part.config  # noqa: B018 - checks the stored cut (calotools.cuts) before any use
        return cls(parts, meta["info"])

    def changed_files(self) -> list[str]:
        """Why each input file that is not the one the split was made from differs (empty if none)."""
        files = next(iter(self.parts.values())).files
        return [reason for f in files if (reason := f.changed()) is not None]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    msg = f"cannot store {type(value).__name__} in the split's metadata"
    raise TypeError(msg)


def split(
    selection: Selection,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    *,
    seed: int = 0,
) -> Split:
    """Divide a selection into parts at random, class by class (stratified), seeded.

    Parameters
    ----------
    fractions
        Part name → fraction of the clusters; they must add up to 1.
    seed
        The same selection and seed give the same parts.

    Raises
    ------
    DataError
        If a part ends up empty, or without a class the selection has.
    """
    names = list(fractions)
    shares = np.asarray([fractions[n] for n in names], dtype=float)
    if np.any(shares < 0) or not math.isclose(shares.sum(), 1.0, abs_tol=1e-9):
        msg = f"the split fractions must be ≥ 0 and add up to 1; got {dict(fractions)}"
        raise DataError(msg)
    rng = np.random.default_rng([seed, _STREAM["split"]])
    labels = selection.labels
    members: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for c in np.unique(labels):
        positions = rng.permutation(np.flatnonzero(labels == c))
        bounds = np.round(np.cumsum(np.concatenate([[0], shares])) * len(positions)).astype(int)
        for i, name in enumerate(names):
            members[name].append(positions[bounds[i] : bounds[i + 1]])
    parts = {}
    classes = np.unique(labels)
    for name in names:
        indices = np.sort(np.concatenate(members[name]))
        part_labels = labels[indices]
        for c in classes:
            if not np.any(part_labels == c) and fractions[name] > 0:
                n_class = int(np.count_nonzero(labels == c))
                msg = (
                    f"the {name!r} part has no {CLASS_NAMES.get(int(c), c)} clusters: the "
                    f"selection has only {n_class}; use more data or a larger {name!r} fraction"
                )
                raise DataError(msg)
        parts[name] = selection.take(indices, part=name)
    info = {"fractions": dict(fractions), "seed": seed, "selection": dict(selection.info)}
    return Split(parts, info)


# ---------------------------------------------------------------------------- reading back


def _check_entries(sample_file: SampleFile, reader: ntuple.ChunkReader) -> None:
    if reader.num_entries != sample_file.n_entries:
        msg = (
            f"{sample_file.path} has {reader.num_entries} entries but had "
            f"{sample_file.n_entries} when the selection was made; its entry numbers no longer "
            "identify the same clusters (was the file remade?)"
        )
        raise DataError(msg)


def iterate_selection(
    selection: Selection,
    branches: Sequence[str],
    *,
    step_size: int = ntuple.DEFAULT_BASKET_SIZE,
) -> Iterator[tuple[Clusters, np.ndarray]]:
    """Yield ``(clusters, positions)`` chunk by chunk, file by file.

    ``positions`` index the selection (its ``ids``, ``labels``, ``weight``).
    Only chunks holding selected clusters are read.
    """
    for number, positions in selection.file_slices():
        sample_file = selection.files[number]
        reader = ntuple.ChunkReader(sample_file.path, branches)
        _check_entries(sample_file, reader)
        entries = selection.entry[positions]
        for start, stop in reader.chunk_bounds(step_size):
            low, high = np.searchsorted(entries, [start, stop])
            if high > low:
                clusters = reader.read(start, stop, entries[low:high] - start)
                yield clusters, np.arange(positions.start + low, positions.start + high)


def read_selection(selection: Selection, branches: Sequence[str]) -> Clusters:
    """Read the selected clusters into memory, in the selection's order."""
    return Clusters.concat(chunk for chunk, _ in iterate_selection(selection, branches))
