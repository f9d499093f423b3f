"""Read and write topo-cluster ntuples in the ATLAS MLTree ``ClusterTree`` format.

One entry per cluster: scalar branches (``cluster_E``, moments, truth) and six
float32 layer images stored [η][φ] (``docs/ntuple-format.md``). Files written by
calotools and real MLTree ntuples read the same way; legacy "v7" branch names
(``clusterE``, ``clusterEta``, …) are accepted as aliases. A ``ClusterTree``
stored as a ROOT RNTuple reads like the TTree calotools writes.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from calotools.testing import random_clusters
>>> path = write_clusters(Path(tempfile.mkdtemp()) / "pi0.root", random_clusters(500, seed=1))
>>> clusters = read_clusters(path, branches=["cluster_E", "EMB2"], cut="cluster_E > 10")
>>> len(clusters), clusters.images["EMB2"].shape[1:]
(69, (16, 16))
>>> [len(chunk) for chunk in iterate_clusters(path, branches=["EMB1"], step_size=200)]
[200, 200, 100]
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
import pandas as pd
import uproot

from calotools import atomic, geometry
from calotools.cuts import branches_in, evaluate_cut
from calotools.errors import MissingFileError, NonFiniteWarning, NtupleError

__all__ = [
    "IMAGE_BRANCHES",
    "LEGACY_ALIASES",
    "SCALAR_BRANCHES",
    "TREE_NAME",
    "ChunkReader",
    "ClusterWriter",
    "Clusters",
    "NonFiniteWarning",
    "NtupleError",
    "check_same_layout",
    "iterate_clusters",
    "read_clusters",
    "resolve_files",
    "write_clusters",
]

TREE_NAME = "ClusterTree"

_F4 = np.dtype(np.float32)
_I4 = np.dtype(np.int32)

#: The scalar branches of the converted MLTree schema and calotools' additions,
#: with their ROOT types (``docs/ntuple-format.md``). Energies in GeV.
SCALAR_BRANCHES: dict[str, np.dtype] = {
    "cluster_E": _F4,
    "cluster_E_LCCalib": _F4,
    "cluster_Pt": _F4,
    "cluster_Eta": _F4,
    "cluster_Phi": _F4,
    "cluster_nCells": _I4,
    "cluster_ENG_CALIB_TOT": _F4,
    "cluster_ENG_CALIB_OUT_T": _F4,
    "cluster_ENG_CALIB_DEAD_TOT": _F4,
    "cluster_EM_PROBABILITY": _F4,
    "cluster_HAD_WEIGHT": _F4,
    "cluster_OOC_WEIGHT": _F4,
    "cluster_DM_WEIGHT": _F4,
    "cluster_CENTER_MAG": _F4,
    "cluster_CENTER_LAMBDA": _F4,
    "cluster_FIRST_ENG_DENS": _F4,
    "cluster_ISOLATION": _F4,
    "cluster_SECOND_R": _F4,
    "cluster_SECOND_LAMBDA": _F4,
    "cluster_LATERAL": _F4,
    "cluster_LONGITUDINAL": _F4,
    "cluster_ENG_FRAC_EM": _F4,
    "cluster_SIGNIFICANCE": _F4,
    "eventNumber": np.dtype(np.int64),
    "clusterIndex": _I4,
    "nCluster": _I4,
    "truthE": _F4,
    "truthPt": _F4,
    "truthEta": _F4,
    "truthPhi": _F4,
    "truthPDG": _I4,
}

#: Image branches and their (n_η, n_φ) shapes, from `calotools.geometry`.
IMAGE_BRANCHES: dict[str, tuple[int, int]] = {
    lay.name: lay.image_shape for lay in geometry.IMAGE_LAYERS if lay.image_shape
}

#: Older MLTree image ntuples ("v7") name some branches differently.
LEGACY_ALIASES: dict[str, str] = {
    "clusterE": "cluster_E",
    "clusterECalib": "cluster_E_LCCalib",
    "clusterPt": "cluster_Pt",
    "clusterEta": "cluster_Eta",
    "clusterPhi": "cluster_Phi",
}
_ALIASES_OF = {canonical: legacy for legacy, canonical in LEGACY_ALIASES.items()}

#: Legacy branches that carry nothing calotools uses (the presampler image and
#: MLTree's duplicate-cell counters); skipped when reading everything.
_IGNORED_PREFIXES = ("PSB", "duplicate_")

#: Entries per basket when writing: the issue measured a 100k-cluster file in
#: one basket reading 20× slower in chunks than one in 10k-entry baskets.
DEFAULT_BASKET_SIZE = 10_000

_COMPRESSION = {
    "lz4": lambda: uproot.LZ4(1),
    "zstd": lambda: uproot.ZSTD(1),
    "zlib": lambda: uproot.ZLIB(1),
    None: lambda: None,
}

FileSpec = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass
class Clusters:
    """Clusters read from (or to be written to) an ntuple.

    Attributes
    ----------
    scalars
        One row per cluster, one column per scalar branch.
    images
        Layer name → float32 array shaped (n_clusters, n_η, n_φ).
    """

    scalars: pd.DataFrame
    images: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, image in self.images.items():
            if len(image) != len(self.scalars) and len(self.scalars.columns):
                msg = (
                    f"image {name!r} has {len(image)} clusters but the scalars have "
                    f"{len(self.scalars)}"
                )
                raise NtupleError(msg)

    def __len__(self) -> int:
        if len(self.scalars.columns):
            return len(self.scalars)
        return len(next(iter(self.images.values()), ()))

    def __getitem__(self, index: slice | np.ndarray | Sequence[int]) -> Clusters:
        """Select clusters by slice, integer indices or boolean mask."""
        if isinstance(index, slice):
            rows = np.arange(len(self))[index]
        else:
            rows = np.asarray(index)
            if rows.dtype == np.bool_:
                rows = np.flatnonzero(rows)
        return Clusters(
            self.scalars.iloc[rows].reset_index(drop=True),
            {name: image[rows] for name, image in self.images.items()},
        )

    @classmethod
    def concat(cls, parts: Iterable[Clusters]) -> Clusters:
        """Join clusters from several chunks or files, in order."""
        parts = list(parts)
        if len(parts) <= 1:
            return parts[0] if parts else cls(pd.DataFrame())
        scalars = pd.concat([p.scalars for p in parts], ignore_index=True)
        images = {name: np.concatenate([p.images[name] for p in parts]) for name in parts[0].images}
        return cls(scalars, images)

    def summary(self) -> pd.DataFrame:
        """Count, mean and quantiles of every scalar, plus the mean image sum per layer."""
        table = self.scalars.describe(percentiles=[0.16, 0.5, 0.84]).T
        for name, image in self.images.items():
            sums = image.reshape(len(image), -1).sum(axis=1)
            table.loc[f"{name} (pixel sum)"] = pd.Series(sums).describe(
                percentiles=[0.16, 0.5, 0.84]
            )
        return table


# ---------------------------------------------------------------------------- files


def resolve_files(files: FileSpec) -> list[Path]:
    """Turn a path, a glob, a folder or a list of those into a list of files.

    A folder stands for the ``*.root`` files in it. A pattern that matches
    nothing and a path that does not exist raise `FileNotFoundError`.
    """
    specs = [files] if isinstance(files, str | os.PathLike) else list(files)
    if not specs:
        msg = "no input files given"
        raise MissingFileError(msg)
    paths: list[Path] = []
    for spec in specs:
        text = os.fspath(spec)
        if glob.has_magic(text):
            matches = sorted(glob.glob(text))  # noqa: PTH207 (absolute patterns too)
            if not matches:
                msg = f"no file matches {text!r}"
                raise MissingFileError(msg)
            paths.extend(Path(m) for m in matches)
        elif Path(text).is_dir():
            in_folder = sorted(Path(text).glob("*.root"))
            if not in_folder:
                msg = f"the folder {text} has no *.root files"
                raise MissingFileError(msg)
            paths.extend(in_folder)
        elif not Path(text).exists():
            msg = f"{text}: no such file"
            raise MissingFileError(msg)
        else:
            paths.append(Path(text))
    return paths


# MLTree's trees are TTrees; ROOT's newer columnar format, the RNTuple, is read the same way.
_TTREE_CLASSES = ("TTree", "TNtuple")
_RNTUPLE_CLASS = "ROOT::RNTuple"


def _is_tree_class(classname: str) -> bool:
    return classname.startswith(_TTREE_CLASSES) or classname == _RNTUPLE_CLASS


def _form_shape(form: ak.forms.Form) -> tuple[int, ...]:
    """Fixed per-entry dimensions of an awkward form; () for a scalar or a variable length."""
    shape = []
    while isinstance(form, ak.forms.RegularForm):
        shape.append(form.size)
        form = form.content
    if not isinstance(form, ak.forms.NumpyForm):
        return ()  # std::vector, RVec or a record: no fixed shape
    return (*shape, *form.inner_shape)


def _exactly(names: Sequence[str]) -> Callable[[str], bool]:
    """An uproot ``filter_name`` that keeps these names and no others (no glob patterns)."""
    wanted = set(names)
    return lambda name: name in wanted


class _Tree:
    """A ``ClusterTree`` stored as a TTree or as an RNTuple, read through one interface.

    uproot reads both, with different calls: an RNTuple has no branch
    interpretations (shapes come from its awkward form), no
    ``common_entry_offsets`` (its clusters span every column), and its
    ``arrays`` gives fields in file order and drops unknown names silently.
    """

    def __init__(self, path: Path, name: str, classname: str, handle: Any) -> None:
        self.path = path
        self.name = name
        self.is_rntuple = classname == _RNTUPLE_CLASS
        self.handle = handle

    @property
    def kind(self) -> str:
        """``"TTree"`` or ``"RNTuple"``."""
        return "RNTuple" if self.is_rntuple else "TTree"

    @property
    def num_entries(self) -> int:
        return int(self.handle.num_entries)

    def branch_names(self) -> list[str]:
        """Top-level branch (field) names, in file order."""
        return list(self.handle.keys(recursive=False))

    def inner_shape(self, name: str) -> tuple[int, ...]:
        """Per-entry shape of a branch, read from the file's metadata: (16, 16) for EMB2."""
        if not self.is_rntuple:
            interpretation = self.handle[name].interpretation
            return tuple(getattr(interpretation, "inner_shape", ()) or ())
        form, _ = self.handle[name].to_akform()
        return _form_shape(form.contents[0])

    def arrays(self, names: Sequence[str], start: int, stop: int) -> dict[str, np.ndarray]:
        """Entries ``start`` to ``stop`` of ``names`` (as named in the file), as NumPy arrays."""
        # No array cache: uproot's default keeps up to 100 MB of what was read
        # per file, which would make a streaming reader's memory grow.
        arrays = self.handle.arrays(
            filter_name=_exactly(names),
            entry_start=start,
            entry_stop=stop,
            library="np",
            array_cache=None,
        )
        return {name: arrays[name] for name in names}

    def iterate(
        self, names: Sequence[str], step_size: int, entry_stop: int
    ) -> Iterator[dict[str, np.ndarray]]:
        """Consecutive chunks of ``step_size`` entries of ``names``, up to ``entry_stop``.

        uproot's own iteration, which keeps a basket (or an RNTuple cluster) it
        has decompressed for the next chunk: reading a file whose baskets are
        larger than the chunks decompresses each basket once, not once per chunk.
        """
        chunks = self.handle.iterate(
            filter_name=_exactly(names), step_size=step_size, entry_stop=entry_stop, library="np"
        )
        for chunk in chunks:
            yield {name: chunk[name] for name in names}

    def entry_offsets(self, names: Sequence[str]) -> list[int]:
        """Entries at which every one of ``names`` starts a new basket (RNTuple: cluster)."""
        if self.is_rntuple:
            starts = [int(c.num_first_entry) for c in self.handle.cluster_summaries]
            return [*starts, self.num_entries] if starts else [0]
        return [int(o) for o in self.handle.common_entry_offsets(filter_name=list(names))]


def _open_tree(path: Path, tree_name: str) -> _Tree:
    """Open ``path`` and return its tree, or raise an error that says what is wrong."""
    try:
        file = uproot.open(path, array_cache=None)
    except Exception as err:
        msg = f"{path}: not a readable ROOT file ({err.__class__.__name__}: {err})"
        raise NtupleError(msg) from err
    # ROOT's header records where the file ends (for RNTuple files too); a shorter
    # file was cut off (an interrupted copy or write), and reading it would fail later or worse.
    size = path.stat().st_size
    if file.file.fEND > size:
        msg = (
            f"{path}: truncated: its ROOT header says {file.file.fEND} bytes but the file has "
            f"{size}; was the copy or write interrupted?"
        )
        raise NtupleError(msg)
    classnames = {key.split(";")[0]: cls for key, cls in file.classnames().items()}
    if tree_name not in classnames:
        trees = [key for key, cls in classnames.items() if _is_tree_class(cls)]
        msg = f"{path} has no tree {tree_name!r}; it has: {', '.join(trees) or 'no trees'}"
        raise NtupleError(msg)
    if not _is_tree_class(classnames[tree_name]):
        msg = (
            f"{path}: {tree_name!r} is a {classnames[tree_name]}, not a TTree or an RNTuple; "
            "calotools reads MLTree's cluster trees"
        )
        raise NtupleError(msg)
    return _Tree(path, tree_name, classnames[tree_name], file[tree_name])


def _canonical(name: str) -> str:
    return LEGACY_ALIASES.get(name, name)


def _branch_map(tree: _Tree) -> dict[str, str]:
    """Canonical name → name in the file, for the branches calotools can read."""
    found: dict[str, str] = {}
    for name in tree.branch_names():
        if name.startswith(_IGNORED_PREFIXES):
            continue
        found.setdefault(_canonical(name), name)
    return found


def _check_images(tree: _Tree, names: Mapping[str, str]) -> None:
    """Every image branch among ``names`` (canonical → in the file) has its MLTree shape."""
    path = tree.path
    for name, in_file in names.items():
        expected = IMAGE_BRANCHES.get(name)
        if expected is None:
            continue
        shape = tree.inner_shape(in_file)
        if shape != expected:
            hint = (
                " (it looks transposed: calotools stores [η][φ])" if shape[::-1] == expected else ""
            )
            msg = (
                f"{path}: branch {name!r} holds images of shape {list(shape)}; "
                f"expected {list(expected)} [η][φ]{hint}"
            )
            raise NtupleError(msg)


@dataclass(frozen=True)
class _Layout:
    """What a file offers, by canonical name: its image branches with their shapes, and the rest."""

    images: Mapping[str, tuple[int, ...]]
    others: frozenset[str]


def _layout(tree: _Tree) -> _Layout:
    """The layout of ``tree``, from the file's metadata alone (no entry is read)."""
    available = _branch_map(tree)
    return _Layout(
        images={
            name: tree.inner_shape(in_file)
            for name, in_file in available.items()
            if name in IMAGE_BRANCHES
        },
        others=frozenset(name for name in available if name not in IMAGE_BRANCHES),
    )


def _names(names: Iterable[str]) -> str:
    ordered = sorted(names)
    label = "branch" if len(ordered) == 1 else "branches"
    return f"the {label} {', '.join(map(repr, ordered))}"


def _layout_differences(
    first: _Layout, first_name: str, other: _Layout, name: str, *, images_only: bool = False
) -> list[str]:
    """What ``other`` (called ``name``) has or lacks compared with ``first``, one phrase each."""
    differences = []
    for image in sorted(first.images.keys() - other.images.keys()):
        differences.append(f"{name} lacks the image branch {image!r} that {first_name} has")
    for image in sorted(other.images.keys() - first.images.keys()):
        differences.append(f"{name} has the image branch {image!r} that {first_name} lacks")
    for image in sorted(first.images.keys() & other.images.keys()):
        if first.images[image] != other.images[image]:
            differences.append(
                f"image {image!r} is {first.images[image]} in {first_name} "
                f"but {other.images[image]} in {name}"
            )
    if images_only:
        return differences
    if missing := first.others - other.others:
        differences.append(f"{name} lacks {_names(missing)} that {first_name} has")
    if extra := other.others - first.others:
        differences.append(f"{name} has {_names(extra)} that {first_name} lacks")
    return differences


def check_same_layout(
    paths: Sequence[Path],
    tree: str = TREE_NAME,
    *,
    names: Sequence[str] | None = None,
    images_only: bool = False,
) -> None:
    """Every file's tree has the branches of the first file's, and its images the same shapes.

    Files that are read together (the files of one sample, those of a
    `read_clusters` call) must agree, or a branch one of them lacks is found
    only when a model needs it. Only metadata is read: cheap even for many files.

    Parameters
    ----------
    paths
        The files, the first one being the reference.
    tree
        Name of the tree.
    names
        How to call each file in a message (e.g. ``"pipm.root (sample 'pipm')"``);
        default: its path.
    images_only
        Compare the image branches and their shapes only (files of different
        samples may differ in other branches, e.g. a sample made without LCW
        tables lacks the LCW weights).

    Raises
    ------
    NtupleError
        Naming both files and every difference between them.
    """
    if names is None:
        names = [str(path) for path in paths]
    if len(paths) < 2:
        return
    first = _layout(_open_tree(paths[0], tree))
    for path, name in zip(paths[1:], names[1:], strict=True):
        other = _layout(_open_tree(path, tree))
        differences = _layout_differences(first, names[0], other, name, images_only=images_only)
        if differences:
            msg = (
                f"{'; '.join(differences)}; files read together must have the same "
                "branches and image shapes"
            )
            raise NtupleError(msg)


def _select_branches(
    available: Mapping[str, str], branches: Sequence[str] | None, cut: str | None, path: Path
) -> tuple[list[str], list[str]]:
    """(branches to return, branches to read) as canonical names."""
    wanted = list(available) if branches is None else [_canonical(b) for b in branches]
    in_cut = sorted(_canonical(b) for b in branches_in(cut)) if cut else []
    needed = list(dict.fromkeys([*wanted, *in_cut]))
    missing = [b for b in needed if b not in available]
    if missing:
        label = "branch" if len(missing) == 1 else "branches"
        msg = (
            f"{path} has no {label} {', '.join(map(repr, missing))}; "
            f"it has: {', '.join(sorted(available))}"
        )
        raise NtupleError(msg)
    return wanted, needed


def _report_nonfinite(
    arrays: Mapping[str, np.ndarray], where: str, on_nonfinite: Literal["warn", "raise"]
) -> None:
    counts = {
        name: int(np.count_nonzero(~np.isfinite(values)))
        for name, values in arrays.items()
        if values.dtype.kind == "f"
    }
    counts = {name: n for name, n in counts.items() if n}
    if not counts:
        return
    detail = ", ".join(f"{name}: {n}" for name, n in counts.items())
    msg = f"{where}: non-finite (NaN or inf) values per branch: {detail}"
    if on_nonfinite == "raise":
        raise NtupleError(msg)
    warnings.warn(f"{msg} (kept as they are)", NonFiniteWarning, stacklevel=3)


def _to_clusters(
    arrays: Mapping[str, np.ndarray],
    wanted: Sequence[str],
    cut: str | None,
    where: str,
    on_nonfinite: Literal["warn", "raise"],
) -> Clusters:
    _report_nonfinite(arrays, where, on_nonfinite)
    if cut:
        # A cut may use the legacy names too.
        legacy = {_ALIASES_OF[n]: v for n, v in arrays.items() if n in _ALIASES_OF}
        mask = evaluate_cut(cut, {**arrays, **legacy}, where=where)
        arrays = {name: values[mask] for name, values in arrays.items()}
    scalars = pd.DataFrame({n: arrays[n] for n in wanted if arrays[n].ndim == 1})
    images = {
        n: np.ascontiguousarray(arrays[n], dtype=np.float32) for n in wanted if arrays[n].ndim > 1
    }
    return Clusters(scalars, images)


def _prepare(
    path: Path, tree_name: str, branches: Sequence[str] | None, cut: str | None
) -> tuple[_Tree, list[str], dict[str, str]]:
    """(the tree, branches to return, name in the file → canonical name of those to read)."""
    tree = _open_tree(path, tree_name)
    available = _branch_map(tree)
    wanted, needed = _select_branches(available, branches, cut, path)
    _check_images(tree, {name: available[name] for name in needed})
    expressions = {available[name]: name for name in needed}
    return tree, wanted, expressions


def iterate_clusters(
    files: FileSpec,
    *,
    branches: Sequence[str] | None = None,
    cut: str | None = None,
    step_size: int = DEFAULT_BASKET_SIZE,
    entry_stop: int | None = None,
    tree: str = TREE_NAME,
    on_nonfinite: Literal["warn", "raise"] = "warn",
) -> Iterator[Clusters]:
    """Yield clusters in chunks of ``step_size`` entries (before the cut), file by file.

    Parameters are those of `read_clusters`. A ``step_size`` that is a
    multiple of the files' basket size (10 000 for calotools files) reads
    each basket once.
    """
    if step_size < 1:
        msg = f"step_size must be a positive number of entries, got {step_size}"
        raise NtupleError(msg)
    remaining = math.inf if entry_stop is None else entry_stop
    for path in resolve_files(files):
        if remaining <= 0:
            return
        cluster_tree, wanted, expressions = _prepare(path, tree, branches, cut)
        stop = int(min(remaining, cluster_tree.num_entries))
        start = 0
        for chunk in cluster_tree.iterate(list(expressions), step_size, stop):
            arrays = {expressions[name]: values for name, values in chunk.items()}
            n_read = len(next(iter(arrays.values())))
            where = f"{path} entries {start}–{start + n_read - 1}"
            yield _to_clusters(arrays, wanted, cut, where, on_nonfinite)
            start += n_read
        remaining -= stop


def read_clusters(
    files: FileSpec,
    branches: Sequence[str] | None = None,
    cut: str | None = None,
    entry_stop: int | None = None,
    *,
    tree: str = TREE_NAME,
    on_nonfinite: Literal["warn", "raise"] = "warn",
) -> Clusters:
    """Read clusters from one or more ntuples into memory.

    Parameters
    ----------
    files
        A path, a glob pattern, a folder (its ``*.root`` files) or a list of those.
    branches
        Branches to return (legacy names accepted); default: every scalar and
        image branch of the first file, less the ignored legacy ones, which
        every other file must have too, with the same image shapes, and no more.
    cut
        Selection expression on branch names (see `calotools.cuts`), e.g.
        ``"abs(cluster_Eta) < 0.7 and cluster_ENG_CALIB_TOT > 0.2"``.
    entry_stop
        Read at most this many entries in total (before the cut), files in order.
    tree
        Name of the tree.
    on_nonfinite
        What to do with NaN/inf values: ``"warn"`` (default, with counts per
        branch) or ``"raise"``. They are never dropped silently.

    Returns
    -------
    Clusters
        Scalars as a DataFrame (canonical branch names) and images as float32
        arrays shaped (N, n_η, n_φ).

    Raises
    ------
    NtupleError
        For a file that cannot be read or lacks a branch asked for, and, with
        ``branches=None``, for files that disagree on their branches or image
        shapes (naming both files and what differs).
    """
    paths = resolve_files(files)
    if branches is None:
        # Every file must offer what the first one does, so the columns agree;
        # checked before reading, naming both files.
        check_same_layout(paths, tree)
        _, first_wanted, _ = _prepare(paths[0], tree, None, None)
        branches = first_wanted
    parts = list(
        iterate_clusters(
            paths,
            branches=branches,
            cut=cut,
            step_size=1 << 62,
            entry_stop=entry_stop,
            tree=tree,
            on_nonfinite=on_nonfinite,
        )
    )
    return Clusters.concat(parts)


class ChunkReader:
    """Reads entry ranges of one ntuple: chosen branches, canonical names, basket-aligned chunks.

    Parameters
    ----------
    path
        The ROOT file.
    branches
        Branches to read (legacy names accepted).
    tree
        Name of the tree.

    Attributes
    ----------
    branches
        The branches read, by canonical name.
    file_names
        Name in the file → canonical name, for the branches read.
    """

    def __init__(
        self, path: str | os.PathLike, branches: Sequence[str], *, tree: str = TREE_NAME
    ) -> None:
        self.path = Path(path)
        # The checks of read_clusters: readable file, tree, branches present, image shapes.
        self.tree, self.branches, self.file_names = _prepare(self.path, tree, list(branches), None)

    @property
    def available(self) -> list[str]:
        """Every branch of the file calotools can read, by canonical name."""
        return list(_branch_map(self.tree))

    @property
    def tree_name(self) -> str:
        """Name of the tree in the file."""
        return self.tree.name

    @property
    def kind(self) -> str:
        """How the tree is stored: ``"TTree"`` or ``"RNTuple"``."""
        return self.tree.kind

    @property
    def num_entries(self) -> int:
        """Entries in the tree."""
        return int(self.tree.num_entries)

    def chunk_bounds(self, min_entries: int = DEFAULT_BASKET_SIZE) -> list[tuple[int, int]]:
        """(start, stop) of chunks of at least ``min_entries`` that end on basket boundaries.

        Reading whole baskets decompresses each once; a chunk ending inside a
        basket would make the next read decompress it again.
        """
        offsets = self.tree.entry_offsets(list(self.file_names))
        bounds, start = [], 0
        for offset in offsets[1:]:
            if offset - start >= min_entries or offset == offsets[-1]:
                bounds.append((start, int(offset)))
                start = int(offset)
        return bounds

    def read(self, start: int, stop: int, rows: np.ndarray | None = None) -> Clusters:
        """Entries ``start`` to ``stop`` (or only ``rows``, counted from ``start``)."""
        arrays = self.tree.arrays(list(self.file_names), start, stop)
        columns = {self.file_names[name]: values for name, values in arrays.items()}
        if rows is not None:
            columns = {name: values[rows] for name, values in columns.items()}
        return Clusters(
            pd.DataFrame({n: columns[n] for n in self.branches if columns[n].ndim == 1}),
            {
                n: np.ascontiguousarray(columns[n], dtype=np.float32)
                for n in self.branches
                if columns[n].ndim > 1
            },
        )


# ---------------------------------------------------------------------------- writing


def _branch_type(name: str, values: np.ndarray) -> np.dtype:
    if name in IMAGE_BRANCHES:
        shape = IMAGE_BRANCHES[name]
        if values.shape[1:] != shape:
            msg = (
                f"image {name!r} has shape {list(values.shape[1:])}; expected {list(shape)} [η][φ]"
            )
            raise NtupleError(msg)
        return np.dtype((np.float32, shape))
    if values.ndim != 1:
        msg = f"branch {name!r} must be one value per cluster, got shape {values.shape}"
        raise NtupleError(msg)
    if name in SCALAR_BRANCHES:
        return SCALAR_BRANCHES[name]
    if values.dtype.kind not in "biuf":
        msg = f"branch {name!r} has values of type {values.dtype}; only numbers can be written"
        raise NtupleError(msg)
    return values.dtype


def _columns(clusters: Clusters) -> dict[str, np.ndarray]:
    columns = {name: clusters.scalars[name].to_numpy() for name in clusters.scalars.columns}
    columns.update(clusters.images)
    return columns


class ClusterWriter:
    """Write clusters chunk by chunk into a ``ClusterTree``, safely.

    The file is written under a temporary name in the same folder and renamed
    to ``path`` only when `close` completes, so an interrupted write never
    leaves a file that looks whole. Entries are regrouped into baskets of
    ``basket_size`` whatever the sizes of the chunks given to `write`.

    Use it as a context manager: leaving the block because of an exception
    removes the temporary file.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from calotools.testing import random_clusters
    >>> clusters = random_clusters(300, seed=2)
    >>> with ClusterWriter(Path(tempfile.mkdtemp()) / "out.root", basket_size=100) as writer:
    ...     for start in range(0, 300, 70):
    ...         writer.write(clusters[start : start + 70])
    >>> writer.n_written
    300
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        tree: str = TREE_NAME,
        basket_size: int = DEFAULT_BASKET_SIZE,
        compression: Literal["lz4", "zstd", "zlib"] | None = "lz4",
    ) -> None:
        if basket_size < 1:
            msg = f"basket_size must be a positive number of entries, got {basket_size}"
            raise NtupleError(msg)
        if compression not in _COMPRESSION:
            msg = f"compression must be one of {list(_COMPRESSION)}, got {compression!r}"
            raise NtupleError(msg)
        self.path = Path(path)
        self.tree_name = tree
        self.basket_size = basket_size
        self.n_written = 0
        self._output = atomic.PendingFile(self.path)
        self._file = uproot.recreate(self._output.tmp, compression=_COMPRESSION[compression]())
        # An uproot WritableTree (uproot has no types), made by the first write().
        self._tree: Any | None = None
        self._types: dict[str, np.dtype] = {}
        self._pending: list[dict[str, np.ndarray]] = []
        self._n_pending = 0
        # Further trees (`write_events`): name → (uproot WritableTree, branch names).
        self._event_trees: dict[str, tuple[Any, set[str]]] = {}

    def write(self, clusters: Clusters) -> None:
        """Add clusters; they reach the file in whole baskets."""
        columns = _columns(clusters)
        if not columns:
            return
        types = {name: _branch_type(name, values) for name, values in columns.items()}
        if self._tree is None:
            self._types = types
            self._tree = self._file.mktree(self.tree_name, types)
        elif types.keys() != self._types.keys():
            missing = sorted(self._types.keys() - types.keys())
            extra = sorted(types.keys() - self._types.keys())
            msg = (
                f"{self.path}: every chunk must have the same branches; this one lacks "
                f"{missing} and adds {extra}"
            )
            raise NtupleError(msg)
        self._pending.append(
            {
                name: np.asarray(
                    values, dtype=self._types[name] if name not in IMAGE_BRANCHES else np.float32
                )
                for name, values in columns.items()
            }
        )
        self._n_pending += len(clusters)
        if self._n_pending >= self.basket_size:
            self._flush(final=False)

    def write_events(self, entries: Mapping[str, Any], *, tree: str) -> None:
        """Add entries to a second tree of the file, ``tree``, written as given.

        ``entries`` maps branch names to NumPy arrays (one value per entry) or
        awkward arrays of lists of records: record ``truthPart`` with fields
        ``E`` and ``Pt`` becomes the jagged branches ``truthPartE`` and
        ``truthPartPt`` with the counter ``nTruthPart``, MLTree's names. Every
        call must give the same branches.
        """
        if tree == self.tree_name:
            msg = f"{self.path}: {tree!r} is the cluster tree; give the event tree another name"
            raise NtupleError(msg)
        types = {
            name: values.type if isinstance(values, ak.Array) else np.asarray(values).dtype
            for name, values in entries.items()
        }
        known = self._event_trees.get(tree)
        if known is None:
            # MLTree's event-level names: record "truthPart" with field "E" is the
            # branch truthPartE, counted by nTruthPart (docs/ntuple-format.md).
            made = self._file.mktree(
                tree,
                types,
                counter_name=lambda counted: "n" + counted[:1].upper() + counted[1:],
                field_name=lambda outer, inner: outer + inner,
            )
            self._event_trees[tree] = (made, set(types))
        elif set(types) != known[1]:
            msg = (
                f"{self.path}: every chunk of {tree!r} must have the same branches; this one "
                f"has {sorted(types)}, the first had {sorted(known[1])}"
            )
            raise NtupleError(msg)
        self._event_trees[tree][0].extend(dict(entries))

    def _flush(self, *, final: bool) -> None:
        if not self._pending:
            return
        if self._tree is None:  # write() makes the tree before it queues a chunk
            msg = f"{self.path}: clusters are pending but no tree was made"
            raise RuntimeError(msg)  # a bug of calotools, not bad input
        joined = {
            name: np.concatenate([chunk[name] for chunk in self._pending])
            for name in self._pending[0]
        }
        n_total = self._n_pending
        n_full = n_total if final else (n_total // self.basket_size) * self.basket_size
        for start in range(0, n_full, self.basket_size):
            stop = min(start + self.basket_size, n_full)
            self._tree.extend({name: values[start:stop] for name, values in joined.items()})
        self.n_written += n_full
        rest = {name: values[n_full:] for name, values in joined.items()}
        self._pending = [rest] if n_total > n_full else []
        self._n_pending = n_total - n_full

    def finish(self) -> Path:
        """Write what is pending and close the file; returns its temporary path.

        The file is complete but not yet under its final name: a caller that
        records facts about it (a sidecar with its checksum) does so now, then
        calls `commit`. `close` does both.
        """
        self._flush(final=True)
        if self._tree is None:
            msg = f"{self.path}: nothing was written; refusing to create an empty ntuple"
            self.abort()
            raise NtupleError(msg)
        self._file.close()
        return self._output.tmp

    def commit(self) -> Path:
        """Give the file `finish` completed its final name and return it."""
        return self._output.commit()

    def close(self) -> Path:
        """Write what is pending, close the file and give it its final name."""
        self.finish()
        return self.commit()

    def abort(self) -> None:
        """Drop the temporary file; ``path`` is left as it was."""
        with contextlib.suppress(Exception):
            self._file.close()
        self._output.abort()

    def __enter__(self) -> ClusterWriter:  # noqa: PYI034
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_clusters(
    path: str | os.PathLike,
    clusters: Clusters,
    *,
    tree: str = TREE_NAME,
    basket_size: int = DEFAULT_BASKET_SIZE,
    compression: Literal["lz4", "zstd", "zlib"] | None = "lz4",
) -> Path:
    """Write ``clusters`` to ``path`` in one go (see `ClusterWriter`)."""
    with ClusterWriter(path, tree=tree, basket_size=basket_size, compression=compression) as writer:
        writer.write(clusters)
    return writer.path
